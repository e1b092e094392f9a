"""The TCP fault proxy against a plain echo server: every mode, and its counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest

from outdial.fake.proxy import FaultProxy

pytestmark = pytest.mark.anyio

WAIT = 2.0
QUIET = 0.05
"""How long a test listens to show that nothing arrives (silence has no event to await)."""


@dataclass
class Echo:
    """An echo server that also records the size of every chunk it read."""

    port: int = 0
    chunks: list[int] = field(default_factory=list)
    resets: int = 0
    eofs: int = 0
    ended: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        try:
            await self._echo(stream)
        finally:
            self.ended.set()

    async def _echo(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            while True:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    self.eofs += 1
                    return
                except anyio.BrokenResourceError:
                    self.resets += 1
                    return
                self.chunks.append(len(data))
                if data == b"bye":
                    return  # the server ends the connection (FIN)
                try:
                    await stream.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.resets += 1
                    return


@asynccontextmanager
async def echo_behind_proxy(seed: int = 0) -> AsyncIterator[tuple[Echo, FaultProxy]]:
    echo = Echo()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        echo.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(listener.serve, echo.handle, tg)
        async with FaultProxy("127.0.0.1", echo.port, seed=seed) as proxy:
            yield echo, proxy
        tg.cancel_scope.cancel()


async def receive_exactly(stream: anyio.abc.SocketStream, n: int) -> bytes:
    data = b""
    with anyio.fail_after(WAIT):
        while len(data) < n:
            data += await stream.receive()
    return data


async def test_passes_bytes_through_and_counts_them() -> None:
    async with echo_behind_proxy() as (_, proxy):
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            await client.send(b"hello")
            assert await receive_exactly(client, 5) == b"hello"
        assert proxy.connections_accepted == 1
        assert proxy.bytes_to_target == 5
        assert proxy.bytes_to_client == 5
        await proxy.wait_for(lambda: proxy.active_connections == 0)


async def test_freeze_holds_everything_until_thaw() -> None:
    async with (
        echo_behind_proxy() as (echo, proxy),
        await anyio.connect_tcp("127.0.0.1", proxy.port) as client,
    ):
        await client.send(b"a")
        assert await receive_exactly(client, 1) == b"a"
        proxy.freeze()
        await client.send(b"bc")
        with anyio.move_on_after(QUIET) as quiet:
            await client.receive()
        assert quiet.cancelled_caught  # total silence: nothing, not even a FIN
        assert echo.chunks == [1]  # and the server heard nothing either
        assert proxy.active_connections == 1
        proxy.thaw()
        assert await receive_exactly(client, 2) == b"bc"


async def test_freeze_with_discard_drops_what_was_sent_meanwhile() -> None:
    async with (
        echo_behind_proxy() as (_, proxy),
        await anyio.connect_tcp("127.0.0.1", proxy.port) as client,
    ):
        proxy.freeze(discard=True)
        await client.send(b"lost")
        await proxy.wait_for(lambda: proxy.bytes_discarded == 4)
        assert proxy.bytes_to_target == 0
        with anyio.move_on_after(QUIET):
            await client.receive()
            pytest.fail("data crossed a frozen proxy")
        proxy.thaw()
        await client.send(b"kept")
        assert await receive_exactly(client, 4) == b"kept"
        assert proxy.bytes_to_target == 4


async def test_reset_aborts_both_sides_with_rst() -> None:
    async with echo_behind_proxy() as (echo, proxy):
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            await client.send(b"x")
            await receive_exactly(client, 1)
            assert proxy.reset() == 1
            with anyio.fail_after(WAIT), pytest.raises(anyio.BrokenResourceError):
                await client.receive()  # a reset, not an orderly EndOfStream
        with anyio.fail_after(WAIT):
            await echo.ended.wait()
        assert echo.resets == 1
        assert proxy.connections_reset == 1
        await proxy.wait_for(lambda: proxy.active_connections == 0)
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as again:
            await again.send(b"y")
            assert await receive_exactly(again, 1) == b"y"


async def test_latency_delays_each_direction() -> None:
    async with echo_behind_proxy() as (_, proxy):
        proxy.latency(0.04, jitter=0.01)
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            start = anyio.current_time()
            await client.send(b"ping")
            assert await receive_exactly(client, 4) == b"ping"
            assert anyio.current_time() - start >= 2 * 0.03


async def test_bandwidth_paces_the_bytes() -> None:
    async with echo_behind_proxy() as (_, proxy):
        proxy.bandwidth(100_000)
        payload = bytes(10_000)  # 0.1 s at 100 kB/s, the first 1/50 s worth going at once
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            start = anyio.current_time()
            await client.send(payload)
            assert await receive_exactly(client, len(payload)) == payload
            assert anyio.current_time() - start >= 0.075


async def test_slice_splits_into_small_segments() -> None:
    async with echo_behind_proxy() as (echo, proxy):
        proxy.slice(3, gap=0.002)
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            await client.send(b"0123456789")
            assert await receive_exactly(client, 10) == b"0123456789"
        assert sum(echo.chunks) == 10
        assert max(echo.chunks) <= 3
        assert len(echo.chunks) >= 4


async def test_refuse_closes_new_connections_at_once() -> None:
    async with echo_behind_proxy() as (_, proxy):
        proxy.refuse()
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            with anyio.fail_after(WAIT), pytest.raises(anyio.BrokenResourceError):
                await client.receive()
        assert proxy.connections_refused == 1
        proxy.clear()
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            await client.send(b"ok")
            assert await receive_exactly(client, 2) == b"ok"
        assert proxy.connections_accepted == 2


async def test_server_closing_reaches_the_client_as_end_of_stream() -> None:
    async with (
        echo_behind_proxy() as (_, proxy),
        await anyio.connect_tcp("127.0.0.1", proxy.port) as client,
    ):
        await client.send(b"bye")
        with anyio.fail_after(WAIT), pytest.raises(anyio.EndOfStream):
            await client.receive()


async def test_unreachable_target_is_refused() -> None:
    async with echo_behind_proxy() as (echo, _):
        port = echo.port
    async with FaultProxy("127.0.0.1", port) as proxy:  # nothing listens there now
        async with await anyio.connect_tcp("127.0.0.1", proxy.port) as client:
            with anyio.fail_after(WAIT), pytest.raises(anyio.BrokenResourceError):
                await client.receive()
        assert proxy.connections_refused == 1
