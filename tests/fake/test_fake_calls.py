"""Calls on the fake platform: validation, the five outcomes (agent unavailable included),
disconnect types per leg, reading calls back, and seeded replay."""

from __future__ import annotations

from typing import Any

import pytest
from fake_helpers import FAST, agent, api, channel, customer, fixture, next_event
from websockets.asyncio.client import ClientConnection, connect

from outdial.fake import CallTiming, FakePlatform, Outcome

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
CALLS = f"v2.users.{USER}.conversations.calls"
PRESENCE = f"v2.users.{USER}.presence"
ROUTING = f"v2.users.{USER}.routingStatus"
SUMMARY = f"v2.users.{USER}.conversationsummary"
IDLE_CALLS = {"contactCenter": {"active": 0, "acw": 0}, "enterprise": {"active": 0, "acw": 0}}
NUMBER = "+441212345601"
CALL_URL = f"/api/v2/conversations/calls/user/{USER}"


async def _call_events(ws: ClientConnection) -> list[dict[str, Any]]:
    """Conversation bodies until the customer leg is disconnected."""
    bodies: list[dict[str, Any]] = []
    while not bodies or customer(bodies[-1])["state"] != "disconnected":
        bodies.append((await next_event(ws, CALLS))["eventBody"])
    return bodies


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        ({"callerId": "+4930123456"}, 400, "bad.request", "phoneNumber"),
        ({"phoneNumber": "12345"}, 400, "invalid.phone.number", "phoneNumber"),
        ({"phoneNumber": "+44 121 234 5601"}, 400, "invalid.phone.number", "phoneNumber"),
        ({"phoneNumber": "+4412"}, 400, "invalid.phone.number", "phoneNumber"),
        ({"phoneNumber": NUMBER, "callee": "x"}, 400, "bad.request", "callee"),
        ({"phoneNumber": NUMBER, "callerId": "0301234"}, 400, "invalid.phone.number", "callerId"),
        ({"phoneNumber": NUMBER, "priority": "high"}, 400, "bad.request", "priority"),
        ({"phoneNumber": NUMBER, "attributes": {"a": 1}}, 400, "bad.request", "attributes.a"),
        (["+441212345601"], 400, "bad.request", "body"),
    ],
)
async def test_call_validation_names_the_field(
    payload: Any, status: int, code: str, field: str
) -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        response = await client.post(CALL_URL, json=payload)
        assert response.status_code == status
        body = response.json()
        assert body["code"] == code
        assert body["status"] == status
        assert field in [d["fieldName"] for d in body["details"]]
        assert body["contextId"] == response.headers["ININ-Correlation-Id"]
        recorded = platform.recorded.call_requests
        assert [(c.user_id, c.payload, c.conversation_id, c.status) for c in recorded] == [
            (USER, payload, None, status)
        ]


async def test_phone_number_error_matches_the_platform_shape() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        body = (await client.post(CALL_URL, json={"phoneNumber": "12345"})).json()
        assert body["message"] == "The phone number is invalid: 12345"
        assert body["messageWithParams"] == "The phone number is invalid: {phoneNumber}"
        assert body["messageParams"] == {"phoneNumber": "12345"}
        assert body["details"] == [{"errorCode": "invalid.value", "fieldName": "phoneNumber"}]
        assert body["errors"] == []


async def test_unknown_user_and_invalid_json() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        unknown = await client.post(
            "/api/v2/conversations/calls/user/someone-else", json={"phoneNumber": NUMBER}
        )
        assert unknown.status_code == 404
        assert unknown.json()["details"] == [{"errorCode": "not.found", "fieldName": "userId"}]
        garbled = await client.post(
            CALL_URL, content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert garbled.status_code == 400
        assert garbled.json()["details"][0]["fieldName"] == "body"
        assert platform.recorded.call_requests[1].payload == "{nope"


EXPECTED = {
    Outcome.ANSWERED: (["dialing", "connected", "disconnected"], "endpoint"),
    Outcome.BUSY: (["dialing", "disconnected"], "endpoint"),
    Outcome.NO_ANSWER: (["dialing", "alerting", "disconnected"], "timeout"),
    Outcome.FAILED: (["dialing", "disconnected"], "error"),
}


@pytest.mark.parametrize("outcome", list(EXPECTED))
async def test_each_outcome_plays_out_its_event_sequence(outcome: Outcome) -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, [CALLS])
        platform.set_outcome(NUMBER, outcome)
        async with connect(created["connectUri"]) as ws:
            response = await client.post(
                CALL_URL, json={"phoneNumber": NUMBER, "callerId": "+4930123456"}
            )
            assert response.status_code == 200
            placed = response.json()
            assert placed["selfUri"] == f"/api/v2/conversations/calls/{placed['id']}"
            bodies = await _call_events(ws)

        states, disconnect = EXPECTED[outcome]
        assert [customer(b)["state"] for b in bodies] == states
        assert {b["id"] for b in bodies} == {placed["id"]}
        last = customer(bodies[-1])
        assert last["disconnectType"] == disconnect
        assert last["address"] == f"tel:{NUMBER}"
        assert last["direction"] == "outbound"
        assert last["endTime"].endswith("Z")
        assert ("connectedTime" in last) is (outcome is Outcome.ANSWERED)
        assert agent(bodies[0])["state"] == "connected"
        assert agent(bodies[0])["user"] == {"id": USER}
        assert agent(bodies[-1])["state"] == "disconnected"
        # Relative to the leg: the customer's end finished the call, the agent's leg
        # was ended by its peer; no queue, so no wrap-up and user/external purposes.
        assert agent(bodies[-1])["disconnectType"] == "peer"
        assert agent(bodies[-1])["wrapupRequired"] is False
        assert [p["purpose"] for p in bodies[0]["participants"]] == ["user", "external"]
        assert all("disconnectType" not in customer(b) for b in bodies[:-1])
        recorded = platform.recorded.accepted_calls
        assert recorded[0].conversation_id == placed["id"]
        assert recorded[0].plan is not None
        assert recorded[0].plan.outcome is outcome


