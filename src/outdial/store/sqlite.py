"""The default store: one SQLite file, stdlib ``sqlite3``, WAL mode.

The store itself is :class:`~outdial.store.sql.SqlStore`; this module connects,
creates (or upgrades) the tables, and says how SQLite differs. ``sqlite3``
blocks, which suits ``SqlStore``: each operation runs in a worker thread on the
one shared connection, one at a time. SQLite serialises writers anyway, and
``BEGIN IMMEDIATE`` takes the write lock at the start of every transaction, so
two processes on the same file cannot both pick the same contact either.
Times are stored as fixed-width UTC text, so text order is time order.

The file holds agents' contacts (names and numbers), so it is created
readable by its owner only (0600); SQLite gives its ``-wal`` and ``-shm``
files the database file's mode. A file an older release left readable by
every local user loses those "other" bits when opened (group bits are the
operator's to choose).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from outdial.store.sql import Database, Result, SqlStore, schema

__all__ = ["SqliteStore"]

_SCHEMA = schema(
    serial="INTEGER PRIMARY KEY AUTOINCREMENT", bigint="INTEGER", timestamp="TEXT", json="TEXT"
)

# Columns added to dial_claims after the first release: (name, SQL type and default).
_CLAIM_COLUMNS_ADDED = (
    ("request", "TEXT"),
    ("retries", "INTEGER NOT NULL DEFAULT 0"),
    ("updated_at", "TEXT"),
    ("owner", "TEXT"),
    ("lease_until", "TEXT"),
)

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class _SqliteDatabase(Database):
    def __init__(self, path: str) -> None:
        # check_same_thread=False: worker threads take turns (SqlStore's lock).
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a claim is
        # exactly one explicit transaction.
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = _dict_row

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        cursor = self.conn.execute(sql, params)
        return Result(cursor.fetchall(), cursor.rowcount)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> int:
        return self.conn.executemany(sql, params).rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def encode_ts(self, when: datetime) -> str:
        return when.strftime(_TS_FORMAT)

    def decode_ts(self, value: Any) -> datetime:
        return datetime.strptime(value, _TS_FORMAT).replace(tzinfo=UTC)

    def close(self) -> None:
        self.conn.close()


def _migrate(conn: sqlite3.Connection) -> None:
    # A file made by an older release lacks the newer claim columns.
    have = {row["name"] for row in conn.execute("PRAGMA table_info(dial_claims)")}
    for name, decl in _CLAIM_COLUMNS_ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE dial_claims ADD COLUMN {name} {decl}")


def _private_file(path: str) -> None:
    """Create the database file 0600 (before SQLite would create it 0644 under umask 022).

    SQLite's unix VFS opens ``-wal``, ``-shm`` and ``-journal`` with the
    database file's permission bits, so the one ``os.open`` here covers all
    of them; no process-wide umask change, which other threads would see.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # a missing directory and the like: sqlite3.connect says so in its own words
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(name).st_mode
            if stat.S_ISREG(mode) and mode & 0o007:
                os.chmod(name, stat.S_IMODE(mode) & ~0o007)
        except OSError:
            continue  # absent, or not ours to change: SQLite opens it as before


class SqliteStore(SqlStore):
    """:class:`~outdial.store.base.Store` on one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            _private_file(self.path)
        db = _SqliteDatabase(self.path)
        conn = db.conn
        conn.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(";\n".join(_SCHEMA) + ";")
        _migrate(conn)
        super().__init__(db)
