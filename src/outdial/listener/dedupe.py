"""Dropping the second delivery of an event while two connections overlap (pure)."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["OverlapDeduper"]


class OverlapDeduper:
    """Drops the second delivery of an event while two sockets overlap.

    During a make-before-break rotation the same notification can arrive on the
    old and the new channel. The window stays open ``grace`` seconds after the
    old socket closes, because the new one may deliver the same event a moment
    later. Memory is bounded by ``capacity`` identities (oldest forgotten first).
    """

    def __init__(self, grace: float = 5.0, capacity: int = 8192) -> None:
        self.grace = grace
        self.capacity = capacity
        self._open_until = float("-inf")
        self._overlapping = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0

    def open(self) -> None:
        """Two sockets may now deliver the same events."""
        self._overlapping = True

    def close(self, now: float) -> None:
        """The old socket is gone; keep filtering for ``grace`` seconds more."""
        self._overlapping = False
        self._open_until = now + self.grace

    def active(self, now: float) -> bool:
        """Whether events must be checked now (cheap when no rotation is under way)."""
        if self._overlapping or now < self._open_until:
            return True
        if self._seen:
            self._seen.clear()
        return False

    def first_delivery(self, identity: str) -> bool:
        """True the first time ``identity`` is seen within the window."""
        if identity in self._seen:
            self.dropped += 1
            return False
        self._seen[identity] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
