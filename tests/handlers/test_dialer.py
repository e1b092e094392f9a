"""The dialer: one call per trigger, retries under one claim, guards that log why."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from handlers_fakes import (
    AGENT,
    LONDON,
    Harness,
    call_event,
    make,
    outdial_fields,
    presence,
)

from outdial.config import GuardsConfig, NumberLimit
from outdial.handlers.dialer import DialResult
from outdial.platforms.base import (
    AmbiguousOutcome,
    DialRequest,
    FieldProblem,
    PlacedCall,
    PlatformError,
    RetryableError,
)
from outdial.platforms.ratelimit import RateBudget, RequestBudget
from outdial.store import CallRecord, ContactRow


async def end_call(h: Harness, cid: str) -> None:
    record = await h.store.get_call(cid)
    assert record is not None
    await h.store.upsert_call(
        CallRecord(
            cid,
            record.user_id,
            record.contact_id,
            record.phone_number,
            "ended",
            "busy",
            h.clock.now(),
        )
    )


@pytest.mark.anyio
async def test_next_contact_is_dialed_and_recorded() -> None:
    h = await make(None)
    result = await h.dial(presence())
    assert result.status == "placed"
    assert result.conversation_id == "conv-1"
    [request] = h.platform.requests
    assert (request.user_id, request.phone_number, request.caller_id) == (
        AGENT,
        "+441212345601",
        "+4930123456",
    )
    claim = await h.store.get_claim(result.key or "")
    assert claim is not None
    assert claim.state == "placed"
    assert claim.conversation_id == "conv-1"
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.state == "dialing"
    assert call.contact_id == 1


@pytest.mark.anyio
async def test_duplicate_event_places_one_call() -> None:
    h = await make(None)
    first = await h.dial(presence())
    await end_call(h, "conv-1")  # so the one-active-call guard is not what stops it
    second = await h.dial(presence())
    assert first.status == "placed"
    assert (second.status, second.guard, second.reason) == (
        "skipped",
        "idempotency",
        "already_claimed",
    )
    assert len(h.platform.requests) == 1
    # A new event (another presence change) is a new trigger.
    third = await h.dial(presence(stamp="t2"))
    assert third.status == "placed"
    assert len(h.platform.requests) == 2


@pytest.mark.anyio
async def test_one_active_call_per_agent(caplog: pytest.LogCaptureFixture) -> None:
    h = await make(None)
    await h.dial(presence())
    with caplog.at_level(logging.INFO, logger="outdial"):
        second = await h.dial(presence(stamp="t2"))
    assert (second.status, second.guard) == ("skipped", "one_active_call")
    assert any(
        outdial_fields(r).get("event") == "dial.skipped"
        and outdial_fields(r)["guard"] == "one_active_call"
        for r in caplog.records
    )


@pytest.mark.anyio
async def test_503_then_success_places_one_call() -> None:
    h = await make(None, RetryableError("unavailable", status=503))
    result = await h.dial(presence())
    assert result.status == "placed"
    assert len(h.platform.requests) == 2
    assert h.platform.placed == ["conv-1"]
    assert len(h.sleeps) == 1
    assert 0 <= h.sleeps[0] <= 0.001


@pytest.mark.anyio
async def test_429_parks_the_claim_and_the_same_trigger_sends_it_again() -> None:
    h = await make(None, RetryableError("slow down", status=429, retry_after=1.5))
    first = await h.dial(presence())
    # Not waited out in the dial (the agent's turn): skipped until the Retry-After is over.
    assert (first.status, first.guard) == ("skipped", "rate_limited")
    assert first.retry_at == h.clock.now() + timedelta(seconds=1.5)
    assert h.sleeps == []
    claim = await h.store.get_claim(first.key or "")
    assert claim is not None
    assert claim.state == "claimed"  # kept: the agent stays busy, nothing else dials it
    assert not h.dialer.needs_reconciling(claim, h.clock.now())  # parked, not lost
    other = await h.dial(presence(stamp="t2"))
    assert (other.status, other.guard) == ("skipped", "one_active_call")
    h.clock.advance(1.5)
    again = await h.dial(presence())  # the same trigger, offered again
    assert (again.status, again.key) == ("placed", first.key)
    assert len(h.platform.requests) == 2
    assert h.platform.placed == ["conv-1"]
    assert await h.dial(presence()) == duplicate_of(again)


def duplicate_of(placed: DialResult) -> DialResult:
    """What a duplicate of a placed trigger comes to."""
    return DialResult(
        "skipped", placed.rule, placed.key, guard="idempotency", reason="already_claimed"
    )


@pytest.mark.anyio
async def test_429s_for_longer_than_max_rate_limited_fail_the_dial() -> None:
    h = await make(
        None, *[RetryableError("slow down", status=429, retry_after=200.0) for _ in range(3)]
    )
    first = await h.dial(presence())
    assert first.guard == "rate_limited"
    h.clock.advance(200)
    second = await h.dial(presence())
    assert second.guard == "rate_limited"
    assert second.retry_at == h.clock.now() + timedelta(seconds=100)  # capped at 300 s in all
    h.clock.advance(100)
    third = await h.dial(presence())
    assert third.status == "failed"
    assert len(h.platform.requests) == 3
    assert h.platform.placed == []


@pytest.mark.anyio
async def test_retries_give_up_and_count_a_failed_attempt() -> None:
    h = await make(None, *[RetryableError("down", status=503) for _ in range(3)])
    result = await h.dial(presence())
    assert result.status == "failed"
    assert len(h.platform.requests) == 3
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert contact.state == "due"
    assert contact.attempts == 1


@pytest.mark.anyio
async def test_ambiguous_outcome_is_never_retried_blindly() -> None:
    h = await make(None, AmbiguousOutcome("read timeout after send"))
    h.platform.find_script.append(RetryableError("analytics down", status=503))
    result = await h.dial(presence())
    assert result.status == "unknown"
    assert len(h.platform.requests) == 1
    assert h.sleeps == []
    claim = await h.store.get_claim(result.key or "")
    assert claim is not None
    assert claim.state == "unknown"
    assert claim.error is not None
    assert "read timeout" in claim.error
    assert claim.updated_at == h.clock.now()
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert contact.state == "dialing"


@pytest.mark.anyio
async def test_400_is_not_retried_and_recorded_with_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = PlatformError(
        "The phone number is invalid: 12345",
        status=400,
        code="invalid.phone.number",
        details=[FieldProblem("phoneNumber", "invalid.value")],
        correlation_id="corr-1",
    )
    h = await make(None, error)
    with caplog.at_level(logging.INFO, logger="outdial"):
        result = await h.dial(presence())
    assert result.status == "failed"
    assert result.error is error
    assert len(h.platform.requests) == 1
    claim = await h.store.get_claim(result.key or "")
    assert claim is not None
    assert claim.state == "failed"
    assert claim.error is not None
    assert "phoneNumber" in claim.error
    assert "corr-1" in claim.error
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts, contact.last_outcome) == ("due", 1, "failed")
    assert contact.next_due_at == h.clock.now() + timedelta(days=1)
    [failed] = [r for r in caplog.records if outdial_fields(r).get("event") == "dial.failed"]
    assert outdial_fields(failed)["status"] == 400
    assert outdial_fields(failed)["details"] == "phoneNumber: invalid.value"


@pytest.mark.anyio
async def test_do_not_call_denied_logged_and_contact_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await make(None, contacts=1)
    await h.store.add_do_not_call(["+441212345601"])
    with caplog.at_level(logging.INFO, logger="outdial"):
        result = await h.dial(presence())
    assert (result.status, result.guard, result.reason) == ("skipped", "contacts", "no_due_contact")
    assert h.platform.requests == []
    [skip] = [r for r in caplog.records if outdial_fields(r).get("event") == "dial.skipped"]
    assert outdial_fields(skip)["user"] == AGENT  # a skip names the agent it was for
    [closed] = [r for r in caplog.records if outdial_fields(r).get("event") == "contact.closed"]
    assert outdial_fields(closed)["rule"] == "next-contact"
    assert outdial_fields(closed)["guard"] == "do_not_call"
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert contact.state == "done"
    assert contact.attempts == 0


@pytest.mark.anyio
async def test_outside_window_keeps_contact_in_place_and_says_when_it_opens() -> None:
    h = await make(None, contacts=1)
    h.clock.set_wall(datetime(2026, 1, 5, 22, 0, tzinfo=UTC))  # 22:00 in London
    result = await h.dial(presence())
    assert (result.status, result.guard) == ("skipped", "contacts")
    assert "outside_calling_window" in (result.reason or "")
    assert result.retry_at == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)
    contact = await h.store.get_contact(1)
    assert contact is not None
    # Untouched: still due since import, first in the list once the window opens.
    assert (contact.state, contact.next_due_at, contact.attempts) == ("due", None, 0)
    assert h.platform.requests == []


@pytest.mark.anyio
async def test_a_contact_outside_its_window_does_not_block_a_callable_one_behind_it() -> None:
    h = await make(None, contacts=0)
    # 07:50 in Los Angeles is 15:50 in Berlin.
    h.clock.set_wall(datetime(2026, 1, 5, 15, 50, tzinfo=UTC))
    await h.store.import_contacts(
        [ContactRow(AGENT, "+12135550123"), ContactRow(AGENT, "+4930901820")]
    )
    result = await h.dial(presence())
    assert result.status == "placed"
    assert [r.phone_number for r in h.platform.requests] == ["+4930901820"]
    la, berlin = await h.store.contacts(AGENT)
    assert (la.state, la.next_due_at) == ("due", None)
    assert berlin.state == "dialing"


@pytest.mark.anyio
async def test_no_due_contact_is_a_skip() -> None:
    h = await make(None, contacts=0)
    result = await h.dial(presence())
    assert (result.status, result.guard, result.reason) == ("skipped", "contacts", "no_due_contact")
    assert result.retry_at is None


@pytest.mark.anyio
async def test_a_contact_due_later_says_when() -> None:
    h = await make(None, contacts=1)
    later = h.clock.now() + timedelta(minutes=10)
    await h.store.release_contact(1, later)
    result = await h.dial(presence())
    assert (result.status, result.guard, result.retry_at) == ("skipped", "contacts", later)


@pytest.mark.anyio
async def test_callback_number_from_event() -> None:
    h = await make(None)
    event = call_event("old", "disconnected", address="+44 121 234 5699", disconnectType="peer")
    result = await h.dial(event)
    assert result.status == "placed"
    assert h.platform.requests[0].phone_number == "+441212345699"


@pytest.mark.anyio
async def test_invalid_event_number_is_denied_before_claiming() -> None:
    h = await make(None)
    result = await h.dial(call_event("old", "disconnected", address="12345", disconnectType="peer"))
    assert (result.status, result.guard) == ("skipped", "number")
    assert result.key is not None
    assert await h.store.get_claim(result.key) is None


@pytest.mark.anyio
async def test_calls_per_second_defers_without_claiming_or_sleeping() -> None:
    h = await make(None, guards=GuardsConfig(calls_per_second=1.0))
    await h.store.import_contacts([ContactRow("agent-2", LONDON)])
    assert (await h.dial(presence())).status == "placed"
    deferred = await h.dial(presence("agent-2"))
    assert (deferred.status, deferred.guard) == ("skipped", "calls_per_second")
    assert deferred.retry_at == h.clock.now() + timedelta(seconds=1.0)
    assert h.sleeps == []
    assert await h.store.get_claim(deferred.key or "") is None
    # Offered again once the token is there, the same trigger is placed.
    h.clock.advance(1.0)
    again = await h.dial(presence("agent-2"))
    assert (again.status, again.key) == ("placed", deferred.key)


@pytest.mark.anyio
async def test_a_dial_makes_two_store_operations_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = await make(None)
    calls: list[str] = []
    names = (
        "due_contacts",
        "dial_context",
        "claim_dial",
        "claim_for_dial",
        "get_claim",
        "is_do_not_call",
    )
    for name in names:
        method = getattr(h.store, name)

        def counted(*args: object, _name: str = name, _m: Any = method, **kw: object) -> Any:
            calls.append(_name)
            return _m(*args, **kw)

        monkeypatch.setattr(h.store, name, counted)
    sent: list[list[str]] = []
    place_call = h.platform.place_call

    async def place(request: DialRequest) -> PlacedCall:
        sent.append(list(calls))
        return await place_call(request)

    monkeypatch.setattr(h.platform, "place_call", place)
    result = await h.dial(presence())
    assert result.status == "placed"
    # The list read (contacts in order with their do-not-call entries), then
    # duplicate? busy? claim, and the number's do-not-call entry: one operation.
    assert sent == [["due_contacts", "claim_for_dial"]]


@pytest.mark.anyio
async def test_national_contact_number_is_checked_against_do_not_call_as_e164() -> None:
    h = await make(None, contacts=0, guards=GuardsConfig(default_region="GB"))
    await h.store.import_contacts(
        [ContactRow(AGENT, "0121 234 5677"), ContactRow(AGENT, "0121 234 5678")]
    )
    await h.store.add_do_not_call(["+441212345677"])
    result = await h.dial(presence())
    assert (result.status, result.guard) == ("skipped", "do_not_call")
    assert h.platform.requests == []
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert contact.state == "done"
    placed = await h.dial(presence(stamp="t2"))
    assert placed.status == "placed"
    assert h.platform.requests[0].phone_number == "+441212345678"


@pytest.mark.anyio
async def test_invalid_event_number_for_a_busy_agent_is_reported_as_busy() -> None:
    # The guards rank as before: duplicate, then busy, then the event's number.
    h = await make(None)
    assert (await h.dial(presence())).status == "placed"
    event = call_event("old", "disconnected", address="12345", disconnectType="peer")
    result = await h.dial(event)
    assert (result.status, result.guard) == ("skipped", "one_active_call")
    assert result.reason == "agent_busy with conv-1"
    assert result.key is not None
    assert await h.store.get_claim(result.key) is None


@pytest.mark.anyio
async def test_a_number_called_its_max_times_is_passed_over_until_its_window_frees() -> None:
    cap = NumberLimit(count=1, per=3600.0)
    h = await make(None, contacts=2, guards=GuardsConfig(max_calls_per_number=cap))
    first, second = await h.store.contacts(AGENT)
    # Another rule called the first contact's number just now.
    await h.store.claim_for_dial(
        "elsewhere", "callback", "agent-2", h.clock.now(), phone_number=first.phone_number
    )
    result = await h.dial(presence())
    assert result.status == "placed"
    assert [r.phone_number for r in h.platform.requests] == [second.phone_number]
    await end_call(h, "conv-1")
    # The event's number, capped too: deferred until the cap frees, not dropped.
    event = call_event("old", "disconnected", address=first.phone_number, disconnectType="peer")
    skipped = await h.dial(event)
    assert (skipped.status, skipped.guard) == ("skipped", "max_calls_per_number")
    assert skipped.retry_at == h.clock.now() + timedelta(hours=1)


@pytest.mark.anyio
async def test_a_dial_the_rest_budget_would_hold_back_is_deferred_before_claiming() -> None:
    h = await make(None)
    budget = RequestBudget(RateBudget(1, 60.0, margin=0), h.clock)
    h.platform.budget = budget  # type: ignore[attr-defined]
    assert budget.try_acquire() == 0.0  # another request took the minute's one grant
    first = await h.dial(presence())
    assert (first.status, first.guard) == ("skipped", "rest_budget")
    assert first.retry_at == h.clock.now() + timedelta(seconds=60)
    assert await h.store.get_claim(first.key or "") is None  # nothing claimed while it waits
    assert h.platform.requests == []
    h.clock.advance(60)
    second = await h.dial(presence())
    assert (second.status, second.key) == ("placed", first.key)


@pytest.mark.anyio
async def test_a_dial_before_the_next_token_is_due_is_deferred_without_reading_the_store() -> None:
    h = await make(None, guards=GuardsConfig(calls_per_second=1.0))
    await h.store.import_contacts([ContactRow("agent-2", LONDON)])
    assert (await h.dial(presence())).status == "placed"
    assert (await h.dial(presence("agent-2"))).guard == "calls_per_second"
    reads: list[str] = []
    real = h.store.due_contacts

    async def counted(user_id: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(user_id)
        return await real(user_id, *args, **kwargs)

    h.store.due_contacts = counted  # type: ignore[method-assign]
    # The deferred dials come back together when the token is due: those the bucket
    # refuses cost the store nothing (the token is taken before the read).
    h.clock.advance(0.5)
    early = await h.dial(presence("agent-2"))
    assert (early.guard, early.retry_at) == (
        "calls_per_second",
        h.clock.now() + timedelta(seconds=0.5),
    )
    assert reads == []
    h.clock.advance(0.5)
    assert (await h.dial(presence("agent-2"))).status == "placed"
    assert reads == ["agent-2"]


@pytest.mark.anyio
async def test_a_dial_with_no_contact_to_call_gives_its_token_back() -> None:
    h = await make(None, guards=GuardsConfig(calls_per_second=1.0))
    nothing = await h.dial(presence("agent-2"))  # agent-2 has no contacts
    assert (nothing.status, nothing.guard) == ("skipped", "contacts")
    # The one token of this second was given back: the next dial goes at once.
    assert (await h.dial(presence())).status == "placed"
