"""The daemon's HTTP endpoint: ``/metrics``, ``/livez``, ``/readyz``, ``/status.json``, ``/``.

A small HTTP/1.1 server (h11 on anyio, the same one the fake platform uses:
:class:`outdial.http.HttpServer` knows nothing of the fake) run as a task
of the daemon's task group, so it stops with the daemon. Every answer is
computed when asked from the daemon's state; nothing here changes it.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from outdial.http import HttpServer, Request, Response, Router
from outdial.log import emit
from outdial.observe.status import readiness_problems, snapshot

if TYPE_CHECKING:
    from outdial.observe import Observatory

__all__ = ["ObserveApp", "serve"]

log = logging.getLogger("outdial.observe")

_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_NO_STORE = ("Cache-Control", "no-store")


def status_page() -> bytes:
    """The status page: one HTML file with its style and script inline (no external assets)."""
    return resources.files("outdial.observe").joinpath("status.html").read_bytes()


class ObserveApp:
    """Routes a request to its answer."""

    def __init__(self, observatory: Observatory) -> None:
        self._observatory = observatory
        self._router = Router()
        for path, name in (
            ("/metrics", "metrics"),
            ("/livez", "livez"),
            ("/readyz", "readyz"),
            ("/status.json", "status_json"),
            ("/", "page"),
            ("/status", "page"),
        ):
            self._router.add("GET", path, name)
        self._page = status_page()

    async def __call__(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        found = self._router.resolve(method, request.path)
        if isinstance(found, int):
            return Response(found, b"not found\n" if found == 404 else b"GET only\n")
        name = found.route.name
        daemon = self._observatory.daemon
        if name == "metrics":
            body = self._observatory.metrics.render()
            return Response(200, body, [("Content-Type", _PROMETHEUS), _NO_STORE])
        if name == "livez":
            return _text(200, "ok\n")
        if name == "readyz":
            problems = readiness_problems(daemon)
            if problems:
                return _text(503, "not ready: " + "; ".join(problems) + "\n")
            return _text(200, "ready\n")
        if name == "status_json":
            data = json.dumps(snapshot(daemon, self._observatory.board)).encode()
            return Response(200, data, [("Content-Type", "application/json"), _NO_STORE])
        return Response(200, self._page, [("Content-Type", "text/html; charset=utf-8"), _NO_STORE])


def _text(status: int, text: str) -> Response:
    return Response(
        status, text.encode(), [("Content-Type", "text/plain; charset=utf-8"), _NO_STORE]
    )


async def serve(
    observatory: Observatory,
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``task_status`` gets the bound ``(host, port)`` (port 0: chosen)."""
    server = HttpServer(ObserveApp(observatory), server_name="outdial")
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_address)
        address = (str(bound[0]), int(bound[1]))
        emit(log, "observe.listening", url=f"http://{_url_host(address[0])}:{address[1]}/")
        task_status.started(address)
        await listener.serve(server.serve_connection)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
