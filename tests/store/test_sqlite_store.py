"""What only the SQLite store does: URLs, paths, and upgrading an older file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outdial.store import ContactRow, SqliteStore, StoreError, open_store, sqlite_path
from outdial.store.migrations import LATEST, MIGRATIONS

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def rows(n: int) -> list[ContactRow]:
    return [ContactRow("agent-1", f"+4930123456{i:02d}") for i in range(n)]


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


@pytest.mark.anyio
async def test_a_file_from_the_first_release_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE dial_claims (
            key TEXT PRIMARY KEY, rule TEXT NOT NULL, user_id TEXT NOT NULL,
            contact_id INTEGER, phone_number TEXT, state TEXT NOT NULL,
            conversation_id TEXT, error TEXT, created_at TEXT NOT NULL
        );
        INSERT INTO dial_claims VALUES
            ('old', 'r', 'agent-1', NULL, '+441212345601', 'unknown', NULL, 'timeout',
             '2026-03-02T09:00:00.000000Z');
        """
    )
    conn.close()
    store = SqliteStore(path)
    [claim] = await store.open_claims()
    assert (claim.key, claim.retries, claim.request, claim.updated_at) == ("old", 0, {}, None)
    assert (claim.owner, claim.lease_until) == (None, None)
    assert await store.retry_claim("old", 0, NOW)
    assert await store.renew_leases("nobody", NOW) == 0
    await store.import_contacts(rows(1))  # the tables it lacked are there now
    await store.aclose()
    assert user_version(path) == LATEST


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


# The schema as the release before schema versions created it (no version recorded).
UNVERSIONED = """
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, phone_number TEXT NOT NULL,
    name TEXT, external_id TEXT, timezone TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT, next_due_at TEXT, state TEXT NOT NULL DEFAULT 'due', updated_at TEXT,
    UNIQUE (user_id, phone_number)
);
CREATE INDEX contacts_next_due ON contacts (user_id, state, next_due_at, id);
CREATE TABLE dial_claims (
    key TEXT PRIMARY KEY, rule TEXT NOT NULL, user_id TEXT NOT NULL,
    contact_id INTEGER REFERENCES contacts (id), phone_number TEXT, state TEXT NOT NULL,
    conversation_id TEXT, error TEXT, created_at TEXT NOT NULL, request TEXT,
    retries INTEGER NOT NULL DEFAULT 0, updated_at TEXT, owner TEXT, lease_until TEXT
);
CREATE INDEX dial_claims_open ON dial_claims (user_id, created_at)
    WHERE state IN ('claimed', 'unknown');
CREATE INDEX dial_claims_number ON dial_claims (phone_number, created_at);
CREATE TABLE calls (
    conversation_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, contact_id INTEGER,
    phone_number TEXT NOT NULL, state TEXT NOT NULL, outcome TEXT, updated_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX calls_active ON calls (user_id) WHERE state <> 'ended';
CREATE TABLE do_not_call (phone_number TEXT PRIMARY KEY);
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE INDEX calls_ended ON calls (user_id, ended_at);
INSERT INTO contacts (user_id, phone_number, state, attempts)
    VALUES ('agent-1', '+441212345601', 'dialing', 2);
INSERT INTO dial_claims (key, rule, user_id, contact_id, phone_number, state, created_at,
    request, retries, owner, lease_until)
    VALUES ('k', 'r', 'agent-1', 1, '+441212345601', 'claimed', '2026-03-02T09:00:00.000000Z',
    '{"caller_id": "+4930123456"}', 1, 'host:1:x', '2026-03-02T09:01:00.000000Z');
INSERT INTO calls VALUES ('conv-1', 'agent-1', 1, '+441212345601', 'ended', 'busy',
    '2026-03-02T08:00:00.000000Z', '2026-03-02T08:00:00.000000Z');
INSERT INTO do_not_call VALUES ('+441212345699');
INSERT INTO store_meta VALUES ('contacts', 7);
"""


async def _rows_of_the_unversioned_file(store: SqliteStore) -> None:
    [contact] = await store.contacts()
    assert (contact.phone_number, contact.state, contact.attempts) == (
        "+441212345601",
        "dialing",
        2,
    )
    claim = await store.get_claim("k")
    assert claim is not None
    assert (claim.request, claim.retries, claim.owner) == (
        {"caller_id": "+4930123456"},
        1,
        "host:1:x",
    )
    assert claim.lease_until == datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    call = await store.get_call("conv-1")
    assert call is not None
    assert call.outcome == "busy"
    assert await store.is_do_not_call("+441212345699")
    assert await store.contacts_generation() == 7


@pytest.mark.anyio
async def test_a_file_without_a_schema_version_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "unversioned.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(UNVERSIONED)
    assert user_version(path) == 0
    store = SqliteStore(path)
    await _rows_of_the_unversioned_file(store)
    await store.aclose()
    assert user_version(path) == LATEST
    again = SqliteStore(path)  # up to date: opens without migrating
    await _rows_of_the_unversioned_file(again)
    await again.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("version", range(LATEST))
async def test_every_migration_is_idempotent(tmp_path: Path, version: int) -> None:
    # A file whose version says less than its shape (a step ran, its record did
    # not) goes through those steps again, harmlessly.
    path = tmp_path / "again.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(UNVERSIONED)
        conn.execute(f"PRAGMA user_version = {version}")
    store = SqliteStore(path)
    await _rows_of_the_unversioned_file(store)
    await store.aclose()
    assert user_version(path) == LATEST


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert len({m.name for m in MIGRATIONS}) == LATEST


@pytest.mark.anyio
async def test_a_file_from_a_newer_release_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    store = SqliteStore(path)
    await store.import_contacts(rows(1))
    await store.aclose()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StoreError) as caught:
        SqliteStore(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"schema version {LATEST + 1}" in message
    assert f"({LATEST})" in message
    assert user_version(path) == LATEST + 1  # left as it was
    with pytest.raises(StoreError, match="newer than this outdial knows"):
        async with open_store(f"sqlite:///{path}"):
            pass
