"""Platform timestamps (``2026-11-23T09:16:41.010Z``) read as aware datetimes."""

from __future__ import annotations

from datetime import datetime

__all__ = ["parse_time"]


def parse_time(value: str | None) -> datetime | None:
    """A platform timestamp as an aware datetime; None when absent, unreadable or naive."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
