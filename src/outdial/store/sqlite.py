"""The default store: one SQLite file, stdlib ``sqlite3``, WAL mode.

The store itself is :class:`~outdial.store.sql.SqlStore`; this module connects,
creates (or upgrades) the tables with :mod:`outdial.store.migrations` (the
file's schema version is its ``PRAGMA user_version``), and says how SQLite
differs. ``sqlite3`` blocks, which suits ``SqlStore``: each operation runs in a
worker thread on the one shared connection, one at a time. SQLite serialises
writers anyway, and ``BEGIN IMMEDIATE`` takes the write lock at the start of
every transaction, so two processes on the same file cannot both pick the same
contact either.
Times are stored as fixed-width UTC text, so text order is time order.

The file holds agents' contacts (names and numbers), so it is created
readable by its owner only (0600); SQLite gives its ``-wal`` and ``-shm``
files the database file's mode. A file an older release left readable by
every local user loses those "other" bits when opened (group bits are the
operator's to choose).

A file locked by another process is waited for (``busy_timeout``, the
``[store] statement_timeout``), and an operation that still finds it locked
is tried again until that much time has passed in all; then, like a full
disk or an I/O error, it fails as :class:`~outdial.store.base.StoreUnavailable`.
SQLite leaves nothing half done in either case: the transaction is rolled back.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from outdial.store.base import StoreError, StoreSettings, StoreUnavailable, UnavailableReason
from outdial.store.migrations import (
    LATEST,
    ColumnTypes,
    Migration,
    SchemaEditor,
    check_version,
    migrate,
)
from outdial.store.sql import Database, Result, SqlStore

__all__ = ["SqliteStore"]

_TYPES = ColumnTypes(
    serial="INTEGER PRIMARY KEY AUTOINCREMENT", bigint="INTEGER", timestamp="TEXT", json="TEXT"
)

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_T = TypeVar("_T")

# SQLite's primary result codes (the low byte of an extended code) that mean
# "the database did not take it, and may later".
_UNAVAILABLE: dict[int, UnavailableReason] = {
    5: "locked",  # SQLITE_BUSY: another connection holds the lock
    6: "locked",  # SQLITE_LOCKED: a table is locked
    7: "io",  # SQLITE_NOMEM
    8: "io",  # SQLITE_READONLY: the file (or its directory) cannot be written now
    10: "io",  # SQLITE_IOERR
    13: "full",  # SQLITE_FULL: the disk, or max_page_count
    14: "io",  # SQLITE_CANTOPEN: the journal or WAL cannot be opened
    15: "locked",  # SQLITE_PROTOCOL: WAL locking raced (retryable)
}
# First and longest pause between tries of an operation that found the file locked.
_BUSY_RETRY = (0.005, 0.1)


def classify(exc: sqlite3.Error) -> StoreError:
    """The store error for a ``sqlite3`` exception: unavailable (may pass) or a plain error."""
    code = getattr(exc, "sqlite_errorcode", None)
    reason = _UNAVAILABLE.get(code & 0xFF) if isinstance(code, int) else None
    if reason is None and isinstance(exc, sqlite3.OperationalError):
        # Older builds name no code; the messages are SQLite's own.
        text = str(exc).lower()
        if "locked" in text:
            reason = "locked"
        elif "full" in text:
            reason = "full"
        elif "disk i/o" in text or "readonly" in text:
            reason = "io"
    if reason is not None:
        return StoreUnavailable(reason, f"SQLite: {exc}")
    return StoreError(f"SQLite: {type(exc).__name__}: {exc}")


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class _SqliteDatabase(Database):
    backend = "sqlite"

    def __init__(self, path: str, timeout: float) -> None:
        # check_same_thread=False: worker threads take turns (SqlStore's lock).
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a claim is
        # exactly one explicit transaction.
        self.conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=timeout
        )
        self.conn.row_factory = _dict_row
        self.timeout = timeout

    def run(self, fn: Callable[[Database], _T]) -> _T:
        """Run ``fn``; while the file is locked, try again until ``timeout`` has passed.

        Safe to repeat: a locked file fails a statement (or a transaction,
        rolled back whole) before it changed anything.
        """
        deadline = time.monotonic() + self.timeout
        pause = _BUSY_RETRY[0]
        while True:
            try:
                return fn(self)
            except sqlite3.Error as exc:
                error = classify(exc)
                locked = isinstance(error, StoreUnavailable) and error.reason == "locked"
                if locked and time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, _BUSY_RETRY[1])
                    continue
                raise error from exc

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
            self.conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (locked, full) leaves the transaction open:
            # roll it back too, or the next BEGIN would fail.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def encode_ts(self, when: datetime) -> str:
        return when.strftime(_TS_FORMAT)

    def decode_ts(self, value: Any) -> datetime:
        return datetime.strptime(value, _TS_FORMAT).replace(tzinfo=UTC)

    def close(self) -> None:
        self.conn.close()


class _SqliteSchema(SchemaEditor):
    """Migrations on a SQLite connection; the version is the file's ``PRAGMA user_version``."""

    types = _TYPES

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    def add_column(self, table: str, name: str, decl: str) -> None:
        # SQLite has no ADD COLUMN IF NOT EXISTS.
        have = {row["name"] for row in self.conn.execute(f"PRAGMA table_info({table})")}
        if name not in have:
            self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def version(self) -> int:
        row = self.conn.execute("PRAGMA user_version").fetchone()
        return int(row["user_version"])

    def set_version(self, migration: Migration) -> None:
        # A pragma takes no parameters; the version is our own integer. Part
        # of the transaction: rolled back with the migration's statements.
        self.conn.execute(f"PRAGMA user_version = {int(migration.version)}")


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file's schema up to :data:`~outdial.store.migrations.LATEST`."""
    editor = _SqliteSchema(conn)
    database = f"the SQLite store {path}"
    found = editor.version()
    check_version(found, database)
    if found == LATEST:
        return  # the common case: no write lock taken, so opening never waits on a daemon
    # BEGIN IMMEDIATE: of two processes opening an old file at once, the second
    # waits here and then finds it migrated (migrate reads the version again).
    conn.execute("BEGIN IMMEDIATE")
    try:
        migrate(editor, database)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


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

    def __init__(self, path: str | Path, settings: StoreSettings | None = None) -> None:
        """Open (or create) the file and its tables; raises :class:`StoreError` if it cannot."""
        self.path = str(path)
        if self.path != ":memory:":
            _private_file(self.path)
        settings = settings or StoreSettings()
        try:
            db = _SqliteDatabase(self.path, settings.statement_timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from None
        try:
            conn = db.conn
            # How long one statement waits for a lock another connection holds.
            conn.execute(f"PRAGMA busy_timeout = {round(settings.statement_timeout * 1000)}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, self.path)
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from None
        except StoreError:
            db.close()
            raise
        super().__init__(db)
