"""Pure decisions of the channel pool: sharding topics, rotation deadlines, dedupe windows."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

__all__ = [
    "MAX_CHANNELS",
    "MAX_TOPICS_PER_CHANNEL",
    "OverlapDeduper",
    "TooManyTopics",
    "rotation_delay",
    "shard_topics",
]

#: Genesys Cloud limits: topics per channel, channels per user and app.
MAX_TOPICS_PER_CHANNEL = 1000
MAX_CHANNELS = 20


class TooManyTopics(ValueError):
    """More topics than the platform allows on all channels an app may hold."""


def shard_topics(
    topics: Iterable[str],
    per_channel: int = MAX_TOPICS_PER_CHANNEL,
    max_channels: int = MAX_CHANNELS,
) -> list[list[str]]:
    """Spread topics over as few channels as possible, deterministically (sorted).

    Sorted order keeps a user's topics together and makes the layout stable
    across restarts, so a restart resubscribes the same topics to each shard.
    """
    ordered = sorted(set(topics))
    shards = [ordered[i : i + per_channel] for i in range(0, len(ordered), per_channel)]
    if len(shards) > max_channels:
        raise TooManyTopics(
            f"{len(ordered)} topics need {len(shards)} channels, but the platform allows "
            f"{max_channels} channels of {per_channel} topics; subscribe fewer agents per app"
        )
    return shards or [[]]


def rotation_delay(expires: datetime | None, now: datetime, margin: float) -> float | None:
    """Seconds until a channel expiring at ``expires`` should be replaced, or None if never."""
    if expires is None:
        return None
    return max(0.0, (expires - now).total_seconds() - margin)


class OverlapDeduper:
    """Drops the second delivery of an event while two sockets overlap.

    During a make-before-break rotation the same notification can arrive on the
    old and the new channel. The window stays open ``grace`` seconds after the
    old socket closes, because the new one may deliver the same event a moment
    later. Memory is bounded by ``capacity`` identities (oldest forgotten first).
    """

    def __init__(self, grace: float = 5.0, capacity: int = 8192) -> None:
        self.grace = grace
        self.capacity = capacity
        self._open_until = float("-inf")
        self._overlapping = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0

    def open(self) -> None:
        """Two sockets may now deliver the same events."""
        self._overlapping = True

    def close(self, now: float) -> None:
        """The old socket is gone; keep filtering for ``grace`` seconds more."""
        self._overlapping = False
        self._open_until = now + self.grace

    def active(self, now: float) -> bool:
        """Whether events must be checked now (cheap when no rotation is under way)."""
        if self._overlapping or now < self._open_until:
            return True
        if self._seen:
            self._seen.clear()
        return False

    def first_delivery(self, identity: str) -> bool:
        """True the first time ``identity`` is seen within the window."""
        if identity in self._seen:
            self.dropped += 1
            return False
        self._seen[identity] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
