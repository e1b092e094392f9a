"""How long a kind of store operation has taken, as a histogram an operator can scrape.

A dial's claim is on the path from trigger to request, and it waits for the
disk (its commit is made durable before the request is sent). On a disk
whose fsync now and then takes a hundred milliseconds (seen on a shared
VM's disk), every trigger behind such a claim is that much later; the
histogram is how an operator, or ``bench/scale.py``, tells a slow disk from
a slow daemon. Pure: the caller measures and passes the seconds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["CLAIM_BOUNDS", "Timings"]

#: Upper bounds (seconds) of the claim histogram's buckets: a local SSD's
#: fsync is under a millisecond, a slow one's tail reaches the last ones.
CLAIM_BOUNDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


class Timings:
    """Counts of durations by bucket (``bounds`` ascending; one more for what is above)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = CLAIM_BOUNDS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be ascending and distinct")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def record(self, seconds: float) -> None:
        """One operation took ``seconds``."""
        seconds = max(0.0, seconds)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        """Operations recorded."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, operations at or under it)`` per bucket, the last bound infinite:
        Prometheus's ``le`` buckets."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
