"""An in-process TCP fault proxy: break a connection the ways a real network does.

:class:`FaultProxy` listens on loopback and, for every connection it accepts,
opens one to the target and forwards bytes both ways. Between the two it can:

================  ==================================================================
``freeze()``      half-open: nothing is forwarded either way, both sockets stay open
                  (the client sees total silence: no data, no pong, no FIN, no RST)
``thaw()``        forward again (what was held during the freeze is delivered)
``reset()``       abort every current connection with RST on both sides
``latency()``     delay each chunk by ``mean`` +/- ``jitter`` seconds (order kept)
``bandwidth()``   pace each direction to a number of bytes per second
``slice()``       forward in segments of a few bytes (framing split across reads)
``refuse()``      close new connections at once with RST, as a refused connect does
``clear()``       back to a transparent pass-through
================  ==================================================================

Every setting applies at once to current and future connections. Counters
(:attr:`FaultProxy.connections_accepted`, :attr:`FaultProxy.bytes_to_target`, ...)
and :meth:`FaultProxy.wait_for` let a test await what happened instead of
sleeping.

Each direction of a connection is two tasks: a reader that takes chunks off
the source socket and a writer that delays, gates and paces them onto the
other socket. Between them is a bounded queue (:data:`QUEUE_CHUNKS`); when it
is full the reader stops reading and TCP flow control pushes back on the
sender, so no buffer grows without limit. All tasks run in a task group the
proxy owns from ``__aenter__`` to ``__aexit__``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from outdial.fake.common.net import set_linger_zero
from outdial.log import emit

__all__ = ["CHUNK_SIZE", "QUEUE_CHUNKS", "FaultProxy"]

_log = logging.getLogger("outdial.fake.proxy")

CHUNK_SIZE = 65536
"""Most bytes read from a socket at once."""

QUEUE_CHUNKS = 16
"""Chunks held between a direction's reader and writer before the reader stops reading."""

_PACING_STEPS_PER_SECOND = 50
"""With a bandwidth limit, bytes go out in pieces of about 1/50 s worth, for smooth pacing."""

_Chunk = tuple[float, bytes]
"""When a chunk may be forwarded (``anyio.current_time()``) and its bytes; ``b""`` is EOF."""


@dataclass(eq=False, slots=True)
class _Link:
    """One proxied connection: the accepted client socket and the socket to the target."""

    client: anyio.abc.SocketStream
    target: anyio.abc.SocketStream | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    rst: bool = False
    """Close both sockets with RST (SO_LINGER 0) instead of FIN."""

    def abort(self) -> None:
        """Tear the link down with RST on both sides."""
        self.rst = True
        self.scope.cancel()


