"""Reconnect delays: full-jitter exponential backoff that resets only after stability.

The delay before retry ``n`` is drawn uniformly from ``[0, min(cap, base * 2**n))``
("full jitter"), so many clients cut off together do not reconnect together, and
the first retry is quick. A connection counts as a success only once it has
stayed up for ``stable_after`` seconds: a server that accepts and closes at once
keeps the backoff growing instead of causing a reconnect storm.
"""

from __future__ import annotations

from random import Random

__all__ = ["Backoff"]


class Backoff:
    """Pure backoff state; the shell sleeps for what :meth:`failed` returns."""

    def __init__(self, base: float, cap: float, stable_after: float, rng: Random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.stable_after = stable_after
        self._rng = rng
        self._attempts = 0
        self._connected_at: float | None = None

    @property
    def attempts(self) -> int:
        """Failures since the last stable connection."""
        return self._attempts

    def connected(self, now: float) -> None:
        """A connection came up at ``now`` (not yet proven stable)."""
        self._connected_at = now

    def failed(self, now: float, at_least: float | None = None) -> float:
        """A try failed (or a connection dropped) at ``now``: seconds to wait.

        ``at_least`` is a floor the platform asked for (a 429's Retry-After).
        """
        if self._connected_at is not None and now - self._connected_at >= self.stable_after:
            self._attempts = 0
        self._connected_at = None
        ceiling = min(self.cap, self.base * (2**self._attempts))
        self._attempts += 1
        delay = self._rng.uniform(0, ceiling)
        return max(delay, at_least or 0.0)