async def _agent_leg_events(ws: ClientConnection) -> list[dict[str, Any]]:
    """Conversation bodies until the agent leg is disconnected (agent unavailable)."""
    bodies: list[dict[str, Any]] = []
    while not bodies or agent(bodies[-1])["state"] != "disconnected":
        bodies.append((await next_event(ws, CALLS))["eventBody"])
    return bodies


async def _next_agent_event(ws: ClientConnection) -> dict[str, Any]:
    """The next presence, routing-status or summary event (calls events skipped)."""
    while True:
        event = await next_event(ws)
        if event["topicName"] != CALLS:
            return event


@pytest.mark.parametrize(
    ("offline", "disconnect"), [(False, "timeout"), (True, "error")], ids=["forced", "offline"]
)
async def test_agent_unavailable_rings_the_agent_and_never_dials_the_customer(
    offline: bool, disconnect: str
) -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE, ROUTING, SUMMARY, CALLS])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            if offline:
                # Whatever is forced for the number, an Offline agent's leg never comes up.
                platform.set_outcome(NUMBER, Outcome.ANSWERED)
                await platform.set_presence(USER, "Offline")
                offline_event = await next_event(ws, PRESENCE)
                assert offline_event["eventBody"]["presenceDefinition"]["systemPresence"] == (
                    "Offline"
                )
            else:
                platform.set_outcome(NUMBER, Outcome.AGENT_UNAVAILABLE)
            presence_before = platform.agent_presence(USER)
            response = await client.post(CALL_URL, json={"phoneNumber": NUMBER})
            assert response.status_code == 200
            placed = response.json()
            # The agent never gets on the call: nothing about the agent changes.
            assert platform.agent_presence(USER) == presence_before
            assert platform.agent_routing_status(USER) == "OFF_QUEUE"
            bodies = await _agent_leg_events(ws)
            # Nothing about the agent was published meanwhile (no summary, no routing
            # status, no wrap-up): the next agent event is the marker sent now.
            await platform.set_presence(USER, "Away")
            marker = await _next_agent_event(ws)
            assert marker["eventBody"]["presenceDefinition"]["systemPresence"] == "Away"
            assert platform.conversation_summary(USER)["call"] == IDLE_CALLS

        assert [agent(b)["state"] for b in bodies] == ["alerting", "disconnected"]
        assert {b["id"] for b in bodies} == {placed["id"]}
        for body in bodies:
            assert [p["purpose"] for p in body["participants"]] == ["user"]
            assert agent(body)["user"] == {"id": USER}
        last = agent(bodies[-1])
        assert last["disconnectType"] == disconnect
        assert last["endTime"].endswith("Z")
        assert "disconnectType" not in agent(bodies[0])
        [recorded] = platform.recorded.accepted_calls
        assert recorded.plan is not None
        assert recorded.plan.outcome is Outcome.AGENT_UNAVAILABLE
        # Read back over REST, and listed by analytics (which reconciliation uses).
        final = await client.get(f"/api/v2/conversations/calls/{placed['id']}")
        assert final.json() == bodies[-1]
        query = {
            "interval": "2000-01-01T00:00:00.000Z/2100-01-01T00:00:00.000Z",
            "segmentFilters": [
                {"type": "and", "predicates": [{"dimension": "userId", "value": USER}]}
            ],
        }
        analytics = await client.post("/api/v2/analytics/conversations/details/query", json=query)
        assert analytics.status_code == 200
        [listed] = analytics.json()["conversations"]
        assert listed["conversationId"] == placed["id"]
        assert "conversationEnd" in listed


