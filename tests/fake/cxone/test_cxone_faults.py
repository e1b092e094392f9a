"""Each fault of the fake CXone: stalls, 304 storms, 409 and 401 mid-poll, 429/503, lost dials."""

from __future__ import annotations

import anyio
import httpx
import pytest
from cxone_helpers import FAST, api, drain, poll, start_session

from outdial.fake.cxone import FakeCxone
from outdial.fake.script import Outcome

pytestmark = pytest.mark.anyio

AGENT = "3141592"
NUMBER = "+441212345601"
DIAL = {"phoneNumber": NUMBER, "skillId": 4242}


async def test_a_stalled_poll_never_answers_until_released() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.stall_polls()
        cxone.set_agent_state(AGENT, "Unavailable", "Break")  # queued, yet not answered
        with pytest.raises(httpx.ReadTimeout):
            await client.get(
                f"/agent-sessions/{session_id}/get-next-event",
                params={"timeout": 0},
                timeout=httpx.Timeout(10.0, read=0.3),
            )
        assert cxone.stalled_polls == 1
        cxone.clear_faults()
        await cxone.wait_for(lambda: cxone.stalled_polls == 0)
        # The event waited for the next poll; nothing was lost.
        response = await poll(client, session_id, 0)
        assert response.json()["events"][0]["CurrentState"] == "Unavailable"


async def test_a_304_storm_holds_events_back() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.set_agent_state(AGENT, "Unavailable", "Break")
        cxone.storm_304(3)
        statuses = [(await poll(client, session_id, 30)).status_code for _ in range(4)]
        assert statuses == [304, 304, 304, 200]


async def test_the_platform_ends_the_session_mid_call() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.set_outcome(NUMBER, Outcome.ANSWERED)
        cxone.hold_acw(AGENT)
        await client.post(f"/agent-sessions/{session_id}/dial-phone", json=DIAL)
        session_id, _ = await drain(client, session_id, until="CallContactEvent")
        async with anyio.create_task_group() as tg:
            answers: list[int] = []

            async def waiting() -> None:
                answers.append((await poll(client, session_id, 30)).status_code)

            await cxone.wait_for(lambda: cxone.contacts[0].in_acw)
            _, _ = await drain(client, session_id)
            session_id = cxone.current_session_id(AGENT) or ""
            tg.start_soon(waiting)
            await cxone.wait_for(lambda: cxone.polls_waiting(AGENT) == 1)
            assert cxone.end_session(AGENT)
        assert answers == [409]
        # The call goes on: a new session's first batch shows the contact in ACW.
        fresh = await client.post(
            "/agent-sessions", json={"stationPhoneNumber": "+14155550100", "asAgentId": int(AGENT)}
        )
        _, events = await drain(client, fresh.json()["sessionId"])
        contact = [e for e in events if e["Type"] == "CallContactEvent"]
        assert [(e["Status"], e["FinalState"]) for e in contact] == [("Disconnected", "False")]


async def test_a_revoked_token_fails_the_poll_in_flight() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        answers: list[int] = []

        async def waiting() -> None:
            answers.append((await poll(client, session_id, 30)).status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            await cxone.wait_for(lambda: cxone.polls_waiting(AGENT) == 1)
            assert cxone.revoke_tokens() == 1
        assert answers == [401]
        assert cxone.recorded.polls[-1].status == 401


@pytest.mark.parametrize("status", [429, 503])
async def test_chosen_paths_fail_with_retry_after(status: int) -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id = await start_session(client, AGENT)
        cxone.fail_next("/dial-phone$", status, count=2, retry_after=7)
        for _ in range(2):
            refused = await client.post(f"/agent-sessions/{session_id}/dial-phone", json=DIAL)
            assert (refused.status_code, refused.headers["Retry-After"]) == (status, "7")
        assert (
            await client.post(f"/agent-sessions/{session_id}/dial-phone", json=DIAL)
        ).status_code == 202
        # A failed request never reached the platform: one dial only.
        assert len(cxone.recorded.dials) == 1
        cxone.fail_rate(status, 1.0, "get-next-event")
        failed = await poll(client, session_id, 0)
        assert (failed.status_code, failed.headers["Retry-After"]) == (status, "1")
        cxone.clear_faults()
        assert (await poll(client, session_id, 0)).status_code in (200, 304)


async def test_a_202_whose_contact_never_appears() -> None:
    async with (
        FakeCxone([AGENT], timing=FAST, dial_names_contact=True) as cxone,
        api(cxone) as client,
    ):
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.lose_next_dial()
        response = await client.post(f"/agent-sessions/{session_id}/dial-phone", json=DIAL)
        assert response.status_code == 202
        named = response.json()["contactId"]
        assert (await poll(client, session_id, 1)).status_code == 304
        active = await client.get("/contacts/active", params={"agentId": AGENT})
        assert active.json()["activeContacts"] == []
        assert cxone.contact(named) is None
        assert [d.verdict for d in cxone.recorded.dials] == ["lose"]
        assert cxone.recorded.calls == []
        # The agent is free: the next dial goes through.
        again = await client.post(f"/agent-sessions/{session_id}/dial-phone", json=DIAL)
        assert again.status_code == 202
        await cxone.wait_for_calls(1)


async def test_a_202_lost_on_the_way_the_call_is_placed() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.drop_next_dial_answer()
        with pytest.raises(httpx.TransportError):
            await client.post(f"/agent-sessions/{session_id}/dial-phone", json=DIAL)
        [call] = await cxone.wait_for_calls(1)
        active = await client.get("/contacts/active", params={"agentId": AGENT})
        entries = active.json()["activeContacts"]
        assert [str(e["contactId"]) for e in entries] in ([call.contact_id], [])
        assert cxone.recorded.dials[0].verdict == "drop"
        _, events = await drain(client, session_id, until="CallContactEvent")
        assert any(e.get("DNIS") == NUMBER for e in events)


async def test_duplicated_events() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        cxone.duplicate_events = 2
        cxone.set_agent_state(AGENT, "Unavailable", "Break")
        response = await poll(client, session_id, 0)
        events = response.json()["events"]
        assert len(events) == 2
        assert events[0] == events[1]


async def test_a_tcp_proxy_in_front_of_the_api() -> None:
    async with FakeCxone([AGENT], timing=FAST, api_proxy=True) as cxone, api(cxone) as client:
        assert cxone.api_url.endswith(f":{cxone.api_proxy.port}")
        session_id = await start_session(client, AGENT)
        cxone.api_proxy.freeze()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(
                f"/agent-sessions/{session_id}/get-next-event",
                params={"timeout": 0},
                timeout=httpx.Timeout(10.0, read=0.3),
            )
        cxone.clear_faults()
        assert not cxone.api_proxy.frozen
