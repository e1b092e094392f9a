"""A bounded queue with one consumer, for the listener's events and gaps.

Putting never waits: a full queue refuses the item (``anyio.WouldBlock``) and
the listener counts it into an overflow. Getting waits when the queue is
empty, on one future of the running loop that the next put resolves.

Why not anyio's memory object stream: its ``receive()`` makes a loop pass
before it looks at the buffer, and when it has to wait it builds a receiver
record that asks for the current task's info (a ``TaskInfo`` of its coroutine,
name and parent); when the consumer waited for nearly every event, those two
were about 4 % of the daemon's CPU at 10,000 events/s (``bench/scale.py
--profile``). Why not an ``anyio.Event`` per wait: making one looks the
backend up through sniffio and builds two objects around the same future
(outdial runs on asyncio's loop or uvloop, where an anyio wait is that
future); at a few hundred events a second, where the consumer still waits
for nearly every event, that was most of what the queue cost (``bench/scale.py
--instructions``: -8 % of the daemon's instructions an event). The caller
decides when to yield (the listener does every few dozen items in a row).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

import anyio

__all__ = ["BoundedQueue"]

_T = TypeVar("_T")


class BoundedQueue(Generic[_T]):
    """At most ``size`` items, first in first out; any task puts, one task gets."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a queue holds at least one item")
        self._items: deque[_T] = deque()
        self._size = size
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: _T) -> None:
        """Queue ``item``; raise ``anyio.WouldBlock`` when full, ``anyio.ClosedResourceError``
        once closed."""
        if self._closed:
            raise anyio.ClosedResourceError
        if len(self._items) >= self._size:
            raise anyio.WouldBlock
        self._items.append(item)
        self._wake()

    def get_nowait(self) -> _T:
        """The oldest item; raise ``anyio.WouldBlock`` when empty, ``anyio.EndOfStream``
        once closed and empty."""
        if self._items:
            return self._items.popleft()
        if self._closed:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def get(self) -> _T:
        """The oldest item, waiting for one; raise ``anyio.EndOfStream`` once closed and empty.

        Not a checkpoint when an item is there: the caller yields as it sees fit.
        """
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            if self._waiter is not None:
                raise RuntimeError("a BoundedQueue has one consumer")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter  # cancellable, as anyio's wait is: the scope cancels the task
            finally:
                self._waiter = None
        return self._items.popleft()

    def close(self) -> None:
        """No more items: the consumer gets what is queued, then ``anyio.EndOfStream``."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # a cancelled wait's future is done already
                waiter.set_result(None)
