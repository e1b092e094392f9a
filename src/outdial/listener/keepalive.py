"""Liveness of one socket, as a pure clock-driven object.

Any frame received is a sign of life. After ``interval`` seconds of silence the
verdict is SEND_PING; if still nothing has arrived ``timeout`` seconds after the
probe, the socket is DEAD. A half-open connection (peer frozen, TCP still open)
is therefore declared dead at most ``interval + timeout`` after its last frame.
The object owns no task and no socket: the shell feeds it frames and times.
"""

from __future__ import annotations

import enum

__all__ = ["Liveness", "Verdict"]


class Verdict(enum.Enum):
    """What the shell should do now."""

    ALIVE = "alive"
    SEND_PING = "send_ping"
    DEAD = "dead"


class Liveness:
    """The keepalive verdict for one socket."""

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.interval = interval
        self.timeout = timeout
        self.last_frame_at = now
        self._probe_sent_at: float | None = None

    def frame_received(self, now: float) -> None:
        """A frame (any frame: event, heartbeat, pong) arrived at ``now``."""
        self.last_frame_at = max(self.last_frame_at, now)
        self._probe_sent_at = None

    def probe_sent(self, now: float) -> None:
        """The shell sent a probe at ``now``; the timeout runs from here."""
        self._probe_sent_at = now

    def poll(self, now: float) -> Verdict:
        """The verdict at ``now``."""
        # Compare against next_deadline() itself (not a difference of floats), so a
        # shell that wakes exactly at the deadline always gets the new verdict.
        if now < self.next_deadline():
            return Verdict.ALIVE
        return Verdict.SEND_PING if self._probe_sent_at is None else Verdict.DEAD

    def next_deadline(self) -> float:
        """The time at which :meth:`poll` may next change its verdict."""
        if self._probe_sent_at is None:
            return self.last_frame_at + self.interval
        return self._probe_sent_at + self.timeout
