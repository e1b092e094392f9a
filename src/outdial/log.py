"""Structured log events: one name, a few fields, never a secret.

Every state change outdial makes (connection states, dials, call outcomes) goes
through :func:`emit`, which logs ``name key=value ...`` on the given logger and
attaches the fields as ``record.outdial`` for JSON formatters and tests. Field
names that look like credentials are redacted here, once, for every caller,
and so are the passwords of URLs in any string field (:func:`mask_url`, the one
rule for every URL outdial prints or logs). With :func:`set_mask_numbers` on
(``--mask-numbers``, ``[logging] mask_numbers``), phone numbers in any string
field are shown as ``+4412123***01`` (:func:`mask_number`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "emit",
    "mask_number",
    "mask_numbers_in",
    "mask_url",
    "redact",
    "set_mask_numbers",
]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(secret|token|password|authorization|credential)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# The userinfo of a URL runs to its *last* "@": a password may hold an unencoded
# "@", "/" or "?", and stopping early would print the rest of it. A "@" later
# in the URL (in a query) only makes the mask hide more than the password.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^\s]*@")
# libpq also takes the password as a parameter: ``?password=...``.
_SECRET_PARAM = re.compile(r"(?i)(?P<key>[?&][^=&#\s]*(?:password|secret|token)[^=&#\s]*=)[^&#\s]*")
_MASK = "***"
# E.164 as outdial logs it (+ and 7 to 15 digits), and tel: URIs of the same.
_NUMBER = re.compile(r"(?<![\w+])\+\d{7,15}(?!\d)")
#: Digits hidden before the last two: the operator still tells numbers apart.
_HIDDEN_DIGITS = 3
_masking = {"numbers": False}


def set_mask_numbers(enabled: bool) -> None:
    """Mask phone numbers in every log event from now on (process-wide, set at start)."""
    _masking["numbers"] = enabled


def mask_number(number: str) -> str:
    """``+441212345601`` as ``+4412123***01``: the last two digits and the prefix stay."""
    digits = number[1:]
    head = max(len(digits) - _HIDDEN_DIGITS - 2, 1)
    return f"+{digits[:head]}{_MASK}{digits[head + _HIDDEN_DIGITS :]}"


def mask_numbers_in(text: str) -> str:
    """``text`` with every E.164 number in it masked by :func:`mask_number`."""
    if "+" not in text:
        return text
    return _NUMBER.sub(lambda m: mask_number(m.group(0)), text)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it masked.

    ``postgresql://outdial:s3cret@db/outdial`` becomes
    ``postgresql://outdial:***@db/outdial``; ``?password=...`` (and other
    ``*secret*``/``*token*`` parameters) keep their name and lose their value.
    Everything else (user, host, port, database) stays, so the message still
    says where outdial tried to go. Use it wherever a URL is shown.
    """
    if "://" not in text:
        return text
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{_MASK}", masked)


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with credential-like keys, bearer strings and URL passwords masked."""
    clean: dict[str, Any] = {}
    numbers = _masking["numbers"]
    for key, value in fields.items():
        if numbers and isinstance(value, str | BaseException):
            value = mask_numbers_in(str(value))
        if _SECRET_KEY.search(key):
            clean[key] = REDACTED
        elif isinstance(value, str):
            clean[key] = mask_url(_BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value))
        elif isinstance(value, BaseException) and "://" in str(value):
            # An error naming a URL (a store that cannot be reached) keeps its text, masked.
            clean[key] = mask_url(str(value))
        else:
            clean[key] = value
    return clean


def _render(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def emit(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log the structured event ``name`` with ``fields`` (redacted)."""
    if not logger.isEnabledFor(level):
        return
    clean = redact(fields)
    text = " ".join([name, *(f"{k}={_render(v)}" for k, v in clean.items())])
    logger.log(level, text, extra={"outdial": {"event": name, **clean}})
