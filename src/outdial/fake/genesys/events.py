"""Publishing events to subscribed sockets, and the event faults (duplicates, reordering,
delay) the shaper applies on the way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from outdial.fake.faults import EventShaper
from outdial.fake.genesys.channels import ChannelsMixin

__all__ = ["EventsMixin"]


class EventsMixin(ChannelsMixin):
    """:meth:`publish` and the outbox that sends what the shaper held back."""

    _shaper: EventShaper
    _shaper_wake: anyio.Event | None

    async def publish(self, topic: str, body: Mapping[str, Any]) -> int:
        """Send an event to every socket whose channel subscribes ``topic``; return how many.

        A socket that is closing or gone simply misses the event: the real
        platform has no durability either. With :attr:`duplicate_events`,
        :meth:`reorder_events` or :meth:`delay_events` in force the event goes
        through those faults first; the count is then of the copies sent right
        away (0 for an event held back, which goes out later on its own).
        """
        envelope = {
            "topicName": topic,
            "version": "2",
            "eventBody": dict(body),
            "metadata": {"CorrelationId": str(uuid.uuid4())},
        }
        self._shaper.push(topic, json.dumps(envelope), anyio.current_time())
        delivered = 0
        for release in self._shaper.due(anyio.current_time()):
            delivered += await self._deliver(release.topic, release.text)
        if self._shaper.pending and self._shaper_wake is not None:
            self._shaper_wake.set()
        return delivered

    async def _deliver(self, topic: str, text: str) -> int:
        delivered = 0
        for channel in list(self._channels.values()):
            sock = channel.socket
            if sock is None or topic not in channel.topics:
                continue
            if self._live_channel(channel.id) is None:
                continue
            if await sock.send(text):
                delivered += 1
        return delivered

    async def _outbox(self) -> None:
        """Send the events the shaper held back (reordered or delayed) when they are due."""
        while True:
            wake = self._shaper_wake = anyio.Event()
            for release in self._shaper.due(anyio.current_time()):
                await self._deliver(release.topic, release.text)
            at = self._shaper.next_at()
            if at is None:
                await wake.wait()
            else:
                with anyio.move_on_after(max(0.0, at - anyio.current_time())):
                    await wake.wait()

    @property
    def duplicate_events(self) -> int:
        """How many times each published event is sent (1: once; the copies share the
        correlation id, as a redelivery would)."""
        return self._shaper.duplicates

    @duplicate_events.setter
    def duplicate_events(self, copies: int) -> None:
        if copies < 1:
            raise ValueError("duplicate_events must be at least 1")
        self._shaper.duplicates = copies

    def reorder_events(self, window: int, flush_after: float = 0.2) -> None:
        """Shuffle published events within groups of ``window`` (seeded); 1 turns it off.

        Events wait until ``window`` of them are pending, then go out in a
        shuffled order; a partial group goes out ``flush_after`` seconds after
        its first event.
        """
        if window < 1 or flush_after < 0:
            raise ValueError("window must be at least 1 and flush_after not negative")
        self._shaper.reorder_window = window
        self._shaper.reorder_flush = flush_after
        self._wake_outbox()

    def delay_events(self, seconds: float) -> None:
        """Send every published event ``seconds`` late (0: at once); order is kept."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._shaper.delay = seconds
        self._wake_outbox()

    @property
    def events_pending(self) -> int:
        """Published event copies held back by reordering or delay, not sent yet."""
        return self._shaper.pending

    @property
    def events_dropped(self) -> int:
        """Event copies dropped because too many were held back at once (see
        :class:`~outdial.fake.faults.EventShaper`)."""
        return self._shaper.dropped

    def _wake_outbox(self) -> None:
        if self._shaper_wake is not None:
            self._shaper_wake.set()
