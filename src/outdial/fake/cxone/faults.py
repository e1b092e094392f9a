"""Pure decisions behind the fake CXone's own faults: what the next poll and the next dial get.

The REST faults every path shares (429 and 503 with ``Retry-After``, stalls)
are :class:`outdial.fake.faults.RestFaults`; the ones here are particular to
CXone's long poll and its asynchronous ``dial-phone``. Nothing here sleeps or
sends: :mod:`outdial.fake.cxone.platform` acts on the verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CxoneFaults", "DialVerdict", "PollVerdict"]

PollVerdict = Literal["serve", "stall", "storm"]
"""What one poll gets: served normally, never answered, or a 304 at once whatever is queued."""

DialVerdict = Literal["place", "lose", "drop"]
"""What one accepted dial gets: placed, a 202 whose contact never appears, or placed with
its answer lost (the connection is dropped instead of answering 202)."""


@dataclass(slots=True)
class CxoneFaults:
    """Counters of the poll and dial faults in force.

    ``stall_polls``: polls left that are never answered (None: every poll, until
    cleared); ``storm_polls``: polls left answered 304 at once; ``lose_dials``
    and ``drop_dials``: dials left whose contact never appears / whose 202 is lost.
    """

    stall_polls: int | None = 0
    storm_polls: int = 0
    lose_dials: int = 0
    drop_dials: int = 0

    def stall(self, count: int | None) -> None:
        """Leave the next ``count`` polls unanswered (None: every poll until :meth:`clear`)."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for every poll)")
        self.stall_polls = count

    def storm(self, count: int) -> None:
        """Answer the next ``count`` polls 304 at once, events or not."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self.storm_polls += count

    def lose(self, count: int = 1) -> None:
        """Accept the next ``count`` dials (202) and never place them."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self.lose_dials += count

    def drop(self, count: int = 1) -> None:
        """Place the next ``count`` dials but drop the connection instead of answering."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self.drop_dials += count

    def decide_poll(self) -> PollVerdict:
        """The verdict for one poll; consumes a counter when one applies."""
        if self.stall_polls is None:
            return "stall"
        if self.stall_polls > 0:
            self.stall_polls -= 1
            return "stall"
        if self.storm_polls > 0:
            self.storm_polls -= 1
            return "storm"
        return "serve"

    def decide_dial(self) -> DialVerdict:
        """The verdict for one dial the platform accepts; consumes a counter when one applies."""
        if self.lose_dials > 0:
            self.lose_dials -= 1
            return "lose"
        if self.drop_dials > 0:
            self.drop_dials -= 1
            return "drop"
        return "place"

    def clear(self) -> None:
        """No poll or dial fault in force."""
        self.stall_polls = 0
        self.storm_polls = 0
        self.lose_dials = 0
        self.drop_dials = 0

    @property
    def active(self) -> bool:
        """Some poll or dial fault is in force."""
        return bool(
            self.stall_polls is None
            or self.stall_polls
            or self.storm_polls
            or self.lose_dials
            or self.drop_dials
        )
