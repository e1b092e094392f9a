"""The default store: one SQLite file, stdlib ``sqlite3``, WAL mode.

``sqlite3`` blocks, so every call runs in a worker thread
(``anyio.to_thread.run_sync``). One connection is shared and an anyio lock lets
one call use it at a time: SQLite serialises writers anyway, and a single
connection means a claim's read-then-write transaction never interleaves with
another claim from this process. ``BEGIN IMMEDIATE`` takes the write lock at
the start of a claim, so two processes on the same file cannot both pick the
same contact either.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import anyio
import anyio.to_thread

from outdial.store.base import (
    CallRecord,
    Claim,
    ClaimState,
    Contact,
    ContactRow,
    ContactsSummary,
    ContactState,
    UserCallSummary,
)

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    name TEXT,
    external_id TEXT,
    timezone TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT,
    next_due_at TEXT,
    state TEXT NOT NULL DEFAULT 'due',
    updated_at TEXT,
    UNIQUE (user_id, phone_number)
);
CREATE INDEX IF NOT EXISTS contacts_next_due
    ON contacts (user_id, state, next_due_at, id);
CREATE TABLE IF NOT EXISTS dial_claims (
    key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    user_id TEXT NOT NULL,
    contact_id INTEGER REFERENCES contacts (id),
    phone_number TEXT,
    state TEXT NOT NULL,
    conversation_id TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    request TEXT,
    retries INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT
);
CREATE INDEX IF NOT EXISTS dial_claims_open
    ON dial_claims (user_id, created_at) WHERE state IN ('claimed', 'unknown');
CREATE TABLE IF NOT EXISTS calls (
    conversation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    contact_id INTEGER,
    phone_number TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    updated_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX IF NOT EXISTS calls_active ON calls (user_id) WHERE state != 'ended';
CREATE TABLE IF NOT EXISTS do_not_call (
    phone_number TEXT PRIMARY KEY
);
"""

# Columns added to dial_claims after the first release: (name, SQL type and default).
_CLAIM_COLUMNS_ADDED = (
    ("request", "TEXT"),
    ("retries", "INTEGER NOT NULL DEFAULT 0"),
    ("updated_at", "TEXT"),
)

_CONTACT_COLUMNS = (
    "id, user_id, phone_number, name, external_id, timezone, "
    "attempts, last_outcome, next_due_at, state"
)
_CALL_COLUMNS = (
    "conversation_id, user_id, contact_id, phone_number, state, outcome, updated_at, ended_at"
)


def _ts(when: datetime) -> str:
    # One fixed-width UTC format, so text order is time order in SQL comparisons.
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: the store keeps timezone-aware UTC times")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _contact(row: sqlite3.Row) -> Contact:
    return Contact(
        id=row["id"],
        user_id=row["user_id"],
        phone_number=row["phone_number"],
        name=row["name"],
        external_id=row["external_id"],
        timezone=row["timezone"],
        attempts=row["attempts"],
        last_outcome=row["last_outcome"],
        next_due_at=_parse_ts(row["next_due_at"]),
        state=cast(ContactState, row["state"]),
    )


def _claim(conn: sqlite3.Connection, row: sqlite3.Row) -> Claim:
    picked = None
    if row["contact_id"] is not None:
        crow = conn.execute(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE id = ?", (row["contact_id"],)
        ).fetchone()
        picked = _contact(crow) if crow else None
    created = _parse_ts(row["created_at"])
    assert created is not None  # NOT NULL column
    request = json.loads(row["request"]) if row["request"] else {}
    return Claim(
        key=row["key"],
        rule=row["rule"],
        user_id=row["user_id"],
        contact=picked,
        phone_number=row["phone_number"],
        state=cast(ClaimState, row["state"]),
        created_at=created,
        conversation_id=row["conversation_id"],
        error=row["error"],
        request=request if isinstance(request, dict) else {},
        retries=int(row["retries"]),
        updated_at=_parse_ts(row["updated_at"]),
    )


def _migrate(conn: sqlite3.Connection) -> None:
    # A file made by an older release lacks the newer claim columns.
    have = {row["name"] for row in conn.execute("PRAGMA table_info(dial_claims)")}
    for name, decl in _CLAIM_COLUMNS_ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE dial_claims ADD COLUMN {name} {decl}")


