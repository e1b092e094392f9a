"""When a claim may commit on the event loop: only while the disk syncs fast."""

from __future__ import annotations

from outdial.store.disksync import SyncTimes


def test_no_verdict_before_a_few_commits_were_measured() -> None:
    times = SyncTimes(samples=3)
    times.record(0.0002)
    times.record(0.0002)
    assert not times.fast, "two samples are not enough to trust the disk"
    times.record(0.0002)
    assert times.fast


def test_a_disk_that_turns_slow_sends_claims_back_to_the_thread_and_fast_again() -> None:
    times = SyncTimes(limit=0.001, weight=0.5, samples=1)
    times.record(0.0003)
    assert times.fast
    times.record(0.005)  # a slow fsync: the average jumps past the limit
    assert not times.fast
    for _ in range(4):
        times.record(0.0003)
    assert times.fast, "quick commits (measured in the thread) bring it back"


def test_a_slow_disk_never_runs_claims_on_the_loop() -> None:
    times = SyncTimes()
    for _ in range(50):
        times.record(0.004)
    assert not times.fast
