"""Pure decisions of the Genesys channel pool: sharding topics, rotation deadlines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

__all__ = [
    "MAX_CHANNELS",
    "MAX_TOPICS_PER_CHANNEL",
    "TooManyTopics",
    "reshard",
    "rotation_delay",
    "shard_topics",
    "subscription_change",
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


def reshard(
    shards: Sequence[frozenset[str]],
    wanted: Iterable[str],
    per_channel: int = MAX_TOPICS_PER_CHANNEL,
    max_channels: int = MAX_CHANNELS,
) -> list[frozenset[str]]:
    """New shard contents for ``wanted``, moving as few topics as possible.

    Topics that stay keep their channel (so nothing is resubscribed for them);
    topics that go are dropped where they are; new topics fill the channels
    with room, in order, and open new channels only when all are full. Shards
    may come out empty; the caller decides whether to keep their channels.
    """
    want = set(wanted)
    kept = [set(shard) & want for shard in shards]
    placed = set().union(*kept) if kept else set()
    new = sorted(want - placed)
    for shard in kept:
        room = per_channel - len(shard)
        if room > 0 and new:
            shard.update(new[:room])
            new = new[room:]
    while new:
        kept.append(set(new[:per_channel]))
        new = new[per_channel:]
    if len(kept) > max_channels:
        raise TooManyTopics(
            f"{len(want)} topics need {len(kept)} channels, but the platform allows "
            f"{max_channels} channels of {per_channel} topics; subscribe fewer agents per app"
        )
    return [frozenset(shard) for shard in kept]


def subscription_change(old: frozenset[str], new: frozenset[str]) -> tuple[str, list[str]]:
    """The smallest request that turns a channel's ``old`` topics into ``new``.

    ``("none", [])`` when equal; ``("post", added)`` when topics are only added
    (POST adds without touching the rest); otherwise ``("put", all)``, because
    the platform has no request that removes single topics.
    """
    if old == new:
        return "none", []
    if old <= new:
        return "post", sorted(new - old)
    return "put", sorted(new)
