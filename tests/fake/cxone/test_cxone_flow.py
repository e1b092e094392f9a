"""The fake CXone plays the shared get-next-event sequence: rotation, 304, ACW, snapshot, 409."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cxone_helpers import FAST, api, drain, fixture, poll, start_session

from outdial.fake.cxone import BLANK_DISCONNECT_CODES, FakeCxone, Skill
from outdial.fake.script import Outcome
from outdial.platforms.cxone.wire import (
    BRANCH_HEADER,
    BRANCH_RENEWAL,
    AgentStateEvent,
    CallContactEvent,
    NextEventResponse,
)

pytestmark = pytest.mark.anyio

AGENT = "3141592"
NUMBER = "+15551234567"  # the fixtures' number (unassigned: pinned outcomes only)


def _shape(event: dict[str, Any]) -> tuple[str, ...]:
    """What the flow is about in one event: its type and the fields that change."""
    if event["Type"] == "AgentState":
        return ("AgentState", event["CurrentState"], event["IsAcw"])
    if event["Type"] == "CallContactEvent":
        return ("CallContactEvent", event["Status"], event["FinalState"])
    return (event["Type"],)


def _settled(cxone: FakeCxone, n: int) -> Callable[[], bool]:
    """The ``n``-th contact (from 0) has appeared and every contact is over."""
    return lambda: len(cxone.contacts) > n and all(c.final for c in cxone.contacts)


def _all_strings(event: dict[str, Any]) -> bool:
    return all(isinstance(v, str) for k, v in event.items() if k != "NextStates")


async def test_an_answered_dial_plays_the_fixture_sequence() -> None:
    expected = fixture("get-next-event-sequence.json")
    async with FakeCxone([AGENT], seed=0, timing=FAST) as cxone, api(cxone) as client:
        cxone.set_outcome(NUMBER, Outcome.ANSWERED)
        cxone.hold_acw(AGENT)  # so ACW is seen on its own, as in the fixture
        session_id, start = await drain(client, await start_session(client, AGENT))
        assert [_shape(e) for e in start] == [
            ("AgentSessionStart",),
            ("AgentState", "Available", "False"),
        ]
        dial = await client.post(
            f"/agent-sessions/{session_id}/dial-phone", json=fixture("dial-phone-request.json")
        )
        assert dial.status_code == 202
        assert dial.json() == {}  # by default the 202 does not name the contact
        batches: list[list[dict[str, Any]]] = []
        ids = [session_id]
        while len(batches) < 3:
            response = await poll(client, ids[-1])
            if response.status_code == 304:
                continue
            body = NextEventResponse.model_validate(response.json())
            assert body.session_id not in ids  # a new session id on every 200
            ids.append(body.session_id)
            batches.append(body.events)
        # Once ACW is on, nothing more comes until it ends: a 304 (as in the fixture).
        assert (await poll(client, ids[-1], 0)).status_code == 304
        [contact] = cxone.contacts
        await cxone.end_acw(contact.contact_id)
        response = await poll(client, ids[-1])
        batches.append(response.json()["events"])
        ids.append(response.json()["sessionId"])
        want = [
            [_shape(e) for e in step["body"]["events"]]
            for step in expected
            if step["status"] == 200 and not step["headers"]
        ]
        assert [[_shape(e) for e in batch] for batch in batches] == want
        for batch in batches:
            for event in batch:
                assert _all_strings(event), event
                if event["Type"] == "CallContactEvent":
                    parsed = CallContactEvent.model_validate(event)
                    assert (parsed.dnis, parsed.skill, parsed.inbound) == (NUMBER, "4242", False)
                    assert parsed.contact_id == contact.contact_id
                else:
                    AgentStateEvent.model_validate(event)
        assert batches[2][1]["AcwTimeout"] == "30"
        # A poll with an older id: a snapshot (the fixture's icBranchValue batch).
        stale = await poll(client, ids[1])
        assert stale.status_code == 200
        assert stale.headers[BRANCH_HEADER] == BRANCH_RENEWAL
        renewal = next(step for step in expected if step["headers"])
        assert [_shape(e) for e in stale.json()["events"]] == [
            _shape(e) for e in renewal["body"]["events"]
        ]
        assert stale.json()["events"][0]["AgentId"] == AGENT
        # The platform ends the session: 409, as the fixture's last answer.
        cxone.end_session(AGENT)
        assert (await poll(client, stale.json()["sessionId"])).status_code == 409
        assert [p.status for p in cxone.recorded.polls][-2:] == [200, 409]


async def test_a_snapshot_names_the_contacts_not_over() -> None:
    async with (
        FakeCxone([AGENT], seed=0, timing=FAST, branch_header=False) as cxone,
        api(cxone) as client,
    ):
        cxone.set_outcome(NUMBER, Outcome.ANSWERED)
        cxone.hold_acw(AGENT)
        first = await start_session(client, AGENT)
        session_id, _ = await drain(client, first)
        await client.post(
            f"/agent-sessions/{session_id}/dial-phone",
            json={"phoneNumber": NUMBER, "skillId": 4242},
        )
        await cxone.wait_for(lambda: any(c.in_acw for c in cxone.contacts))
        stale = await poll(client, first)
        assert BRANCH_HEADER not in stale.headers  # the switch is off
        shapes = [_shape(e) for e in stale.json()["events"]]
        assert shapes == [
            ("AgentSessionStart",),
            ("AgentState", "Available", "True"),
            ("CallContactEvent", "Disconnected", "False"),
        ]
        # The snapshot replaced what was queued: the next poll has nothing new.
        assert (await poll(client, stale.json()["sessionId"], 0)).status_code == 304


@pytest.mark.parametrize("state", ["Available", "Unavailable"])
async def test_calls_never_change_the_agents_own_state(state: str) -> None:
    async with FakeCxone([AGENT], seed=3, timing=FAST) as cxone, api(cxone) as client:
        cxone.set_agent_state(AGENT, state, "Lunch" if state == "Unavailable" else "")
        session_id, _ = await drain(client, await start_session(client, AGENT))
        numbers = ["+441212345601", "+441212345602", "+441212345603"]
        for n, number in enumerate(numbers):
            response = await client.post(
                f"/agent-sessions/{session_id}/dial-phone",
                json={"phoneNumber": number, "skillId": 4242},
            )
            assert response.status_code == 202, response.text
            session_id, events = await drain(client, session_id, until="AgentState")
            await cxone.wait_for(_settled(cxone, n))
            session_id, more = await drain(client, session_id)
            states = [
                (e["CurrentState"], e["IsAcw"]) for e in events + more if e["Type"] == "AgentState"
            ]
            assert states == [("OutboundContact", "False"), (state, "True"), (state, "False")]
        assert cxone.agent_state(AGENT) == state
        assert cxone.agent(AGENT).out_reason == ("Lunch" if state == "Unavailable" else "")


async def test_outcomes_per_number_and_disconnect_codes() -> None:
    numbers = {
        "+441212345601": Outcome.BUSY,
        "+441212345602": Outcome.NO_ANSWER,
        "+441212345603": Outcome.FAILED,
        "+441212345604": Outcome.ANSWERED,
    }
    for codes, busy_code in ((None, "Busy"), (BLANK_DISCONNECT_CODES, "")):
        async with (
            FakeCxone([AGENT], seed=1, timing=FAST, disconnect_codes=codes) as cxone,
            api(cxone) as client,
        ):
            session_id, _ = await drain(client, await start_session(client, AGENT))
            seen: dict[str, list[tuple[str, str]]] = {}
            for n, (number, outcome) in enumerate(numbers.items()):
                cxone.set_outcome(number, outcome)
                await client.post(
                    f"/agent-sessions/{session_id}/dial-phone",
                    json={"phoneNumber": number, "skillId": 4242},
                )
                await cxone.wait_for(_settled(cxone, n))
                session_id, events = await drain(client, session_id)
                seen[number] = [
                    (e["Status"], e["DisconnectCode"])
                    for e in events
                    if e["Type"] == "CallContactEvent"
                ]
            assert seen["+441212345601"][1] == ("Disconnected", busy_code)
            assert [s for s, _ in seen["+441212345604"]] == [
                "Dialing",
                "Active",
                "Disconnected",
                "Disconnected",
            ]
            assert all(status != "Active" for status, _ in seen["+441212345602"])
            assert [c.outcome for c in cxone.contacts] == list(numbers.values())
            completed = await client.get("/contacts/completed", params={"agentId": AGENT})
            reasons = [c["endReason"] for c in completed.json()["completedContacts"]]
            assert reasons == ["Busy", "No Answer", "Failed", "Contact Hung Up"]


async def test_seeded_outcomes_repeat() -> None:
    async def outcomes(seed: int) -> list[str]:
        async with FakeCxone([AGENT], seed=seed, timing=FAST) as cxone, api(cxone) as client:
            session_id, _ = await drain(client, await start_session(client, AGENT))
            for n in range(6):
                await client.post(
                    f"/agent-sessions/{session_id}/dial-phone",
                    json={"phoneNumber": f"+4412123456{n:02d}", "skillId": 4242},
                )
                await cxone.wait_for(_settled(cxone, n))
                session_id, _ = await drain(client, session_id)
            return [d.outcome or "" for d in cxone.recorded.dials]

    assert await outcomes(7) == await outcomes(7)


async def test_dial_refusals() -> None:
    skills = {AGENT: [Skill(4242, "Manual"), Skill.inbound(77)]}
    async with (
        FakeCxone([AGENT], seed=0, timing=FAST, skills=skills) as cxone,
        api(cxone) as client,
    ):
        session_id, _ = await drain(client, await start_session(client, AGENT))
        dial = f"/agent-sessions/{session_id}/dial-phone"
        genesys = {"callerId": "+4930123456", "callee": "+491761234567", "user": {"id": "x"}}
        bad = await client.post(dial, json=genesys)
        assert bad.status_code == 400
        assert bad.json()["error"] == "InvalidRequest"
        assert bad.json()["problems"] == [
            "unknown field callee: the number goes in phoneNumber",
            "unknown field user: the agent is the session's (dial-phone is sent on the"
            " agent's session)",
            "missing phoneNumber",
            "missing skillId",
        ]
        inbound = await client.post(dial, json={"phoneNumber": NUMBER, "skillId": 77})
        assert (inbound.status_code, inbound.json()["error"]) == (400, "InvalidSkill")
        unknown = await client.post(dial, json={"phoneNumber": NUMBER, "skillId": 99})
        assert unknown.json()["error"] == "InvalidSkill"
        cxone.hold_acw(AGENT)
        cxone.set_outcome(NUMBER, Outcome.BUSY)
        assert (await client.post(dial, json={"phoneNumber": NUMBER, "skillId": 4242})).is_success
        # Dialing, on the call, then in ACW: every further dial is InvalidState.
        again = await client.post(dial, json={"phoneNumber": NUMBER, "skillId": 4242})
        assert (again.status_code, again.json()["error"]) == (400, "InvalidState")
        await cxone.wait_for(lambda: cxone.agent(AGENT).acw)
        again = await client.post(dial, json={"phoneNumber": NUMBER, "skillId": 4242})
        assert again.json()["error"] == "InvalidState"
        errors = [d.error for d in cxone.recorded.dials]
        assert errors == [
            "InvalidRequest",
            "InvalidSkill",
            "InvalidSkill",
            None,
            "InvalidState",
            "InvalidState",
        ]
        assert cxone.recorded.dials[0].payload == genesys
        # A disposition ends the held ACW.
        [contact] = cxone.contacts
        done = await client.post(
            f"/interactions/{contact.contact_id}/disposition", json={"primaryDispositionId": 1}
        )
        assert done.status_code == 202
        assert cxone.contact(contact.contact_id).final  # type: ignore[union-attr]
        assert not cxone.agent(AGENT).acw
        late = await client.post(f"/interactions/{contact.contact_id}/disposition", json={})
        assert late.json()["error"] == "InvalidState"


@pytest.mark.parametrize("fmt", ["text", "empty"])
async def test_error_format_switch(fmt: str) -> None:
    async with FakeCxone([AGENT], timing=FAST, error_format=fmt) as cxone, api(cxone) as client:
        session_id = await start_session(client, AGENT)
        response = await client.post(
            f"/agent-sessions/{session_id}/dial-phone", json={"phoneNumber": NUMBER, "skillId": 1}
        )
        assert response.status_code == 400
        assert response.text == ("InvalidSkill" if fmt == "text" else "")


async def test_the_202_may_name_the_contact() -> None:
    async with (
        FakeCxone([AGENT], timing=FAST, dial_names_contact=True) as cxone,
        api(cxone) as client,
    ):
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.set_outcome(NUMBER, Outcome.ANSWERED)
        response = await client.post(
            f"/agent-sessions/{session_id}/dial-phone",
            json={"phoneNumber": NUMBER, "skillId": 4242, "callerId": "+14155550199"},
        )
        assert response.status_code == 202
        [call] = await cxone.wait_for_calls(1)
        assert response.json() == {"contactId": call.contact_id}
        assert cxone.contact(call.contact_id).ani == "+14155550199"  # type: ignore[union-attr]


async def test_rest_reads_follow_the_call() -> None:
    async with FakeCxone([AGENT, "2718281"], seed=0, timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.hold_acw(AGENT)
        before = (await client.get("/agents/states")).json()["lastPollTime"]
        contact_id = await cxone.start_foreign_contact(AGENT, phone_number="+441212345699")
        active = (await client.get("/contacts/active", params={"agentId": AGENT})).json()
        [entry] = active["activeContacts"]
        assert (entry["contactId"], entry["isOutbound"], entry["stateName"]) == (
            int(contact_id),
            False,
            "Active",
        )
        assert entry["fromAddress"] == "+441212345699"
        state = (await client.get(f"/agents/{AGENT}/states")).json()["agentStates"][0]
        assert (state["agentStateName"], state["contactId"]) == ("InboundContact", int(contact_id))
        changed = (await client.get("/agents/states", params={"updatedSince": before})).json()
        assert [s["agentId"] for s in changed["agentStates"]] == [int(AGENT)]
        skills = (await client.get(f"/agents/{AGENT}/skills")).json()
        assert skills["agentSkillAssignments"][0]["skillId"] == 4242
        await cxone.end_foreign_contact(contact_id)
        state = (await client.get(f"/agents/{AGENT}/states")).json()["agentStates"][0]
        assert (state["agentStateName"], state["isACW"]) == ("Available", True)
        assert (await client.get("/contacts/active", params={"agentId": AGENT})).json()[
            "activeContacts"
        ] == []
        _, events = await drain(client, session_id)
        assert [_shape(e) for e in events] == [
            ("AgentState", "InboundContact", "False"),
            ("CallContactEvent", "Incoming", "False"),
            ("CallContactEvent", "Active", "False"),
            ("CallContactEvent", "Disconnected", "False"),
            ("AgentState", "Available", "True"),
        ]
        assert (await client.get("/agents/123/states")).json()["error"] == "InvalidAgentId"
