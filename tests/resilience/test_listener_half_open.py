"""A half-open connection (peer frozen, TCP still open) is found dead within its bound.

The fault proxy in front of the fake's WebSocket stops forwarding both ways
while keeping both sockets open: no heartbeat, no pong (app or protocol)
reaches the listener, and no error either. Only the keepalive can tell.
"""

from __future__ import annotations

import pytest
from listener_harness import FAST, USER, running_listener

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio


async def test_frozen_connection_is_declared_dead_within_interval_plus_timeout() -> None:
    settings = FAST.model_copy(update={"ping_interval": 0.3, "ping_timeout": 0.3})
    bound = settings.ping_interval + settings.ping_timeout
    async with (
        FakePlatform([USER], ws_proxy=True) as platform,
        running_listener(platform, settings=settings) as harness,
    ):
        await harness.ready()
        proxy = platform.ws_proxy
        assert proxy is not None
        proxy.freeze(discard=True)
        await harness.until(lambda: harness.supervisor_stats.last_dead_after is not None)
        proxy.thaw()
        await harness.ready(gaps=2)

        silence = harness.supervisor_stats.last_dead_after
        assert silence is not None
        # Scheduling slack only: the verdict itself is exact (see test_keepalive).
        assert bound <= silence <= bound + 0.25
        gap = harness.gaps[1]
        assert gap.reason == "socket dead"
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))


async def test_proxy_reset_is_a_reconnect_on_the_same_channel() -> None:
    async with (
        FakePlatform([USER], ws_proxy=True) as platform,
        running_listener(platform) as harness,
    ):
        await harness.ready()
        assert platform.ws_proxy is not None
        assert platform.ws_proxy.reset() == 1
        await harness.ready(gaps=2)
        assert len(platform.recorded.channels) == 1
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))
