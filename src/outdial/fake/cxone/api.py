"""The fake CXone's two HTTP ports (issuer, API) behind the common request cycle.

Each port is a :class:`~outdial.fake.common.front.ApiFront` (route, REST
faults, handler); this module adds what is CXone: an ``X-Request-Id`` on
every answer, the API version segment checked (``InvalidApiVersion``), a
bearer token on every API route (with ``WWW-Authenticate`` on a 401), the
error format the fake is switched to, and every request recorded.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from outdial.fake.common.front import ApiFront, Exchange
from outdial.fake.common.routes import RouteMatch, Routes
from outdial.fake.cxone.errors import CxoneError, error_response
from outdial.fake.cxone.recorded import RecordedRequest
from outdial.http import Request, Response

if TYPE_CHECKING:
    from outdial.fake.cxone.platform import FakeCxone

__all__ = ["API_PREFIX", "CxoneHandler", "CxonePort"]

_log = logging.getLogger("outdial.fake.cxone")

API_PREFIX = "/InContactAPI/services/{version}"
"""Where every API path starts; ``version`` is checked by the port (``v23.0``)."""

_VERSION = re.compile(r"^v\d+\.\d+$")

CxoneHandler = Callable[..., Awaitable[Response]]
"""A route's handler: ``(request, token, **path parameters)`` -> the answer."""


class CxonePort(ApiFront[CxoneHandler, CxoneError]):
    """One port of ``cxone``; with ``authenticated`` every route needs a bearer token."""

    error_type = CxoneError
    request_event = "fake.cxone.request"
    bug_event = "fake.cxone.handler_error"

    def __init__(
        self, cxone: FakeCxone, routes: Routes[CxoneHandler], *, authenticated: bool
    ) -> None:
        super().__init__(routes, cxone._rest_faults, cxone._stalls, _log)
        self._cxone = cxone
        self._authenticated = authenticated

    def exchange(self, request: Request) -> Exchange:
        """A random request id, added to the answer last."""
        return Exchange(request, secrets.token_hex(8))

    def refusal(self, status: int, retry_after: float | None) -> CxoneError:
        """The generic error; a 429 or 503 always says when to come back."""
        if retry_after is None and status in (429, 503):
            retry_after = 1.0
        return CxoneError(status, retry_after=retry_after)

    async def handle(self, exchange: Exchange, match: RouteMatch[CxoneHandler]) -> Response:
        """Check the API version and the token, then run the route."""
        params = dict(match.params)
        version = params.pop("version", None)
        if version is not None and not _VERSION.match(version):
            raise CxoneError(404, "InvalidApiVersion", f"no API version {version}")
        request = exchange.request
        token = self._cxone._authenticate(request) if self._authenticated else ""
        return await match.handler(request, token, **params)

    def render(self, exchange: Exchange, error: CxoneError) -> Response:
        """``error`` in the fake's error format; an API 401 names its realm."""
        response = error_response(error, self._cxone.error_format)
        if error.status == 401 and self._authenticated:
            response.headers.append(("WWW-Authenticate", 'Bearer realm="cxone"'))
        return response

    def answered(
        self, exchange: Exchange, match: RouteMatch[CxoneHandler] | int, response: Response
    ) -> None:
        """Add the request id and record the request, whatever its answer."""
        request = exchange.request
        response.headers.append(("X-Request-Id", exchange.request_id))
        self._cxone.recorded.requests.append(
            RecordedRequest(request.method, request.path, response.status)
        )
