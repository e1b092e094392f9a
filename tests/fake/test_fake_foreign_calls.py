"""Calls outdial did not place (inbound, or dialed by hand): published, counted and read back
like any other, from Python and over the control endpoints."""

from __future__ import annotations

import httpx
import pytest
from fake_helpers import (
    FAST,
    IDLE,
    agent,
    agent_topics,
    api,
    channel,
    customer,
    describe,
    next_event,
    seen_until,
)
from websockets.asyncio.client import connect

from outdial.fake import FakePlatform
from outdial.fake.pytest_plugin import fake_control_client

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
TOPICS = agent_topics(USER)
NUMBER = "+441212345699"
QUEUE = "5e2c7a90-1111-4000-8000-000000000002"
QUERY = "/api/v2/analytics/conversations/details/query"


async def test_inbound_acd_call_counts_routes_and_wraps_up() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, TOPICS)
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.set_presence(USER, "On Queue")
            await seen_until(ws, ("routing", "IDLE"))
            conversation_id = await platform.start_foreign_call(
                USER, phone_number=NUMBER, queue_id=QUEUE
            )
            started = [describe(await next_event(ws)) for _ in range(4)]
            live = await client.get(f"/api/v2/conversations/calls/{conversation_id}")
            ended = await platform.end_foreign_call(conversation_id, by="agent")
            after = await seen_until(ws, IDLE)

        assert started == [
            ("routing", "INTERACTING"),
            ("summary", (1, 0, 0, 0)),
            ("calls", "alerting"),  # the agent's station rings ...
            ("calls", "connected"),  # ... and the agent answers
        ]
        assert after == [
            ("calls", "disconnected"),
            ("summary", (0, 1, 0, 0)),
            ("calls", "terminated"),
            ("routing", "IDLE"),
            IDLE,
        ]
        body = live.json()
        assert body["id"] == conversation_id
        assert [p["purpose"] for p in body["participants"]] == ["customer", "agent"]
        assert {p["direction"] for p in body["participants"]} == {"inbound"}
        assert customer(body)["address"] == f"tel:{NUMBER}"
        assert agent(body)["queue"] == {"id": QUEUE}
        # The agent hung up: client on the agent's leg, peer on the customer's.
        assert (agent(ended)["disconnectType"], customer(ended)["disconnectType"]) == (
            "client",
            "peer",
        )
        assert agent(ended)["wrapupRequired"] is True
        final = platform.conversation(conversation_id) or {}
        assert agent(final)["state"] == "terminated"
        assert "wrapup" in agent(final)
        assert platform.recorded.call_requests == []  # not placed through the API


async def test_manual_outbound_call_without_queue() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, TOPICS)
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            conversation_id = await platform.start_foreign_call(
                USER, phone_number=NUMBER, direction="outbound"
            )
            assert platform.conversation_summary(USER)["call"]["enterprise"]["active"] == 1
            started = [describe(await next_event(ws)) for _ in range(3)]
            ended = await platform.end_foreign_call(conversation_id)
            after = await seen_until(ws, IDLE)

        # Off queue: no routing event at all; the summary still counts the call.
        assert started == [
            ("summary", (0, 0, 1, 0)),
            ("calls", "connected"),
            ("calls", "connected"),
        ]
        assert after == [("calls", "disconnected"), IDLE]
        assert [p["purpose"] for p in ended["participants"]] == ["user", "external"]
        assert (agent(ended)["disconnectType"], customer(ended)["disconnectType"]) == (
            "peer",
            "endpoint",
        )
        assert agent(ended)["wrapupRequired"] is False
        # Analytics lists it as any other call of the agent.
        query = {
            "interval": "2000-01-01T00:00:00.000Z/2100-01-01T00:00:00.000Z",
            "segmentFilters": [
                {"type": "and", "predicates": [{"dimension": "userId", "value": USER}]}
            ],
        }
        [listed] = (await client.post(QUERY, json=query)).json()["conversations"]
        assert listed["conversationId"] == conversation_id
        assert "conversationEnd" in listed


async def test_foreign_call_refusals() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        with pytest.raises(KeyError):
            await platform.start_foreign_call("nobody", phone_number=NUMBER)
        with pytest.raises(ValueError, match="direction"):
            await platform.start_foreign_call(USER, phone_number=NUMBER, direction="sideways")
        with pytest.raises(ValueError, match="phone number"):
            await platform.start_foreign_call(USER, phone_number="12345")
        conversation_id = await platform.start_foreign_call(USER, phone_number=NUMBER)
        with pytest.raises(ValueError, match="by must be"):
            await platform.end_foreign_call(conversation_id, by="someone")
        await platform.end_foreign_call(conversation_id)
        with pytest.raises(ValueError, match="already ended"):
            await platform.end_foreign_call(conversation_id)
        placed = await client.post(
            f"/api/v2/conversations/calls/user/{USER}", json={"phoneNumber": NUMBER}
        )
        with pytest.raises(KeyError):  # placed through the API: it plays out by itself
            await platform.end_foreign_call(placed.json()["id"])


async def test_control_endpoints_start_and_end_calls_and_wrap_up() -> None:
    async with (
        FakePlatform([USER], seed=0, timing=FAST) as platform,
        fake_control_client(platform) as control,
    ):
        held = await control.put(f"/agents/{USER}/acw", json={"hold": True})
        assert held.json() == {"userId": USER, "hold": True}
        started = await control.post(
            f"/agents/{USER}/calls", json={"phoneNumber": NUMBER, "queueId": QUEUE}
        )
        assert started.status_code == 200
        conversation_id = started.json()["conversationId"]
        state = (await control.get("/state")).json()
        assert state["agents"][0]["calls"]["contactCenter"] == {"active": 1, "acw": 0}

        ended = await control.post(f"/calls/{conversation_id}/end", json={"by": "agent"})
        leg = agent(ended.json()["conversation"])
        assert (leg["state"], leg["disconnectType"]) == ("disconnected", "client")
        state = (await control.get("/state")).json()
        assert state["agents"][0]["calls"]["contactCenter"] == {"active": 0, "acw": 1}

        wrapped = await control.post(f"/calls/{conversation_id}/wrapup", json={"name": "Sale"})
        leg = agent(wrapped.json()["conversation"])
        assert leg["state"] == "terminated"
        assert leg["wrapup"]["name"] == "Sale"
        assert leg["wrapup"]["code"] == platform.wrapup_code.code
        again = await control.post(f"/calls/{conversation_id}/wrapup")
        assert again.status_code == 400
        assert "not in after-call work" in again.json()["message"]

        refusals: list[tuple[httpx.Response, int, str]] = [
            (await control.post(f"/agents/{USER}/calls", json={}), 400, "phoneNumber"),
            (
                await control.post(
                    f"/agents/{USER}/calls", json={"phoneNumber": NUMBER, "queueId": 7}
                ),
                400,
                "queueId",
            ),
            (await control.post("/agents/nobody/calls", json={"phoneNumber": NUMBER}), 404, ""),
            (await control.post("/calls/no-such-call/end"), 404, ""),
            (await control.put(f"/agents/{USER}/acw", json={}), 400, "hold"),
            (await control.put(f"/hangups/{NUMBER}", json={"by": "dog"}), 400, "by"),
        ]
        for response, status, field in refusals:
            assert response.status_code == status, response.text
            if field:
                assert response.json()["details"][0]["fieldName"] == field

        pinned = await control.put(f"/hangups/{NUMBER}", json={"by": "agent"})
        assert pinned.json() == {"phoneNumber": NUMBER, "by": "agent"}
