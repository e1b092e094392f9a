"""Against the fake, through the real listener: a too-big frame is a WARNING naming 1009, and
a flood of malformed frames costs one warning line, not one per frame."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from listener_harness import USER, LogWatch, running_listener

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio


@contextmanager
def watching() -> Iterator[LogWatch]:
    watch = LogWatch(10.0)
    logger = logging.getLogger("outdial")
    level = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)


async def test_an_oversized_frame_is_a_warning_with_1009_and_its_meaning() -> None:
    with watching() as watch:
        async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
            await harness.ready()
            await platform.send_oversized(5 * 1024 * 1024)  # above the 4 MiB frame limit
            await harness.ready(gaps=2)
    closed = watch.named("socket.closed", code=1009)
    assert len(closed) == 1
    assert closed[0]["meaning"] == "message too big"
    assert closed[0]["closed_by"] == "outdial"
    # The reconnect line says why, too.
    assert watch.named("channel.degraded", close_code=1009, closed_by="outdial")


async def test_a_flood_of_malformed_frames_logs_one_line_then_a_count() -> None:
    with watching() as watch:
        async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
            await harness.ready()
            for _ in range(500):  # well inside one 10 s interval
                await platform.send_malformed()
            # Events after the flood still arrive: the socket stayed up.
            assert await harness.roundtrip(platform, 0, 3) == [0, 1, 2]
            assert harness.listener.supervisors[0].stats.reconnects == 0
            assert len(watch.named("socket.malformed_frame")) == 1
            assert watch.named("socket.malformed_frames") == []
        # Said when the socket closed: how many were held back.
        summary = watch.named("socket.malformed_frames")
        assert [s["count"] for s in summary] == [499]
