"""CXone authentication: the password grant with an access key, as an ``httpx.Auth`` flow.

:class:`TokenSource` holds the token: ``POST {issuer}/auth/token`` with
``grant_type=password`` (the access key id and secret as username and
password, the registered app's client id and secret as HTTP Basic), renewed
ahead of expiry (NICE's SDK renews 10 minutes early) with the refresh token,
falling back to the password grant when the refresh is refused.

:class:`CxoneAuth` puts the token on every request; on a 401 it renews the
token once and sends the request once more. A second 401 is returned to the
caller, which raises :class:`~outdial.platforms.base.AuthError`.

No token, secret or key ever reaches a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any

import anyio
import httpx
from pydantic import ValidationError

from outdial.clock import Clock
from outdial.log import emit
from outdial.platforms.base import AuthError, PlatformError, RetryableError
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.errors import error_from_response

__all__ = ["REFRESH_MARGIN", "CxoneAuth", "TokenSource", "jwt_claims"]

log = logging.getLogger("outdial.platform")

#: Renew the token this long before it expires (NICE's SDK does 10 minutes).
REFRESH_MARGIN = 600.0

BeforeSend = Callable[[], Awaitable[None]]


def jwt_claims(token: str | None) -> dict[str, Any]:
    """The payload of a JWT, read without verifying it ({} when it is not one).

    Only the tenant id is read from it, to find where the tenant lives; the
    token's signature is the platform's business, not ours.
    """
    if not token or token.count(".") < 2:
        return {}
    payload = token.split(".")[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


async def _no_wait() -> None:
    return None


class TokenSource:
    """The current access token, renewed ahead of expiry; one renewal at a time."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        access_key_id: str,
        access_key_secret: str,
        clock: Clock,
        before_send: BeforeSend = _no_wait,
    ) -> None:
        """``before_send`` runs before each token request (the shared REST budget)."""
        self._http = http
        self._url = f"{issuer.rstrip('/')}/auth/token"
        self._basic = httpx.BasicAuth(client_id, client_secret)
        self._key_id = access_key_id
        self._key_secret = access_key_secret
        self._clock = clock
        self._before_send = before_send
        # fast_acquire: taken by every request (a dial's too), and free but while a
        # token is fetched: no trip through the event loop for it.
        self._lock = anyio.Lock(fast_acquire=True)
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0
        self._renew_at = 0.0
        #: The claims of the latest id_token ({}: none came).
        self.id_claims: dict[str, Any] = {}
        #: Token requests answered, for tests and metrics.
        self.grants = 0

    async def token(self, *, stale: str | None = None) -> str:
        """A valid access token; a new one when the current one is ``stale`` (got a 401)."""
        async with self._lock:
            now = self._clock.monotonic()
            if self._token is not None and self._token != stale and now < self._renew_at:
                return self._token
            if stale is not None and self._token != stale and self._token is not None:
                return self._token  # someone renewed it while we waited for the lock
            try:
                return await self._renew(force=stale is not None)
            except RetryableError:
                # Renewing early failed but the token still works: use it, renew later.
                if stale is None and self._token is not None and now < self._expires_at:
                    emit(log, "auth.renew_failed", logging.WARNING, retry="later")
                    return self._token
                raise

    async def _renew(self, *, force: bool) -> str:
        if self._refresh_token is not None:
            form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            try:
                return await self._grant(form, "refresh")
            except AuthError:
                # A refused refresh token (expired, revoked): the access key still works.
                emit(log, "auth.refresh_refused", logging.INFO, forced=force)
                self._refresh_token = None
        form = {"grant_type": "password", "username": self._key_id, "password": self._key_secret}
        return await self._grant(form, "password")

    async def _grant(self, form: dict[str, str], grant: str) -> str:
        await self._before_send()
        try:
            response = await self._http.post(self._url, data=form, auth=self._basic)
        except httpx.TransportError as exc:
            raise RetryableError(
                f"token request to {self._url} failed: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            error = error_from_response(response, what="token request")
            if response.status_code in (400, 401, 403):
                raise AuthError(
                    f"the platform refused the {grant} grant ({error.message}); check "
                    "platform.client_id, platform.client_secret, platform.access_key_id "
                    "and platform.access_key_secret",
                    status=error.status,
                    code=error.code,
                    correlation_id=error.correlation_id,
                )
            raise error
        try:
            answer = wire.TokenResponse.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise PlatformError(
                f"token request: unexpected answer ({type(exc).__name__})",
                status=response.status_code,
                code="outdial.unexpected.answer",
            ) from None
        now = self._clock.monotonic()
        lifetime = float(answer.expires_in)
        self._token = answer.access_token
        self._refresh_token = answer.refresh_token or self._refresh_token
        self._expires_at = now + lifetime
        # Short-lived tokens (tests, sovereign clouds) renew half-way instead.
        self._renew_at = now + max(0.0, lifetime - min(REFRESH_MARGIN, lifetime / 2))
        if answer.id_token:
            self.id_claims = jwt_claims(answer.id_token)
        self.grants += 1
        emit(log, "auth.token", grant=grant, expires_in=lifetime)
        return self._token


class CxoneAuth(httpx.Auth):
    """Bearer token on every request; on a 401, one renewal and one retry."""

    def __init__(self, tokens: TokenSource, before_send: BeforeSend = _no_wait) -> None:
        """``before_send`` runs before each send, the retry too (the shared REST budget)."""
        self._tokens = tokens
        self._before_send = before_send

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Not supported: the client is async only."""
        raise RuntimeError("CxoneAuth needs an httpx.AsyncClient")
        yield request  # pragma: no cover

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with the current token; renew once and resend once on a 401."""
        token = await self._tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        await self._before_send()
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        token = await self._tokens.token(stale=token)
        request.headers["Authorization"] = f"Bearer {token}"
        await self._before_send()
        yield request
