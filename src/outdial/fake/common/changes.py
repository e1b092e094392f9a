"""The change signal of a fake: every ``wait_for`` re-checks its predicate when it fires."""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["Changes"]


class Changes:
    """Wakes every waiter after each change the fake makes to what it serves.

    One event per generation: :meth:`notify` sets the current one and starts
    the next, so a waiter never misses a change made between two checks.
    """

    def __init__(self) -> None:
        self._event = anyio.Event()

    def reset(self) -> None:
        """Start afresh (on entering the fake, whose event loop may be a new one)."""
        self._event = anyio.Event()

    def notify(self) -> None:
        """Wake every waiter to re-check."""
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        """Return after the next :meth:`notify`."""
        await self._event.wait()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, re-checked after every change."""
        while not predicate():
            await self._event.wait()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        """:meth:`until` with a deadline: :class:`TimeoutError` after ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            await self.until(predicate)
