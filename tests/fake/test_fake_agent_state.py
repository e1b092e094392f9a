"""What the fake publishes about an agent around calls: presence never moves, routing status
and the conversation summary follow the calls, ACD calls end in wrap-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_helpers import (
    FAST,
    IDLE,
    Seen,
    agent,
    agent_topics,
    api,
    channel,
    customer,
    next_event,
    seen_until,
)
from websockets.asyncio.client import ClientConnection, connect

from outdial.fake import CallTiming, FakePlatform, Outcome, WrapupCode

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{USER}.presence"
TOPICS = agent_topics(USER)
CALL_URL = f"/api/v2/conversations/calls/user/{USER}"
NUMBER = "+441212345601"
QUEUE = "5e2c7a90-1111-4000-8000-000000000001"


async def watching(
    platform: FakePlatform, client: Any, body: Callable[[ClientConnection], Any]
) -> Any:
    """Run ``body`` with a socket that sees every event about the agent."""
    created = await channel(client, TOPICS)
    async with connect(created["connectUri"]) as ws:
        await platform.wait_for(lambda: bool(platform.connected_channels))
        return await body(ws)


async def test_a_call_never_changes_presence_and_off_queue_stays_off_queue() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.set_outcome(NUMBER, Outcome.ANSWERED)
        before = (await client.get(f"/api/v2/users/{USER}/presences/purecloud")).json()

        async def call(ws: ClientConnection) -> list[Seen]:
            await client.post(CALL_URL, json={"phoneNumber": NUMBER})
            # The REST re-read right after the POST already counts the call.
            assert platform.conversation_summary(USER)["call"]["enterprise"]["active"] == 1
            return await seen_until(ws, IDLE)

        seen = await watching(platform, client, call)
        assert seen == [
            ("summary", (0, 0, 1, 0)),
            ("calls", "connected"),
            ("calls", "connected"),
            ("calls", "disconnected"),
            IDLE,
        ]
        after = (await client.get(f"/api/v2/users/{USER}/presences/purecloud")).json()
        assert after == before  # not even modifiedDate moved
        assert platform.agent_routing_status(USER) == "OFF_QUEUE"


async def test_acd_call_on_queue_interacts_through_wrap_up() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.set_outcome(NUMBER, Outcome.ANSWERED)

        async def call(ws: ClientConnection) -> tuple[list[Seen], list[dict[str, Any]]]:
            await platform.set_presence(USER, "On Queue")
            assert await seen_until(ws, ("routing", "IDLE")) == [
                ("presence", "On Queue"),
                ("routing", "IDLE"),
            ]
            placed = await client.post(
                CALL_URL, json={"phoneNumber": NUMBER, "callFromQueueId": QUEUE}
            )
            conversation_id = placed.json()["id"]
            seen = await seen_until(ws, IDLE)
            final = await client.get(f"/api/v2/conversations/calls/{conversation_id}")
            return seen, [final.json()]

        seen, [final] = await watching(platform, client, call)
        assert seen == [
            ("routing", "INTERACTING"),
            ("summary", (1, 0, 0, 0)),
            ("calls", "connected"),
            ("calls", "connected"),
            ("calls", "disconnected"),
            ("summary", (0, 1, 0, 0)),  # wrapping up: still INTERACTING, no routing event
            ("calls", "terminated"),
            ("routing", "IDLE"),
            IDLE,
        ]
        leg = agent(final)
        assert [p["purpose"] for p in final["participants"]] == ["agent", "customer"]
        assert leg["queue"] == {"id": QUEUE}
        assert (leg["wrapupRequired"], leg["wrapupPrompt"], leg["wrapupTimeoutMs"]) == (
            True,
            "mandatory",
            60000,
        )
        assert leg["startAcwTime"] == leg["endTime"] <= leg["endAcwTime"]
        assert leg["wrapup"]["name"] == "Default Wrap-up Code"
        assert leg["wrapup"]["endTime"] == leg["endAcwTime"]
        assert customer(final)["disconnectType"] == "endpoint"


async def test_personal_call_on_queue_communicates_without_wrap_up() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.set_outcome(NUMBER, Outcome.BUSY)
        await platform.set_presence(USER, "ON_QUEUE")  # either case

        async def call(ws: ClientConnection) -> list[Seen]:
            await client.post(CALL_URL, json={"phoneNumber": NUMBER})
            return await seen_until(ws, IDLE)

        assert await watching(platform, client, call) == [
            ("routing", "COMMUNICATING"),
            ("summary", (0, 0, 1, 0)),
            ("calls", "connected"),
            ("calls", "disconnected"),
            ("routing", "IDLE"),
            IDLE,
        ]


async def test_held_wrap_up_lasts_until_ended() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.hold_acw(USER)

        def in_acw() -> bool:
            return bool(platform.conversation_summary(USER)["call"]["contactCenter"]["acw"])

        placed = await client.post(CALL_URL, json={"phoneNumber": NUMBER, "callFromQueueId": QUEUE})
        conversation_id = placed.json()["id"]
        await platform.wait_for(in_acw)
        with pytest.raises(TimeoutError):  # ten times the wrap-up time: still wrapping up
            await platform.wait_for(lambda: not in_acw(), timeout=0.2)
        body = await platform.end_acw(conversation_id, WrapupCode("code-7", "Callback"))
        leg = agent(body)
        assert leg["state"] == "terminated"
        assert (leg["wrapup"]["code"], leg["wrapup"]["name"]) == ("code-7", "Callback")
        assert leg["wrapup"]["durationSeconds"] >= 0
        assert not in_acw()
        assert platform.conversation(conversation_id) == body
        with pytest.raises(ValueError, match="not in after-call work"):
            await platform.end_acw(conversation_id)

        # Letting go of the agent ends an overdue wrap-up by itself.
        again = await client.post(CALL_URL, json={"phoneNumber": NUMBER, "callFromQueueId": QUEUE})
        await platform.wait_for(in_acw)
        platform.hold_acw(USER, False)
        await platform.wait_for(lambda: not in_acw())
        assert agent(platform.conversation(again.json()["id"]) or {})["state"] == "terminated"


async def test_not_responding_is_the_only_routing_status_a_test_may_set() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:

        async def flow(ws: ClientConnection) -> list[Seen]:
            await platform.set_presence(USER, "On Queue", "NOT_RESPONDING")
            return await seen_until(ws, ("routing", "NOT_RESPONDING"))

        assert await watching(platform, client, flow) == [
            ("presence", "On Queue"),
            ("routing", "NOT_RESPONDING"),
        ]
        with pytest.raises(ValueError, match="contradicts presence"):
            await platform.set_presence(USER, "Available", "IDLE")
        assert platform.agent_presence(USER) == "On Queue"  # refused: nothing changed


async def test_upper_case_presence_switch() -> None:
    async with (
        FakePlatform([USER], seed=0, timing=FAST, presence_case="upper") as platform,
        api(platform) as client,
    ):
        created = await channel(client, [PRESENCE])
        async with connect(created["connectUri"]) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            await platform.set_presence(USER, "on queue")
            event = await next_event(ws, PRESENCE)
        assert event["eventBody"]["presenceDefinition"]["systemPresence"] == "ON_QUEUE"
        rest = (await client.get(f"/api/v2/users/{USER}/presences/purecloud")).json()
        assert rest["presenceDefinition"]["systemPresence"] == "ON_QUEUE"
        bulk = (await client.get("/api/v2/users", params={"id": USER, "expand": "presence"})).json()
        assert bulk["entities"][0]["presence"]["presenceDefinition"]["systemPresence"] == (
            "ON_QUEUE"
        )
        assert platform.agent_presence(USER) == "On Queue"


async def _final_legs(platform: FakePlatform, client: Any, number: str) -> tuple[str, str]:
    placed = (await client.post(CALL_URL, json={"phoneNumber": number})).json()

    def ended() -> bool:
        body = platform.conversation(placed["id"])
        return body is not None and customer(body)["state"] == "disconnected"

    await platform.wait_for(ended)
    body = platform.conversation(placed["id"]) or {}
    return agent(body)["disconnectType"], customer(body)["disconnectType"]


async def test_who_hangs_up_per_number() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.set_outcome(NUMBER, Outcome.ANSWERED)
        assert await _final_legs(platform, client, NUMBER) == ("peer", "endpoint")
        platform.set_hangup(NUMBER, "agent")
        assert await _final_legs(platform, client, NUMBER) == ("client", "peer")
        platform.set_outcome(NUMBER, Outcome.NO_ANSWER)  # abandoned while it rings
        assert await _final_legs(platform, client, NUMBER) == ("client", "peer")
        platform.set_hangup(NUMBER, None)
        assert await _final_legs(platform, client, NUMBER) == ("peer", "timeout")
        with pytest.raises(ValueError, match="by must be"):
            platform.set_hangup(NUMBER, "nobody")


async def test_seeded_agent_hang_ups_move_no_outcome() -> None:
    numbers = [f"+4412123456{i:02d}" for i in range(20)]

    async def plans(rate: float) -> list[tuple[Outcome, float, float, str]]:
        slow = CallTiming(ring=(5.0, 5.0), talk=(5.0, 5.0))
        async with (
            FakePlatform([USER], seed=4, timing=slow, agent_hangup_rate=rate) as platform,
            api(platform) as client,
        ):
            for number in numbers:
                await client.post(CALL_URL, json={"phoneNumber": number})
            return [
                (c.plan.outcome, c.plan.ring, c.plan.talk, c.plan.hangup)
                for c in platform.recorded.accepted_calls
                if c.plan is not None
            ]

    never, sometimes = await plans(0.0), await plans(0.5)
    assert [p[:3] for p in never] == [p[:3] for p in sometimes]
    assert {p[3] for p in never} == {"customer"}
    hung_up = [p for p in sometimes if p[3] == "agent"]
    assert hung_up
    assert {p[0] for p in hung_up} <= {Outcome.ANSWERED, Outcome.NO_ANSWER}
    assert sometimes == await plans(0.5)


async def test_q850_causes_only_when_switched_on() -> None:
    async with (
        FakePlatform([USER], seed=0, timing=FAST, disconnect_reasons=True) as platform,
        api(platform) as client,
    ):
        platform.set_outcome(NUMBER, Outcome.BUSY)
        placed = (await client.post(CALL_URL, json={"phoneNumber": NUMBER})).json()
        await platform.wait_for(
            lambda: customer(platform.conversation(placed["id"]) or {})["state"] == "disconnected"
        )
        body = platform.conversation(placed["id"]) or {}
        assert customer(body)["disconnectReasons"] == [{"type": "q850", "code": 17}]
        assert "disconnectReasons" not in agent(body)


@pytest.mark.parametrize(
    ("purposes", "queue", "expected"),
    [
        ("auto", None, ["user", "external"]),
        ("auto", QUEUE, ["agent", "customer"]),
        ("agent-customer", None, ["agent", "customer"]),
        ("user-external", QUEUE, ["user", "external"]),
    ],
)
async def test_purposes_switch(purposes: str, queue: str | None, expected: list[str]) -> None:
    async with (
        FakePlatform([USER], seed=0, timing=FAST, purposes=purposes) as platform,
        api(platform) as client,
    ):
        request: dict[str, Any] = {"phoneNumber": NUMBER}
        if queue is not None:
            request["callFromQueueId"] = queue
        placed = (await client.post(CALL_URL, json=request)).json()
        body = platform.conversation(placed["id"]) or {}
        assert [p["purpose"] for p in body["participants"]] == expected
    with pytest.raises(ValueError, match="purposes"):
        FakePlatform(purposes="customer-agent")
