"""One socket on one channel: receive frames, keep the connection provably alive.

This is the thin I/O shell around :class:`~outdial.listener.keepalive.Liveness`:
a receive loop that feeds it every frame, and a keepalive task that sleeps until
``next_deadline()`` and acts on the verdict (probe, or declare the socket dead).
Both live in one task group; when either ends, the other is cancelled and the
socket is closed (aborted when it is dead, so a frozen peer cannot hold us up).

Frames at fault are reported without flooding the log: a close for a
protocol error, invalid data or an oversized message (1002, 1007, 1009) is a
WARNING naming the code, its meaning and which side closed; malformed frames
go through a :class:`WarningLimiter` (the first at once, then one summary
line with a count per interval).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from outdial.clock import Clock
from outdial.events import Event, Heartbeat, MalformedFrame, Pong, SocketClosing, parse_frame
from outdial.listener.keepalive import Liveness, Verdict
from outdial.log import emit
from outdial.platforms.base import ChannelGone, ChannelInfo, RetryableError

__all__ = [
    "APP_PING",
    "CLOSE_CODE_MEANINGS",
    "FRAME_FAULT_CLOSE_CODES",
    "SessionEnd",
    "SessionStats",
    "SocketSession",
    "WarningLimiter",
    "who_closed",
]

log = logging.getLogger("outdial.listener")

#: The platform's application-level probe; it answers with a ``pong`` on channel.metadata.
APP_PING = '{"message":"ping"}'

#: What WebSocket close codes mean (RFC 6455, section 7.4.1), for log lines.
CLOSE_CODE_MEANINGS = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "closed without a close frame",
    1007: "invalid frame data (not UTF-8)",
    1008: "policy violation",
    1009: "message too big",
    1010: "missing extension",
    1011: "internal error",
}

#: Closes caused by a frame one side sent: worth a WARNING, unlike a routine close.
FRAME_FAULT_CLOSE_CODES = frozenset({1002, 1007, 1009})

#: Seconds between summary lines of a run of malformed frames.
MALFORMED_LOG_INTERVAL = 10.0


def who_closed(
    sent: int | None, received: int | None, received_then_sent: bool | None
) -> tuple[int | None, str]:
    """The close code that ended a socket and who chose it: ``"outdial"`` or ``"platform"``.

    ``sent``/``received`` are the codes of the close frames each way (None
    when there was none). The side that closed first chose the code: when
    outdial failed the connection for a bad frame (too big, not UTF-8) it
    sent first, and the platform's answer only echoes it.
    """
    if sent is not None and (received is None or received_then_sent is False):
        return sent, "outdial"
    if received is not None:
        return received, "platform"
    return None, "nobody"


@dataclass(slots=True)
class WarningLimiter:
    """Which of a run of repeated warnings to log: the first at once, then at most one line
    per ``interval`` seconds, counting the ones held back in between.

    Pure: the caller passes the time. :meth:`hit` answers 0 (stay quiet) or
    how many occurrences the line it logs stands for (1: just this one; more:
    this one and those held back since the last line).
    """

    interval: float = MALFORMED_LOG_INTERVAL
    _last: float | None = None
    _held: int = 0

    def hit(self, now: float) -> int:
        """Note one occurrence at ``now``; how many a line logged now reports (0: log nothing)."""
        if self._last is not None and now - self._last < self.interval:
            self._held += 1
            return 0
        count, self._held, self._last = self._held + 1, 0, now
        return count

    def flush(self) -> int:
        """How many were held back and not reported yet (then none are)."""
        held, self._held = self._held, 0
        return held


class SessionEnd(enum.Enum):
    """Why a socket session ended."""

    CLOSED_BY_SERVER = "closed_by_server"
    DEAD = "dead"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class SessionStats:
    """Counters of one socket, for logs and metrics."""

    frames: int = 0
    events: int = 0
    heartbeats: int = 0
    pongs: int = 0
    probes: int = 0
    malformed: int = 0
    closing_warnings: int = 0
    close_reason: str = ""
    close_code: int | None = None
    closed_by: str = ""
    silent_for_when_dead: float | None = None
    extra: dict[str, int] = field(default_factory=dict)


class SocketSession:
    """A WebSocket to ``channel.connect_uri`` that calls back for events and warnings.

    ``on_event`` must not block for long: the listener hands events to a bounded
    queue so handling never delays receiving (and so never fakes a dead socket).
    ``malformed_log`` rate-limits the malformed-frame warnings; pass one shared
    by a channel's successive sockets so a reconnect does not reset it.
    """

    def __init__(
        self,
        channel: ChannelInfo,
        *,
        ping_interval: float,
        ping_timeout: float,
        clock: Clock,
        on_event: Callable[[Event], None],
        on_closing: Callable[[SocketClosing], None],
        open_timeout: float = 10.0,
        malformed_log: WarningLimiter | None = None,
    ) -> None:
        self.channel = channel
        self._malformed_log = malformed_log if malformed_log is not None else WarningLimiter()
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._clock = clock
        self._on_event = on_event
        self._on_closing = on_closing
        self._open_timeout = open_timeout
        self.stats = SessionStats()
        self.liveness: Liveness | None = None

    @property
    def last_frame_at(self) -> float | None:
        """Monotonic time of the last frame, or None before the socket opened."""
        return self.liveness.last_frame_at if self.liveness else None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> SessionEnd:
        """Connect, signal ``task_status.started()`` once open, then run until the socket ends.

        Raises :class:`ChannelGone` when the handshake is refused with 4xx (the channel
        expired or was evicted) and :class:`RetryableError` for other connect failures.
        """
        try:
            ws = await connect(
                self.channel.connect_uri,
                ping_interval=None,  # our own keepalive decides; see Liveness
                open_timeout=self._open_timeout,
                close_timeout=1.0,
                compression=None,
                proxy=None,
                max_size=4 * 1024 * 1024,
                user_agent_header="outdial",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500:
                raise ChannelGone(
                    f"socket handshake refused with {status}: channel {self.channel.id} is gone",
                    status=status,
                ) from exc
            raise RetryableError(f"socket handshake refused with {status}", status=status) from exc
        except (OSError, TimeoutError) as exc:
            raise RetryableError(f"socket connect failed: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # websockets.InvalidHandshake and friends
            raise RetryableError(f"socket connect failed: {type(exc).__name__}: {exc}") from exc

        self.liveness = Liveness(self._ping_interval, self._ping_timeout, self._clock.monotonic())
        end = SessionEnd.CANCELLED
        try:
            task_status.started()
            end = await self._serve(ws)
            return end
        finally:
            if end is SessionEnd.DEAD:
                # A dead peer will never answer a close handshake: don't wait for one.
                ws.transport.abort()
            else:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    await ws.close()
                ws.transport.abort()

    async def _serve(self, ws: ClientConnection) -> SessionEnd:
        outcome: list[SessionEnd] = []
        async with anyio.create_task_group() as tg:

            async def receive() -> None:
                outcome.append(await self._receive(ws))
                tg.cancel_scope.cancel()

            async def keepalive() -> None:
                outcome.append(await self._keepalive(ws))
                tg.cancel_scope.cancel()

            tg.start_soon(receive)
            tg.start_soon(keepalive)
        return outcome[0] if outcome else SessionEnd.CANCELLED

    async def _receive(self, ws: ClientConnection) -> SessionEnd:
        assert self.liveness is not None
        stats, channel_id = self.stats, self.channel.id
        # Bound once: this loop runs for every frame on the socket.
        monotonic, frame_received = self._clock.monotonic, self.liveness.frame_received
        on_event = self._on_event
        # Read once per socket: a DEBUG line per event only when someone asked for it.
        debug = log.isEnabledFor(logging.DEBUG)
        try:
            async for raw in ws:
                now = monotonic()
                frame_received(now)
                stats.frames += 1
                try:
                    frame = parse_frame(raw, channel_id=channel_id, received_at=now)
                except MalformedFrame as exc:
                    stats.malformed += 1
                    self._malformed(now, exc.reason)
                    continue
                if type(frame) is Event:
                    stats.events += 1
                    if debug:
                        emit(
                            log, "frame.event", logging.DEBUG, channel=channel_id, topic=frame.topic
                        )
                    on_event(frame)
                elif isinstance(frame, Heartbeat):
                    stats.heartbeats += 1
                elif isinstance(frame, Pong):
                    stats.pongs += 1
                elif isinstance(frame, SocketClosing):
                    stats.closing_warnings += 1
                    self._on_closing(frame)
        except ConnectionClosed as exc:
            stats.close_reason = f"{exc.rcvd.code if exc.rcvd else 'no close frame'}"
            self._closed(exc)
        else:
            stats.close_reason = f"{ws.close_code}"
            self._closed(ws.protocol.close_exc)
        finally:
            held = self._malformed_log.flush()
            if held:
                self._malformed_summary(held, None)
        return SessionEnd.CLOSED_BY_SERVER

    def _malformed(self, now: float, reason: str) -> None:
        count = self._malformed_log.hit(now)
        if count == 1:
            emit(
                log,
                "socket.malformed_frame",
                logging.WARNING,
                channel=self.channel.id,
                reason=reason,
            )
        elif count > 1:
            self._malformed_summary(count, reason)

    def _malformed_summary(self, count: int, last_reason: str | None) -> None:
        emit(
            log,
            "socket.malformed_frames",
            logging.WARNING,
            channel=self.channel.id,
            count=count,
            per_seconds=self._malformed_log.interval,
            last_reason=last_reason,
        )

    def _closed(self, closed: ConnectionClosed) -> None:
        code, by = who_closed(
            closed.sent.code if closed.sent else None,
            closed.rcvd.code if closed.rcvd else None,
            closed.rcvd_then_sent,
        )
        self.stats.close_code, self.stats.closed_by = code, by
        if code in FRAME_FAULT_CLOSE_CODES:
            frame = closed.sent if by == "outdial" else closed.rcvd
            emit(
                log,
                "socket.closed",
                logging.WARNING,
                channel=self.channel.id,
                code=code,
                meaning=CLOSE_CODE_MEANINGS[code],
                closed_by=by,
                reason=frame.reason if frame is not None and frame.reason else None,
            )

    def _pong_received(self, future: asyncio.Future[float]) -> None:
        # A waiter cancelled by the connection closing is no sign of life.
        if self.liveness is not None and not future.cancelled() and future.exception() is None:
            self.liveness.frame_received(self._clock.monotonic())

    async def _keepalive(self, ws: ClientConnection) -> SessionEnd:
        assert self.liveness is not None
        liveness, clock = self.liveness, self._clock
        while True:
            now = clock.monotonic()
            verdict = liveness.poll(now)
            if verdict is Verdict.DEAD:
                self.stats.silent_for_when_dead = now - liveness.last_frame_at
                emit(
                    log,
                    "socket.dead",
                    logging.WARNING,
                    channel=self.channel.id,
                    silent_for=round(now - liveness.last_frame_at, 3),
                )
                return SessionEnd.DEAD
            if verdict is Verdict.SEND_PING:
                liveness.probe_sent(now)
                self.stats.probes += 1
                try:
                    # Both probes: the platform's app-level ping (answered by a pong
                    # event) and a protocol ping (answered by the WebSocket stack).
                    await ws.send(APP_PING)
                    pong = await ws.ping()
                except ConnectionClosed:
                    return SessionEnd.CLOSED_BY_SERVER
                pong.add_done_callback(self._pong_received)  # type: ignore[attr-defined]
            delay = liveness.next_deadline() - clock.monotonic()
            await anyio.sleep(max(delay, 0.0))
