"""The default store: one SQLite file, stdlib ``sqlite3``, WAL mode.

The store itself is :class:`~outdial.store.sql.SqlStore`; this module connects,
creates (or upgrades) the tables with :mod:`outdial.store.migrations` (the
file's schema version is its ``PRAGMA user_version``), and says how SQLite
differs. Every operation runs on the one shared connection, one at a time
(``SqlStore``'s lock). SQLite serialises writers anyway, and ``BEGIN
IMMEDIATE`` takes the write lock at the start of every transaction, so two
processes on the same file cannot both pick the same contact either.

Where an operation runs, and how it commits (the kinds are ``SqlStore``'s):

- reads (``READ``) and call-state writes (``CALL_STATE``) run **inline**, on
  the event loop's thread: a few microseconds of SQL, where the worker-thread
  hop costs over a hundred. They run with ``busy_timeout = 0``, so a lock
  another connection holds (``outdial contacts import``, another daemon)
  fails them at once with nothing changed; they then run in the worker thread
  like any other operation, waiting for the lock there. In WAL mode readers
  take no lock a writer holds, so reads rarely meet one at all;
- call-state writes commit with ``synchronous = NORMAL``: in WAL mode no fsync
  at commit, so nothing on the loop waits for the disk. Such a commit survives
  a crash of the process; a power loss may undo it (and any commit after it,
  up to the next durable one, which makes everything before it durable too).
  What that costs, and why it is safe, ``SqlStore.record_placed`` says.
  Inline commits never checkpoint the WAL (``wal_autocheckpoint = 0`` while
  they run: a checkpoint syncs the file); after ``_INLINE_COMMITS`` of them in
  a row, the next call-state write runs in the thread, where the checkpoint
  may happen, so the WAL cannot grow without bound;
- a dial's claim (``CLAIM``) commits with ``synchronous = FULL``: it is on
  disk before its dial is sent, which exactly-once depends on. It runs inline
  (``busy_timeout = 0``, no checkpoint, counted with the call-state writes)
  while the file's recent claims committed fast
  (:class:`~outdial.store.disksync.SyncTimes`, from every claim's commit time
  wherever it ran), else in the worker thread;
- everything else (``DURABLE``) and whole-table reads (``SCAN``) run in the
  worker thread with the full ``busy_timeout``; durable writes commit with
  ``synchronous = FULL``.

The connection's pragmas are switched between operations, never inside a
transaction (where SQLite refuses to change ``synchronous``), and only when
they change. Call-state writes commit with NORMAL only in WAL mode (or
``:memory:``), where that is crash-safe; in a rollback journal every write is
FULL. Inline operations are tried only then, and not on a network file system
(where WAL cannot work and any read may stall): there every operation runs
in the thread.
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
from outdial.store.disksync import SyncTimes
from outdial.store.migrations import (
    LATEST,
    ColumnTypes,
    Migration,
    SchemaEditor,
    check_version,
    migrate,
)
from outdial.store.sql import (
    CALL_STATE,
    CLAIM,
    DURABLE,
    READ,
    SCAN,
    Database,
    OperationKind,
    Result,
    SqlStore,
    WouldWait,
)

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
# Writes committed inline (call-state writes and claims made on the loop; no
# WAL checkpoint) before the next one is sent to the thread, where the
# checkpoint it may owe blocks nobody; any commit made in the thread resets the
# count. Each writes a few pages: this many stay well under the default
# 1000-page checkpoint threshold.
_INLINE_COMMITS = 100
# PRAGMA synchronous values.
_FULL, _NORMAL = 2, 1
# Mount types on which a read may stall on the network: never inline there.
_NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs"}
)


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
        self._busy_ms = round(timeout * 1000)
        # SQLite's own default; SqliteStore reads the file's setting at open.
        self.checkpoint_pages = 1000
        #: Whether call-state writes may commit with synchronous=NORMAL (WAL
        #: mode, where that survives a crash); SqliteStore decides at open.
        self.relaxed = False
        # The pragmas as last set on the connection (absent: not set by us yet).
        self._pragmas: dict[str, int] = {}
        # Call-state commits and claims made inline since the last write in the thread.
        self._inline_commits = 0
        #: How fast claims have lately committed: whether the next may run inline.
        self.sync_times = SyncTimes()
        # How long the last transaction's COMMIT took (None: it made none).
        self._commit_seconds: float | None = None

    def _pragma(self, name: str, value: int) -> None:
        """Set a connection pragma unless it has that value already (a statement saved)."""
        if self._pragmas.get(name) != value:
            self.conn.execute(f"PRAGMA {name} = {int(value)}")
            self._pragmas[name] = value

    def run(self, fn: Callable[[Database], _T], kind: OperationKind = DURABLE) -> _T:
        """Run ``fn``; while the file is locked, try again until ``timeout`` has passed.

        The worker thread's way: the full ``busy_timeout``, WAL checkpoints
        as SQLite makes them, and ``synchronous`` FULL unless ``kind`` is a
        call-state write (NORMAL). Safe to repeat: a locked file fails a
        statement (or a transaction, rolled back whole) before it changed
        anything.
        """
        deadline = time.monotonic() + self.timeout
        pause = _BUSY_RETRY[0]
        while True:
            try:
                self._pragma("busy_timeout", self._busy_ms)
                if kind not in (READ, SCAN):
                    relaxed = kind == CALL_STATE and self.relaxed
                    self._pragma("synchronous", _NORMAL if relaxed else _FULL)
                    self._pragma("wal_autocheckpoint", self.checkpoint_pages)
                self._commit_seconds = None
                result = fn(self)
                if kind == CLAIM:
                    self._record_sync()
                if kind not in (READ, SCAN):
                    self._inline_commits = 0  # any checkpoint due was made by this commit
                return result
            except sqlite3.Error as exc:
                error = classify(exc)
                locked = isinstance(error, StoreUnavailable) and error.reason == "locked"
                if locked and time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, _BUSY_RETRY[1])
                    continue
                raise error from exc

    def run_as(self, fn: Callable[[Database], _T], kind: OperationKind) -> _T:
        """In the worker thread: :meth:`run`, committing as ``kind`` asks."""
        return self.run(fn, kind)

    def run_inline(self, fn: Callable[[Database], _T], kind: OperationKind) -> _T:
        """On the event loop's thread: ``fn`` with ``busy_timeout = 0``; :class:`WouldWait`
        when it meets a lock (or may owe a checkpoint), so the thread runs it instead.

        Reads; call-state writes committed with ``synchronous = NORMAL`` and
        no checkpoint; claims committed with ``FULL`` and no checkpoint,
        while the disk syncs fast. Any other kind is never run here.
        """
        if kind not in (READ, CALL_STATE, CLAIM) or not self.inline:
            raise WouldWait(kind)
        if kind == CLAIM and not self.sync_times.fast:
            raise WouldWait("slow disk")  # its fsync would hold up the loop: the thread's
        writes = kind != READ
        if writes and self._inline_commits >= _INLINE_COMMITS:
            raise WouldWait("checkpoint")  # this one commits in the thread, checkpointing there
        self._commit_seconds = None
        try:
            self._pragma("busy_timeout", 0)
            if writes:
                self._pragma("synchronous", _FULL if kind == CLAIM else _NORMAL)
                self._pragma("wal_autocheckpoint", 0)
            result = fn(self)
        except sqlite3.Error as exc:
            error = classify(exc)
            if isinstance(error, StoreUnavailable) and error.reason == "locked":
                # Nothing changed (a locked statement, or a transaction rolled
                # back whole): the thread waits for the lock and tries again.
                raise WouldWait(str(exc)) from exc
            raise error from exc
        if writes:
            self._inline_commits += 1
        if kind == CLAIM:
            self._record_sync()
        return result

    def _record_sync(self) -> None:
        """A claim's COMMIT time (where it waits for the disk) to :attr:`sync_times`.

        Only the COMMIT: the statements before it, in the worker thread, also
        wait for the interpreter's lock between them whenever the loop is busy,
        and that is not the disk. Timing them all kept claims in the thread
        while the loop had work (their times there 1.1-1.3 ms at the median
        against 1 ms allowed, on a disk whose fsync took 0.4 ms), each paying the
        hop (1.7-2.0 ms a claim there against about 1.0 on the loop).
        """
        if self._commit_seconds is not None:
            self.sync_times.record(self._commit_seconds)

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
            started = time.monotonic()
            self.conn.execute("COMMIT")
            self._commit_seconds = time.monotonic() - started
        except BaseException:
            # A COMMIT that failed (locked, full) leaves the transaction open:
            # roll it back too, or the next BEGIN would fail.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def encode_ts(self, when: datetime) -> str:
        return when.strftime(_TS_FORMAT)

    def decode_ts(self, value: Any) -> datetime:
        if isinstance(value, str) and value.endswith("Z"):
            # Our own fixed format, which fromisoformat reads (with "Z") since
            # Python 3.11 at a fiftieth of strptime's cost: every call event
            # reads a time or two.
            return datetime.fromisoformat(value)
        return datetime.strptime(value, _TS_FORMAT).replace(tzinfo=UTC)  # raises as it did

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


def _on_network_fs(path: str, mounts_file: str = "/proc/self/mounts") -> bool:
    """Whether ``path`` is on a network file system (by the longest mount point over it)."""
    try:
        target = os.path.realpath(path)
        best, kind = "", ""
        with open(mounts_file, encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return False  # not Linux: WAL mode (below) is what tells a local file then
    return kind.split(".")[0] in _NETWORK_FS or kind.startswith("fuse.sshfs")


class SqliteStore(SqlStore):
    """:class:`~outdial.store.base.Store` on one SQLite file (or ``:memory:``)."""

    def __init__(
        self, path: str | Path, settings: StoreSettings | None = None, *, fast_path: bool = True
    ) -> None:
        """Open (or create) the file and its tables; raises :class:`StoreError` if it cannot.

        ``fast_path=False`` is the store as it was before operations ran
        inline: every one in the worker thread, every commit FULL (the
        benchmark's baseline; see :class:`~outdial.store.sql.SqlStore`).
        """
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
                row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                journal = str(row["journal_mode"]).lower() if row else ""
                # NORMAL commits are crash-safe only in WAL mode; see the module docs.
                db.relaxed = journal == "wal"
                db.inline = db.relaxed and not _on_network_fs(self.path)
            else:
                db.relaxed = db.inline = True  # no file: nothing to lock or to sync
            pages = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
            if pages and int(pages["wal_autocheckpoint"]) > 0:
                db.checkpoint_pages = int(pages["wal_autocheckpoint"])
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, self.path)
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from None
        except StoreError:
            db.close()
            raise
        super().__init__(db, fast_path=fast_path)
