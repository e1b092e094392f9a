"""Protocol faults on demand: malformed and oversized frames, unknown topics, duplicated,
reordered and delayed events, eviction and kicked sockets."""

from __future__ import annotations

import json

import anyio
import pytest
from fake_helpers import api, channel, next_event, recv
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{USER}.presence"
PING = json.dumps({"message": "ping"})


async def test_malformed_frame_is_not_json() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client)
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            assert await platform.send_malformed() == 1
            with anyio.fail_after(2):
                text = await ws.recv()
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            await platform.send_malformed("}{")
            with anyio.fail_after(2):
                assert await ws.recv() == "}{"


async def test_oversized_frame_trips_the_client_limit() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client)
        async with connect(created["connectUri"], max_size=10_000) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            assert await platform.send_oversized(20_000) == 1
            with pytest.raises(ConnectionClosedError) as closed:
                await recv(ws)
            assert closed.value.sent is not None
            assert closed.value.sent.code == 1009  # message too big
        async with connect(created["connectUri"], max_size=None) as big:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.send_oversized(20_000)
            with anyio.fail_after(2):
                frame = await big.recv()
            assert len(frame) == 20_000
            assert json.loads(frame)["topicName"] == "channel.metadata"


async def test_unknown_topic_reaches_even_unsubscribed_sockets() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client)
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            assert await platform.publish_unknown_topic() == 1
            event = await next_event(ws)
            assert event["topicName"] == "v2.fake.unknown.topic"
            assert event["eventBody"] == {"unexpected": True}


async def test_duplicated_events_share_their_correlation_id() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            platform.duplicate_events = 3
            assert await platform.publish(PRESENCE, {"n": 1}) == 3
            copies = [await next_event(ws) for _ in range(3)]
            assert all(c == copies[0] for c in copies)
            platform.duplicate_events = 1
            await platform.publish(PRESENCE, {"n": 2})
            await ws.send(PING)
            assert (await next_event(ws))["eventBody"] == {"n": 2}
            assert (await recv(ws))["eventBody"]["message"] == "pong"  # no extra copy
            with pytest.raises(ValueError, match="at least 1"):
                platform.duplicate_events = 0


async def received_order(seed: int) -> list[int]:
    async with FakePlatform(seed=seed) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            platform.reorder_events(6)
            for n in range(6):
                await platform.publish(PRESENCE, {"n": n})
            return [(await next_event(ws))["eventBody"]["n"] for _ in range(6)]


async def test_reordered_events_are_a_seeded_shuffle() -> None:
    order = await received_order(0)
    assert sorted(order) == list(range(6))
    assert order != list(range(6))
    assert await received_order(0) == order


async def test_partial_reorder_window_is_flushed() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            platform.reorder_events(10, flush_after=0.02)
            assert await platform.publish(PRESENCE, {"n": 0}) == 0  # held back
            await platform.publish(PRESENCE, {"n": 1})
            assert platform.events_pending == 2
            got = {(await next_event(ws))["eventBody"]["n"] for _ in range(2)}
            assert got == {0, 1}


async def test_delayed_events_arrive_late_and_in_order() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            platform.delay_events(0.05)
            start = anyio.current_time()
            for n in range(3):
                assert await platform.publish(PRESENCE, {"n": n}) == 0
            await ws.send(PING)
            assert (await recv(ws))["eventBody"]["message"] == "pong"  # overtakes the events
            assert [(await next_event(ws))["eventBody"]["n"] for _ in range(3)] == [0, 1, 2]
            assert anyio.current_time() - start >= 0.05
            platform.delay_events(0)
            assert await platform.publish(PRESENCE, {"n": 3}) == 1


async def test_evict_oldest_closes_its_socket() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        oldest, newer = await channel(client), await channel(client)
        async with connect(oldest["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            assert platform.evict_oldest() == oldest["id"]
            with pytest.raises(ConnectionClosed):
                await recv(ws)
        assert platform.live_channels == [newer["id"]]
        head = await client.head(f"/api/v2/notifications/channels/{oldest['id']}")
        assert head.status_code == 404


async def test_kick_socket_closes_it_as_a_second_socket_would() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        assert not platform.kick_socket(created["id"])  # nothing connected yet
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            assert platform.kick_socket(created["id"])
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None
            assert "newer connection" in closed.value.rcvd.reason
        async with connect(created["connectUri"]) as again:  # the channel is still valid
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.publish(PRESENCE, {"back": True})
            assert (await next_event(again))["eventBody"] == {"back": True}
