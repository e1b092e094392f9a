"""The login host of the fake Genesys platform (``POST /oauth/token``), its tokens and the
per-token rate limit every API request counts against.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass

from outdial.fake.common.auth import bearer_token, client_login, same_secret
from outdial.fake.common.routes import Routes
from outdial.fake.errors import ApiError, oauth_error, status_error
from outdial.fake.genesys.core import Endpoint, GenesysCore
from outdial.fake.genesys.recorded import RecordedToken
from outdial.http import Request, Response
from outdial.log import emit

__all__ = ["DEFAULT_RATE_LIMIT", "RATE_LIMIT_WINDOW", "LoginMixin"]

_log = logging.getLogger("outdial.fake")

RATE_LIMIT_WINDOW = 60.0
"""Seconds in one rate-limit window (``inin-ratelimit-reset`` counts down to its end)."""

DEFAULT_RATE_LIMIT = 300
"""Requests per token per :data:`RATE_LIMIT_WINDOW` the platform allows by default."""


@dataclass(slots=True)
class Token:
    """An access token the login host issued: to whom, and until when (monotonic)."""

    client_id: str
    expires_at: float


class LoginMixin(GenesysCore):
    """Client-credentials tokens with a lifetime, and their rate-limit windows."""

    client_secret: str
    token_lifetime: float
    rate_limit: int | None
    _tokens: dict[str, Token]
    _rate: dict[str, tuple[float, int]]

    def _login_routes(self, routes: Routes[Endpoint]) -> None:
        routes.add("POST", "/oauth/token", Endpoint(self._h_token, authenticated=False))

    async def _h_token(self, request: Request) -> Response:
        login = client_login(request)
        client_id = login.client_id
        if login.form.get("grant_type") != "client_credentials":
            self.recorded.token_requests.append(RecordedToken(client_id, False))
            return Response.json(
                400, oauth_error("unsupported_grant_type", "grant type is not supported")
            )
        if client_id != self.client_id or not same_secret(login.secret, self.client_secret):
            self.recorded.token_requests.append(RecordedToken(client_id, False))
            return Response.json(401, oauth_error("invalid_client", "client not found"))
        value = secrets.token_urlsafe(48)
        self._tokens[value] = Token(client_id, self._clock.monotonic() + self.token_lifetime)
        self.recorded.token_requests.append(RecordedToken(client_id, True))
        self._notify()
        emit(_log, "fake.token.issued", client_id=client_id)
        return Response.json(
            200,
            {
                "access_token": value,
                "token_type": "bearer",
                "expires_in": int(self.token_lifetime),
            },
        )

    def _authenticate(self, request: Request) -> str:
        value = bearer_token(request)
        if value is None:
            raise ApiError(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
        token = self._tokens.get(value)
        if token is None or self._clock.monotonic() >= token.expires_at:
            raise status_error(401)
        return value

    def _rate_count(self, token: str) -> tuple[list[tuple[str, str]], float | None]:
        """Count one request against ``token``'s window: the ``inin-ratelimit-*`` headers,
        and the ``Retry-After`` seconds when it is over the limit (None when it may go)."""
        now = self._clock.monotonic()
        start, count = self._rate.get(token, (now, 0))
        if now - start >= RATE_LIMIT_WINDOW:
            start, count = now, 0
        count += 1
        self._rate[token] = (start, count)
        reset = max(0.0, RATE_LIMIT_WINDOW - (now - start))
        allowed = self.rate_limit if self.rate_limit is not None else DEFAULT_RATE_LIMIT
        headers = [
            ("inin-ratelimit-count", str(count)),
            ("inin-ratelimit-allowed", str(allowed)),
            ("inin-ratelimit-reset", str(int(reset))),
        ]
        if self.rate_limit is not None and count > self.rate_limit:
            return headers, float(max(1, math.ceil(reset)))
        return headers, None
