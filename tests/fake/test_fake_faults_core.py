"""The pure cores behind the faults: REST verdicts and the event shaper."""

from __future__ import annotations

import random

import pytest

from outdial.fake.faults import EventShaper, RestFaults, RestVerdict


def test_no_fault_means_a_plain_verdict() -> None:
    assert RestFaults(random.Random(0)).decide("GET", "/x") == RestVerdict()


def test_fail_next_is_consumed_by_matching_requests_only() -> None:
    faults = RestFaults(random.Random(0))
    faults.fail_next("/calls/", 503, count=2, method="POST")
    assert faults.decide("GET", "/api/v2/conversations/calls/1").status is None
    assert faults.decide("POST", "/api/v2/conversations/calls/user/u").status == 503
    assert faults.decide("POST", "/api/v2/conversations/calls/user/u").status == 503
    assert faults.decide("POST", "/api/v2/conversations/calls/user/u").status is None
    faults.fail_next("/x", 429)
    assert faults.decide("GET", "/x").retry_after == 1.0


def test_stall_holds_after_or_before_the_effect() -> None:
    faults = RestFaults(random.Random(0))
    faults.stall_next("/a", 3.0)
    faults.stall_next("/b", 2.0, after_effect=False)
    faults.slow = 0.5
    assert faults.decide("GET", "/a") == RestVerdict(hold_after=3.5, stalled=True)
    assert faults.decide("GET", "/b") == RestVerdict(hold_before=2.0, hold_after=0.5, stalled=True)
    assert faults.decide("GET", "/a") == RestVerdict(hold_after=0.5)


def test_fail_rate_replaces_and_removes_rules() -> None:
    faults = RestFaults(random.Random(0))
    faults.fail_rate(500, 1.0, "/a")
    faults.fail_rate(503, 1.0, "/a")
    assert faults.decide("GET", "/a").status == 503
    faults.fail_rate(503, 0.0, "/a")
    assert faults.decide("GET", "/a").status is None
    with pytest.raises(ValueError, match="rate"):
        faults.fail_rate(503, 1.5)


def test_shaper_passes_through_by_default() -> None:
    shaper = EventShaper(random.Random(0))
    shaper.push("t", "a", now=1.0)
    assert [r.text for r in shaper.due(1.0)] == ["a"]
    assert shaper.next_at() is None


def test_shaper_delays_keep_order_even_when_the_delay_shrinks() -> None:
    shaper = EventShaper(random.Random(0), delay=5.0)
    shaper.push("t", "a", now=0.0)
    shaper.delay = 1.0
    shaper.push("t", "b", now=0.5)
    assert shaper.next_at() == 5.0
    assert shaper.due(4.9) == []
    assert [r.text for r in shaper.due(5.0)] == ["a", "b"]


def test_shaper_reorders_whole_windows_and_flushes_stale_ones() -> None:
    shaper = EventShaper(random.Random(1), reorder_window=3, reorder_flush=1.0)
    for i in range(3):
        shaper.push("t", str(i), now=0.0)
    first = [r.text for r in shaper.due(0.0)]
    assert sorted(first) == ["0", "1", "2"]
    shaper.push("t", "3", now=2.0)
    assert shaper.due(2.5) == []
    assert shaper.next_at() == 3.0
    assert [r.text for r in shaper.due(3.0)] == ["3"]


def test_shaper_duplicates_each_event() -> None:
    shaper = EventShaper(random.Random(0), duplicates=2)
    shaper.push("t", "a", now=0.0)
    assert [r.text for r in shaper.due(0.0)] == ["a", "a"]
    assert shaper.pending == 0


def test_shaper_drops_what_does_not_fit() -> None:
    shaper = EventShaper(random.Random(0), delay=1.0, capacity=2, duplicates=2)
    shaper.push("t", "a", now=0.0)
    shaper.push("t", "b", now=0.0)
    assert shaper.pending == 2
    assert shaper.dropped == 2
    assert [r.text for r in shaper.due(1.0)] == ["a", "a"]
