"""Frames at fault are named, not hidden: close codes 1002/1007/1009 at WARNING with their
meaning, and a flood of malformed frames as one warning plus counted summaries."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from outdial.clock import SystemClock
from outdial.platforms.base import ChannelInfo
from outdial.platforms.genesys.socket import (
    CLOSE_CODE_MEANINGS,
    SessionEnd,
    SocketSession,
    WarningLimiter,
    who_closed,
)

# -- pure helpers ------------------------------------------------------------------------------


def test_who_closed_credits_the_side_that_closed_first() -> None:
    # outdial failed the connection (a frame too big); the platform echoed the code.
    assert who_closed(1009, 1009, False) == (1009, "outdial")
    assert who_closed(1007, None, None) == (1007, "outdial")
    # The platform closed first; outdial's frame only answered it.
    assert who_closed(1002, 1002, True) == (1002, "platform")
    assert who_closed(None, 1000, None) == (1000, "platform")
    assert who_closed(None, None, None) == (None, "nobody")


def test_the_fault_codes_have_meanings() -> None:
    assert CLOSE_CODE_MEANINGS[1002] == "protocol error"
    assert "UTF-8" in CLOSE_CODE_MEANINGS[1007]
    assert CLOSE_CODE_MEANINGS[1009] == "message too big"


def test_limiter_logs_the_first_then_one_counted_line_per_interval() -> None:
    limiter = WarningLimiter(interval=10.0)
    answers = [limiter.hit(t * 0.001) for t in range(5000)]  # 5,000 frames in 5 s
    assert answers[0] == 1
    assert answers[1:] == [0] * 4999
    # The next line, once the interval has passed, counts what was held back and itself.
    assert limiter.hit(10.0) == 5000
    assert limiter.hit(10.5) == 0
    assert limiter.flush() == 1
    assert limiter.flush() == 0
    # After a quiet interval, the next one is again a line of its own.
    assert limiter.hit(30.0) == 1


def test_limiter_lines_are_bounded_by_time_not_by_frames() -> None:
    limiter = WarningLimiter(interval=10.0)
    lines = sum(1 for t in range(60_000) if limiter.hit(t * 0.001))  # a minute of 1,000/s
    assert lines == 6
    assert limiter.flush() > 0


# -- a real socket against a server that sends raw frames --------------------------------------


@asynccontextmanager
async def raw_server(frames: list[bytes]) -> AsyncIterator[str]:
    """A WebSocket server that writes ``frames`` as they are (no validation) to each client."""

    async def handler(ws: ServerConnection) -> None:
        for frame in frames:
            ws.transport.write(frame)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def _text_frame(payload: bytes) -> bytes:
    # FIN + text opcode; a server's frames are not masked.
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


@contextmanager
def captured() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("outdial.listener")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _session(url: str, **options: Any) -> SocketSession:
    return SocketSession(
        ChannelInfo("channel-1", url, None),
        ping_interval=30.0,
        ping_timeout=30.0,
        clock=SystemClock(),
        on_event=lambda event: None,
        on_closing=lambda warning: None,
        **options,
    )


def _fields(records: list[logging.LogRecord], name: str) -> list[dict[str, Any]]:
    out = [getattr(r, "outdial", {}) for r in records]
    return [f for f in out if f.get("event") == name]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("frame", "code", "meaning"),
    [
        (_text_frame(b"\xff\xfe not UTF-8"), 1007, "invalid frame data (not UTF-8)"),
        (bytes([0xF1, 0x00]), 1002, "protocol error"),  # reserved bits set, no extension
        (bytes([0x83, 0x00]), 1002, "protocol error"),  # a reserved opcode
    ],
)
async def test_a_bad_frame_is_a_warning_naming_the_close_code(
    frame: bytes, code: int, meaning: str
) -> None:
    async with raw_server([frame]) as url:
        session = _session(url)
        with captured() as records:
            assert await session.run() is SessionEnd.CLOSED_BY_SERVER
    assert session.stats.close_code == code
    assert session.stats.closed_by == "outdial"
    closed = _fields(records, "socket.closed")
    assert len(closed) == 1
    assert closed[0]["code"] == code
    assert closed[0]["meaning"] == meaning
    assert closed[0]["closed_by"] == "outdial"
    warned = [r for r in records if r.levelno == logging.WARNING]
    assert any(f"code={code}" in r.getMessage() for r in warned)


@pytest.mark.anyio
async def test_a_normal_close_is_not_a_warning() -> None:
    async with raw_server([bytes([0x88, 0x02, 0x03, 0xE8])]) as url:  # close, 1000
        session = _session(url)
        with captured() as records:
            await session.run()
    assert session.stats.close_code == 1000
    assert session.stats.closed_by == "platform"
    assert _fields(records, "socket.closed") == []


@pytest.mark.anyio
async def test_a_flood_of_malformed_frames_is_one_warning_and_a_counted_summary() -> None:
    flood = [_text_frame(b'{"topicName": "v2.') for _ in range(500)]
    close = bytes([0x88, 0x02, 0x03, 0xE8])
    async with raw_server([*flood, close]) as url:
        session = _session(url, malformed_log=WarningLimiter(interval=60.0))
        with captured() as records:
            await session.run()
    assert session.stats.malformed == 500
    warned = [r for r in records if r.levelno == logging.WARNING]
    assert len(warned) == 2, [r.getMessage() for r in warned]
    assert _fields(records, "socket.malformed_frame")[0]["reason"]
    summary = _fields(records, "socket.malformed_frames")
    assert [s["count"] for s in summary] == [499]  # the rest, said when the socket ended
