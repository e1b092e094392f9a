"""Full-jitter backoff with a stability-gated reset."""

from __future__ import annotations

from random import Random

from hypothesis import given
from hypothesis import strategies as st

from outdial.listener.backoff import Backoff


def test_first_retry_is_quick_and_delays_grow_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=8, stable_after=30, rng=Random(1))
    ceilings = [0.5, 1, 2, 4, 8, 8, 8]
    for ceiling in ceilings:
        assert 0 <= backoff.failed(now=0) < ceiling


def test_reset_only_after_a_stable_connection() -> None:
    backoff = Backoff(base=1, cap=64, stable_after=30, rng=Random(2))
    for _ in range(5):
        backoff.failed(now=0)
    backoff.connected(now=100)
    backoff.failed(now=101)  # up for 1 s: a flapping server, keep growing
    assert backoff.attempts == 6
    backoff.connected(now=200)
    backoff.failed(now=240)  # up for 40 s: stable, start over
    assert backoff.attempts == 1


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base=0.1, cap=1, stable_after=30, rng=Random(3))
    assert backoff.failed(now=0, at_least=7.5) == 7.5


@given(seed=st.integers(0, 2**32), failures=st.integers(1, 40))
def test_delay_never_exceeds_cap(seed: int, failures: int) -> None:
    backoff = Backoff(base=0.25, cap=10, stable_after=5, rng=Random(seed))
    delays = [backoff.failed(now=float(i)) for i in range(failures)]
    assert all(0 <= d <= 10 for d in delays)


def test_jitter_spreads_clients_cut_off_together() -> None:
    delays = {round(Backoff(1, 30, 5, Random(seed)).failed(0) * 1000) for seed in range(50)}
    assert len(delays) > 40
