"""The fake CXone's tokens (pure): HS256 id tokens, access and refresh tokens, their lifetimes.

:class:`TokenBook` issues and checks tokens against a monotonic time passed
in by the caller, so a test's :class:`~outdial.clock.ManualClock` expires them
without waiting. The id token is a real JWT (HS256, signed with
:data:`ID_TOKEN_KEY`, which is public: nothing should trust it) whose claims
are those a client reads: ``tenantId`` (for discovery), ``icAgentId``,
``icBUId``, ``icClusterId``, ``sub``, ``name``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ID_TOKEN_KEY", "Grant", "IssuedToken", "TokenBook", "decode_jwt", "encode_jwt"]

ID_TOKEN_KEY = b"outdial-fake-cxone"
"""The HS256 key of the fake's id tokens (well known: it is a fake)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: Mapping[str, Any], key: bytes = ID_TOKEN_KEY) -> str:
    """``claims`` as a compact HS256 JWT."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def decode_jwt(token: str, key: bytes | None = ID_TOKEN_KEY) -> dict[str, Any]:
    """The claims of a compact JWT; with ``key``, :class:`ValueError` unless its HS256 holds."""
    try:
        header, payload, signature = token.split(".")
        claims = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JWT: {exc}") from None
    if key is not None:
        expected = hmac.new(key, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise ValueError("the JWT signature does not match")
    if not isinstance(claims, dict):
        raise ValueError("the JWT claims are not an object")
    return claims


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a token was issued to: the app (client id) and the access key (username)."""

    client_id: str
    username: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """One answer of the token endpoint, before it is put on the wire."""

    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(slots=True)
class TokenBook:
    """Access tokens (with expiry) and refresh tokens (single use) the fake has issued."""

    lifetime: float = 3600.0
    _access: dict[str, tuple[Grant, float]] = field(default_factory=dict)
    _refresh: dict[str, Grant] = field(default_factory=dict)

    def issue(self, grant: Grant, now: float) -> IssuedToken:
        """A new access token valid for :attr:`lifetime` seconds, and its refresh token."""
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self._access[access] = (grant, now + self.lifetime)
        self._refresh[refresh] = grant
        return IssuedToken(access, refresh, int(self.lifetime))

    def refresh(self, refresh_token: str, now: float) -> IssuedToken | None:
        """Trade a refresh token for new tokens (it cannot be used twice); None if unknown."""
        grant = self._refresh.pop(refresh_token, None)
        return None if grant is None else self.issue(grant, now)

    def check(self, access_token: str, now: float) -> Grant | None:
        """The grant of a valid access token; None when unknown, expired or revoked."""
        found = self._access.get(access_token)
        if found is None or now >= found[1]:
            return None
        return found[0]

    def revoke_all(self) -> int:
        """Revoke every access token (refresh tokens stay usable, as after a key rotation
        of the API gateway); return how many were live."""
        count = len(self._access)
        self._access.clear()
        return count

    def expire_all(self, now: float) -> None:
        """Make every access token expire now (a refresh still works)."""
        for token, (grant, _) in list(self._access.items()):
            self._access[token] = (grant, now)

    @property
    def live(self) -> int:
        """How many access tokens were issued and not revoked (expired ones included)."""
        return len(self._access)
