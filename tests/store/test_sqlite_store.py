"""SqliteStore on a real file: claims, the contact queue, calls, summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from outdial.store import (
    CallRecord,
    Claim,
    ContactRow,
    SqliteStore,
    StoreError,
    open_store,
    sqlite_path,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AGENT = "agent-1"


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "outdial.db")


def rows(n: int, user: str = AGENT) -> list[ContactRow]:
    return [ContactRow(user, f"+4930123456{i:02d}", name=f"c{i}") for i in range(n)]


@pytest.mark.anyio
async def test_claim_twice_second_gets_none(store: SqliteStore) -> None:
    first = await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    second = await store.claim_dial("k1", "r", AGENT, NOW, phone_number="+441212345601")
    assert first is not None
    assert first.state == "claimed"
    assert second is None
    claim = await store.get_claim("k1")
    assert claim is not None
    assert claim.phone_number == "+441212345601"
    await store.aclose()


@pytest.mark.anyio
async def test_next_contact_picks_oldest_due(store: SqliteStore) -> None:
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
    await store.aclose()


@pytest.mark.anyio
async def test_next_contact_only_for_that_agent(store: SqliteStore) -> None:
    await store.import_contacts(rows(1, "other"))
    assert await store.claim_dial("k", "r", AGENT, NOW, contact="next") is None
    # Nothing claimed: the key is free for a later try.
    assert await store.get_claim("k") is None
    await store.aclose()


@pytest.mark.anyio
async def test_concurrent_claims_never_share_a_contact(store: SqliteStore) -> None:
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
    await store.aclose()


@pytest.mark.anyio
async def test_two_stores_on_one_file_never_share_a_contact(tmp_path: Path) -> None:
    # Two connections (as two processes would have): BEGIN IMMEDIATE serialises them.
    one, two = SqliteStore(tmp_path / "db"), SqliteStore(tmp_path / "db")
    await one.import_contacts(rows(5))
    got: list[int] = []

    async def claim(s: SqliteStore, i: int) -> None:
        c = await s.claim_dial(f"k{i}", "r", AGENT, NOW, contact="next")
        if c and c.contact:
            got.append(c.contact.id)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(claim, one if i % 2 else two, i)
    assert sorted(got) == sorted(set(got))
    assert len(got) == 5
    await one.aclose()
    await two.aclose()


@pytest.mark.anyio
async def test_reimport_updates_not_duplicates(store: SqliteStore) -> None:
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
    await store.aclose()


@pytest.mark.anyio
async def test_claim_states_and_outcomes(store: SqliteStore) -> None:
    await store.import_contacts(rows(1))
    claim = await store.claim_dial("k", "r", AGENT, NOW, contact="next")
    assert claim is not None
    assert claim.contact is not None
    await store.mark_placed("k", "conv-1")
    placed = await store.get_claim("k")
    assert placed is not None
    assert placed.state == "placed"
    assert placed.conversation_id == "conv-1"
    await store.mark_unknown("k", "timeout")
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
    await store.aclose()


@pytest.mark.anyio
async def test_release_and_close_contact(store: SqliteStore) -> None:
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
    await store.aclose()


@pytest.mark.anyio
async def test_calls_and_summary(store: SqliteStore) -> None:
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
    await store.claim_dial("k", "r", "b", NOW, phone_number="+441212345601")
    await store.mark_failed("k", "400 bad")
    summary = {s.user_id: s for s in await store.call_summary()}
    assert (summary["a"].placed, summary["a"].active, summary["a"].busy) == (2, 1, 1)
    assert (summary["b"].answered, summary["b"].dial_errors) == (1, 1)
    await store.aclose()


@pytest.mark.anyio
async def test_do_not_call(store: SqliteStore) -> None:
    assert await store.add_do_not_call(["+441212345601", "+441212345601", "+4930123456"]) == 2
    assert await store.add_do_not_call(["+4930123456"]) == 0
    assert await store.is_do_not_call("+441212345601")
    assert not await store.is_do_not_call("+441212345602")
    await store.aclose()


@pytest.mark.anyio
async def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.claim_dial("k", "r", AGENT, datetime(2026, 1, 1), phone_number="+1")
    await store.aclose()


@pytest.mark.anyio
async def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///rel.db") as store:
        await store.import_contacts(rows(1))
    assert (tmp_path / "rel.db").is_file()
    absolute = tmp_path / "abs.db"
    async with open_store(f"sqlite:///{absolute}") as store:
        assert await store.import_contacts(rows(2)) == 2
    async with open_store(f"sqlite:///{absolute}") as store:
        assert len(await store.contacts()) == 2  # it persisted
    async with open_store("sqlite:///:memory:") as store:
        assert await store.contacts() == []
    with pytest.raises(StoreError, match="unsupported"):
        async with open_store("mysql://x"):
            pass


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:///outdial.db") == "outdial.db"
    assert sqlite_path("sqlite:////var/lib/o.db") == "/var/lib/o.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(StoreError):
        sqlite_path("sqlite:///")
