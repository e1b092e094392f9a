"""Injected time: everything with a deadline or a calling window takes a :class:`Clock`.

Production code uses :class:`SystemClock`; tests use :class:`ManualClock` and move
time forward by hand, so a 24-hour channel expiry or a daylight-saving change is
tested in milliseconds without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Two readings of time: a monotonic one for deadlines, a wall one for calendars."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (deadlines, durations)."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC (calling windows, records)."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; both readings advance together."""

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        self._wall = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        if self._wall.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._mono = monotonic

    def monotonic(self) -> float:
        """The manual monotonic reading."""
        return self._mono

    def now(self) -> datetime:
        """The manual wall time."""
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("time never moves backwards")
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    def set_wall(self, when: datetime) -> None:
        """Jump the wall clock to ``when`` (monotonic advances by the same amount)."""
        delta = (when - self._wall).total_seconds()
        self.advance(delta)
