"""The fault proxy in front of the fake's WebSocket (and REST) server, as the listener's
resilience tests use it: half-open, reset, slicing."""

from __future__ import annotations

import json

import anyio
import pytest
from fake_helpers import api, channel, next_event, recv
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{USER}.presence"
PING = json.dumps({"message": "ping"})
QUIET = 0.1
"""How long a test listens to show that nothing arrives (silence has no event to await)."""


async def test_connect_uri_points_at_the_proxy() -> None:
    async with FakePlatform(seed=0, ws_proxy=True) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        proxy = platform.ws_proxy
        assert created["connectUri"].startswith(f"ws://127.0.0.1:{proxy.port}/channels/")
        assert platform.connect_url != platform.ws_url
        async with connect(created["connectUri"]) as ws:
            await ws.send(PING)
            assert (await recv(ws))["eventBody"]["message"] == "pong"
        assert proxy.connections_accepted == 1
        assert proxy.bytes_to_client > 0


async def test_without_the_option_there_is_no_proxy() -> None:
    async with FakePlatform(seed=0) as platform:
        assert platform.connect_url == platform.ws_url
        with pytest.raises(RuntimeError, match="ws_proxy=True"):
            _ = platform.ws_proxy


async def test_half_open_socket_is_total_silence_then_recovers() -> None:
    async with (
        FakePlatform(seed=0, ws_proxy=True, heartbeat_interval=0.02) as platform,
        api(platform) as client,
    ):
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"], ping_interval=None) as ws:
            await recv(ws)  # a heartbeat: the socket works
            platform.ws_proxy.freeze()
            await ws.send(PING)
            await platform.publish(PRESENCE, {"during": "freeze"})
            with anyio.move_on_after(QUIET) as quiet:
                await ws.recv()
            assert quiet.cancelled_caught  # no heartbeat, no pong, no event
            assert platform.pings_received == 0  # the ping never reached the platform
            assert platform.connected_channels == [created["id"]]  # both ends still open
            platform.ws_proxy.thaw()
            await platform.wait_for(lambda: platform.pings_received == 1)
            assert (await next_event(ws))["eventBody"] == {"during": "freeze"}


async def test_reset_drops_the_socket_and_the_channel_survives() -> None:
    async with FakePlatform(seed=0, ws_proxy=True) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            assert platform.ws_proxy.reset() == 1
            with pytest.raises(ConnectionClosedError) as dropped:
                await recv(ws)
            assert dropped.value.rcvd is None  # no close frame: a reset
        await platform.wait_for(lambda: not platform.connected_channels)
        async with connect(created["connectUri"]) as again:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.publish(PRESENCE, {"after": "reset"})
            assert (await next_event(again))["eventBody"] == {"after": "reset"}


async def test_sliced_frames_still_arrive_whole() -> None:
    async with FakePlatform(seed=0, ws_proxy=True) as platform, api(platform) as client:
        platform.ws_proxy.slice(7)
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.publish(PRESENCE, {"long": "x" * 200})
            assert (await next_event(ws))["eventBody"] == {"long": "x" * 200}


async def test_rest_proxy_carries_the_api() -> None:
    async with FakePlatform(seed=0, rest_proxy=True) as platform:
        assert platform.api_url.endswith(f":{platform.rest_proxy.port}")
        async with api(platform) as client:
            await channel(client)
        assert platform.rest_proxy.connections_accepted >= 1
        assert len(platform.recorded.channels) == 1
