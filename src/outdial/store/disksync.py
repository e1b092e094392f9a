"""How long the disk has taken, lately, to make a claim's commit durable.

A claim commits with an fsync before its dial is sent (exactly-once depends
on it). Where that fsync is quick (a local SSD: about 0.3 ms here), the claim
commits on the event loop's own thread: the hop to a worker thread and back,
and the wait for the interpreter's lock there under load, cost more than the
commit itself (claim to request p50 0.75 -> 0.65 ms, p99 event to dial 3.4-4.2
-> 2.9-3.0 ms at 10,000 events/s, ``bench/scale.py``). Where it is slow (a
network disk, a busy one), an fsync on the loop would hold up every event,
so the claim commits in the thread, as every other durable write does.

:class:`SyncTimes` decides which from the claims' own COMMIT times, measured
wherever they ran: a moving average, with a few samples taken before the
first verdict. Pure: the caller measures and passes the seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SyncTimes"]


@dataclass(slots=True)
class SyncTimes:
    """Recent durable commit times; :attr:`fast` says whether the next may run on the loop.

    ``limit``: the average (seconds) under which commits count as fast.
    ``weight``: how much one new sample moves the average.
    ``samples``: commits measured before the first verdict (until then: slow).
    """

    limit: float = 0.001
    weight: float = 0.2
    samples: int = 5
    average: float | None = None
    seen: int = 0

    def record(self, seconds: float) -> None:
        """One durable commit took ``seconds`` (its COMMIT: where it waits for the disk)."""
        self.seen += 1
        if self.average is None:
            self.average = seconds
        else:
            self.average += self.weight * (seconds - self.average)

    @property
    def fast(self) -> bool:
        """Whether commits have lately been quick enough for the event loop's thread."""
        return self.seen >= self.samples and self.average is not None and self.average < self.limit
