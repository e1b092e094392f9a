"""Control endpoints under ``/fake/``: inject faults and read what was recorded over HTTP."""

from __future__ import annotations

import pytest
from fake_helpers import FAST, api, channel, next_event
from websockets.asyncio.client import connect

from outdial.fake import FakePlatform
from outdial.fake.pytest_plugin import fake_control_client

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{USER}.presence"


async def test_recorded_lists_tokens_channels_subscriptions_and_calls() -> None:
    async with (
        FakePlatform(seed=0, timing=FAST) as platform,
        api(platform) as client,
        fake_control_client(platform) as control,
    ):
        created = await channel(client, [PRESENCE])
        await client.post(
            f"/api/v2/conversations/calls/user/{USER}", json={"phoneNumber": "+441212345601"}
        )
        await client.post(f"/api/v2/conversations/calls/user/{USER}", json={"phone": "x"})
        recorded = (await control.get("/recorded")).json()
        assert recorded["tokenRequests"] == [{"clientId": "fake-client", "granted": True}]
        assert recorded["channels"] == [created["id"]]
        assert recorded["subscriptionChanges"] == [
            {"channelId": created["id"], "method": "PUT", "topics": [PRESENCE]}
        ]
        accepted, refused = recorded["callRequests"]
        assert accepted["payload"] == {"phoneNumber": "+441212345601"}
        assert accepted["status"] == 200
        assert accepted["outcome"] in {"answered", "busy", "no_answer", "failed"}
        assert refused["status"] == 400
        assert refused["conversationId"] is None


async def test_state_shows_agents_channels_and_proxies() -> None:
    async with (
        FakePlatform([USER], seed=0, ws_proxy=True) as platform,
        api(platform) as client,
        fake_control_client(platform) as control,
    ):
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]):
            await platform.wait_for(lambda: bool(platform.connected_channels))
            state = (await control.get("/state")).json()
        idle = {"active": 0, "acw": 0}
        assert state["agents"] == [
            {
                "userId": USER,
                "presence": "Available",
                "routingStatus": "OFF_QUEUE",
                "calls": {"contactCenter": idle, "enterprise": idle},
            }
        ]
        assert state["channels"] == [{"id": created["id"], "connected": True, "topics": [PRESENCE]}]
        assert state["proxies"]["ws"]["connectionsAccepted"] == 1
        assert state["proxies"]["ws"]["frozen"] is False
        assert state["heartbeatsEnabled"] is True


async def test_faults_over_http_apply_and_clear() -> None:
    async with (
        FakePlatform([USER], seed=0, ws_proxy=True) as platform,
        fake_control_client(platform) as control,
    ):
        response = await control.post("/faults/freeze")
        assert response.status_code == 200
        assert response.json() == {"applied": {"at": 0.0, "kind": "freeze"}}
        assert platform.ws_proxy.frozen
        await control.post(
            "/faults/rest_errors", json={"status": 503, "rate": 1.0, "path": "/presences/"}
        )
        await control.post("/faults/stop_heartbeats")
        async with api(platform) as client:
            presence = await client.get(f"/api/v2/users/{USER}/presences/purecloud")
            assert presence.status_code == 503
            assert (await control.get("/state")).status_code == 200  # never faulted itself
            assert (await control.post("/clear")).json() == {"cleared": True}
            presence = await client.get(f"/api/v2/users/{USER}/presences/purecloud")
            assert presence.status_code == 200
        assert not platform.ws_proxy.frozen
        assert platform.heartbeats_enabled


async def test_fault_with_a_duration_is_undone() -> None:
    async with (
        FakePlatform([USER], seed=0, ws_proxy=True) as platform,
        fake_control_client(platform) as control,
    ):
        await control.post("/faults/freeze", json={"duration": 0.02})
        await platform.ws_proxy.wait_for(lambda: not platform.ws_proxy.frozen)


async def test_bad_fault_requests_name_the_field() -> None:
    async with (
        FakePlatform([USER], seed=0) as platform,
        fake_control_client(platform) as control,
    ):
        unknown = await control.post("/faults/meteor")
        assert unknown.status_code == 400
        assert unknown.json()["details"][0]["fieldName"] == "kind"
        wrong = await control.post("/faults/freeze", json={"rate": 0.5})
        assert wrong.status_code == 400
        assert "'rate' does not apply" in wrong.json()["message"]
        no_proxy = await control.post("/faults/reset")
        assert no_proxy.status_code == 400
        assert "ws_proxy=True" in no_proxy.json()["message"]
        bad = await control.post("/schedule", json={"faults": [{"kind": "reset", "at": -1}]})
        assert bad.status_code == 400
        assert bad.json()["details"][0]["fieldName"] == "faults.0.at"
        assert (await control.get("/nothing")).status_code == 404


async def test_schedule_publish_presence_and_outcome() -> None:
    async with (
        FakePlatform([USER], seed=0, timing=FAST) as platform,
        api(platform) as client,
        fake_control_client(platform) as control,
    ):
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            published = await control.post(
                "/publish", json={"topic": PRESENCE, "body": {"hello": 1}}
            )
            assert published.json() == {"delivered": 1}
            assert (await next_event(ws))["eventBody"] == {"hello": 1}

            changed = await control.put(f"/agents/{USER}/presence", json={"systemPresence": "Away"})
            assert changed.json()["presence"] == "Away"
            event = await next_event(ws)
            assert event["eventBody"]["presenceDefinition"]["systemPresence"] == "Away"
            missing = await control.put("/agents/nobody/presence", json={"systemPresence": "Away"})
            assert missing.status_code == 404
            bad = await control.put(f"/agents/{USER}/presence", json={"systemPresence": "Nap"})
            assert bad.status_code == 400

            schedule = {"faults": [{"kind": "duplicate", "count": 2, "duration": 30}]}
            assert (await control.post("/schedule", json=schedule)).json() == {"steps": 2}
            await platform.wait_for(lambda: platform.duplicate_events == 2, timeout=2)

        forced = await control.put("/outcomes/+441212345601", json={"outcome": "busy"})
        assert forced.json() == {"phoneNumber": "+441212345601", "outcome": "busy"}
        await client.post(
            f"/api/v2/conversations/calls/user/{USER}", json={"phoneNumber": "+441212345601"}
        )
        [call] = await platform.wait_for_calls(1)
        assert call.plan is not None
        assert call.plan.outcome == "busy"
        wrong = await control.put("/outcomes/+441212345601", json={"outcome": "maybe"})
        assert wrong.json()["details"][0]["fieldName"] == "outcome"
