"""What only the SQLite store does: URLs, paths, and upgrading an older file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outdial.store import ContactRow, SqliteStore, StoreError, open_store, sqlite_path

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
    assert await store.retry_claim("old", 0, NOW)
    await store.aclose()
