"""CXone error answers as :class:`~outdial.platforms.base.PlatformError`, classified.

The platform's error body format is not published (``CXONE.md``), so nothing
here depends on one reading: the status, the body text (JSON or not), any
request id header and a ``Retry-After`` are kept, and a code is taken from the
usual JSON keys, or from a body that is one bare word (``SessionInProgress``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from outdial.platforms.base import AuthError, PlatformError, RetryableError

__all__ = [
    "BODY_EXCERPT",
    "REQUEST_ID_HEADERS",
    "error_from_response",
    "request_id",
    "retry_after_seconds",
]

#: Headers that may carry the platform's id of a request (which one CXone sends: unknown).
REQUEST_ID_HEADERS = ("X-Request-Id", "X-Correlation-Id", "Request-Id", "X-Amzn-RequestId")
#: How much of a body's text an error keeps.
BODY_EXCERPT = 500
_CODE_KEYS = ("error", "errorCode", "code", "errorName")
_MESSAGE_KEYS = ("error_description", "message", "errorMessage", "error_message", "Message")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.]{1,80}")


def request_id(response: httpx.Response) -> str | None:
    """The platform's id of the request, from whichever header carries one."""
    for name in REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return str(value)
    return None


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); None when absent or bad."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _first_text(body: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def error_from_response(
    response: httpx.Response, *, what: str, now: datetime | None = None
) -> PlatformError:
    """The error an answer of 400 or more stands for: 429 and 5xx retryable, 401 and 403
    an :class:`AuthError`, the rest a plain :class:`PlatformError`."""
    status = response.status_code
    text = response.text.strip()
    try:
        parsed = response.json() if text else None
    except ValueError:
        parsed = None
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    code = _first_text(body, _CODE_KEYS)
    if code is None and not body and _WORD.fullmatch(text.strip('"')):
        code = text.strip('"')
    detail = _first_text(body, _MESSAGE_KEYS) or (text[:BODY_EXCERPT] if not body else None)
    message = f"{what} failed with HTTP {status}"
    if detail and detail != code:
        message += f": {detail}"
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "correlation_id": request_id(response),
        "retry_after": retry_after_seconds(response, now),
        "body": body or ({"text": text[:BODY_EXCERPT]} if text else None),
    }
    if status == 429 or status >= 500:
        return RetryableError(message, **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    return PlatformError(message, **kwargs)