class FaultProxy:
    """A TCP proxy to ``target_host:target_port`` that can freeze, reset, slow and slice traffic.

    Use it as an async context manager; :attr:`port` is known once entered::

        async with FaultProxy("127.0.0.1", server_port) as proxy:
            client = await connect(f"ws://127.0.0.1:{proxy.port}/...")
            proxy.freeze()          # the client now hears nothing at all
            ...
            proxy.reset()           # and now it gets a connection reset

    ``seed`` makes the latency jitter reproducible.
    """

    connections_accepted: int
    """Connections accepted so far (refused ones included)."""
    connections_refused: int
    """Connections closed at once because :meth:`refuse` was on (or the target refused)."""
    connections_reset: int
    """Connections aborted by :meth:`reset`."""
    bytes_to_target: int
    """Bytes forwarded from clients to the target."""
    bytes_to_client: int
    """Bytes forwarded from the target to clients."""
    bytes_discarded: int
    """Bytes read and dropped during a ``freeze(discard=True)``, both directions."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int | None = None,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.connections_accepted = 0
        self.connections_refused = 0
        self.connections_reset = 0
        self.bytes_to_target = 0
        self.bytes_to_client = 0
        self.bytes_discarded = 0
        self._host = host
        self._port = port
        self._bound_port = 0
        self._rng = random.Random(seed)
        self._links: set[_Link] = set()
        self._frozen = False
        self._discard = False
        self._latency = (0.0, 0.0)
        self._bandwidth: float | None = None
        self._segment: int | None = None
        self._segment_gap = 0.0
        self._refusing = False
        self._thawed: anyio.Event | None = None
        self._changed: anyio.Event | None = None
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._thawed = anyio.Event()
        self._thawed.set()
        self._changed = anyio.Event()
        listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
        self._bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg = anyio.create_task_group()
        try:
            await tg.__aenter__()
        except BaseException:
            await listener.aclose()
            raise
        self._listener, self._tg = listener, tg
        tg.start_soon(listener.serve, self._handle, tg)
        emit(_log, "fake.proxy.started", port=self._bound_port, target_port=self.target_port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, listener = self._tg, self._listener
        self._tg = self._listener = None
        if tg is None or listener is None:
            return None
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            emit(_log, "fake.proxy.stopped", port=self._bound_port)

    # -- addresses and counters ---------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the proxy listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once entered)."""
        return self._bound_port

    @property
    def active_connections(self) -> int:
        """Connections being proxied now."""
        return len(self._links)

    @property
    def frozen(self) -> bool:
        """True between :meth:`freeze` and :meth:`thaw`."""
        return self._frozen

    # -- faults -----------------------------------------------------------------------------

    def freeze(self, *, discard: bool = False) -> None:
        """Stop forwarding both ways, keeping every socket open (a half-open connection).

        By default what arrives meanwhile is held and delivered on :meth:`thaw`
        (a network path that stalls, then recovers). With ``discard`` it is
        read and dropped instead, so the senders never feel back-pressure; that
        breaks any byte stream for good, so use it only where the client is
        expected to give up on the connection. A connection closing (FIN)
        during a freeze is always held, never dropped: the peer stays silent.
        """
        self._frozen, self._discard = True, discard
        if self._thawed is not None and self._thawed.is_set():
            self._thawed = anyio.Event()
        self._notify()
        emit(_log, "fake.proxy.frozen", port=self._bound_port, discard=discard)

    def thaw(self) -> None:
        """Forward again after :meth:`freeze`."""
        self._frozen = False
        if self._thawed is not None:
            self._thawed.set()
        self._notify()
        emit(_log, "fake.proxy.thawed", port=self._bound_port)

    def reset(self) -> int:
        """Abort every current connection with RST on both sides; return how many.

        Nothing more is forwarded on them from now on; the sockets are closed
        with ``SO_LINGER`` 0 as soon as their tasks next run (the next scheduling
        round). New connections are accepted as usual.
        """
        links = list(self._links)
        for link in links:
            link.abort()
        self.connections_reset += len(links)
        self._notify()
        emit(_log, "fake.proxy.reset", port=self._bound_port, connections=len(links))
        return len(links)

    def latency(self, mean: float, jitter: float = 0.0) -> None:
        """Delay every chunk by ``mean`` +/- ``jitter`` seconds (uniform, seeded), keeping order."""
        if mean < 0 or jitter < 0:
            raise ValueError("latency mean and jitter must not be negative")
        self._latency = (mean, jitter)

    def bandwidth(self, bytes_per_second: float | None) -> None:
        """Limit each direction of each connection to ``bytes_per_second`` (None: unlimited)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bandwidth must be positive (or None for unlimited)")
        self._bandwidth = bytes_per_second

    def slice(self, segment_size: int | None, gap: float = 0.0) -> None:
        """Forward in segments of at most ``segment_size`` bytes, ``gap`` seconds apart.

        Each segment is its own write on a TCP_NODELAY socket, so the peer
        reads messages split at arbitrary points. None forwards whole chunks.
        """
        if segment_size is not None and segment_size < 1:
            raise ValueError("segment_size must be at least 1 (or None)")
        if gap < 0:
            raise ValueError("gap must not be negative")
        self._segment, self._segment_gap = segment_size, gap

    def refuse(self, on: bool = True) -> None:
        """While on, close every new connection at once with RST (current ones are kept)."""
        self._refusing = on

    def clear(self) -> None:
        """Back to a transparent pass-through: thaw, no latency, bandwidth, slicing or refusal."""
        self.latency(0.0)
        self.bandwidth(None)
        self.slice(None)
        self.refuse(False)
        if self._frozen:
            self.thaw()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked after every connection or byte counted.

        Raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while not predicate():
                if self._changed is None:
                    raise RuntimeError("FaultProxy is not running; use it as `async with`")
                await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    # -- forwarding -------------------------------------------------------------------------

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.connections_accepted += 1
        if self._refusing:
            self.connections_refused += 1
            self._notify()
            await _close(client, rst=True)
            return
        link = _Link(client)
        self._links.add(link)
        self._notify()
        try:
            with link.scope:
                try:
                    link.target = await anyio.connect_tcp(self.target_host, self.target_port)
                except OSError:
                    # The target refused: so does the proxy, as a direct connect would.
                    self.connections_refused += 1
                    link.rst = True
                    return
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._direction, link, client, link.target, True)
                    tg.start_soon(self._direction, link, link.target, client, False)
        finally:
            self._links.discard(link)
            with anyio.CancelScope(shield=True):
                await _close(client, rst=link.rst)
                if link.target is not None:
                    await _close(link.target, rst=link.rst)
            self._notify()

    async def _direction(
        self,
        link: _Link,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        upstream: bool,
    ) -> None:
        send, receive = anyio.create_memory_object_stream[_Chunk](QUEUE_CHUNKS)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, link, source, send)
            await self._write(link, sink, receive, upstream)

    async def _read(
        self, link: _Link, source: anyio.abc.SocketStream, out: MemoryObjectSendStream[_Chunk]
    ) -> None:
        async with out:
            while True:
                if self._frozen and not self._discard:
                    # Holding: leave the bytes in the kernel, so TCP pushes back on the sender.
                    await self._wait_thawed()
                try:
                    data = await source.receive(CHUNK_SIZE)
                except anyio.EndOfStream:
                    data = b""
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    # The peer reset its side: pass a reset on to the other side too.
                    link.abort()
                    return
                if data and self._frozen and self._discard:
                    self.bytes_discarded += len(data)
                    self._notify()
                    continue
                await out.send((anyio.current_time() + self._draw_delay(), data))
                if not data:
                    return

    async def _write(
        self,
        link: _Link,
        sink: anyio.abc.SocketStream,
        chunks: MemoryObjectReceiveStream[_Chunk],
        upstream: bool,
    ) -> None:
        async with chunks:
            async for due, data in chunks:
                wait = due - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)
                if not data:
                    await self._wait_thawed()
                    await sink.send_eof()
                    return
                if not await self._forward(sink, data, upstream):
                    link.abort()
                    return

    async def _forward(self, sink: anyio.abc.SocketStream, data: bytes, upstream: bool) -> bool:
        """Send ``data`` as the current faults allow; False when ``sink`` is broken."""
        view = memoryview(data)
        while view:
            if self._frozen:
                if self._discard:
                    self.bytes_discarded += len(view)
                    self._notify()
                    return True
                await self._wait_thawed()
            step = len(view)
            if self._segment is not None:
                step = min(step, self._segment)
            bandwidth = self._bandwidth
            if bandwidth is not None:
                step = min(step, max(1, int(bandwidth / _PACING_STEPS_PER_SECOND)))
            piece, view = bytes(view[:step]), view[step:]
            try:
                await sink.send(piece)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False
            if upstream:
                self.bytes_to_target += len(piece)
            else:
                self.bytes_to_client += len(piece)
            self._notify()
            pause = len(piece) / bandwidth if bandwidth is not None else 0.0
            if self._segment is not None:
                pause += self._segment_gap
            if pause > 0:
                await anyio.sleep(pause)
        return True

    async def _wait_thawed(self) -> None:
        while self._frozen and self._thawed is not None:
            await self._thawed.wait()

    def _draw_delay(self) -> float:
        mean, jitter = self._latency
        if mean == 0 and jitter == 0:
            return 0.0
        return max(0.0, self._rng.uniform(mean - jitter, mean + jitter))


async def _close(stream: anyio.abc.SocketStream, *, rst: bool) -> None:
    if rst:
        set_linger_zero(stream)
    await stream.aclose()
