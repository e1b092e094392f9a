"""Whether a store's database answers: the state every store operation reports to.

Pure bookkeeping, no I/O: the store (:class:`~outdial.store.sql.SqlStore`)
tells :class:`StoreHealth` how each operation went and asks it whether the
next one may go to the database at all.

While the database answers, every operation goes. Once one fails with
:class:`~outdial.store.base.StoreUnavailable` the store is *away*: operations
fail at once (reason ``down``) instead of each waiting out a timeout, and
one of them every :data:`PROBE_INTERVAL` seconds is let through, behind a
probe (a small write, rolled back), to find out whether the database is back.
The first one that succeeds makes the store healthy again and calls the
``on_recovered`` listeners (the daemon looks at every agent again then).
"""

from __future__ import annotations

from collections.abc import Callable

from outdial.store.base import StoreUnavailable

__all__ = ["PROBE_INTERVAL", "StoreHealth"]

#: Seconds between probes of a database that is away: how soon after it answers
#: again the store notices (plus the probe's own round trip).
PROBE_INTERVAL = 0.5


class StoreHealth:
    """A store's health: healthy, or away since when and why, and when to probe next.

    Times are the caller's monotonic seconds.
    """

    def __init__(self, probe_interval: float = PROBE_INTERVAL) -> None:
        self.probe_interval = probe_interval
        #: True while the database takes operations.
        self.healthy = True
        #: When the database went away (None while healthy).
        self.since: float | None = None
        #: The failure that made it away, or the latest one since (None while healthy).
        self.error: StoreUnavailable | None = None
        # When an operation last went to the database while it was away (a
        # failure, or a probe taken): the next probe is due an interval later.
        self._last_try = 0.0
        self._listeners: list[Callable[[], None]] = []

    def admits(self, now: float) -> bool:
        """Would an operation go to the database now? (No state changes.)"""
        return self.healthy or now >= self._last_try + self.probe_interval

    def take_probe(self, now: float) -> bool:
        """While away: True if this operation is the one to probe (the next is due later)."""
        if not self.admits(now) or self.healthy:
            return False
        self._last_try = now
        return True

    def down_error(self, now: float, operation: str | None = None) -> StoreUnavailable:
        """The error for an operation refused without trying (the store is away)."""
        away = now - self.since if self.since is not None else 0.0
        last = f": {self.error}" if self.error is not None else ""
        return StoreUnavailable(
            "down",
            f"the database is unavailable (for {away:.1f}s){last}",
            operation=operation,
            elapsed=0.0,
        )

    def failed(self, error: StoreUnavailable, now: float) -> bool:
        """An operation failed with ``error``; True if the store was healthy until now."""
        self.error = error
        self._last_try = max(self._last_try, now)
        if not self.healthy:
            return False
        self.healthy = False
        self.since = now
        return True

    def succeeded(self, now: float) -> float | None:
        """An operation went through; the outage's length if it ends here, else None.

        The caller then tells the listeners (:meth:`notify_recovered`), after
        saying so itself.
        """
        if self.healthy:
            return None
        outage = now - (self.since if self.since is not None else now)
        self.healthy = True
        self.since = None
        self.error = None
        return outage

    def notify_recovered(self) -> None:
        """Call every ``on_recovered`` listener, in order."""
        for listener in list(self._listeners):
            listener()

    def on_recovered(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever the database answers again; returns an unsubscribe."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove
