"""Reconciling unknown dials: the pure decision, and the dialer acting on it."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from handlers_fakes import (
    AGENT,
    FakePlatform,
    Harness,
    Lost,
    call_event,
    make,
    outdial_fields,
    presence,
)
from hypothesis import given
from hypothesis import strategies as st

from outdial.config import GuardsConfig
from outdial.handlers import reconcile
from outdial.handlers.dialer import Dialer
from outdial.handlers.reconcile import Found, GiveUp, ReconcilePolicy, Retry, Wait, decide
from outdial.platforms.base import AmbiguousOutcome, CallControl, OutboundCall, RetryableError
from outdial.store.base import Claim

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NUMBER = "+441212345601"
POLICY = ReconcilePolicy(skew=120.0, settle=60.0, stale_after=600.0, max_retries=2)


def claim(
    *,
    state: str = "unknown",
    retries: int = 0,
    updated: datetime | None = None,
    created: datetime = T0,
) -> Claim:
    return Claim(
        key="k",
        rule="r",
        user_id=AGENT,
        contact=None,
        phone_number=NUMBER,
        state=state,  # type: ignore[arg-type]
        created_at=created,
        retries=retries,
        updated_at=updated,
    )


def call(cid: str, started: datetime, number: str | None = f"tel:{NUMBER}") -> OutboundCall:
    return OutboundCall(cid, started, number)


# The pure decision


def test_found_a_call_to_that_number_since_the_claim() -> None:
    calls = [
        call("other-number", T0 + timedelta(seconds=1), "tel:+441212345699"),
        call("c1", T0 + timedelta(seconds=2)),
        call("c2", T0 + timedelta(seconds=5)),
    ]
    decision = decide(claim(updated=T0), NUMBER, calls, set(), T0, POLICY, "GB")
    assert decision == Found("c1", T0 + timedelta(seconds=2))


def test_national_format_and_sip_numbers_match() -> None:
    for reported in ("0121 234 5601", "sip:+441212345601@edge;user=phone"):
        decision = decide(claim(), NUMBER, [call("c", T0, reported)], set(), T0, POLICY, "GB")
        assert isinstance(decision, Found), reported


def test_clock_skew_is_allowed_but_older_calls_are_not_ours() -> None:
    skewed = call("skewed", T0 - timedelta(seconds=90))
    old = call("old", T0 - timedelta(seconds=121))
    assert decide(claim(), NUMBER, [old, skewed], set(), T0, POLICY, "GB") == Found(
        "skewed", skewed.started_at
    )
    assert isinstance(decide(claim(updated=T0), NUMBER, [old], set(), T0, POLICY, "GB"), Wait)


def test_calls_other_claims_own_are_never_taken() -> None:
    decision = decide(claim(updated=T0), NUMBER, [call("mine?", T0)], {"mine?"}, T0, POLICY, "GB")
    assert decision == Wait(T0 + timedelta(seconds=60))


def test_not_found_waits_for_the_history_then_retries_then_gives_up() -> None:
    unknown_at = T0 + timedelta(seconds=10)
    c = claim(updated=unknown_at)
    assert decide(c, NUMBER, [], set(), unknown_at, POLICY, "GB") == Wait(
        unknown_at + timedelta(seconds=60)
    )
    later = unknown_at + timedelta(seconds=60)
    assert decide(c, NUMBER, [], set(), later, POLICY, "GB") == Retry()
    spent = claim(updated=unknown_at, retries=2)
    assert isinstance(decide(spent, NUMBER, [], set(), later, POLICY, "GB"), GiveUp)


def test_stale_and_search_window() -> None:
    fresh = claim(state="claimed", updated=T0)
    assert not reconcile.needs_reconciling(fresh, T0 + timedelta(seconds=599), POLICY)
    assert reconcile.needs_reconciling(fresh, T0 + timedelta(seconds=600), POLICY)
    assert reconcile.needs_reconciling(claim(), T0, POLICY)
    assert not reconcile.needs_reconciling(claim(state="placed"), T0 + timedelta(days=1), POLICY)
    now = T0 + timedelta(minutes=5)
    assert reconcile.search_window(claim(), now, POLICY) == (
        T0 - timedelta(seconds=120),
        now + timedelta(seconds=120),
    )


_offsets = st.integers(min_value=-600, max_value=600)


@given(
    starts=st.lists(_offsets, max_size=6),
    known=st.sets(st.integers(min_value=0, max_value=5)),
    elapsed=st.integers(min_value=0, max_value=300),
    retries=st.integers(min_value=0, max_value=4),
)
def test_decide_properties(starts: list[int], known: set[int], elapsed: int, retries: int) -> None:
    """Never a retry while a matching call exists or too early; never a known call."""
    calls = [call(f"c{i}", T0 + timedelta(seconds=s)) for i, s in enumerate(starts)]
    known_ids = {f"c{i}" for i in known}
    now = T0 + timedelta(seconds=elapsed)
    decision = decide(
        claim(updated=T0, retries=retries), NUMBER, calls, known_ids, now, POLICY, "GB"
    )
    candidates = [
        c
        for c in calls
        if c.conversation_id not in known_ids and c.started_at >= T0 - timedelta(seconds=120)
    ]
    if candidates:
        assert isinstance(decision, Found)
        assert decision.conversation_id not in known_ids
        assert decision.started_at == min(c.started_at for c in candidates)
    elif elapsed < 60:
        assert isinstance(decision, Wait)
    else:
        assert isinstance(decision, Retry if retries < 2 else GiveUp)


# The dialer acting on it


def lost(message: str = "read timeout after send") -> Lost:
    return Lost(AmbiguousOutcome(message))


async def claim_of(h: Harness, key: str | None) -> Claim:
    found = await h.store.get_claim(key or "")
    assert found is not None
    return found


@pytest.mark.anyio
async def test_answer_lost_but_call_listed_is_placed_not_resent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await make(None, lost())
    with caplog.at_level(logging.INFO, logger="outdial"):
        result = await h.dial(presence())
    assert (result.status, result.conversation_id, result.reconciled) == ("placed", "conv-1", True)
    assert len(h.platform.requests) == 1
    c = await claim_of(h, result.key)
    assert (c.state, c.conversation_id, c.retries) == ("placed", "conv-1", 0)
    record = await h.store.get_call("conv-1")
    assert record is not None
    assert (record.state, record.contact_id, record.phone_number) == ("dialing", 1, NUMBER)
    # The lookup asked about this agent's calls to the claim's number, from before the
    # claim to after now.
    [(user, since, until)] = h.platform.lookups
    assert user == AGENT
    assert since < c.created_at <= h.clock.now() < until
    assert h.platform.lookup_numbers == [NUMBER]
    names = [outdial_fields(r).get("event") for r in caplog.records]
    assert names.index("dial.unknown") < names.index("dial.placed")


@pytest.mark.anyio
async def test_call_listed_late_is_found_later_and_never_resent() -> None:
    h = await make(None, lost())
    h.platform.unlisted.add("conv-1")
    result = await h.dial(presence())
    assert result.status == "unknown"
    assert result.reason is not None
    assert "conclusive after" in result.reason
    h.clock.advance(59)
    waiting = await h.dialer.reconcile(result.key or "")
    assert waiting is not None
    assert waiting.status == "unknown"
    h.platform.unlisted.clear()  # the history caught up
    again = await h.dialer.reconcile(result.key or "")
    assert again is not None
    assert (again.status, again.conversation_id) == ("placed", "conv-1")
    assert len(h.platform.requests) == 1
    # Settled: nothing more to reconcile.
    assert await h.dialer.reconcile(result.key or "") is None


@pytest.mark.anyio
async def test_request_that_never_arrived_is_resent_once_after_settle() -> None:
    h = await make(None, AmbiguousOutcome("connection reset while sending"))
    result = await h.dial(presence())
    assert result.status == "unknown"
    for _ in range(2):  # too early to conclude, however often it is asked
        waiting = await h.dialer.reconcile(result.key or "")
        assert waiting is not None
        assert waiting.status == "unknown"
    assert len(h.platform.requests) == 1
    h.clock.advance(60)
    again = await h.dialer.reconcile(result.key or "")
    assert again is not None
    assert (again.status, again.conversation_id, again.reconciled) == ("placed", "conv-1", False)
    first, second = h.platform.requests
    assert first == second  # the same request, caller id and all
    c = await claim_of(h, result.key)
    assert (c.state, c.retries, c.conversation_id) == ("placed", 1, "conv-1")
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts) == ("dialing", 0)
    assert await h.dialer.reconcile(result.key or "") is None


@pytest.mark.anyio
async def test_failed_lookup_leaves_it_unknown_and_retries_later() -> None:
    h = await make(None, AmbiguousOutcome("timeout"))
    h.platform.find_script += [RetryableError("down", status=503)] * 2
    result = await h.dial(presence())
    assert result.status == "unknown"
    h.clock.advance(600)
    still = await h.dialer.reconcile(result.key or "")
    assert still is not None
    assert still.status == "unknown"
    assert still.reason is not None
    assert "lookup failed" in still.reason
    assert len(h.platform.requests) == 1
    done = await h.dialer.reconcile(result.key or "")
    assert done is not None
    assert done.status == "placed"
    assert len(h.platform.requests) == 2


@pytest.mark.anyio
async def test_unknown_dial_keeps_the_agent_busy() -> None:
    h = await make(None, AmbiguousOutcome("timeout"))
    await h.dial(presence())
    second = await h.dial(presence(stamp="t2"))
    assert (second.status, second.guard) == ("skipped", "one_active_call")
    assert second.reason is not None
    assert "unresolved dial" in second.reason
    # A duplicate of the unknown dial's own trigger is a duplicate, not a busy agent.
    dup = await h.dial(presence())
    assert (dup.status, dup.guard) == ("skipped", "idempotency")
    assert len(h.platform.requests) == 1


@pytest.mark.anyio
async def test_gives_up_after_max_retries_and_counts_a_failed_attempt() -> None:
    policy = ReconcilePolicy(settle=60.0, max_retries=1)
    h = await make(None, AmbiguousOutcome("t1"), AmbiguousOutcome("t2"), policy=policy)
    result = await h.dial(presence())
    h.clock.advance(60)
    resent = await h.dialer.reconcile(result.key or "")
    assert resent is not None
    assert resent.status == "unknown"
    assert (await claim_of(h, result.key)).retries == 1
    h.clock.advance(60)
    final = await h.dialer.reconcile(result.key or "")
    assert final is not None
    assert final.status == "failed"
    assert len(h.platform.requests) == 2
    c = await claim_of(h, result.key)
    assert c.state == "failed"
    assert c.error is not None
    assert "no call found" in c.error
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts, contact.last_outcome) == ("due", 1, "failed")


@pytest.mark.anyio
async def test_resend_is_guarded_again() -> None:
    h = await make(None, AmbiguousOutcome("timeout"))
    result = await h.dial(presence())
    await h.store.add_do_not_call([NUMBER])
    h.clock.advance(60)
    again = await h.dialer.reconcile(result.key or "")
    assert again is not None
    assert (again.status, again.guard) == ("skipped", "do_not_call")
    assert len(h.platform.requests) == 1
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert contact.state == "done"


@pytest.mark.anyio
async def test_no_resend_while_dialing_is_off() -> None:
    h = await make(None, AmbiguousOutcome("timeout"))
    result = await h.dial(presence())
    h.clock.advance(60)
    held = await h.dialer.reconcile(result.key or "", allow_retry=False)
    assert held is not None
    assert held.status == "unknown"
    assert len(h.platform.requests) == 1


@pytest.mark.anyio
async def test_earlier_tracked_call_to_the_same_number_is_not_taken() -> None:
    h = await make(None)
    number = "+441212345699"
    first = await h.dial(call_event("old", "disconnected", address=number, disconnectType="peer"))
    assert first.conversation_id == "conv-1"
    record = await h.store.get_call("conv-1")
    assert record is not None
    await h.store.upsert_call(replace(record, state="ended", outcome="busy"))
    h.platform.script.append(AmbiguousOutcome("timeout"))
    h.clock.advance(10)
    second = await h.dial(call_event("old2", "disconnected", address=number, disconnectType="peer"))
    # conv-1 is to the same number within the skew, but it is the first dial's.
    assert second.status == "unknown"
    assert second.reason is not None
    assert "conclusive after" in second.reason
    assert len(h.platform.requests) == 2


@pytest.mark.anyio
async def test_stale_claim_of_a_stopped_process_is_reconciled() -> None:
    h = await make(None)
    # A process claimed, maybe sent, then died: the claim stays "claimed".
    claimed = await h.store.claim_dial(
        "crashed", "next-contact", AGENT, h.clock.now(), contact="next", request={"label": "x"}
    )
    assert claimed is not None
    assert await h.dialer.reconcile("crashed") is None  # could still be in flight
    busy = await h.dial(presence())
    assert (busy.status, busy.guard) == ("skipped", "one_active_call")
    h.clock.advance(600)
    result = await h.dialer.reconcile("crashed")
    assert result is not None
    assert (result.status, result.conversation_id) == ("placed", "conv-1")
    [request] = h.platform.requests
    assert (request.phone_number, request.label) == (NUMBER, "x")


@pytest.mark.anyio
async def test_stale_claim_whose_call_exists_is_just_tracked() -> None:
    h = await make(None)
    claimed = await h.store.claim_dial("crashed", "r", AGENT, h.clock.now(), contact="next")
    assert claimed is not None
    h.platform.history.append((AGENT, OutboundCall("before-crash", h.clock.now(), f"tel:{NUMBER}")))
    h.clock.advance(700)
    result = await h.dialer.reconcile("crashed")
    assert result is not None
    assert (result.status, result.conversation_id) == ("placed", "before-crash")
    assert h.platform.requests == []


@pytest.mark.anyio
async def test_two_replicas_reconciling_send_at_most_once() -> None:
    h = await make(None, AmbiguousOutcome("timeout"))
    result = await h.dial(presence())
    h.clock.advance(60)
    other = Dialer(h.platform, h.store, GuardsConfig(), h.clock, sleep=h.sleep)
    results = []

    async def run(d: Dialer) -> None:
        results.append(await d.reconcile(result.key or ""))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, h.dialer)
        tg.start_soon(run, other)
    assert len(h.platform.requests) == 2  # the lost one and one resend
    statuses = sorted(r.status if r else "none" for r in results)
    assert statuses in (["none", "placed"], ["placed", "skipped"])


def test_platform_fake_is_a_platform() -> None:
    platform: CallControl = FakePlatform()
    assert platform is not None


# Claim owners: a claim in flight of a process that is gone is reconciled at once

ME = reconcile.ClaimOwner("host-a", 100, "n1")


def owned(owner: str | None, lease_until: datetime | None = None) -> Claim:
    return replace(claim(state="claimed", updated=T0), owner=owner, lease_until=lease_until)


def test_an_owner_reads_back_from_its_text() -> None:
    assert reconcile.ClaimOwner.parse(str(ME)) == ME
    assert reconcile.ClaimOwner.parse("ip-10-0-0-1.internal:42:ab") == reconcile.ClaimOwner(
        "ip-10-0-0-1.internal", 42, "ab"
    )
    for junk in (None, "", "host", "host:pid:n", ":1:n", "host:1:"):
        assert reconcile.ClaimOwner.parse(junk) is None


@pytest.mark.parametrize(
    ("owner", "alive", "lease", "gone"),
    [
        (str(ME), False, None, False),  # our own claim: in flight here
        ("host-a:200:n0", False, T0 + timedelta(hours=1), True),  # dead on this host: at once
        ("host-a:200:n0", True, T0 + timedelta(hours=1), False),  # alive on this host
        ("host-a:100:n0", True, T0 + timedelta(hours=1), True),  # our pid, an earlier start
        ("host-b:200:n0", True, T0 + timedelta(seconds=1), False),  # elsewhere, lease holds
        ("host-b:200:n0", True, T0, True),  # elsewhere, lease ran out
        ("host-b:200:n0", True, None, False),  # no lease: stale_after decides
        (None, False, None, False),  # older than owners: stale_after decides
    ],
)
def test_when_the_owner_of_a_claim_in_flight_is_gone(
    owner: str | None, alive: bool, lease: datetime | None, gone: bool
) -> None:
    assert reconcile.owner_gone(owned(owner, lease), T0, ME, lambda pid: alive) is gone
    assert reconcile.needs_reconciling(owned(owner, lease), T0, POLICY, gone=gone) is gone


def test_a_claim_that_settled_has_no_owner_to_lose() -> None:
    placed = replace(owned("host-a:200:n0"), state="placed")
    assert not reconcile.owner_gone(placed, T0, ME, lambda pid: False)
