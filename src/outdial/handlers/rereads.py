"""How fast agents are re-read after gaps: in batches, in the handlers' spare time.

A gap names the agents whose events may have been lost; each is re-read over
REST and its state fed through the handlers like a few live events. Re-read
all at once, a large gap (an overflow that dropped events of thousands of
agents) is work the size of several seconds of live events, arriving while
the handlers are already behind: they fall further behind, the listener
drops more, the next gap is larger, and the daemon collapses into re-reading
(a refresh storm). So agents are re-read a batch at a time (one bulk read of
the platform's page size), and a batch starts only while the listener's
queue shows the handlers have room, or once it has waited ``hold`` seconds:
live events come first, and re-reads still progress at a bounded minimum
rate under sustained overload, never stopping and never storming.

Pure: the caller says how deep the queue is and how long the batch has
waited; :class:`RereadPacing` says whether it may start.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

__all__ = ["RereadPacing"]


@dataclass(frozen=True, slots=True)
class RereadPacing:
    """Batches of ``batch`` agents, started while the queue is at most ``spare`` full,
    or after ``hold`` seconds of waiting for that."""

    batch: int = 100
    spare: float = 0.25
    hold: float = 1.0
    #: How often a waiting batch looks at the queue again.
    poll: float = 0.02

    def may_start(self, queue_depth: int, queue_size: int, waited: float) -> bool:
        """Whether the next batch starts now."""
        return queue_depth <= queue_size * self.spare or waited >= self.hold

    def take(self, pending: set[str]) -> list[str]:
        """The next batch, taken out of ``pending`` (in a stable order: sorted)."""
        batch = heapq.nsmallest(self.batch, pending)
        pending.difference_update(batch)
        return batch
