"""The fake Genesys platform's API port: the login host and the REST API behind one front.

Every request goes through the common :class:`~outdial.fake.common.front.ApiFront`
cycle (route, REST faults, handler); this module adds what is Genesys: the
``ININ-Correlation-Id`` on every answer, the bearer token and the
``inin-ratelimit-*`` count for every route but the token endpoint, the
platform's ``ErrorBody`` (with ``Retry-After`` on a 429), and the recording
each route asks for.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from outdial.fake.common.front import ApiFront, Exchange, retry_after_header
from outdial.fake.common.routes import RouteMatch, Routes
from outdial.fake.errors import ApiError, status_error
from outdial.fake.genesys.core import Endpoint
from outdial.http import Request, Response

if TYPE_CHECKING:
    from outdial.fake.genesys.platform import FakePlatform

__all__ = ["GenesysApi", "api_routes"]

_log = logging.getLogger("outdial.fake")


def api_routes(platform: FakePlatform) -> Routes[Endpoint]:
    """Every route of the login host and the API, each wired by the concern it belongs to."""
    routes: Routes[Endpoint] = Routes()
    platform._login_routes(routes)
    platform._channel_routes(routes)
    platform._call_routes(routes)
    platform._analytics_routes(routes)
    platform._user_routes(routes)
    return routes


class GenesysApi(ApiFront[Endpoint, ApiError]):
    """Answers the login host and the API of ``platform`` (see the module docstring)."""

    error_type = ApiError
    request_event = "fake.http.request"
    bug_event = "fake.http.handler_error"

    def __init__(self, platform: FakePlatform) -> None:
        super().__init__(api_routes(platform), platform._rest_faults, platform._stalls, _log)
        self._platform = platform

    def exchange(self, request: Request) -> Exchange:
        """Each answer carries its correlation id."""
        correlation = str(uuid.uuid4())
        return Exchange(request, correlation, [("ININ-Correlation-Id", correlation)])

    def refusal(self, status: int, retry_after: float | None) -> ApiError:
        """The platform's generic error body for ``status``."""
        return status_error(status, retry_after=retry_after)

    async def handle(self, exchange: Exchange, match: RouteMatch[Endpoint]) -> Response:
        """Check the token and count it against its rate limit, then run the route."""
        endpoint = match.handler
        if endpoint.authenticated:
            token = self._platform._authenticate(exchange.request)
            counted, retry_after = self._platform._rate_count(token)
            exchange.headers.extend(counted)
            if retry_after is not None:
                raise status_error(429, retry_after=retry_after)
        return await endpoint.handle(exchange.request, **match.params)

    def render(self, exchange: Exchange, error: ApiError) -> Response:
        """The ``ErrorBody`` of ``error``; a ``Retry-After`` header when it has one."""
        if error.retry_after is not None:
            exchange.headers.append(("Retry-After", retry_after_header(error.retry_after)))
        return Response.json(error.status, error.body(exchange.request_id))

    def answered(
        self, exchange: Exchange, match: RouteMatch[Endpoint] | int, response: Response
    ) -> None:
        """Add the exchange's headers, then record the request if its route asks."""
        response.headers.extend(exchange.headers)
        if not isinstance(match, int) and match.handler.record is not None:
            match.handler.record(exchange.request, response, match.params)

    def log_fields(self, exchange: Exchange) -> dict[str, Any]:
        """The correlation id, to tie a log line to the answer a client saw."""
        return {"correlation_id": exchange.request_id}
