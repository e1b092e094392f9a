"""dial-phone correlated exactly once, re-reads, and reconcile, through the whole bundle
against the in-memory CXone; the contact wait runs on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import anyio
import httpx
import pytest
from cxone_mock import MockCxone, settings
from test_cxone_source import Sink, settle

from outdial.clock import ManualClock
from outdial.config import ListenerConfig
from outdial.domain import CallState, DialRequest, PlacedCall
from outdial.events import Event
from outdial.platforms.base import AmbiguousOutcome, PlatformBundle, PlatformError, RetryableError
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.bundle import cxone_bundle
from outdial.platforms.ratelimit import BudgetSpent

pytestmark = pytest.mark.anyio
AGENT = "3141592"
NUMBER = "+15551234567"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def contact_event(contact_id: str, number: str = NUMBER, **fields: str) -> dict[str, str]:
    return {
        "Type": "CallContactEvent",
        "ContactID": contact_id,
        "Status": "Dialing",
        "IsInbound": "False",
        "DNIS": number,
        "StartTimeUTC": wire.format_time(T0),
        **fields,
    }


def rest_contact(contact_id: int, number: str = NUMBER, **fields: Any) -> dict[str, Any]:
    return {
        "contactId": contact_id,
        "agentId": int(AGENT),
        "skillId": 4242,
        "stateName": "Dialing",
        "toAddress": number,
        "fromAddress": "+14155550100",
        "isOutbound": True,
        "startDate": wire.format_time(T0),
        **fields,
    }


@dataclass
class Rig:
    mock: MockCxone
    clock: ManualClock
    bundle: PlatformBundle
    sink: Sink


@asynccontextmanager
async def running(*, source: bool = True, **changes: object) -> AsyncIterator[Rig]:
    mock, clock, sink = MockCxone(), ManualClock(start=T0), Sink()
    bundle = cxone_bundle(
        settings(**changes), ListenerConfig(), clock, Random(5), transport=mock.transport()
    )
    async with anyio.create_task_group() as tg:
        if source:
            src = bundle.sources.source("s0", bundle.codec.agent_topics(AGENT), sink)
            tg.start_soon(src.run)
            await settle()
        yield Rig(mock, clock, bundle, sink)
        tg.cancel_scope.cancel()
    await bundle.aclose()


async def place(rig: Rig, number: str = NUMBER, advance: float = 0.0) -> PlacedCall:
    """place_call in a task; the clock moved by ``advance`` once it waits."""
    result: list[PlacedCall | BaseException] = []

    async def dial() -> None:
        try:
            result.append(await rig.bundle.calls.place_call(DialRequest(AGENT, number)))
        except Exception as exc:
            result.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(dial)
        await settle()
        if advance:
            rig.clock.advance(advance)
    [outcome] = result
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def dial_requests(mock: MockCxone) -> int:
    return sum(r.url.path.endswith("dial-phone") for r in mock.requests)


async def test_a_202_is_correlated_with_the_next_new_outbound_contact_to_the_number() -> None:
    async with running() as rig:
        # Seen before the dial: never taken for it, though it is to the same number.
        rig.mock.push(AGENT, contact_event("699999"))
        await settle()
        rig.mock.on_dial = lambda agent, body: rig.mock.push(
            agent,
            contact_event("700002", "+15550000000"),  # another number: not ours
            contact_event("699999", Status="Active"),
            contact_event("700001", body["phoneNumber"].removeprefix("+")),
        )
        placed = await place(rig)
        assert placed == PlacedCall("700001")
        assert rig.mock.dials == [{"phoneNumber": NUMBER, "skillId": 4242}]
        # The handlers got the contact's event after the dial was resolved.
        assert any(e.body.get("ContactID") == "700001" for e in rig.sink.events)


async def test_a_202_that_names_the_contact_is_enough() -> None:
    async with running() as rig:
        rig.mock.dial_body = {"contactId": 812}
        assert await place(rig) == PlacedCall("812")


async def test_no_event_in_time_then_the_active_contacts_are_read() -> None:
    async with running() as rig:
        rig.mock.active[AGENT] = [rest_contact(700005)]
        assert await place(rig, advance=15) == PlacedCall("700005")
        assert rig.mock.requests[-1].url.path.endswith("/contacts/active")


async def test_nothing_found_is_ambiguous_and_the_dial_is_never_resent() -> None:
    async with running() as rig:
        # Active, outbound, same number, but long before the dial: someone else's.
        rig.mock.active[AGENT] = [
            rest_contact(1, startDate=wire.format_time(T0 - timedelta(hours=1)))
        ]
        with pytest.raises(AmbiguousOutcome, match="never re-send"):
            await place(rig, advance=15)
        assert dial_requests(rig.mock) == 1


async def test_a_5xx_after_sending_reads_contacts_first() -> None:
    async with running() as rig:
        rig.mock.overrides.append(
            lambda r: httpx.Response(502) if r.url.path.endswith("dial-phone") else None
        )
        with pytest.raises(AmbiguousOutcome):
            await place(rig, advance=15)
        # Read at once after the lost answer, and again once the contact wait ran out.
        after = [r.url.path for r in rig.mock.requests if r.method == "GET"][-2:]
        assert all(p.endswith("/contacts/active") for p in after)
        assert rig.mock.requests[-3].url.path.endswith("dial-phone")
        rig.mock.active[AGENT] = [rest_contact(700007)]
        assert await place(rig) == PlacedCall("700007")
        assert dial_requests(rig.mock) == 2  # one per place_call, none re-sent


async def test_a_429_was_not_acted_on_and_stays_retryable() -> None:
    async with running() as rig:
        rig.mock.overrides.append(
            lambda r: (
                httpx.Response(429, headers={"Retry-After": "3"})
                if r.url.path.endswith("dial-phone")
                else None
            )
        )
        with pytest.raises(RetryableError) as caught:
            await place(rig)
        assert caught.value.retry_after == 3.0
        rig.clock.advance(4)  # the budget holds every request, ending the session too


async def test_a_dial_the_budget_holds_back_is_refused_unsent_and_sent_once_it_frees() -> None:
    async with running() as rig:
        rig.mock.overrides.append(
            lambda r: (
                httpx.Response(429, headers={"Retry-After": "3"})
                if r.url.path.endswith("dial-phone")
                else None
            )
        )
        with pytest.raises(RetryableError):
            await place(rig)
        rig.mock.overrides.clear()
        # The budget now holds every request for the Retry-After: the next dial
        # is refused here, unsent, instead of waiting in the caller's turn.
        with pytest.raises(BudgetSpent) as caught:
            await place(rig)
        assert (caught.value.retry_after or 0.0) > 0
        assert dial_requests(rig.mock) == 1
        rig.clock.advance(4)  # the budget holds every request, ending the session too


async def test_no_session_or_no_skill_are_named() -> None:
    async with running(source=False) as rig:
        with pytest.raises(RetryableError, match=f"agent {AGENT}"):
            await place(rig)
    async with running(skill_id=None) as rig:
        with pytest.raises(PlatformError, match=r"platform\.skill_id"):
            await place(rig)
    async with running() as rig:
        with pytest.raises(PlatformError) as caught:
            await place(rig, number="")
        assert caught.value.details[0].field == "phoneNumber"


async def test_get_call_reads_active_then_completed_in_the_events_shape() -> None:
    async with running() as rig:
        rig.mock.active[AGENT] = [rest_contact(700001, stateName="Active")]
        rig.mock.completed = [
            {
                "contactId": 700002,
                "agentId": int(AGENT),
                "toAddress": NUMBER,
                "isOutbound": True,
                "endReason": "Contact Hung Up",
                "contactStart": wire.format_time(T0),
                "lastUpdateTime": wire.format_time(T0 + timedelta(minutes=2)),
            }
        ]
        codec = rig.bundle.codec
        topic = codec.calls_topic(AGENT)
        active = await rig.bundle.calls.get_call("700001")
        assert active is not None
        seen = codec.decode(Event(topic, active.body), rig.clock.now()).call
        assert seen is not None
        assert seen.update.state is CallState.CONNECTED
        assert seen.number == NUMBER
        done = await rig.bundle.calls.get_call("700002")
        assert done is not None
        later = T0 + timedelta(hours=1)
        seen = codec.decode(Event(topic, done.body), later).call
        assert seen is not None
        assert seen.leg is not None
        assert seen.leg.done_at == T0 + timedelta(minutes=2)
        assert seen.update.disconnect_type == "Contact Hung Up"
        assert await rig.bundle.calls.get_call("404") is None


async def test_find_outbound_calls_lists_active_and_completed_in_the_window() -> None:
    async with running(source=False) as rig:
        rig.mock.active[AGENT] = [
            rest_contact(3, startDate=wire.format_time(T0 + timedelta(seconds=30))),
            rest_contact(4, isOutbound=False),
        ]
        rig.mock.completed = [
            {
                "contactId": 1,
                "agentId": int(AGENT),
                "toAddress": NUMBER,
                "isOutbound": True,
                "contactStart": wire.format_time(T0 + timedelta(seconds=10)),
                "lastUpdateTime": wire.format_time(T0 + timedelta(seconds=20)),
            },
            {
                "contactId": 2,
                "agentId": int(AGENT),
                "isOutbound": True,
                "contactStart": wire.format_time(T0 - timedelta(hours=2)),
            },
        ]
        calls = await rig.bundle.calls.find_outbound_calls(
            AGENT, T0, T0 + timedelta(minutes=5), NUMBER
        )
        assert [(c.conversation_id, c.ended_at is not None) for c in calls] == [
            ("1", True),
            ("3", False),
        ]
        assert calls[0].phone_number == NUMBER


async def test_exactly_once_across_a_restart_the_lost_dial_is_found() -> None:
    async with running() as rig:
        with pytest.raises(AmbiguousOutcome):
            await place(rig, advance=15)  # the answer never came in time
        placed_at = rig.clock.now()
        rig.mock.active[AGENT] = [rest_contact(700009, startDate=wire.format_time(placed_at))]
    # A new daemon (new bundle, nothing in memory) reconciles before any re-send.
    async with running(source=False) as after:
        after.mock.active = rig.mock.active
        found = await after.bundle.calls.find_outbound_calls(
            AGENT, placed_at - timedelta(minutes=1), placed_at + timedelta(minutes=1), NUMBER
        )
        assert [c.conversation_id for c in found] == ["700009"]


async def test_agent_states_reread_as_events_on_the_codecs_topics() -> None:
    async with running(source=False) as rig:
        rig.mock.agent_states[AGENT] = {
            "agentId": int(AGENT),
            "agentStateName": "OutboundContact",
            "startDate": "2026-11-23T10:00:02Z",
            "isACW": False,
        }
        rig.mock.active[AGENT] = [rest_contact(700001, stateName="Active")]
        known, unknown = await rig.bundle.agents.get_agent_states([AGENT, "999", AGENT])
        assert known.known
        assert not unknown.known
        assert unknown.reread_events() == []
        events = known.reread_events()
        assert [t for t, _ in events] == [
            f"cxone.users.{AGENT}.AgentState",
            f"cxone.users.{AGENT}.CallContactEvent",
        ]
        codec = rig.bundle.codec
        decoded = codec.decode(Event(*events[0]), rig.clock.now())
        assert decoded.observations[0].name == "OutboundContact"  # type: ignore[union-attr]
        assert decoded.observations[0].modified == "2026-11-23T10:00:02.000Z"  # type: ignore[union-attr]
        assert codec.agent_topics(AGENT) >= {t for t, _ in events}


async def test_agent_reads_retry_on_the_clock_until_they_give_up() -> None:
    async with running(source=False) as rig:
        rig.mock.overrides.append(lambda r: httpx.Response(503) if "agents" in r.url.path else None)
        failure: list[BaseException] = []

        async def read() -> None:
            try:
                await rig.bundle.agents.get_agent_states([AGENT], give_up_after=30)
            except RetryableError as exc:
                failure.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for _ in range(40):
                await settle()
                rig.clock.advance(1)
        assert failure
        assert sum("agents" in r.url.path for r in rig.mock.requests) > 2


async def test_a_dial_on_a_session_that_just_ended_is_retryable_not_failed() -> None:
    """A 409 to dial-phone: the session ended under it and nothing was placed, so the
    dialer sends it again (on the agent's next session) instead of failing the contact."""
    async with running() as rig:
        rig.mock.overrides.append(
            lambda r: httpx.Response(409) if r.url.path.endswith("dial-phone") else None
        )
        with pytest.raises(RetryableError, match="ended before the dial") as caught:
            await place(rig)
        assert caught.value.status == 409
        assert dial_requests(rig.mock) == 1
