"""The conversation details query route of the fake Genesys platform (the query and its
answer are the pure :mod:`outdial.fake.analytics`).
"""

from __future__ import annotations

from outdial.fake.analytics import details_response, validate_details_query
from outdial.fake.common.routes import Routes
from outdial.fake.genesys.calls import CallsMixin
from outdial.fake.genesys.core import Endpoint
from outdial.fake.validation import (
    parse_json,
)
from outdial.http import Request, Response

__all__ = ["AnalyticsMixin"]


class AnalyticsMixin(CallsMixin):
    """``POST /api/v2/analytics/conversations/details/query`` over the calls the fake knows."""

    def _analytics_routes(self, routes: Routes[Endpoint]) -> None:
        query = "/api/v2/analytics/conversations/details/query"
        routes.add("POST", query, Endpoint(self._h_analytics_query))

    async def _h_analytics_query(self, request: Request) -> Response:
        query = validate_details_query(parse_json(request.body))
        facts = [c.facts() for c in self._conversations.values()]
        return Response.json(200, details_response(facts, query))
