"""Adding and removing agents while running: smallest request, no reconnect."""

from __future__ import annotations

import pytest
from listener_harness import PRESENCE, USER, presence, running_listener, seq_of

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio

OTHER = "8d2f7a10-6c3b-4e9d-a1f2-0b3c4d5e6f70"
OTHER_PRESENCE = f"v2.users.{OTHER}.presence"


async def test_adding_an_agent_posts_only_the_new_topic_without_reconnecting() -> None:
    async with FakePlatform([USER, OTHER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        connects = harness.supervisor_stats.connects
        changes = len(platform.recorded.subscription_changes)

        rejected = await harness.listener.set_topics([PRESENCE, OTHER_PRESENCE])

        assert rejected == []
        new_changes = platform.recorded.subscription_changes[changes:]
        assert [(c.method, c.topics) for c in new_changes] == [("POST", (OTHER_PRESENCE,))]
        assert harness.supervisor_stats.connects == connects
        await platform.publish(OTHER_PRESENCE, presence(7))
        await harness.until(lambda: any(e.topic == OTHER_PRESENCE for e in harness.events))


async def test_removing_an_agent_puts_the_remaining_topics_without_reconnecting() -> None:
    topics = [PRESENCE, OTHER_PRESENCE]
    async with (
        FakePlatform([USER, OTHER]) as platform,
        running_listener(platform, topics=topics) as harness,
    ):
        await harness.ready()
        changes = len(platform.recorded.subscription_changes)

        await harness.listener.set_topics([PRESENCE])

        new_changes = platform.recorded.subscription_changes[changes:]
        assert [(c.method, c.topics) for c in new_changes] == [("PUT", (PRESENCE,))]
        assert harness.supervisor_stats.connects == 1
        assert await platform.publish(OTHER_PRESENCE, presence(1)) == 0
        assert await harness.roundtrip(platform, 2, 3) == [2, 3, 4]


async def test_topics_past_a_full_channel_open_a_second_channel() -> None:
    many = [f"v2.users.user-{i:04d}.presence" for i in range(1000)]
    async with FakePlatform([USER]) as platform, running_listener(platform, topics=many) as h:
        await h.ready()
        await h.listener.set_topics([*many, PRESENCE])
        assert len(h.listener.supervisors) == 2
        await h.until(lambda: len(h.gaps) >= 2)  # the new channel's startup gap
        assert await h.roundtrip(platform, 0, 3) == [0, 1, 2]
        assert all(seq_of(e) in (0, 1, 2) for e in h.events)
