"""The Store contract, on every backend: claims, the contact queue, calls, summaries.

Each test runs on SQLite (a real file) and on PostgreSQL (a schema of its own;
skipped when no server is reachable, see ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from outdial.store import CallRecord, Claim, Contact, ContactRow, Store, sql
from outdial.store.base import ContactOutcome, DialClaim, NumberCap

from .conftest import OpenReplica

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AGENT = "agent-1"


def rows(n: int, user: str = AGENT) -> list[ContactRow]:
    return [ContactRow(user, f"+4930123456{i:02d}", name=f"c{i}") for i in range(n)]


async def placed_and_ended(store: Store, key: str, conversation_id: str) -> None:
    """The claim ``key`` placed ``conversation_id``, a call that has ended since."""
    claim = await store.get_claim(key)
    assert claim is not None
    number = claim.phone_number or ""
    contact_id = claim.contact.id if claim.contact is not None else None
    call = CallRecord(conversation_id, claim.user_id, contact_id, number, "ended", None, NOW, NOW)
    await store.record_placed(key, call)


@pytest.mark.anyio
async def test_claim_twice_second_gets_none(store: Store) -> None:
    first = await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    second = await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    assert first is not None
    assert first.state == "claimed"
    assert second is None
    claim = await store.get_claim("k1")
    assert claim is not None
    assert claim.phone_number == "+441212345601"


@pytest.mark.anyio
async def test_next_contact_picks_oldest_due(store: Store) -> None:
    await store.import_contacts(rows(3))
    a, b, c = await store.contacts(AGENT)
    # a: retried later (due in the future); b: due an hour ago; c: never dialed.
    await store.record_outcome(a.id, "busy", NOW, NOW + timedelta(minutes=10))
    await store.record_outcome(b.id, "busy", NOW, NOW - timedelta(hours=1))
    order = []
    for key in ("k1", "k2", "k3"):
        claim = await store.claim_dial(key, "r", AGENT, NOW, contact="next")
        order.append(claim.contact.id if claim and claim.contact else None)
    # Never-dialed first (due since import), then the overdue retry; a is not due yet.
    assert order == [c.id, b.id, None]
    got = {x.id: x.state for x in await store.contacts(AGENT)}
    assert got == {a.id: "due", b.id: "dialing", c.id: "dialing"}


@pytest.mark.anyio
async def test_next_contact_only_for_that_agent(store: Store) -> None:
    await store.import_contacts(rows(1, "other"))
    assert await store.claim_dial("k", "r", AGENT, NOW, contact="next") is None
    # Nothing claimed: the key is free for a later try.
    assert await store.get_claim("k") is None


@pytest.mark.anyio
async def test_concurrent_claims_never_share_a_contact(store: Store) -> None:
    await store.import_contacts(rows(12))
    claims: list[Claim | None] = []

    async def claim(i: int) -> None:
        claims.append(await store.claim_dial(f"k{i}", "r", AGENT, NOW, contact="next"))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(claim, i)
    ids = [c.contact.id for c in claims if c is not None and c.contact is not None]
    assert len(ids) == 12
    assert len(set(ids)) == 12
    assert claims.count(None) == 8


@pytest.mark.anyio
async def test_two_replicas_never_share_a_contact(open_replica: OpenReplica) -> None:
    # Two connections, as two processes would have, claiming for the same agent.
    one, two = await open_replica(), await open_replica()
    await one.import_contacts(rows(5))
    got: list[int] = []

    async def claim(s: Store, i: int) -> None:
        c = await s.claim_dial(f"k{i}", "r", AGENT, NOW, contact="next")
        if c and c.contact:
            got.append(c.contact.id)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(claim, one if i % 2 else two, i)
    assert sorted(got) == sorted(set(got))
    assert len(got) == 5


@pytest.mark.anyio
async def test_two_replicas_claiming_one_key_have_one_winner(open_replica: OpenReplica) -> None:
    replicas = [await open_replica() for _ in range(4)]
    await replicas[0].import_contacts(rows(4))

    async def claim(s: Store, key: str, won: list[Claim]) -> None:
        c = await s.claim_dial(key, "r", AGENT, NOW, contact="next")
        if c is not None:
            won.append(c)

    for round_ in range(5):
        won: list[Claim] = []
        async with anyio.create_task_group() as tg:
            for s in replicas:
                tg.start_soon(claim, s, f"dup-{round_}", won)
        if round_ < 4:
            assert len(won) == 1, round_
        else:
            assert won == []  # all four contacts are taken
    states = [c.state for c in await replicas[1].contacts(AGENT)]
    assert states == ["dialing"] * 4
    # The losers' claims left nothing behind: exactly one claim per key.
    for round_ in range(4):
        claimed = await replicas[2].get_claim(f"dup-{round_}")
        assert claimed is not None
        assert claimed.contact is not None


@pytest.mark.anyio
async def test_claim_without_a_due_contact_leaves_no_claim(store: Store) -> None:
    await store.import_contacts(rows(1))
    assert await store.claim_dial("k1", "r", AGENT, NOW, contact="next") is not None
    assert await store.claim_dial("k2", "r", AGENT, NOW, contact="next") is None
    assert await store.get_claim("k2") is None
    assert [c.key for c in await store.open_claims()] == ["k1"]


@pytest.mark.anyio
async def test_claim_keeps_its_request(store: Store) -> None:
    request = {"caller_id": "+4930123456", "attributes": {"campaign": "x"}}
    claimed = await store.claim_dial(
        "k", "r", AGENT, NOW, phone_number="+441212345601", request=request
    )
    assert claimed is not None
    assert claimed.request == request
    got = await store.get_claim("k")
    assert got is not None
    assert (got.request, got.retries, got.updated_at) == (request, 0, None)
    plain = await store.claim_dial("k2", "r", AGENT, NOW, phone_number="+441212345601")
    assert plain is not None
    assert plain.request == {}


@pytest.mark.anyio
async def test_open_claims_and_retry_compare_and_set(store: Store) -> None:
    await store.import_contacts(rows(2))
    a = await store.claim_dial("a", "r", AGENT, NOW, contact="next")
    b = await store.claim_dial("b", "r", "other", NOW + timedelta(seconds=1), phone_number="+1")
    c = await store.claim_dial("c", "r", AGENT, NOW + timedelta(seconds=2), contact="next")
    assert a is not None
    assert b is not None
    assert c is not None
    await placed_and_ended(store, "c", "conv-c")
    later = NOW + timedelta(minutes=1)
    await store.mark_unknown("a", "read timeout", later)
    assert [x.key for x in await store.open_claims()] == ["a", "b"]
    [mine] = await store.open_claims(AGENT)
    assert (mine.key, mine.state, mine.updated_at, mine.error) == (
        "a",
        "unknown",
        later,
        "read timeout",
    )
    assert mine.contact is not None
    assert mine.contact.state == "dialing"
    # Only from unknown, and only with the retry count the caller saw.
    assert not await store.retry_claim("b", 0, later)
    assert not await store.retry_claim("a", 1, later)
    assert await store.retry_claim("a", 0, later + timedelta(seconds=5))
    assert not await store.retry_claim("a", 0, later + timedelta(seconds=5))
    again = await store.get_claim("a")
    assert again is not None
    assert (again.state, again.retries, again.updated_at) == (
        "claimed",
        1,
        later + timedelta(seconds=5),
    )
    await store.mark_unknown("a", "again", later + timedelta(minutes=2))
    assert await store.retry_claim("a", 1, later + timedelta(minutes=3))


@pytest.mark.anyio
async def test_concurrent_retries_have_one_winner(open_replica: OpenReplica) -> None:
    one, two = await open_replica(), await open_replica()
    await one.claim_dial("k", "r", AGENT, NOW, phone_number="+441212345601")
    await one.mark_unknown("k", "timeout", NOW)
    wins: list[bool] = []

    async def retry(s: Store) -> None:
        wins.append(await s.retry_claim("k", 0, NOW + timedelta(minutes=1)))

    async with anyio.create_task_group() as tg:
        for s in (one, two, one, two):
            tg.start_soon(retry, s)
    assert sorted(wins) == [False, False, False, True]


@pytest.mark.anyio
async def test_reimport_updates_not_duplicates(store: Store) -> None:
    assert await store.import_contacts(rows(2)) == 2
    first = (await store.contacts(AGENT))[0]
    await store.record_outcome(first.id, "busy", NOW, NOW)
    await store.import_contacts(
        [ContactRow(AGENT, first.phone_number, name="renamed", timezone="Europe/Berlin")]
    )
    contacts = await store.contacts(AGENT)
    assert len(contacts) == 2
    assert contacts[0].name == "renamed"
    assert contacts[0].timezone == "Europe/Berlin"
    # The dialer's bookkeeping survives a re-import.
    assert contacts[0].attempts == 1
    assert contacts[0].last_outcome == "busy"


@pytest.mark.anyio
async def test_claim_states_and_outcomes(store: Store) -> None:
    await store.import_contacts(rows(1))
    claim = await store.claim_dial("k", "r", AGENT, NOW, contact="next")
    assert claim is not None
    assert claim.contact is not None
    await placed_and_ended(store, "k", "conv-1")
    placed = await store.get_claim("k")
    assert placed is not None
    assert placed.state == "placed"
    assert placed.conversation_id == "conv-1"
    await store.mark_unknown("k", "timeout", NOW)
    unknown = await store.get_claim("k")
    assert unknown is not None
    assert unknown.state == "unknown"
    assert unknown.error == "timeout"
    with pytest.raises(KeyError):
        await store.mark_failed("nope", "x")
    await store.record_outcome(claim.contact.id, "answered", NOW, None)
    contact = await store.get_contact(claim.contact.id)
    assert contact is not None
    assert (contact.state, contact.attempts, contact.last_outcome) == ("done", 1, "answered")
    assert (await store.contacts_summary()).done == 1


@pytest.mark.anyio
async def test_release_and_close_contact(store: Store) -> None:
    await store.import_contacts(rows(2))
    a, b = await store.contacts(AGENT)
    await store.claim_dial("k1", "r", AGENT, NOW, contact="next")
    await store.claim_dial("k2", "r", AGENT, NOW, contact="next")
    await store.release_contact(a.id, NOW + timedelta(hours=1))
    await store.close_contact(b.id, "do_not_call")
    a2, b2 = await store.get_contact(a.id), await store.get_contact(b.id)
    assert a2 is not None
    assert a2.state == "due"
    assert a2.attempts == 0
    assert a2.next_due_at == NOW + timedelta(hours=1)
    assert b2 is not None
    assert b2.state == "done"
    assert b2.last_outcome == "do_not_call"


@pytest.mark.anyio
async def test_calls_and_summary(store: Store) -> None:
    def call(cid: str, user: str, state: str, outcome: str | None) -> CallRecord:
        return CallRecord(cid, user, None, "+441212345601", state, outcome, NOW)

    await store.upsert_call(call("c1", "a", "dialing", None))
    await store.upsert_call(call("c2", "a", "ended", "busy"))
    await store.upsert_call(call("c3", "b", "ended", "answered"))
    await store.upsert_call(call("c1", "a", "connected", None))  # update, not insert
    active = await store.active_calls()
    assert [c.conversation_id for c in active] == ["c1"]
    assert active[0].state == "connected"
    assert (await store.active_call_for_user("a")) == active[0]
    assert await store.active_call_for_user("b") is None
    assert await store.get_call("c3") == call("c3", "b", "ended", "answered")
    await store.upsert_call(call("c4", "b", "ended", "agent_unavailable"))
    await store.upsert_call(call("c5", "b", "ended", "agent_unavailable"))
    await store.claim_dial("k", "r", "b", NOW, phone_number="+441212345601")
    await store.mark_failed("k", "400 bad")
    summary = {s.user_id: s for s in await store.call_summary()}
    assert (summary["a"].placed, summary["a"].active, summary["a"].busy) == (2, 1, 1)
    assert summary["a"].agent_unavailable == 0
    assert (summary["b"].answered, summary["b"].dial_errors) == (1, 1)
    assert (summary["b"].placed, summary["b"].agent_unavailable, summary["b"].failed) == (3, 2, 0)


@pytest.mark.anyio
async def test_do_not_call(store: Store) -> None:
    assert await store.add_do_not_call(["+441212345601", "+441212345601", "+4930123456"]) == 2
    assert await store.add_do_not_call(["+4930123456"]) == 0
    assert await store.is_do_not_call("+441212345601")
    assert not await store.is_do_not_call("+441212345602")


@pytest.mark.anyio
async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.claim_dial("k", "r", AGENT, datetime(2026, 1, 1), phone_number="+1")


@pytest.mark.anyio
async def test_placeholder_characters_in_values_are_data(store: Store) -> None:
    # The shared statements use "?" placeholders, translated for PostgreSQL.
    key = "k?%s%%?"
    claimed = await store.claim_dial(
        key, "r%s", AGENT, NOW, phone_number="+1?", request={"a": "%s"}
    )
    assert claimed is not None
    got = await store.get_claim(key)
    assert got is not None
    assert (got.key, got.rule, got.phone_number, got.request) == (key, "r%s", "+1?", {"a": "%s"})
    assert await store.add_do_not_call(["?", "%s"]) == 2
    assert await store.is_do_not_call("%s")


@pytest.mark.anyio
async def test_empty_batches_write_nothing(store: Store) -> None:
    assert await store.import_contacts([]) == 0
    assert await store.add_do_not_call([]) == 0
    assert await store.contacts() == []


@pytest.mark.anyio
async def test_a_rolled_back_claim_leaves_the_store_usable(store: Store) -> None:
    # No contact due: the claim's transaction rolls back; the next one still works.
    assert await store.claim_dial("k1", "r", AGENT, NOW, contact="next") is None
    await store.import_contacts(rows(1))
    claimed = await store.claim_dial("k1", "r", AGENT, NOW, contact="next")
    assert claimed is not None
    assert claimed.contact is not None
    assert (claimed.phone_number, claimed.created_at) == (claimed.contact.phone_number, NOW)
    with pytest.raises(ValueError, match="exactly one"):
        await store.claim_dial("k2", "r", AGENT, NOW)
    assert [c.key for c in await store.open_claims(AGENT)] == ["k1"]


@pytest.mark.anyio
async def test_a_closed_store_refuses_work(store: Store) -> None:
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await store.contacts()


@pytest.mark.anyio
async def test_dial_context_reads_what_the_dialer_checks_in_one_operation(store: Store) -> None:
    empty = await store.dial_context("k1", AGENT)
    assert (empty.claimed, empty.open_claims, empty.active_call) == (False, [], None)
    await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    await store.claim_dial("k2", "r", "other", NOW, phone_number="+441212345602")
    await store.upsert_call(
        CallRecord("conv-1", AGENT, None, "+441212345603", "dialing", None, NOW)
    )
    context = await store.dial_context("k1", AGENT)
    assert context.claimed
    assert [c.key for c in context.open_claims] == ["k1"]
    assert context.active_call is not None
    assert context.active_call.conversation_id == "conv-1"
    # Another key of the same agent: not claimed, but the agent is busy all the same.
    other = await store.dial_context("k3", AGENT)
    assert not other.claimed
    assert [c.key for c in other.open_claims] == ["k1"]
    assert other.open_claims == await store.open_claims(AGENT)
    assert other.active_call == await store.active_call_for_user(AGENT)


@pytest.mark.anyio
async def test_record_placed_places_the_claim_and_tracks_its_call(store: Store) -> None:
    await store.import_contacts(rows(1))
    claim = await store.claim_dial("k1", "r", AGENT, NOW, contact="next")
    assert claim is not None
    assert claim.contact is not None
    call = CallRecord(
        "conv-1", AGENT, claim.contact.id, claim.contact.phone_number, "dialing", None, NOW
    )
    await store.record_placed("k1", call)
    placed = await store.get_claim("k1")
    assert placed is not None
    assert (placed.state, placed.conversation_id) == ("placed", "conv-1")
    assert await store.get_call("conv-1") == call
    assert await store.open_claims(AGENT) == []


@pytest.mark.anyio
async def test_record_placed_without_a_claim_writes_nothing(store: Store) -> None:
    call = CallRecord("conv-9", AGENT, None, "+441212345601", "dialing", None, NOW)
    with pytest.raises(KeyError):
        await store.record_placed("missing", call)
    # One transaction: the call is not tracked either, and the store goes on.
    assert await store.get_call("conv-9") is None
    assert await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")


@pytest.mark.anyio
async def test_claim_for_dial_claims_and_reads_the_do_not_call_list(store: Store) -> None:
    await store.import_contacts(rows(2))
    await store.add_do_not_call(["+493012345601"])
    first = await store.claim_for_dial("k1", "r", AGENT, NOW, contact="next", request={"a": 1})
    assert (first.refused, first.open_claims, first.active_call) == (None, [], None)
    assert first.claim is not None
    assert first.claim.contact is not None
    assert first.claim.phone_number == "+493012345600"
    assert not first.do_not_call
    # Just what claim_dial would have claimed, as get_claim reads it back.
    assert first.claim == await store.get_claim("k1")
    assert first.claim.request == {"a": 1}
    await store.mark_failed("k1", "denied")  # the agent is free again
    second = await store.claim_for_dial("k2", "r", AGENT, NOW, contact="next")
    assert second.claim is not None
    assert second.claim.phone_number == "+493012345601"
    assert second.do_not_call
    await store.mark_failed("k2", "denied")
    plain = await store.claim_for_dial("k3", "r", "other", NOW, phone_number="+493012345601")
    assert plain.claim is not None
    assert (plain.claim.phone_number, plain.claim.contact, plain.do_not_call) == (
        "+493012345601",
        None,
        True,
    )
    with pytest.raises(ValueError, match="exactly one"):
        await store.claim_for_dial("k4", "r", AGENT, NOW)


@pytest.mark.anyio
async def test_claim_for_dial_refuses_a_known_key_first(store: Store) -> None:
    await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    await store.upsert_call(
        CallRecord("conv-1", AGENT, None, "+441212345603", "dialing", None, NOW)
    )
    # A duplicate trigger is reported as one even though the agent is busy too.
    again = await store.claim_for_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    assert (again.claim, again.refused, again.do_not_call) == (None, "claimed", False)
    # Settled claims are still known keys.
    await store.mark_failed("k1", "refused")
    settled = await store.claim_for_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    assert settled.refused == "claimed"


@pytest.mark.anyio
async def test_claim_for_dial_refuses_a_busy_agent_and_says_why(store: Store) -> None:
    await store.import_contacts(rows(3))
    await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    await store.mark_unknown("k1", "timeout", NOW)
    await store.claim_dial("k2", "r", "other", NOW, phone_number="+441212345602")
    busy = await store.claim_for_dial("k3", "r", AGENT, NOW, contact="next")
    assert (busy.claim, busy.refused, busy.active_call) == (None, "busy", None)
    assert [(c.key, c.state) for c in busy.open_claims] == [("k1", "unknown")]
    assert busy.open_claims == await store.open_claims(AGENT)
    # Refused before claiming: no claim, and no contact taken.
    assert await store.get_claim("k3") is None
    assert [c.state for c in await store.contacts(AGENT)] == ["due"] * 3
    # An active call alone keeps the agent busy as well.
    await store.mark_failed("k1", "reconciled: not placed")
    await store.upsert_call(
        CallRecord("conv-1", AGENT, None, "+441212345603", "connected", None, NOW)
    )
    busy = await store.claim_for_dial("k3", "r", AGENT, NOW, phone_number="+441212345604")
    assert (busy.claim, busy.refused, busy.open_claims) == (None, "busy", [])
    assert busy.active_call == await store.active_call_for_user(AGENT)
    # Once the call has ended the agent may be dialed again.
    await store.upsert_call(
        CallRecord("conv-1", AGENT, None, "+441212345603", "ended", "answered", NOW, NOW)
    )
    free = await store.claim_for_dial("k3", "r", AGENT, NOW, phone_number="+441212345604")
    assert free.claim is not None
    assert free.refused is None


@pytest.mark.anyio
async def test_claim_for_dial_without_a_due_contact_leaves_no_claim(store: Store) -> None:
    none = await store.claim_for_dial("k1", "r", AGENT, NOW, contact="next")
    assert (none.claim, none.refused) == (None, "no_contact")
    assert await store.get_claim("k1") is None
    assert await store.open_claims() == []
    await store.import_contacts(rows(1))
    got = await store.claim_for_dial("k1", "r", AGENT, NOW, contact="next")
    assert got.claim is not None


@pytest.mark.anyio
async def test_replicas_claiming_for_dial_one_key_have_one_winner(
    open_replica: OpenReplica,
) -> None:
    replicas = [await open_replica() for _ in range(4)]
    await replicas[0].import_contacts(rows(4))

    async def claim(s: Store, key: str, outcomes: list[DialClaim]) -> None:
        outcomes.append(await s.claim_for_dial(key, "r", AGENT, NOW, contact="next"))

    for round_ in range(4):
        outcomes: list[DialClaim] = []
        async with anyio.create_task_group() as tg:
            for s in replicas:
                tg.start_soon(claim, s, f"dup-{round_}", outcomes)
        won = [o.claim for o in outcomes if o.claim is not None]
        assert len(won) == 1, round_
        # The others lost to the same key, or (once it was claimed) to a busy agent.
        assert {o.refused for o in outcomes if o.claim is None} <= {"claimed", "busy"}
        await replicas[0].mark_failed(f"dup-{round_}", "done")
    states = [c.state for c in await replicas[1].contacts(AGENT)]
    assert states == ["dialing"] * 4


@pytest.mark.anyio
async def test_replicas_claiming_for_dial_see_the_agent_busy(
    open_replica: OpenReplica,
) -> None:
    # Different keys, one agent: the first claim makes the agent busy for the rest.
    # (PostgreSQL reads "busy" under read committed, so two exactly simultaneous
    # claims may both get through there, as with dial_context before; SQLite's
    # write lock serializes them.)
    one, two = await open_replica(), await open_replica()
    await one.import_contacts(rows(5))
    first = await one.claim_for_dial("k0", "r", AGENT, NOW, contact="next")
    assert first.claim is not None
    outcomes: list[DialClaim] = []

    async def claim(s: Store, i: int) -> None:
        outcomes.append(await s.claim_for_dial(f"k{i}", "r", AGENT, NOW, contact="next"))

    async with anyio.create_task_group() as tg:
        for i in range(1, 7):
            tg.start_soon(claim, one if i % 2 else two, i)
    assert [o.refused for o in outcomes] == ["busy"] * 6
    assert all([c.key for c in o.open_claims] == ["k0"] for o in outcomes)


async def _dialed_contact(store: Store) -> tuple[Contact, CallRecord]:
    """A contact with one attempt (busy) behind it, claimed and dialed as ``conv-1``."""
    await store.import_contacts(rows(1))
    [first] = await store.contacts(AGENT)
    await store.record_outcome(first.id, "busy", NOW - timedelta(hours=1), NOW)
    claim = await store.claim_dial("k1", "r", AGENT, NOW, contact="next")
    assert claim is not None
    assert claim.contact is not None
    call = CallRecord(
        "conv-1", AGENT, claim.contact.id, claim.contact.phone_number, "dialing", None, NOW
    )
    await store.record_placed("k1", call)
    return claim.contact, call


@pytest.mark.anyio
async def test_record_call_progress_without_an_outcome_writes_only_the_call(
    store: Store,
) -> None:
    contact, call = await _dialed_contact(store)
    connected = replace(call, state="connected", updated_at=NOW + timedelta(seconds=5))
    assert await store.record_call_progress(connected) is None
    assert await store.get_call("conv-1") == connected
    assert await store.get_contact(contact.id) == contact
    # A new call is inserted the same way.
    other = CallRecord("conv-2", "agent-2", None, "+441212345601", "dialing", None, NOW)
    assert await store.record_call_progress(other) is None
    assert await store.get_call("conv-2") == other


@pytest.mark.anyio
async def test_record_call_progress_counts_the_attempt_with_the_call_end(store: Store) -> None:
    contact, call = await _dialed_contact(store)
    later = NOW + timedelta(minutes=1)
    ended = replace(call, state="ended", outcome="no_answer", updated_at=later, ended_at=later)
    retry = ContactOutcome("no_answer", counted=True, retry_at=later + timedelta(hours=1))
    written = await store.record_call_progress(ended, contact_outcome=retry)
    assert await store.get_call("conv-1") == ended
    stored = await store.get_contact(contact.id)
    assert written == stored
    assert stored is not None
    assert (stored.state, stored.attempts, stored.last_outcome) == ("due", 2, "no_answer")
    assert stored.next_due_at == later + timedelta(hours=1)
    assert await store.active_calls() == []


@pytest.mark.anyio
async def test_record_call_progress_without_a_due_time_closes_the_contact(store: Store) -> None:
    contact, call = await _dialed_contact(store)
    ended = replace(call, state="ended", outcome="answered", ended_at=NOW)
    # No retry time: done.
    written = await store.record_call_progress(
        ended, contact_outcome=ContactOutcome("answered", counted=True)
    )
    assert written is not None
    assert (written.state, written.attempts, written.last_outcome) == ("done", 2, "answered")
    assert written.next_due_at is None
    assert await store.get_contact(contact.id) == written


@pytest.mark.anyio
async def test_record_call_progress_releases_an_uncounted_contact(store: Store) -> None:
    contact, call = await _dialed_contact(store)
    ended = replace(call, state="ended", outcome="agent_unavailable", ended_at=NOW)
    released = ContactOutcome("agent_unavailable", counted=False, retry_at=NOW)
    written = await store.record_call_progress(ended, contact_outcome=released)
    stored = await store.get_contact(contact.id)
    assert written == stored
    assert stored is not None
    # Back to due with its attempts, last outcome and due time as they were.
    assert (stored.state, stored.attempts, stored.last_outcome) == ("due", 1, "busy")
    assert stored.next_due_at == contact.next_due_at
    assert await store.get_call("conv-1") == ended


@pytest.mark.anyio
async def test_record_call_progress_without_the_contact_still_writes_the_call(
    store: Store,
) -> None:
    outcome = ContactOutcome("busy", counted=True, retry_at=NOW)
    missing = CallRecord("conv-1", AGENT, 999, "+441212345601", "ended", "busy", NOW, NOW)
    assert await store.record_call_progress(missing, contact_outcome=outcome) is None
    assert await store.get_call("conv-1") == missing
    no_contact = CallRecord("conv-2", AGENT, None, "+441212345602", "ended", "busy", NOW, NOW)
    assert await store.record_call_progress(no_contact, contact_outcome=outcome) is None
    assert await store.get_call("conv-2") == no_contact


#: The two ways a call's progress is written (as given, and read-decide-write), each
#: returning the contact as settled.


async def _record(store: Store, call: CallRecord, outcome: ContactOutcome) -> Contact | None:
    return await store.record_call_progress(call, contact_outcome=outcome)


async def _advance(store: Store, call: CallRecord, outcome: ContactOutcome) -> Contact | None:
    advanced = await store.advance_call(call.conversation_id, lambda stored: (call, outcome))
    return None if advanced is None else advanced.contact


WRITES: dict[str, Callable[[Store, CallRecord, ContactOutcome], Awaitable[Contact | None]]] = {
    "record_call_progress": _record,
    "advance_call": _advance,
}


@pytest.mark.anyio
@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_calls_progress_is_one_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    contact, call = await _dialed_contact(store)
    ended = replace(call, state="ended", outcome="busy", ended_at=NOW)
    outcome = ContactOutcome("busy", counted=True, retry_at=NOW)

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    # The contact's half of the write fails after the call's half was written.
    with monkeypatch.context() as patched:
        patched.setattr(sql, "_settle_contact", broken)
        with pytest.raises(RuntimeError):
            await WRITES[write](store, ended, outcome)
    # Rolled back whole: the call is not ended without its contact's outcome.
    assert await store.get_call("conv-1") == call
    assert await store.get_contact(contact.id) == contact
    # And the store goes on.
    written = await WRITES[write](store, ended, outcome)
    assert written is not None
    assert written.attempts == 2


@pytest.mark.anyio
async def test_due_contacts_in_list_order_with_do_not_call_and_the_next_due_time(
    store: Store,
) -> None:
    await store.import_contacts(rows(4))
    a, b, c, d = await store.contacts(AGENT)
    later = NOW + timedelta(minutes=10)
    await store.record_outcome(a.id, "busy", NOW, later)  # not due yet
    await store.record_outcome(b.id, "busy", NOW, NOW - timedelta(hours=1))  # overdue retry
    await store.close_contact(d.id, "done")
    await store.add_do_not_call([c.phone_number])
    due = await store.due_contacts(AGENT, NOW, 10)
    # Never dialed first, then the overdue retry; done and not-yet-due ones are left out.
    assert [x.id for x in due.contacts] == [c.id, b.id]
    assert due.do_not_call == frozenset({c.phone_number})
    assert due.next_due_at == later
    assert not due.claimed
    assert [x.id for x in (await store.due_contacts(AGENT, NOW, 1)).contacts] == [c.id]
    assert (await store.due_contacts("nobody", NOW, 10)).contacts == []


@pytest.mark.anyio
async def test_due_contacts_says_when_the_key_is_claimed(store: Store) -> None:
    await store.import_contacts(rows(1))
    await store.claim_dial("k", "r", AGENT, NOW, contact="next")
    due = await store.due_contacts(AGENT, NOW, 10, key="k")
    assert (due.claimed, due.contacts) == (True, [])


@pytest.mark.anyio
async def test_claim_for_dial_takes_the_chosen_contact_only_while_due(store: Store) -> None:
    await store.import_contacts(rows(2))
    a, b = await store.contacts(AGENT)
    got = await store.claim_for_dial("k1", "r", AGENT, NOW, contact=b.id)
    assert got.claim is not None
    assert got.claim.contact is not None
    assert (got.claim.contact.id, got.claim.phone_number) == (b.id, b.phone_number)
    await placed_and_ended(store, "k1", "conv")
    # Taken already (dialing): refused, and no claim is left behind.
    again = await store.claim_for_dial("k2", "r", AGENT, NOW, contact=b.id)
    assert (again.claim, again.refused) == (None, "no_contact")
    assert await store.get_claim("k2") is None
    # Another agent's contact is never taken by id.
    other = await store.claim_for_dial("k3", "r", "other", NOW, contact=a.id)
    assert other.refused == "no_contact"


@pytest.mark.anyio
async def test_contacts_generation_moves_on_with_every_import(store: Store) -> None:
    first = await store.contacts_generation()
    await store.import_contacts(rows(1))
    second = await store.contacts_generation()
    await store.import_contacts(rows(1))  # a re-import counts too: it may change a contact
    assert first < second < await store.contacts_generation()
    await store.import_contacts([])
    assert await store.contacts_generation() == second + 1


@pytest.mark.anyio
async def test_last_ended_call_of_an_agent(store: Store) -> None:
    assert await store.last_ended_call(AGENT) is None
    for cid, ended in (("c1", NOW), ("c2", NOW + timedelta(minutes=1)), ("c3", None)):
        state = "ended" if ended else "connected"
        await store.upsert_call(CallRecord(cid, AGENT, None, "+1", state, None, NOW, ended))
    last = await store.last_ended_call(AGENT)
    assert last is not None
    assert last.conversation_id == "c2"
    assert await store.last_ended_call("other") is None


@pytest.mark.anyio
async def test_the_number_cap_counts_calls_to_a_number_across_keys(store: Store) -> None:
    number = "+441212345601"
    window = timedelta(hours=24)
    cap = NumberCap(2, NOW - window, window)
    first = await store.claim_for_dial("k1", "r", AGENT, NOW, phone_number=number, number_cap=cap)
    await store.claim_for_dial("k2", "r", "other", NOW, phone_number=number, number_cap=cap)
    refused = await store.claim_for_dial(
        "k3", "r", "third", NOW, phone_number=number, number_cap=cap
    )
    assert first.claim is not None
    assert (refused.claim, refused.refused) == (None, "number_limit")
    assert refused.free_at == NOW + window
    assert await store.get_claim("k3") is None
    # A dial that placed nothing does not count.
    await store.mark_failed("k1", "refused")
    again = await store.claim_for_dial("k4", "r", "third", NOW, phone_number=number, number_cap=cap)
    assert again.claim is not None


@pytest.mark.anyio
async def test_due_contacts_names_the_numbers_the_cap_holds_back(store: Store) -> None:
    await store.import_contacts(rows(2))
    a, b = await store.contacts(AGENT)
    window = timedelta(hours=24)
    earlier = NOW - timedelta(hours=1)
    await store.claim_for_dial("k1", "r", "other", earlier, phone_number=a.phone_number)
    due = await store.due_contacts(AGENT, NOW, 10, number_cap=NumberCap(1, NOW - window, window))
    assert dict(due.capped) == {a.phone_number: earlier + window}
    assert [c.id for c in due.contacts] == [a.id, b.id]


@pytest.mark.anyio
async def test_remove_contacts_keeps_those_in_a_call_and_the_history_of_past_claims(
    store: Store,
) -> None:
    await store.import_contacts([*rows(3), *rows(1, "other")])
    a, b, c = await store.contacts(AGENT)
    # a: dialed before and done (a past claim points at it); b: in a call now.
    past = await store.claim_dial("k-past", "r", AGENT, NOW, contact="next")
    assert past is not None
    assert past.contact is not None
    assert past.contact.id == a.id
    await placed_and_ended(store, "k-past", "conv-past")
    await store.record_outcome(a.id, "answered", NOW, None)
    now = await store.claim_dial("k-now", "r", AGENT, NOW, contact="next")
    assert now is not None
    assert now.contact is not None
    assert now.contact.id == b.id
    before = await store.contacts_generation()

    assert await store.remove_contacts(AGENT) == 2
    assert [x.id for x in await store.contacts(AGENT)] == [b.id]  # in a call: kept
    assert len(await store.contacts("other")) == 1  # another agent's: untouched
    assert await store.contacts_generation() > before
    kept = await store.get_claim("k-past")
    assert kept is not None
    assert (kept.state, kept.phone_number, kept.contact) == ("placed", a.phone_number, None)
    # The removed number still counts against the number cap (its claim is history).
    window = timedelta(hours=24)
    capped = await store.claim_for_dial(
        "k-cap",
        "r",
        "third",
        NOW,
        phone_number=a.phone_number,
        number_cap=NumberCap(1, NOW - window, window),
    )
    assert capped.refused == "number_limit"
    assert c.id not in {x.id for x in await store.contacts()}  # never dialed: simply gone


@pytest.mark.anyio
async def test_remove_contacts_by_number_and_nothing_removed_moves_nothing(store: Store) -> None:
    await store.import_contacts(rows(3))
    a, b, c = await store.contacts(AGENT)
    before = await store.contacts_generation()
    assert await store.remove_contacts(AGENT, [b.phone_number, "+15550000000"]) == 1
    assert [x.id for x in await store.contacts(AGENT)] == [a.id, c.id]
    moved = await store.contacts_generation()
    assert moved > before
    assert await store.remove_contacts(AGENT, []) == 0
    assert await store.remove_contacts("nobody") == 0
    assert await store.contacts_generation() == moved


@pytest.mark.anyio
async def test_reset_contacts_makes_them_due_again_except_those_in_a_call(store: Store) -> None:
    await store.import_contacts([*rows(3), *rows(1, "other")])
    a, b, c = await store.contacts(AGENT)
    (o,) = await store.contacts("other")
    await store.record_outcome(a.id, "answered", NOW, None)
    await store.record_outcome(b.id, "busy", NOW, NOW + timedelta(hours=1))
    await store.record_outcome(o.id, "busy", NOW, NOW + timedelta(hours=1))
    in_call = await store.claim_for_dial("k", "r", AGENT, NOW, contact=c.id)
    assert in_call.claim is not None
    before = await store.contacts_generation()

    assert await store.reset_contacts(AGENT) == 2
    got = {x.id: x for x in await store.contacts()}
    for contact in (got[a.id], got[b.id]):
        assert (contact.state, contact.attempts, contact.last_outcome) == ("due", 0, None)
        assert contact.next_due_at is None
    assert got[c.id].state == "dialing"  # in a call: left alone
    assert (got[o.id].attempts, got[o.id].last_outcome) == (1, "busy")  # another agent's
    assert await store.contacts_generation() > before
    # Due now: the next claim takes a reset contact.
    again = await store.claim_dial("k2", "r", AGENT, NOW, contact="next")
    assert again is not None
    assert again.contact is not None
    assert again.contact.id == a.id


@pytest.mark.anyio
async def test_reset_contacts_of_everyone_or_some_numbers(store: Store) -> None:
    await store.import_contacts([*rows(2), *rows(1, "other")])
    a, b = await store.contacts(AGENT)
    (o,) = await store.contacts("other")
    for contact in (a, b, o):
        await store.record_outcome(contact.id, "no_answer", NOW, None)
    assert await store.reset_contacts(AGENT, [b.phone_number]) == 1
    assert [x.state for x in await store.contacts(AGENT)] == ["done", "due"]
    # Without --user: every contact not in a call (b, due already, is counted again).
    assert await store.reset_contacts() == 3
    assert {x.state for x in await store.contacts()} == {"due"}


@pytest.mark.anyio
async def test_call_summary_since_counts_only_calls_and_refusals_from_then(store: Store) -> None:
    old, recent = NOW - timedelta(days=2), NOW - timedelta(minutes=5)
    since = NOW - timedelta(hours=1)
    await store.upsert_call(CallRecord("c-old", AGENT, None, "+1", "ended", "busy", old, old))
    await store.upsert_call(
        CallRecord("c-new", AGENT, None, "+1", "ended", "answered", recent, recent)
    )
    await store.upsert_call(CallRecord("c-gone", "old-only", None, "+1", "ended", "busy", old))
    await store.claim_dial("k-old", "r", AGENT, old, phone_number="+1")
    await store.claim_dial("k-new", "r", AGENT, recent, phone_number="+1")
    await store.mark_failed("k-old", "400 bad")
    await store.mark_failed("k-new", "400 bad")

    every = {s.user_id: s for s in await store.call_summary()}
    assert (every[AGENT].placed, every[AGENT].busy, every[AGENT].answered) == (2, 1, 1)
    assert every[AGENT].dial_errors == 2
    assert "old-only" in every
    from_then = {s.user_id: s for s in await store.call_summary(since)}
    assert list(from_then) == [AGENT]  # an agent with only old calls is not listed
    row = from_then[AGENT]
    assert (row.placed, row.answered, row.busy, row.dial_errors) == (1, 1, 0, 1)
    assert await store.call_summary(NOW + timedelta(hours=1)) == []


@pytest.mark.anyio
async def test_advance_call_reads_asks_and_writes_in_one_operation(store: Store) -> None:
    contact, call = await _dialed_contact(store)
    assert await store.advance_call("conv-unknown", lambda seen: None) is None
    # Unchanged: nothing written.
    unchanged = await store.advance_call("conv-1", lambda seen: None)
    assert unchanged is not None
    assert (unchanged.previous, unchanged.written, unchanged.contact) == (call, None, None)
    # The call's end and its contact's outcome, from what was stored.
    later = NOW + timedelta(minutes=1)
    retry = ContactOutcome("no_answer", counted=True, retry_at=later + timedelta(hours=1))
    seen: list[CallRecord] = []

    def end(stored: CallRecord) -> tuple[CallRecord, ContactOutcome]:
        seen.append(stored)
        return replace(stored, state="ended", outcome="no_answer", updated_at=later), retry

    advanced = await store.advance_call("conv-1", end)
    assert seen == [call]
    assert advanced is not None
    ended = replace(call, state="ended", outcome="no_answer", updated_at=later)
    assert (advanced.previous, advanced.written) == (call, ended)
    assert await store.get_call("conv-1") == ended
    stored = await store.get_contact(contact.id)
    assert advanced.contact == stored
    assert stored is not None
    assert (stored.state, stored.attempts, stored.last_outcome) == ("due", 2, "no_answer")
