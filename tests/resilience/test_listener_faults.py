"""The real listener against the real fake platform, through each fault.

After every fault the listener must recover on its own, report the gap, and
deliver every event published after recovery exactly once.
"""

from __future__ import annotations

import re

import anyio
import httpx
import pytest
from listener_harness import FAST, PRESENCE, USER, presence, running_listener, seq_of
from websockets.asyncio.client import connect

from outdial.fake import FakePlatform
from outdial.listener import ListenerFatal

pytestmark = pytest.mark.anyio


async def test_delivers_events_once_when_healthy() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        assert await harness.roundtrip(platform, 0, 50) == list(range(50))
        assert harness.gaps[0].reason == "startup"


async def test_server_reset_reconnects_to_the_same_channel_without_resubscribing() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        channels_before = list(platform.recorded.channels)
        changes_before = len(platform.recorded.subscription_changes)

        await platform.drop_sockets()
        await harness.ready(gaps=2)

        assert harness.gaps[1].reason.startswith("socket")
        assert harness.gaps[1].end >= harness.gaps[1].start
        assert platform.recorded.channels == channels_before  # the channel outlived the socket
        # GET showed the topics still there, so no PUT was needed.
        assert len(platform.recorded.subscription_changes) == changes_before
        assert await harness.roundtrip(platform, 100, 20) == list(range(100, 120))


async def test_expired_channel_is_replaced_and_resubscribed() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        (old,) = platform.live_channels
        platform.expire_channel(old)
        await harness.ready(gaps=2)

        (new,) = platform.live_channels
        assert new != old
        assert platform.channel_topics(new) == [PRESENCE]
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))


async def test_evicted_channel_is_replaced() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        (ours,) = platform.live_channels
        # Another process with the same OAuth client opens 20 channels: ours is the oldest.
        async with httpx.AsyncClient() as http:
            token = (
                await http.post(
                    f"{platform.login_url}/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(platform.client_id, platform.client_secret),
                )
            ).json()["access_token"]
            for _ in range(20):
                response = await http.post(
                    f"{platform.api_url}/api/v2/notifications/channels",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200
        assert ours not in platform.live_channels
        await harness.ready(gaps=2)
        replaced = harness.channel(0)
        assert replaced is not None
        assert replaced.id != ours
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))


async def test_second_socket_on_our_channel_kicks_us_and_we_come_back() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        channel = harness.channel(0)
        assert channel is not None
        intruder = await connect(channel.connect_uri, proxy=None)
        try:
            await harness.ready(gaps=2)
        finally:
            await intruder.close()
        assert harness.channel(0) == channel
        assert await harness.roundtrip(platform, 0, 10) == list(range(10))


async def test_closing_warning_rotates_make_before_break_without_loss_or_duplicates() -> None:
    async with FakePlatform([USER]) as platform, running_listener(platform) as harness:
        await harness.ready()
        (old,) = platform.live_channels
        published = 0
        stop = anyio.Event()

        async def publish_continuously() -> None:
            nonlocal published
            while not stop.is_set():
                await platform.publish(PRESENCE, presence(published))
                published += 1
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_continuously)
            await harness.until(lambda: len(harness.events) > 20)
            await platform.send_socket_closing()
            await harness.until(lambda: harness.supervisor_stats.rotations == 1)
            after_rotation = len(harness.events)
            await harness.until(lambda: len(harness.events) > after_rotation + 20)
            stop.set()

        last = published - 1
        await harness.until(lambda: any(seq_of(e) == last for e in harness.events))
        seen = [seq_of(e) for e in harness.events]
        assert sorted(seen) == list(range(published)), "lost or duplicated during rotation"
        assert old not in platform.connected_channels
        assert len(platform.connected_channels) == 1
        # Rotation is not an outage: no gap beyond startup.
        assert [g.reason for g in harness.gaps] == ["startup"]


async def test_channel_near_expiry_is_rotated_proactively() -> None:
    settings = FAST.model_copy(update={"rotate_before_expiry": 86400.0 - 0.3})
    async with FakePlatform([USER]) as platform, running_listener(platform, settings=settings) as h:
        await h.ready()
        await h.until(lambda: h.supervisor_stats.rotations >= 1)
        assert len(platform.recorded.channels) >= 2
        assert await h.roundtrip(platform, 0, 10) == list(range(10))


