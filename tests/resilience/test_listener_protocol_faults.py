"""Frames the listener must survive: malformed, oversized, on topics nobody asked for."""

from __future__ import annotations

import pytest
from listener_harness import USER, running_listener

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio


async def test_malformed_frames_are_counted_and_skipped_without_reconnecting() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        assert await platform.send_malformed() == 1
        assert await platform.send_malformed('{"eventBody": {}}') == 1  # no topicName
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))
        assert harness.supervisor_stats.reconnects == 0
        assert not [g for g in harness.gaps if g.reason != "startup"]


async def test_oversized_frame_costs_a_reconnect_not_the_daemon() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        await platform.send_oversized(5 * 1024 * 1024)  # above the 4 MiB frame limit
        await harness.ready(gaps=2)
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))


async def test_events_on_unsubscribed_topics_are_dropped_and_counted() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        assert await platform.publish_unknown_topic() == 1
        assert await harness.roundtrip(platform, 0, 3) == [0, 1, 2]
        assert all(e.topic.startswith(f"v2.users.{USER}") for e in harness.events)
        assert harness.supervisor_stats.unexpected_topics == 1
