"""A small HTTP/1.1 server on h11 and anyio streams, with keep-alive, and a path router.

The server knows nothing about the platform: it turns bytes into a
:class:`Request`, awaits the application for a :class:`Response`, and writes it
back, repeating on the same connection while the client keeps it alive. h11
does the protocol (framing, keep-alive, HEAD, ``Connection: close``); this
module only moves bytes between it and the socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.abc
import h11

from outdial.log import emit

__all__ = ["App", "HttpServer", "Request", "Response", "Route", "RouteMatch", "Router"]

_log = logging.getLogger("outdial.http")

MAX_BODY = 4 * 1024 * 1024
"""Request bodies larger than this are refused with 413."""


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, fully read: method, path, query, lower-cased headers and body.

    ``query`` keeps the last value of each parameter; ``query_pairs`` keeps every
    one, in order, for repeatable parameters such as ``id=a&id=b``.
    ``local_host`` is the address the connection arrived at (the server's
    side), when the stream is a socket: what a ``Host`` header may name.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    query_pairs: tuple[tuple[str, str], ...] = ()
    local_host: str | None = None

    def header(self, name: str) -> str | None:
        """A header's value (the last one when repeated), by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass(slots=True)
class Response:
    """An HTTP response to send: status, extra headers and the complete body."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """A JSON response (``Content-Type: application/json``)."""
        data = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, data, [("Content-Type", "application/json"), *headers])

    @classmethod
    def empty(cls, status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """A response without a body."""
        return cls(status, b"", list(headers))


App = Callable[[Request], Awaitable[Response]]
"""What the server calls for each request."""


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the routing table; ``name`` identifies it to the application."""

    method: str
    pattern: str
    name: str
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A resolved route and the path parameters it captured (URL-decoded)."""

    route: Route
    params: dict[str, str]


class Router:
    """A table of ``(method, "/path/{param}")`` routes, matched in insertion order."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, name: str) -> None:
        """Add a route; ``{name}`` in the pattern captures one path segment."""
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
        self._routes.append(Route(method.upper(), pattern, name, re.compile(f"^{regex}$")))

    def resolve(self, method: str, path: str) -> RouteMatch | int:
        """The matching route, or 404 (no such path) / 405 (path exists, other method)."""
        path_known = False
        for route in self._routes:
            found = route.regex.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method.upper():
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                return RouteMatch(route, params)
        return 405 if path_known else 404


class _TooLarge(Exception):
    pass


class HttpServer:
    """Serves an :data:`App` over HTTP/1.1 on any anyio byte stream (one call per connection)."""

    def __init__(self, app: App, *, server_name: str = "outdial-fake") -> None:
        self._app = app
        self._server_name = server_name.encode()

    async def serve_connection(self, stream: anyio.abc.ByteStream) -> None:
        """Answer requests on ``stream`` until the client closes it or asks to close."""
        conn = h11.Connection(h11.SERVER)
        local = stream.extra(anyio.abc.SocketAttribute.local_address, None)
        local_host = str(local[0]) if isinstance(local, tuple) and local else None
        async with stream:
            while True:
                try:
                    request = await self._read_request(conn, stream, local_host)
                except h11.RemoteProtocolError as exc:
                    await self._refuse(conn, stream, exc.error_status_hint, str(exc))
                    return
                except _TooLarge:
                    await self._refuse(conn, stream, 413, "request body too large")
                    return
                if request is None:
                    return
                response = await self._call_app(request)
                if not await self._send(conn, stream, request.method, response):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, local_host: str | None = None
    ) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = await _next_event(conn, stream)
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return None
        assert head is not None  # h11 yields Request before EndOfMessage
        target = urlsplit(head.target.decode("ascii", "replace"))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in head.headers}
        pairs = tuple(parse_qsl(target.query, keep_blank_values=True))
        return Request(
            method=head.method.decode("ascii"),
            path=target.path,
            query=dict(pairs),
            headers=headers,
            body=bytes(body),
            query_pairs=pairs,
            local_host=local_host,
        )

    async def _call_app(self, request: Request) -> Response:
        try:
            return await self._app(request)
        except Exception as exc:  # a bug in a handler must not kill the connection loop
            emit(_log, "http.handler_error", logging.ERROR, path=request.path, error=exc)
            return Response.json(500, {"message": "internal error", "status": 500})

    async def _send(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, method: str, response: Response
    ) -> bool:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"Content-Length", str(len(response.body)).encode()))
        headers.append((b"Server", self._server_name))
        try:
            reason = HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        chunks = [data or b""]
        if response.body and method != "HEAD":
            chunks.append(conn.send(h11.Data(data=response.body)) or b"")
        chunks.append(conn.send(h11.EndOfMessage()) or b"")
        try:
            await stream.send(b"".join(chunks))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def _refuse(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, status: int, why: str
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = {"message": why, "code": "bad.request", "status": status}
        response = Response.json(status, body, [("Connection", "close")])
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send(conn, stream, "GET", response)


async def _next_event(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = b""
        conn.receive_data(data)