def _call(row: sqlite3.Row) -> CallRecord:
    updated = _parse_ts(row["updated_at"])
    assert updated is not None  # NOT NULL column
    return CallRecord(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        contact_id=row["contact_id"],
        phone_number=row["phone_number"],
        state=row["state"],
        outcome=row["outcome"],
        updated_at=updated,
        ended_at=_parse_ts(row["ended_at"]),
    )


class SqliteStore:
    """:class:`~outdial.store.base.Store` on one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = anyio.Lock()
        # check_same_thread=False: worker threads take turns under self._lock.
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a claim is
        # exactly one explicit transaction.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.executescript(_SCHEMA)
        _migrate(self._conn)
        self._closed = False

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            if self._closed:
                raise RuntimeError("store is closed")
            return await anyio.to_thread.run_sync(fn, self._conn)

    async def _transaction(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        def run(conn: sqlite3.Connection) -> _T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(run)

    # contacts

    async def import_contacts(self, rows: Iterable[ContactRow]) -> int:
        """Insert or update contacts by ``(user_id, phone_number)``; returns rows written."""
        batch = [(r.user_id, r.phone_number, r.name, r.external_id, r.timezone) for r in rows]

        def run(conn: sqlite3.Connection) -> int:
            # A re-import refreshes the descriptive columns only: attempts and
            # state belong to the dialer and must survive a re-import.
            conn.executemany(
                "INSERT INTO contacts (user_id, phone_number, name, external_id, timezone)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, phone_number) DO UPDATE SET"
                " name = excluded.name, external_id = excluded.external_id,"
                " timezone = excluded.timezone",
                batch,
            )
            return len(batch)

        return await self._transaction(run)

    async def contacts(self, user_id: str | None = None) -> list[Contact]:
        """All contacts, or one agent's, by id."""

        def run(conn: sqlite3.Connection) -> list[Contact]:
            if user_id is None:
                cur = conn.execute(f"SELECT {_CONTACT_COLUMNS} FROM contacts ORDER BY id")
            else:
                cur = conn.execute(
                    f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE user_id = ? ORDER BY id",
                    (user_id,),
                )
            return [_contact(row) for row in cur.fetchall()]

        return await self._run(run)

    async def get_contact(self, contact_id: int) -> Contact | None:
        """One contact by id."""

        def run(conn: sqlite3.Connection) -> Contact | None:
            row = conn.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE id = ?", (contact_id,)
            ).fetchone()
            return _contact(row) if row else None

        return await self._run(run)

    # dial claims

    async def claim_dial(
        self,
        key: str,
        rule: str,
        user_id: str,
        now: datetime,
        *,
        contact: Literal["next"] | None = None,
        phone_number: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> Claim | None:
        """Claim ``key`` (and the agent's oldest due contact for ``contact="next"``)."""
        if (contact is None) == (phone_number is None):
            raise ValueError('claim_dial needs exactly one of contact="next" or phone_number')
        now_text = _ts(now)
        request_json = json.dumps(dict(request), sort_keys=True) if request else None

        def run(conn: sqlite3.Connection) -> Claim | None:
            if conn.execute("SELECT 1 FROM dial_claims WHERE key = ?", (key,)).fetchone():
                return None
            picked: Contact | None = None
            number = phone_number
            if contact == "next":
                # NULL next_due_at (never dialed) sorts first: due since import.
                row = conn.execute(
                    f"SELECT {_CONTACT_COLUMNS} FROM contacts"
                    " WHERE user_id = ? AND state = 'due'"
                    " AND (next_due_at IS NULL OR next_due_at <= ?)"
                    " ORDER BY next_due_at IS NOT NULL, next_due_at, id LIMIT 1",
                    (user_id, now_text),
                ).fetchone()
                if row is None:
                    return None
                conn.execute(
                    "UPDATE contacts SET state = 'dialing', updated_at = ? WHERE id = ?",
                    (now_text, row["id"]),
                )
                picked = replace(_contact(row), state="dialing")
                number = picked.phone_number
            conn.execute(
                "INSERT INTO dial_claims"
                " (key, rule, user_id, contact_id, phone_number, state, created_at, request)"
                " VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?)",
                (key, rule, user_id, picked.id if picked else None, number, now_text, request_json),
            )
            return Claim(
                key=key,
                rule=rule,
                user_id=user_id,
                contact=picked,
                phone_number=number,
                state="claimed",
                created_at=_parse_ts(now_text) or now,
                request=json.loads(request_json) if request_json else {},
            )

        return await self._transaction(run)

    async def get_claim(self, key: str) -> Claim | None:
        """The claim under ``key``, with its contact as it is now."""

        def run(conn: sqlite3.Connection) -> Claim | None:
            row = conn.execute("SELECT * FROM dial_claims WHERE key = ?", (key,)).fetchone()
            return None if row is None else _claim(conn, row)

        return await self._run(run)

    async def open_claims(self, user_id: str | None = None) -> list[Claim]:
        """Claims ``claimed`` or ``unknown`` (of one agent), oldest first."""

        def run(conn: sqlite3.Connection) -> list[Claim]:
            sql = "SELECT * FROM dial_claims WHERE state IN ('claimed', 'unknown')"
            params: tuple[str, ...] = ()
            if user_id is not None:
                sql += " AND user_id = ?"
                params = (user_id,)
            rows = conn.execute(sql + " ORDER BY created_at, key", params).fetchall()
            return [_claim(conn, row) for row in rows]

        return await self._run(run)

    async def retry_claim(self, key: str, retries: int, now: datetime) -> bool:
        """``unknown`` with ``retries`` retries -> ``claimed`` with one more; True if it was."""
        now_text = _ts(now)

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE dial_claims SET state = 'claimed', retries = retries + 1,"
                " updated_at = ? WHERE key = ? AND state = 'unknown' AND retries = ?",
                (now_text, key, retries),
            )
            return cur.rowcount == 1

        return await self._run(run)

    async def _set_claim(
        self,
        key: str,
        state: ClaimState,
        conversation_id: str | None,
        error: str | None,
        now: datetime | None = None,
    ) -> None:
        now_text = _ts(now) if now else None

        def run(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE dial_claims SET state = ?,"
                " conversation_id = COALESCE(?, conversation_id), error = ?,"
                " updated_at = COALESCE(?, updated_at) WHERE key = ?",
                (state, conversation_id, error, now_text, key),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no dial claim {key!r}")

        await self._run(run)

    async def mark_placed(self, key: str, conversation_id: str) -> None:
        """The claim's call exists as ``conversation_id``."""
        await self._set_claim(key, "placed", conversation_id, None)

    async def mark_failed(self, key: str, error: str) -> None:
        """The claim placed nothing; ``error`` says why."""
        await self._set_claim(key, "failed", None, error)

    async def mark_unknown(self, key: str, error: str, now: datetime) -> None:
        """The claim's request may or may not have placed a call (as of ``now``)."""
        await self._set_claim(key, "unknown", None, error, now)

    async def release_contact(self, contact_id: int, next_due_at: datetime | None = None) -> None:
        """Back to ``due`` (at ``next_due_at``, or keeping its old due time), no attempt counted."""
        due = _ts(next_due_at) if next_due_at else None

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE contacts SET state = 'due', next_due_at = COALESCE(?, next_due_at)"
                " WHERE id = ?",
                (due, contact_id),
            )

        await self._run(run)

    async def close_contact(self, contact_id: int, reason: str) -> None:
        """``done`` with ``reason`` as its last outcome, no attempt counted."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE contacts SET state = 'done', last_outcome = ?, next_due_at = NULL"
                " WHERE id = ?",
                (reason, contact_id),
            )

        await self._run(run)

    async def record_outcome(
        self, contact_id: int, outcome: str, now: datetime, next_due_at: datetime | None
    ) -> None:
        """Count one attempt; ``due`` again at ``next_due_at`` or ``done`` when None."""
        now_text = _ts(now)
        due = _ts(next_due_at) if next_due_at else None
        state = "done" if next_due_at is None else "due"

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE contacts SET attempts = attempts + 1, last_outcome = ?,"
                " next_due_at = ?, state = ?, updated_at = ? WHERE id = ?",
                (outcome, due, state, now_text, contact_id),
            )

        await self._run(run)

    # calls

    async def upsert_call(self, call: CallRecord) -> None:
        """Insert or replace the call by conversation id."""
        values = (
            call.conversation_id,
            call.user_id,
            call.contact_id,
            call.phone_number,
            call.state,
            call.outcome,
            _ts(call.updated_at),
            _ts(call.ended_at) if call.ended_at else None,
        )

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (conversation_id) DO UPDATE SET"
                " user_id = excluded.user_id, contact_id = excluded.contact_id,"
                " phone_number = excluded.phone_number, state = excluded.state,"
                " outcome = excluded.outcome, updated_at = excluded.updated_at,"
                " ended_at = excluded.ended_at",
                values,
            )

        await self._run(run)

    async def get_call(self, conversation_id: str) -> CallRecord | None:
        """The call by conversation id."""

        def run(conn: sqlite3.Connection) -> CallRecord | None:
            row = conn.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            return _call(row) if row else None

        return await self._run(run)

    async def active_calls(self) -> list[CallRecord]:
        """Calls not yet ended, oldest update first."""

        def run(conn: sqlite3.Connection) -> list[CallRecord]:
            cur = conn.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE state != 'ended'"
                " ORDER BY updated_at, conversation_id"
            )
            return [_call(row) for row in cur.fetchall()]

        return await self._run(run)

    async def active_call_for_user(self, user_id: str) -> CallRecord | None:
        """The agent's call not yet ended, if any."""

        def run(conn: sqlite3.Connection) -> CallRecord | None:
            row = conn.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE user_id = ? AND state != 'ended'"
                " ORDER BY updated_at DESC LIMIT 1",
                (user_id,),
            ).fetchone()
            return _call(row) if row else None

        return await self._run(run)

    async def call_summary(self) -> list[UserCallSummary]:
        """Per agent: placed, active, outcomes, and dials the platform refused."""

        def run(conn: sqlite3.Connection) -> list[UserCallSummary]:
            counts: dict[str, dict[str, int]] = {}
            for row in conn.execute(
                "SELECT user_id, COUNT(*) AS placed,"
                " SUM(state != 'ended') AS active,"
                " SUM(outcome = 'answered') AS answered, SUM(outcome = 'busy') AS busy,"
                " SUM(outcome = 'no_answer') AS no_answer, SUM(outcome = 'failed') AS failed,"
                " SUM(outcome = 'agent_unavailable') AS agent_unavailable"
                " FROM calls GROUP BY user_id"
            ):
                counts[row["user_id"]] = {k: int(row[k] or 0) for k in row.keys()[1:]}
            for row in conn.execute(
                "SELECT user_id, COUNT(*) AS n FROM dial_claims WHERE state = 'failed'"
                " GROUP BY user_id"
            ):
                counts.setdefault(row["user_id"], {})["dial_errors"] = int(row["n"])
            return [UserCallSummary(user_id=u, **c) for u, c in sorted(counts.items())]

        return await self._run(run)

    async def contacts_summary(self) -> ContactsSummary:
        """Contacts per state."""

        def run(conn: sqlite3.Connection) -> ContactsSummary:
            found = {
                row["state"]: int(row["n"])
                for row in conn.execute("SELECT state, COUNT(*) AS n FROM contacts GROUP BY state")
            }
            return ContactsSummary(
                due=found.get("due", 0), dialing=found.get("dialing", 0), done=found.get("done", 0)
            )

        return await self._run(run)

    # do not call

    async def add_do_not_call(self, numbers: Iterable[str]) -> int:
        """Add numbers; returns how many were not listed before."""
        batch = [(n,) for n in numbers]

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO do_not_call (phone_number) VALUES (?)", batch)
            return conn.total_changes - before

        return await self._transaction(run)

    async def is_do_not_call(self, number: str) -> bool:
        """True when the number is listed."""

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM do_not_call WHERE phone_number = ?", (number,)
            ).fetchone()
            return row is not None

        return await self._run(run)

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        async with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
