"""The ``/fake/...`` control endpoints both fakes serve: their security, request cycle and
body helpers.

Anyone who can reach a control endpoint can place calls and end them, so
each request must carry the fake's control token, ``Authorization: Bearer
<token>``; without it the answer is 401. Before the token, two checks keep a
web page in the user's browser out (it could otherwise POST here, or read
answers through DNS rebinding), each a 403: the ``Host`` header must name a
loopback address or ``localhost``, the address the connection arrived at, or
the host of the fake's ``control_url``; and a request a browser marks as
from elsewhere (an ``Origin`` other than the fake's own, or
``Sec-Fetch-Site`` other than ``same-origin``/``none``) is refused.

Errors use the Genesys error body (``message``, ``details`` naming the
field) on both fakes.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from outdial.config import is_loopback_host
from outdial.fake.common.auth import bearer_token
from outdial.fake.common.routes import Routes
from outdial.fake.errors import ApiError, FieldDetail, status_error
from outdial.fake.validation import parse_json
from outdial.http import Request, Response

__all__ = [
    "CONTROL_PREFIX",
    "ControlEndpoints",
    "ControlHandler",
    "control_refusal",
    "is_control_path",
    "json_object",
    "optional_field",
    "required_field",
]

CONTROL_PREFIX = "/fake"
"""Every control endpoint's path starts with this."""

T = TypeVar("T")

ControlHandler = Callable[..., Awaitable[dict[str, Any]]]
"""A control endpoint: ``(fake, request, **path parameters)`` -> the JSON answer."""

#: ``Sec-Fetch-Site`` values a browser sends for the fake's own pages or a typed URL.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})

_REALM = ("WWW-Authenticate", 'Bearer realm="outdial fake control"')


def is_control_path(path: str) -> bool:
    """Whether ``path`` is a control endpoint's (``/fake`` or below it)."""
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def control_refusal(
    request: Request, *, token: str, own_hosts: frozenset[str] = frozenset()
) -> ApiError | None:
    """Why ``request`` may not use the control endpoints (None when it may).

    ``own_hosts``: host names the fake is reached by besides loopback and the
    address the connection arrived at (``request.local_host``). Checked in
    order: the ``Host`` header (403), a cross-site browser request (403), the
    token (401).
    """
    host = request.header("host")
    if not host or not _own_host(host, request.local_host, own_hosts):
        return ApiError(
            403,
            "host.not.allowed",
            "Host {host} is not an address of the fake: use its control_url",
            {"host": host or "(none)"},
            [FieldDetail("Host", "not.allowed")],
        )
    origin = request.header("origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        return ApiError(
            403,
            "cross.site.request",
            "Requests from {origin} may not use the control endpoints",
            {"origin": origin},
            [FieldDetail("Origin", "not.allowed")],
        )
    site = request.header("sec-fetch-site")
    if site is not None and site.lower() not in _OWN_FETCH_SITES:
        return ApiError(
            403,
            "cross.site.request",
            "A {site} request may not use the control endpoints",
            {"site": site},
            [FieldDetail("Sec-Fetch-Site", "not.allowed")],
        )
    given = bearer_token(request)
    if given is None or not secrets.compare_digest(given.encode(), token.encode()):
        return ApiError(
            401,
            "bad.credentials",
            "The control endpoints need Authorization: Bearer <control_token> "
            "(outdial fake-server prints it)",
            {},
            [FieldDetail("Authorization", "required")],
        )
    return None


def _own_host(header: str, local_host: str | None, own_hosts: frozenset[str]) -> bool:
    # Only names that cannot be re-pointed by someone else's DNS: loopback,
    # the address dialled, or a name the fake itself was started with.
    try:
        parts = urlsplit(f"//{header}")
        name, _port = parts.hostname, parts.port
    except ValueError:
        return False
    if not name:
        return False
    if is_loopback_host(name) or name in own_hosts:
        return True
    return local_host is not None and name == local_host.lower()


class ControlEndpoints(Generic[T]):
    """A fake's control endpoints: the checks of :func:`control_refusal`, then its routes.

    ``id_header`` names the header carrying each answer's id (the platform's
    correlation header). Exceptions from a handler become answers:
    :class:`~outdial.fake.errors.ApiError` as itself, :class:`KeyError` (an
    agent or call the fake does not know) 404, and ``bad_request`` (the
    fake's controls refusing a value) 400.
    """

    def __init__(
        self,
        routes: Routes[ControlHandler],
        *,
        id_header: str,
        bad_request: tuple[type[Exception], ...] = (ValueError, RuntimeError),
    ) -> None:
        self.routes = routes
        self._id_header = id_header
        self._bad_request = bad_request

    async def answer(self, fake: T, request: Request, *, token: str, control_url: str) -> Response:
        """Answer one ``/fake/...`` request for ``fake``, whose token and ``control_url``
        are given."""
        correlation = str(uuid.uuid4())
        headers = [(self._id_header, correlation)]
        own = urlsplit(control_url).hostname
        refusal = control_refusal(request, token=token, own_hosts=frozenset({own} if own else ()))
        if refusal is not None:
            if refusal.status == 401:
                headers.append(_REALM)
            return Response.json(refusal.status, refusal.body(correlation), headers)
        match = self.routes.resolve(request.method, request.path)
        try:
            if isinstance(match, int):
                raise status_error(match)
            payload = await match.handler(fake, request, **match.params)
        except ApiError as error:
            return Response.json(error.status, error.body(correlation), headers)
        except KeyError as exc:  # an agent or call the fake does not know
            unknown = ApiError(404, "not.found", "{reason}", {"reason": str(exc).strip("'\"")})
            return Response.json(404, unknown.body(correlation), headers)
        except self._bad_request as exc:
            # Refusals from the fake's controls: a bad value, or a fault that
            # needs a proxy the fake was created without.
            bad = ApiError(400, "bad.request", "{reason}", {"reason": str(exc)})
            return Response.json(400, bad.body(correlation), headers)
        return Response.json(200, payload, headers)


def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request's body, a JSON object; no body is ``{}`` unless ``required`` (then 400)."""
    body = parse_json(request.body)
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "bad.request",
            "The request body must be a JSON object",
            {},
            [FieldDetail("body", "invalid.value")],
        )
    return body


def optional_field(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``body[key]`` (None when absent); a 400 naming it when it is not ``kind`` (``what``)."""
    value = body.get(key)
    # A JSON true is a Python int too: only a bool field takes it.
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if value is not None and wrong:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be " + what,
            {"field": key},
            [FieldDetail(key, "invalid.value")],
        )
    return value


def required_field(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """:func:`optional_field`, and a 400 saying it is required when it is absent."""
    value = optional_field(body, key, kind, what)
    if value is None:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} is required (" + what + ")",
            {"field": key},
            [FieldDetail(key, "required")],
        )
    return value