async def test_rest_429_and_5xx_are_retried_honouring_retry_after() -> None:
    async with FakePlatform([USER]) as platform:
        platform.fail_next(r"/notifications/channels$", 503, count=2, method="POST")
        platform.fail_next(r"/subscriptions$", 429, retry_after=0.3, method="PUT")
        started = anyio.current_time()
        async with running_listener(platform) as harness:
            await harness.ready()
            took = anyio.current_time() - started
            assert took >= 0.3, "subscribed again before Retry-After had passed"
            assert await harness.roundtrip(platform, 0, 5) == list(range(5))


async def test_silent_server_still_answering_protocol_pings_is_alive() -> None:
    """No heartbeats, no app pongs, but WebSocket pongs: the connection is fine, keep it."""
    settings = FAST.model_copy(update={"ping_interval": 0.1, "ping_timeout": 0.2})
    async with FakePlatform([USER]) as platform:
        platform.heartbeats_enabled = False
        platform.answer_pings = False
        async with running_listener(platform, settings=settings) as harness:
            await harness.ready()
            await platform.wait_for(lambda: platform.pings_received >= 3)
            assert harness.supervisor_stats.reconnects == 0
            assert await harness.roundtrip(platform, 0, 5) == list(range(5))


async def test_slow_handler_overflow_is_counted_and_reported_as_a_gap() -> None:
    settings = FAST.model_copy(update={"queue_size": 3})
    async with (
        FakePlatform([USER]) as platform,
        running_listener(platform, settings=settings, read=False) as harness,
    ):
        await platform.wait_for(lambda: len(platform.connected_channels) == 1)
        await platform.wait_for(
            lambda: bool(platform.channel_topics(platform.connected_channels[0]))
        )
        for n in range(10):
            await platform.publish(PRESENCE, presence(n))
        await platform.publish(PRESENCE, presence(10))
        harness.reading.set()
        await harness.until(lambda: any(g.reason == "overflow" for g in harness.gaps))
        assert harness.listener.stats.overflowed > 0
        kinds = [type(i).__name__ for i in harness.items]
        assert "Gap" in kinds[kinds.index("Event") :], "the overflow gap follows the kept events"
        # Once the handler keeps up again (one event at a time for a queue of 3), none is lost.
        for n in range(100, 105):
            assert await harness.roundtrip(platform, n, 1) == [n]
        assert [g.reason for g in harness.gaps].count("overflow") == 1


async def test_an_overflow_gap_names_only_the_topics_whose_events_were_dropped() -> None:
    other = "8d2f7a10-6c3b-4e9d-a1f2-0b3c4d5e6f70"
    quiet = f"v2.users.{other}.presence"
    settings = FAST.model_copy(update={"queue_size": 3})
    async with (
        FakePlatform([USER, other]) as platform,
        running_listener(platform, [PRESENCE, quiet], settings=settings, read=False) as harness,
    ):
        await platform.wait_for(lambda: len(platform.connected_channels) == 1)
        await platform.wait_for(
            lambda: len(platform.channel_topics(platform.connected_channels[0])) == 2
        )
        await platform.publish(quiet, presence(0))  # kept: the queue has room
        for n in range(1, 12):
            await platform.publish(PRESENCE, presence(n))  # the queue fills, the rest drop
        harness.reading.set()
        await harness.until(lambda: any(g.reason == "overflow" for g in harness.gaps))
        [gap] = [g for g in harness.gaps if g.reason == "overflow"]
    # Only the agent whose events were lost is re-read; the quiet one lost nothing.
    assert gap.topics == frozenset({PRESENCE})


def _innermost(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


async def test_bad_credentials_stop_with_what_to_fix() -> None:
    async with FakePlatform([USER]) as platform:
        with pytest.raises(ExceptionGroup) as caught:
            async with running_listener(platform, client_secret="wrong") as harness:
                await harness.until(lambda: False, timeout=10)
    fatal = _innermost(caught.value)
    assert isinstance(fatal, ListenerFatal)
    assert "client_secret" in str(fatal)


async def test_rejected_subscription_is_fatal_and_names_the_topic() -> None:
    async with FakePlatform([USER]) as platform:
        with pytest.raises(ExceptionGroup) as caught:
            async with running_listener(platform, topics=[f"v2.users.{USER}.bogus"]) as harness:
                await harness.until(lambda: False, timeout=10)
    fatal = _innermost(caught.value)
    assert isinstance(fatal, ListenerFatal)
    assert re.search(r"rejected 1 subscription.*bogus", str(fatal))
