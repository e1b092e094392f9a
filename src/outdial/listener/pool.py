"""The listener: every event source, one bounded stream of events and gaps out.

Topics are split over event sources as the platform needs
(:class:`~outdial.platforms.base.EventSourceFactory`: Genesys notification
channels of at most 1,000 topics, 20 per app; one CXone session per agent).
Each source keeps its connection alive; all of them hand events to one
bounded memory stream that the handlers read. Receiving never waits for
handling. The overflow policy: when the stream is full, events are dropped and
*counted* until the handlers have caught up with everything queued before the
overflow; then they receive one gap covering exactly the dropped interval and
re-read the state over REST, instead of silently missing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.lowlevel

from outdial.clock import Clock
from outdial.config import ListenerConfig
from outdial.events import Event, Gap
from outdial.listener.dedupe import OverlapDeduper
from outdial.listener.queue import BoundedQueue
from outdial.log import emit
from outdial.platforms.base import EventSource, EventSourceFactory, SubscriptionResult

__all__ = ["Listener", "ListenerStats"]

log = logging.getLogger("outdial.listener")

Item = Event | Gap

#: At most this many queued items are received in a row without a checkpoint.
_FAIR_EVERY = 64


@dataclass(slots=True)
class ListenerStats:
    """Totals across shards."""

    delivered: int = 0
    overflowed: int = 0
    duplicates_dropped: int = 0
    gaps: int = 0


class Listener:
    """Keeps every topic subscribed and hands events and gaps to one bounded stream.

    Iterate it (``async for item in listener``) alongside ``await listener.run()``
    in the same task group; ``run`` returns only by cancellation or raises
    :class:`~outdial.listener.state.ListenerFatal`, and iteration ends after it.
    """

    def __init__(
        self,
        sources: EventSourceFactory,
        topics: Iterable[str],
        settings: ListenerConfig,
        clock: Clock,
    ) -> None:
        self._sources = sources
        self._settings = settings
        self._clock = clock
        self._queue = BoundedQueue[Item](settings.queue_size)
        self._dedupe = OverlapDeduper()
        self._rotations_under_way = 0
        self._overflow_since: float | None = None
        # The topics of what the overflow dropped (events, and gaps folded in):
        # the overflow gap names only these, so the handlers re-read only the
        # agents whose events were lost, not everyone (no refresh storm).
        self._overflow_topics: set[str] = set()
        self._fast_streak = 0  # items received in a row without a checkpoint
        self.stats = ListenerStats()
        self._tg: anyio.abc.TaskGroup | None = None
        self._resharding = anyio.Lock()
        #: One event source per shard (a channel, an agent session), in shard order.
        self.supervisors: list[EventSource] = [
            self._supervisor(index, shard) for index, shard in enumerate(sources.shard([], topics))
        ]

    @property
    def topics(self) -> frozenset[str]:
        """Every topic the listener keeps subscribed."""
        return frozenset().union(*(s.topics for s in self.supervisors))

    @property
    def queue_depth(self) -> int:
        """Items (events, gaps) received and waiting for the handlers."""
        return len(self._queue)

    async def run(self) -> None:
        """Run every shard until cancelled."""
        emit(log, "listener.start", shards=len(self.supervisors), topics=len(self.topics))
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for supervisor in self.supervisors:
                    tg.start_soon(supervisor.run)
        finally:
            self._tg = None
            self._queue.close()

    async def set_topics(self, topics: Iterable[str]) -> list[SubscriptionResult]:
        """Subscribe exactly ``topics`` from now on, without reconnecting any socket.

        Topics that stay keep their channel; a channel that only gains topics
        gets one POST, one that loses any gets one PUT; new channels are opened
        only when the others are full. Returns the topics the platform rejected
        (they are left out).
        """
        async with self._resharding:
            layout = self._sources.shard([s.topics for s in self.supervisors], topics)
            rejected: list[SubscriptionResult] = []
            for index, shard in enumerate(layout):
                if index < len(self.supervisors):
                    rejected += await self.supervisors[index].update_topics(shard)
                    continue
                supervisor = self._supervisor(index, shard)
                self.supervisors.append(supervisor)
                if self._tg is not None:
                    self._tg.start_soon(supervisor.run)
            emit(log, "listener.topics", topics=len(self.topics), shards=len(self.supervisors))
            return rejected

    def _supervisor(self, index: int, topics: Iterable[str]) -> EventSource:
        return self._sources.source(f"shard-{index}", frozenset(topics), self)

    def rotation_started(self) -> None:
        """A source carries its topics on two connections for a while: drop duplicates."""
        self._rotations_under_way += 1
        self._dedupe.open()

    def rotation_finished(self) -> None:
        """The overlap is over (once no source is rotating, after a grace period)."""
        self._rotations_under_way -= 1
        if self._rotations_under_way == 0:
            self._dedupe.close(self._clock.monotonic())

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Item:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def receive(self) -> Item:
        """The next event or gap, in order; raises ``anyio.EndOfStream`` once stopped."""
        if self._overflow_since is not None:
            try:
                return self._queue.get_nowait()
            except anyio.WouldBlock:
                # Everything queued before the overflow is handled: now the gap.
                gap = Gap(
                    frozenset(self._overflow_topics),
                    self._overflow_since,
                    self._clock.monotonic(),
                    "overflow",
                )
                self._overflow_since = None
                self._overflow_topics = set()
                self.stats.gaps += 1
                emit(
                    log,
                    "listener.gap",
                    reason="overflow",
                    dropped=self.stats.overflowed,
                    topics=len(gap.topics),
                )
                return gap
        # Whatever is queued is taken without a trip through the event loop:
        # a loop pass per item, at full speed, cost more than parsing the frame
        # and let the queue overflow. Every _FAIR_EVERY items in a row it is
        # still a checkpoint, so a consumer that never awaits anything else
        # still sees cancellation and lets other tasks run; when the queue is
        # empty it waits (a pass through the loop too).
        if self._fast_streak < _FAIR_EVERY:
            try:
                item = self._queue.get_nowait()
            except anyio.WouldBlock:
                self._fast_streak = 0
                return await self._queue.get()
            self._fast_streak += 1
            return item
        self._fast_streak = 0
        await anyio.lowlevel.checkpoint()
        return await self._queue.get()

    def deliver(self, event: Event) -> None:
        """One event from a source: queued, dropped as a duplicate, or counted in an overflow."""
        if self._dedupe.active(event.received_at) and not self._dedupe.first_delivery(
            event.identity
        ):
            self.stats.duplicates_dropped += 1
            return
        if self._overflow_since is not None:
            self.stats.overflowed += 1  # inside the pending overflow gap
            self._overflow_topics.add(event.topic)
            return
        try:
            self._queue.put_nowait(event)
        except anyio.WouldBlock:
            self._start_overflow(event.received_at)
            self.stats.overflowed += 1
            self._overflow_topics.add(event.topic)
            return
        self.stats.delivered += 1

    def _start_overflow(self, since: float) -> None:
        if self._overflow_since is None:
            self._overflow_since = since
            emit(log, "listener.overflow", logging.WARNING, queue_size=self._settings.queue_size)
        else:
            self._overflow_since = min(self._overflow_since, since)

    def report_gap(self, gap: Gap) -> None:
        """A source may have missed events: queued for the handlers, or folded into an
        overflow gap when they are behind."""
        if self._overflow_since is None:
            try:
                self._queue.put_nowait(gap)
                self.stats.gaps += 1
                return
            except anyio.WouldBlock:
                pass
        # The handlers are behind: this gap becomes part of the overflow gap.
        self._start_overflow(gap.start)
        self._overflow_topics |= gap.topics
