"""Injected time: everything with a deadline or a calling window takes a :class:`Clock`.

Production code uses :class:`SystemClock`; tests use :class:`ManualClock` and move
time forward by hand, so a 24-hour channel expiry or a daylight-saving change is
tested in milliseconds without sleeping. A clock can also be slept on
(:meth:`Clock.sleep_until`), so a shell that waits for a deadline waits on the
injected clock: a test that advances a :class:`ManualClock` wakes it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Two readings of time: a monotonic one for deadlines, a wall one for calendars."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (deadlines, durations)."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC (calling windows, records)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once :meth:`monotonic` has reached ``deadline`` (at once if it has)."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    async def sleep_until(self, deadline: float) -> None:
        """Sleep for real until ``deadline`` on ``time.monotonic()``."""
        await anyio.sleep(max(0.0, deadline - time.monotonic()))


class ManualClock:
    """A clock that moves only when told to; both readings advance together."""

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        self._wall = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        if self._wall.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._mono = monotonic
        # Sleepers: (deadline, event). Events are made lazily inside sleep_until,
        # since an anyio Event belongs to a running event loop.
        self._sleepers: list[tuple[float, anyio.Event]] = []

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
        waking = [event for deadline, event in self._sleepers if deadline <= self._mono]
        self._sleepers = [(d, e) for d, e in self._sleepers if d > self._mono]
        for event in waking:
            event.set()

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` has moved the monotonic reading to ``deadline``.

        Yields to the event loop once even when the deadline has passed, as a
        real sleep of zero would.
        """
        if deadline <= self._mono:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        entry = (deadline, event)
        self._sleepers.append(entry)
        try:
            await event.wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in :meth:`sleep_until` (tests wait for their shell to)."""
        return len(self._sleepers)

    def set_wall(self, when: datetime) -> None:
        """Jump the wall clock to ``when`` (monotonic advances by the same amount)."""
        delta = (when - self._wall).total_seconds()
        self.advance(delta)
