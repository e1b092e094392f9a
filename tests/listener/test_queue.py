"""The listener's bounded queue: nothing waits to put, the consumer waits to get."""

from __future__ import annotations

import anyio
import pytest

from outdial.listener.queue import BoundedQueue

pytestmark = pytest.mark.anyio


async def test_items_come_out_in_order_and_a_full_queue_refuses_the_next() -> None:
    queue = BoundedQueue[int](2)
    queue.put_nowait(1)
    queue.put_nowait(2)
    with pytest.raises(anyio.WouldBlock):
        queue.put_nowait(3)
    assert len(queue) == 2
    assert [queue.get_nowait(), await queue.get()] == [1, 2]
    with pytest.raises(anyio.WouldBlock):
        queue.get_nowait()


async def test_a_waiting_consumer_gets_the_next_item_put() -> None:
    queue = BoundedQueue[str](4)
    got: list[str] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            got.append(await queue.get())

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        queue.put_nowait("event")
    assert got == ["event"]


async def test_closing_lets_the_consumer_drain_then_ends_it() -> None:
    queue = BoundedQueue[int](4)
    queue.put_nowait(7)
    queue.close()
    with pytest.raises(anyio.ClosedResourceError):
        queue.put_nowait(8)
    assert await queue.get() == 7
    with pytest.raises(anyio.EndOfStream):
        await queue.get()


async def test_closing_wakes_a_waiting_consumer() -> None:
    queue = BoundedQueue[int](4)
    ended = False
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            nonlocal ended
            with pytest.raises(anyio.EndOfStream):
                await queue.get()
            ended = True

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        queue.close()
    assert ended


async def test_a_cancelled_wait_leaves_the_queue_usable() -> None:
    queue = BoundedQueue[int](4)
    with anyio.move_on_after(0) as scope:
        await queue.get()
    assert scope.cancelled_caught
    queue.put_nowait(1)
    assert await queue.get() == 1


async def test_a_queue_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoundedQueue[int](0)
