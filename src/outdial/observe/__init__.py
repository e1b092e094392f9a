"""Watching a running daemon: Prometheus metrics, health checks and a live status page.

:class:`Observatory` is the daemon's observer: the daemon and its handlers
call its hooks (:meth:`~Observatory.event`, :meth:`~Observatory.gap`,
:meth:`~Observatory.dialed`, :meth:`~Observatory.call_progressed`) as things
happen, and it feeds them to the metrics and the status board. The HTTP
endpoint (:mod:`outdial.observe.server`) serves both when ``[observe] listen``
is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from outdial.observe.metrics import METRIC_NAMES, DaemonMetrics
from outdial.observe.status import StatusBoard

if TYPE_CHECKING:
    from outdial.app import Daemon
    from outdial.events import Event, Gap
    from outdial.handlers.dialer import DialResult
    from outdial.store.base import CallRecord

__all__ = ["METRIC_NAMES", "Observatory"]


class Observatory:
    """One daemon's metrics and status board, and the hooks that feed them (never raise)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.metrics = DaemonMetrics(daemon)
        self.board = StatusBoard()
        #: Where the endpoint listens once started (``host``, ``port``); None when off.
        self.address: tuple[str, int] | None = None

    def event(self, event: Event) -> None:
        """An event from the listener."""
        self.metrics.event(event)

    def gap(self, gap: Gap) -> None:
        """A gap from the listener."""
        self.metrics.gap(gap)
        self.board.gap(gap)

    def dialed(self, trigger: Event, result: DialResult) -> None:
        """A rule's match was dialed (see :class:`~outdial.handlers.dispatch.HandlingObserver`)."""
        self.metrics.dialed(trigger, result)
        self.board.dialed(trigger, result, self.daemon.clock.now())

    def call_progressed(self, record: CallRecord) -> None:
        """A placed call was written with a new state."""
        self.board.call_progressed(record)
