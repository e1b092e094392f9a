"""Structured log events: one name, a few fields, never a secret.

Every state change outdial makes (connection states, dials, call outcomes) goes
through :func:`emit`, which logs ``name key=value ...`` on the given logger and
attaches the fields as ``record.outdial`` for JSON formatters and tests. Field
names that look like credentials are redacted here, once, for every caller.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "emit", "redact"]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(secret|token|password|authorization|credential)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with credential-like keys and bearer strings masked."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if _SECRET_KEY.search(key):
            clean[key] = REDACTED
        elif isinstance(value, str):
            clean[key] = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
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
