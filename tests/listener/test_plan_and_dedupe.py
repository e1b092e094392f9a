"""Sharding, rotation deadlines and overlap dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.listener.dedupe import OverlapDeduper
from outdial.platforms.genesys.plan import (
    TooManyTopics,
    reshard,
    rotation_delay,
    shard_topics,
    subscription_change,
)


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


def test_reshard_keeps_staying_topics_where_they_are() -> None:
    shards = [frozenset({"a", "b"}), frozenset({"c"})]
    assert reshard(shards, {"a", "c", "d"}, per_channel=2) == [
        frozenset({"a", "d"}),
        frozenset({"c"}),
    ]


def test_reshard_opens_a_channel_only_when_all_are_full() -> None:
    shards = [frozenset({"a", "b"})]
    assert reshard(shards, {"a", "b", "c"}, per_channel=2) == [
        frozenset({"a", "b"}),
        frozenset({"c"}),
    ]


@given(
    before=st.lists(st.sets(st.text("abcdefgh", min_size=1, max_size=2), max_size=4), max_size=4),
    wanted=st.sets(st.text("abcdefgh", min_size=1, max_size=2), max_size=30),
)
def test_reshard_covers_exactly_what_is_wanted_within_limits(
    before: list[set[str]], wanted: set[str]
) -> None:
    # Shards as the listener holds them: disjoint and within the per-channel limit.
    seen: set[str] = set()
    shards = []
    for shard in before:
        own = frozenset(sorted(shard - seen)[:4])
        seen |= own
        shards.append(own)
    after = reshard(shards, wanted, per_channel=4, max_channels=50)
    assert set().union(*after) == wanted if after else not wanted
    assert sum(len(s) for s in after) == len(wanted)  # no topic on two channels
    assert all(len(s) <= 4 for s in after)
    for old, new in zip(shards, after, strict=False):
        assert old & wanted <= new  # a staying topic never moves


def test_smallest_subscription_change() -> None:
    assert subscription_change(frozenset("ab"), frozenset("ab")) == ("none", [])
    assert subscription_change(frozenset("ab"), frozenset("abc")) == ("post", ["c"])
    assert subscription_change(frozenset("ab"), frozenset("a")) == ("put", ["a"])
    assert subscription_change(frozenset("ab"), frozenset("ac")) == ("put", ["a", "c"])
