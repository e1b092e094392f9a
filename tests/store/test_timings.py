"""The claim-time histogram: every duration lands in exactly one bucket, as Prometheus reads it."""

from __future__ import annotations

import math

import pytest

from outdial.store.timings import Timings


def test_durations_count_into_the_first_bucket_whose_bound_holds_them() -> None:
    timings = Timings((0.001, 0.01, 0.1))
    for seconds in (0.0004, 0.001, 0.002, 0.05, 0.15, 3.0, -1.0):
        timings.record(seconds)
    # A bound is inclusive (Prometheus's "le"); a negative clock step counts as 0.
    assert timings.cumulative() == [(0.001, 3), (0.01, 4), (0.1, 5), (math.inf, 7)]
    assert timings.count == 7
    assert timings.total == pytest.approx(0.0004 + 0.001 + 0.002 + 0.05 + 0.15 + 3.0)


@pytest.mark.parametrize("bounds", [(), (0.1, 0.01), (0.1, 0.1)])
def test_bounds_must_be_ascending_and_distinct(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ascending"):
        Timings(bounds)
