"""Sharding, rotation deadlines and overlap dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outdial.listener.plan import OverlapDeduper, TooManyTopics, rotation_delay, shard_topics


def test_topics_fill_channels_of_at_most_1000() -> None:
    topics = [f"v2.users.u{i:05d}.presence" for i in range(2500)]
    shards = shard_topics(topics)
    assert [len(s) for s in shards] == [1000, 1000, 500]
    assert sorted(t for s in shards for t in s) == sorted(topics)


def test_more_than_twenty_channels_is_a_clear_error() -> None:
    with pytest.raises(TooManyTopics, match="21 channels"):
        shard_topics([f"t{i}" for i in range(20_001)])


def test_rotation_happens_margin_before_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert rotation_delay(now + timedelta(hours=24), now, 3600) == 23 * 3600
    assert rotation_delay(now + timedelta(seconds=10), now, 3600) == 0
    assert rotation_delay(None, now, 3600) is None


def test_dedupe_only_while_overlapping_and_for_a_grace_period() -> None:
    dedupe = OverlapDeduper(grace=5)
    assert not dedupe.active(0)
    dedupe.open()
    assert dedupe.active(1)
    assert dedupe.first_delivery("a")
    assert not dedupe.first_delivery("a")
    dedupe.close(now=2)
    assert dedupe.active(6.9)
    assert not dedupe.first_delivery("a")
    assert not dedupe.active(7.1)
    assert dedupe.dropped == 2


def test_dedupe_memory_is_bounded() -> None:
    dedupe = OverlapDeduper(capacity=3)
    dedupe.open()
    for key in "abcd":
        dedupe.first_delivery(key)
    assert dedupe.first_delivery("a")  # forgotten: oldest first
