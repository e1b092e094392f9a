"""The fake platform's notification WebSocket: heartbeats, ping/pong, one socket per channel,
events by subscription, and the ways a connection breaks."""

from __future__ import annotations

import json

import pytest
from fake_helpers import api, channel, next_event, recv
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{USER}.presence"
PING = json.dumps({"message": "ping"})


async def test_heartbeat_arrives_every_interval() -> None:
    async with FakePlatform(seed=0, heartbeat_interval=0.05) as platform, api(platform) as client:
        created = await channel(client)
        async with connect(created["connectUri"]) as ws:
            for _ in range(2):
                assert await recv(ws) == {
                    "topicName": "channel.metadata",
                    "eventBody": {"message": "WebSocket Heartbeat"},
                }


async def test_ping_gets_pong_unless_disabled() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await ws.send(PING)
            assert await recv(ws) == {
                "topicName": "channel.metadata",
                "eventBody": {"message": "pong"},
            }

            platform.answer_pings = False
            await ws.send("not json")  # ignored
            await ws.send(PING)  # ignored
            await platform.wait_for(lambda: platform.pings_received == 2)
            platform.answer_pings = True
            await ws.send(PING)
            assert (await recv(ws))["eventBody"] == {"message": "pong"}
            await platform.publish(PRESENCE, {"marker": 1})
            following = await recv(ws)
            assert following["topicName"] == PRESENCE  # no second pong in between


async def test_events_go_only_to_subscribed_channels() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        subscribed = await channel(client, [PRESENCE])
        other = await channel(client, [f"v2.users.{USER}.routingStatus"])
        async with connect(subscribed["connectUri"]) as ws, connect(other["connectUri"]) as ws2:
            await platform.wait_for(lambda: len(platform.connected_channels) == 2)
            delivered = await platform.publish(PRESENCE, {"hello": "world"})
            assert delivered == 1
            event = await next_event(ws)
            assert event["topicName"] == PRESENCE
            assert event["version"] == "2"
            assert event["eventBody"] == {"hello": "world"}
            assert event["metadata"]["CorrelationId"]
            await ws2.send(PING)
            assert (await recv(ws2))["eventBody"]["message"] == "pong"  # nothing came before


async def test_second_socket_on_a_channel_kicks_the_first() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as first:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            async with connect(created["connectUri"]) as second:
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(first)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1000
                assert "newer connection" in closed.value.rcvd.reason
                await platform.publish(PRESENCE, {"to": "second"})
                assert (await next_event(second))["eventBody"] == {"to": "second"}


async def test_unknown_channel_is_refused_with_404() -> None:
    async with FakePlatform(seed=0) as platform:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{platform.ws_url}/channels/streaming-0-nope"):
                pass
        assert refused.value.response.status_code == 404


async def test_drop_sockets_resets_without_a_close_frame() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client)
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.drop_sockets()
            with pytest.raises(ConnectionClosedError) as dropped:
                await recv(ws)
            assert dropped.value.rcvd is None
        # The channel itself survives a network failure: reconnecting works.
        async with connect(created["connectUri"]) as again:
            await again.send(PING)
            assert (await recv(again))["eventBody"]["message"] == "pong"


async def test_expire_channel_closes_the_socket_and_refuses_reconnects() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        created = await channel(client)
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            platform.expire_channel(created["id"])
            with pytest.raises(ConnectionClosed):
                await recv(ws)
        head = await client.head(f"/api/v2/notifications/channels/{created['id']}")
        assert head.status_code == 404
        with pytest.raises(InvalidStatus) as refused:
            async with connect(created["connectUri"]):
                pass
        assert refused.value.response.status_code == 404


async def test_evicted_channel_socket_is_closed() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        oldest = await channel(client)
        async with connect(oldest["connectUri"]) as ws:
            for _ in range(20):
                await channel(client)
            with pytest.raises(ConnectionClosed):
                await recv(ws)


async def test_socket_closing_warning_then_close() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        one, two = await channel(client), await channel(client)
        async with connect(one["connectUri"]) as ws1, connect(two["connectUri"]) as ws2:
            await platform.wait_for(lambda: len(platform.connected_channels) == 2)
            await platform.send_socket_closing(one["id"], close_after=0.01)
            warning = await recv(ws1)
            assert warning["topicName"] == "v2.system.socket_closing"
            assert warning["eventBody"]["channelId"] == one["id"]
            assert warning["eventBody"]["message"] == "Socket closing"
            with pytest.raises(ConnectionClosed):
                await recv(ws1)
            await ws2.send(PING)  # the other channel got no warning
            assert (await recv(ws2))["eventBody"]["message"] == "pong"
            await platform.send_socket_closing()
            assert (await recv(ws2))["topicName"] == "v2.system.socket_closing"


async def test_shutdown_closes_open_sockets() -> None:
    platform = FakePlatform(seed=0)
    async with platform, api(platform) as client:
        created = await channel(client)
        ws = await connect(created["connectUri"])
        await platform.wait_for(lambda: bool(platform.connected_channels))
    with pytest.raises(ConnectionClosed):
        await recv(ws)