async def test_offline_agent_calls_normally_again_once_available() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.set_outcome(NUMBER, Outcome.ANSWERED)
        await platform.set_presence(USER, "Offline")
        created = await channel(client, [CALLS])
        async with connect(created["connectUri"]) as ws:
            await client.post(CALL_URL, json={"phoneNumber": NUMBER})
            first = await _agent_leg_events(ws)
            await platform.set_presence(USER, "Available")
            await client.post(CALL_URL, json={"phoneNumber": NUMBER})
            second = await _call_events(ws)
        assert agent(first[-1])["disconnectType"] == "error"
        assert [customer(b)["state"] for b in second] == ["dialing", "connected", "disconnected"]
        plans = [c.plan.outcome for c in platform.recorded.accepted_calls if c.plan]
        assert plans == [Outcome.AGENT_UNAVAILABLE, Outcome.ANSWERED]


async def test_unassigned_number_fails_as_uncallable() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, [CALLS])
        async with connect(created["connectUri"]) as ws:
            response = await client.post(CALL_URL, json={"phoneNumber": "+15555550100"})
            assert response.status_code == 200
            bodies = await _call_events(ws)
        assert [customer(b)["state"] for b in bodies] == ["dialing", "disconnected"]
        assert customer(bodies[-1])["disconnectType"] == "uncallable"


async def test_presence_and_routing_reads_have_the_rest_shapes() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        presence = (await client.get(f"/api/v2/users/{USER}/presences/purecloud")).json()
        assert set(presence) == set(fixture("user-presence-rest.json"))
        assert presence["selfUri"] == f"/api/v2/users/{USER}/presences/PURECLOUD"
        assert presence["presenceDefinition"] == {
            "id": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
            "systemPresence": "Available",
            "selfUri": "/api/v2/presencedefinitions/6a3af858-942f-489d-9700-5f9bcdcdae9b",
        }
        assert presence["modifiedDate"].endswith("Z")
        routing = (await client.get(f"/api/v2/users/{USER}/routingstatus")).json()
        assert set(routing) == {"userId", "status", "startTime"}
        assert (routing["userId"], routing["status"]) == (USER, "OFF_QUEUE")
        assert (await client.get("/api/v2/users/nobody/presences/purecloud")).status_code == 404


async def test_set_presence_publishes() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.set_presence(USER, "Away")
            event = await next_event(ws, PRESENCE)
            assert event["eventBody"]["presenceDefinition"]["systemPresence"] == "Away"
        with pytest.raises(ValueError, match="unknown system presence"):
            await platform.set_presence(USER, "Napping")


async def test_call_stays_readable_after_it_ended() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        created = await channel(client, [CALLS])
        async with connect(created["connectUri"]) as ws:
            placed = (await client.post(CALL_URL, json={"phoneNumber": NUMBER})).json()
            early = await client.get(f"/api/v2/conversations/calls/{placed['id']}")
            assert early.status_code == 200
            assert early.json()["id"] == placed["id"]
            bodies = await _call_events(ws)
        final = await client.get(f"/api/v2/conversations/calls/{placed['id']}")
        assert final.status_code == 200
        assert final.json() == bodies[-1]
        unknown = await client.get("/api/v2/conversations/calls/no-such-call")
        assert unknown.status_code == 404


async def test_wait_for_calls() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        await client.post(CALL_URL, json={"phoneNumber": "12345"})  # refused: not counted
        await client.post(CALL_URL, json={"phoneNumber": NUMBER})
        accepted = await platform.wait_for_calls(1, timeout=1.0)
        assert [c.status for c in accepted] == [200]
        with pytest.raises(TimeoutError):
            await platform.wait_for_calls(2, timeout=0.01)


async def test_same_seed_replays_the_same_outcomes_and_timings() -> None:
    timing = CallTiming(ring=(1.0, 3.0), talk=(2.0, 6.0), wrapup=1.0)
    numbers = [f"+4412123456{i:02d}" for i in range(12)]

    async def plans(seed: int) -> list[tuple[Outcome, float, float, str]]:
        async with FakePlatform([USER], seed=seed, timing=timing) as platform:
            platform.set_outcome(numbers[3], Outcome.BUSY)
            async with api(platform) as client:
                for number in numbers:
                    response = await client.post(CALL_URL, json={"phoneNumber": number})
                    assert response.status_code == 200
            result = []
            for call in platform.recorded.accepted_calls:
                assert call.plan is not None
                p = call.plan
                result.append((p.outcome, p.ring, p.talk, p.disconnect_type))
            return result

    first, second, other = await plans(7), await plans(7), await plans(8)
    assert first == second
    assert first != other
    assert first[3][0] is Outcome.BUSY
    assert len({outcome for outcome, *_ in first}) > 1
