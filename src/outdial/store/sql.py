"""What the SQL backends share: the statements and the Store itself.

:class:`SqlStore` implements every :class:`~outdial.store.base.Store` method
once, as plain blocking code against a :class:`Database`: one connection that
runs a statement, runs many, opens a transaction, and says how a time is
stored. ``sqlite.py`` and ``postgres.py`` supply only that (and how to connect
and where the schema's version is kept); everything above it is the same for
both, and so are the tables (:mod:`outdial.store.migrations`).

Each store operation runs whole under an anyio lock, so one connection serves
one operation at a time, and either in a worker thread (``anyio.to_thread``)
or, where the backend allows it, inline on the event loop's own thread; both
run it start to end without an ``await``, so a transaction never spans one.
The thread hop costs far more than the few microseconds of SQL a typical
operation is (about 135 us against 5 us), which is why quick operations skip
it. Each method says what kind of operation it is (:data:`OperationKind`):

- :data:`READ`, a bounded read (``due_contacts``, ``get_call``, ``get_claim``,
  ``open_claims`` of one agent, ``dial_context``, ``active_calls`` and the
  like): inline where the backend allows;
- :data:`SCAN`, a read of a whole table (``contacts``, ``call_summary``,
  ``contacts_summary``, ``open_claims`` of every agent): always in the thread;
- :data:`CALL_STATE`, a write of a call's progress (``record_call_progress``,
  ``upsert_call``, ``record_placed``): may commit without an fsync, and so
  inline where the backend allows. Losing one in a power loss costs a re-read
  of the call from the platform, never a second dial (see ``record_placed``);
- :data:`CLAIM`, a dial's claim (``claim_for_dial``): committed durably
  before the dial is sent; inline only where the backend finds its disk
  syncs fast (an fsync on a slow disk would stall the loop), else in the
  thread;
- :data:`DURABLE`, everything else and the default (``claim_dial``,
  ``mark_unknown``, ``mark_failed``, ``retry_claim``, contacts, leases,
  do-not-call): committed durably, always in the thread (an fsync on the
  loop would stall it).

An inline operation never waits: when it would (another process holds the
database's write lock) the backend says so before it changed anything
(:class:`WouldWait`) and the operation runs in the thread instead, waiting and
retrying there as any other. Only SQLite runs anything inline (see
:mod:`outdial.store.sqlite`); PostgreSQL runs everything in the thread, its
commits all durable. What keeps claims exact across processes is the
database's own locking, which :meth:`SqlStore.claim_dial` explains.

A database that fails is the backend's to classify (:meth:`Database.run`
raises :class:`~outdial.store.base.StoreUnavailable`, never the driver's own
exception) and :attr:`SqlStore.health`'s to remember: while it is away,
operations fail at once and one every half second probes it first (see
:mod:`outdial.store.health`). ``store.unavailable`` is logged once when it
goes away, ``store.recovered`` when it answers again, whichever thread the
operation ran on (a probe always runs in the worker thread).

Statements are written with ``?`` placeholders; a backend with another
paramstyle translates them. Apart from the schema's column types, the one
dialect difference in the SQL is :attr:`Database.lock_next_contact`.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from outdial.log import emit
from outdial.store.base import (
    AgentLease,
    CallAdvanced,
    CallChange,
    CallRecord,
    Claim,
    ClaimState,
    Contact,
    ContactOutcome,
    ContactRow,
    ContactsSummary,
    ContactState,
    DialClaim,
    DialContext,
    DueContacts,
    NumberCap,
    StoreUnavailable,
    UserCallSummary,
)
from outdial.store.health import StoreHealth
from outdial.store.timings import CLAIM_BOUNDS, Timings

__all__ = [
    "CALL_STATE",
    "CLAIM",
    "DURABLE",
    "READ",
    "SCAN",
    "Database",
    "OperationKind",
    "Result",
    "Row",
    "SqlStore",
    "WouldWait",
]

_T = TypeVar("_T")

log = logging.getLogger("outdial.store")

# The probe's row: larger than a page, so that taking it needs the database to
# grow (a full disk fails it, as it fails a claim). Always rolled back.
_PROBE_KEY = "probe:" + "x" * 5000
#: Inline operations in a row of which only the last is a checkpoint (see
#: ``SqlStore._after_inline``): a task doing nothing but store calls still lets
#: the others run every few of them.
_INLINE_RUN = 4

#: A result row, by column name.
Row = Mapping[str, Any]

#: What a store operation does, which says where it may run and how its commit
#: is made durable (see the module docs and :meth:`SqlStore._run`).
OperationKind = Literal["read", "scan", "call_state", "claim", "durable"]
#: A read of a few rows by key or index (an agent's, or the calls in progress):
#: quick enough for the event loop's own thread, where the backend allows it.
READ: OperationKind = "read"
#: A read that may visit a whole table (every contact, every call): always in
#: the worker thread, however quick the backend.
SCAN: OperationKind = "scan"
#: A write of a call's progress: may commit without waiting for the disk
#: (SQLite: ``synchronous=NORMAL``), and so without leaving the event loop.
CALL_STATE: OperationKind = "call_state"
#: A dial's claim: committed durably (SQLite: ``synchronous=FULL``, an fsync)
#: before its request is sent; on the event loop's thread only where the
#: backend finds its disk syncs fast (see :mod:`outdial.store.disksync`).
CLAIM: OperationKind = "claim"
#: Everything else (contacts, leases, settling claims, the default): committed
#: durably (SQLite: ``synchronous=FULL``, an fsync), always in the worker thread.
DURABLE: OperationKind = "durable"


class WouldWait(Exception):
    """Raised by :meth:`Database.run_inline`: the operation would have to wait; nothing changed.

    The store then runs it in the worker thread, where waiting is allowed.
    """


@dataclass(frozen=True, slots=True)
class Result:
    """What a statement returned: its rows (none for a write) and how many rows it changed."""

    rows: list[Row]
    rowcount: int

    def one(self) -> Row | None:
        """The first row, if any."""
        return self.rows[0] if self.rows else None


class Database(ABC):
    """One open connection, used by one thread at a time; what differs between backends."""

    #: Appended to the query that picks an agent's next due contact inside a
    #: claim's transaction, to lock the row it returns (empty when the
    #: transaction already holds the database's write lock).
    lock_next_contact: str = ""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """Run one statement (``?`` placeholders) and fetch what it returns."""

    @abstractmethod
    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> int:
        """Run one statement per parameter row; returns the rows changed in all."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[object]:
        """A transaction for the ``with`` body: committed at its end, rolled back on an error."""

    @abstractmethod
    def encode_ts(self, when: datetime) -> Any:
        """A timezone-aware UTC time as the database stores it."""

    @abstractmethod
    def decode_ts(self, value: Any) -> datetime:
        """A stored time back as a timezone-aware UTC ``datetime``."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    #: The backend's name in log events.
    backend: str = "sql"

    def run(self, fn: Callable[[Database], _T]) -> _T:
        """Run one store operation (``fn``) in this worker thread; the backends wrap it.

        A backend takes its connection for the operation here, and turns
        every failure of its driver into :class:`~outdial.store.base.StoreUnavailable`
        (the database did not take it) or :class:`~outdial.store.base.StoreError`.
        """
        return fn(self)

    #: Whether :meth:`run_inline` may be tried at all (the backend and the
    #: database allow it); False makes every operation a worker-thread one.
    inline: bool = False

    def run_as(self, fn: Callable[[Database], _T], kind: OperationKind) -> _T:
        """Run one operation of ``kind`` in this worker thread; by default as :meth:`run` does.

        A backend that commits some kinds less durably says so here.
        """
        return self.run(fn)

    def run_inline(self, fn: Callable[[Database], _T], kind: OperationKind) -> _T:
        """Run ``fn`` on the calling thread (the event loop's) without ever waiting.

        Raises :class:`WouldWait` when it cannot finish without waiting (a
        lock another connection holds, a commit that must reach the disk):
        nothing was changed, and the caller runs it with :meth:`run_as` in
        a worker thread instead. Other failures are classified as in
        :meth:`run`. The default never runs anything inline.
        """
        raise WouldWait(kind)

    def probe(self) -> None:
        """Raise :class:`~outdial.store.base.StoreUnavailable` unless the database takes a write.

        The write (a row larger than a page) is rolled back. Run while the
        store is away, before the operation that found the probe due.
        """
        self.run(_probe_write)

    def ts(self, when: datetime) -> Any:
        """``when`` as stored; a naive ``datetime`` is refused."""
        if when.tzinfo is None:
            raise ValueError(f"naive datetime {when!r}: the store keeps timezone-aware UTC times")
        return self.encode_ts(when.astimezone(UTC))

    def opt_ts(self, when: datetime | None) -> Any:
        """``when`` as stored, or None."""
        return None if when is None else self.ts(when)

    def parse_ts(self, value: Any) -> datetime | None:
        """A stored time (or NULL) back as a ``datetime`` (or None)."""
        return None if value is None else self.decode_ts(value)


_CONTACT_COLUMNS = (
    "id, user_id, phone_number, name, external_id, timezone, "
    "attempts, last_outcome, next_due_at, state"
)
_CALL_COLUMNS = (
    "conversation_id, user_id, contact_id, phone_number, state, outcome, updated_at, ended_at"
)
# A claim with its contact (if any) as it is now, in one row. The request is
# read as JSON text whatever column type holds it.
_CLAIM_SELECT = (
    "SELECT k.key, k.rule, k.user_id, k.contact_id, k.phone_number, k.state,"
    " k.conversation_id, k.error, k.created_at, CAST(k.request AS TEXT) AS request,"
    " k.retries, k.updated_at, k.owner, k.lease_until,"
    " c.id AS c_id, c.user_id AS c_user_id, c.phone_number AS c_phone_number,"
    " c.name AS c_name, c.external_id AS c_external_id, c.timezone AS c_timezone,"
    " c.attempts AS c_attempts, c.last_outcome AS c_last_outcome,"
    " c.next_due_at AS c_next_due_at, c.state AS c_state"
    " FROM dial_claims k LEFT JOIN contacts c ON c.id = k.contact_id"
)


def _contact(db: Database, row: Row, prefix: str = "") -> Contact:
    return Contact(
        id=int(row[f"{prefix}id"]),
        user_id=row[f"{prefix}user_id"],
        phone_number=row[f"{prefix}phone_number"],
        name=row[f"{prefix}name"],
        external_id=row[f"{prefix}external_id"],
        timezone=row[f"{prefix}timezone"],
        attempts=int(row[f"{prefix}attempts"]),
        last_outcome=row[f"{prefix}last_outcome"],
        next_due_at=db.parse_ts(row[f"{prefix}next_due_at"]),
        state=cast(ContactState, row[f"{prefix}state"]),
    )


def _claim(db: Database, row: Row) -> Claim:
    request = json.loads(row["request"]) if row["request"] else {}
    return Claim(
        key=row["key"],
        rule=row["rule"],
        user_id=row["user_id"],
        contact=_contact(db, row, "c_") if row["c_id"] is not None else None,
        phone_number=row["phone_number"],
        state=cast(ClaimState, row["state"]),
        created_at=db.decode_ts(row["created_at"]),
        conversation_id=row["conversation_id"],
        error=row["error"],
        request=request if isinstance(request, dict) else {},
        retries=int(row["retries"]),
        updated_at=db.parse_ts(row["updated_at"]),
        owner=row["owner"],
        lease_until=db.parse_ts(row["lease_until"]),
    )


def _call(db: Database, row: Row) -> CallRecord:
    return CallRecord(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        contact_id=None if row["contact_id"] is None else int(row["contact_id"]),
        phone_number=row["phone_number"],
        state=row["state"],
        outcome=row["outcome"],
        updated_at=db.decode_ts(row["updated_at"]),
        ended_at=db.parse_ts(row["ended_at"]),
    )


class _NoContact(Exception):
    """Raised inside a claim's transaction to roll it back: no contact is due."""


class _NumberCapped(Exception):
    """Raised inside a claim's transaction to roll it back: the number had its calls."""

    def __init__(self, free_at: datetime) -> None:
        super().__init__(free_at.isoformat())
        self.free_at = free_at


#: Claims that stand for a call to their number (placed, or possibly placed).
_CALLING_STATES = "('claimed', 'placed', 'unknown')"


class _Rollback(Exception):
    """Raised inside the probe's transaction to roll its write back."""


def _probe_write(db: Database) -> None:
    try:
        with db.transaction():
            db.execute("INSERT INTO store_meta (key, value) VALUES (?, 0)", (_PROBE_KEY,))
            raise _Rollback
    except _Rollback:
        pass


def _operation_name(fn: Callable[..., Any]) -> str:
    """The store method an operation's closure belongs to (``SqlStore.claim_dial.<locals>.run``)."""
    parts = fn.__qualname__.split(".")
    return parts[1] if len(parts) > 2 and parts[2] == "<locals>" else fn.__qualname__


class SqlStore:
    """:class:`~outdial.store.base.Store` on a :class:`Database`; the backends subclass it.

    ``fast_path=False`` runs every operation in the worker thread and commits
    every write durably, whatever the backend allows: the store as it was
    before operations ran inline, kept as ``bench/store_ops.py``'s baseline.
    """

    def __init__(self, db: Database, *, fast_path: bool = True) -> None:
        self._db = db
        self._inline = fast_path and db.inline
        self._fast_path = fast_path
        # fast_acquire: a free lock is taken without yielding to the loop (an
        # inline operation then costs no loop round trip); still a cancel point.
        # Without inline operations the lock stays as it was.
        self._lock = anyio.Lock(fast_acquire=self._inline)
        self._closed = False
        # Inline operations since the last one that was a checkpoint.
        self._inline_run = 0
        #: Whether the database answers; see :mod:`outdial.store.health`.
        self.health = StoreHealth()
        #: How long dials' claims took (lock, statements, durable commit).
        self.claim_timings = Timings(CLAIM_BOUNDS)

    @property
    def answers_inline(self) -> bool:
        """Whether reads and call-state writes run inline, on the loop (see ``_run``)."""
        return self._inline

    async def _run(self, fn: Callable[[Database], _T], kind: OperationKind = DURABLE) -> _T:
        """Run one operation (:meth:`_run_op`); a claim's time goes to :attr:`claim_timings`."""
        if kind != CLAIM:
            return await self._run_op(fn, kind)
        started = time.monotonic()
        try:
            return await self._run_op(fn, kind)
        finally:
            # Lock wait and durable commit included: what the dial waited for.
            self.claim_timings.record(time.monotonic() - started)

    async def _run_op(self, fn: Callable[[Database], _T], kind: OperationKind) -> _T:
        """Run one operation: inline when ``kind`` and the backend allow, else in a thread.

        Under the lock either way: one operation at a time on the connection,
        and an inline one never awaits, so a transaction never spans an await.
        """
        operation = _operation_name(fn)
        health = self.health
        if not self._fast_path:
            kind = DURABLE  # the baseline: everything as it was
        # While the database is away, fail at once rather than queue behind a
        # probe that may take a whole connect timeout (re-checked under the lock).
        if not self._closed and not health.admits(time.monotonic()):
            raise health.down_error(time.monotonic(), operation)
        inline = self._inline and kind in (READ, CALL_STATE, CLAIM)
        if inline and health.healthy and not self._closed and not self._lock.locked():
            # Nobody on the connection (no thread operation under way or waiting):
            # an inline operation never awaits, so it is alone on it without the
            # lock, whose every take and release asks for the current task (2 %
            # of the daemon's CPU at 10,000 events/s, three store calls a dial).
            try:
                result = self._attempt_inline(fn, kind, operation)
            except WouldWait:
                # It would wait (another process's lock, a slow disk): the thread's,
                # under the lock, below, without trying it inline a second time.
                inline = False
            else:
                await self._after_inline(kind)
                return result
        async with self._lock:
            if self._closed:
                raise RuntimeError("store is closed")
            if not health.healthy:
                if not health.take_probe(time.monotonic()):
                    raise health.down_error(time.monotonic(), operation)
                await self._attempt(self._db.probe, "probe")
            db = self._db
            if not (inline and health.healthy):
                return await self._attempt(lambda: db.run_as(fn, kind), operation)
            try:
                result = self._attempt_inline(fn, kind, operation)
            except WouldWait:
                # It met a lock (nothing changed): wait for it in the thread.
                return await self._attempt(lambda: db.run_as(fn, kind), operation)
        await self._after_inline(kind)
        return result

    async def _after_inline(self, kind: OperationKind) -> None:
        """After an inline operation (the lock let go first): every ``_INLINE_RUN``-th one
        is a checkpoint, as a thread hop was, so other tasks run before the caller goes
        on (none starves behind a loop of store calls). The others go on at once: a
        dial reads its agent's contacts and claims one back to back, and a trip
        through the loop after each put every other agent's pending events between
        the trigger and its request (two of the four trips a dial made beyond the
        bare client's, at ``bench/scale.py``'s p50 of 2-3 ms). A write's checkpoint is shielded, as
        the thread's wait is: what it committed is returned, never lost to a
        cancellation (the caller's next checkpoint sees that)."""
        self._inline_run += 1
        if self._inline_run < _INLINE_RUN:
            return
        self._inline_run = 0
        if kind == READ:
            await anyio.lowlevel.checkpoint()
        else:
            await anyio.lowlevel.cancel_shielded_checkpoint()

    def _attempt_inline(
        self, fn: Callable[[Database], _T], kind: OperationKind, operation: str
    ) -> _T:
        """Run ``fn`` on this thread; report to :attr:`health` as :meth:`_attempt` does."""
        started = time.monotonic()
        try:
            result = self._db.run_inline(fn, kind)
        except StoreUnavailable as exc:
            self._failed(exc, operation, started)
            raise
        self._succeeded(operation)
        return result

    async def _attempt(self, call: Callable[[], _T], operation: str) -> _T:
        """Run ``call`` in a worker thread; report how it went to :attr:`health` (and the log)."""
        started = time.monotonic()
        try:
            result = await anyio.to_thread.run_sync(call)
        except StoreUnavailable as exc:
            self._failed(exc, operation, started)
            raise
        self._succeeded(operation)
        return result

    def _failed(self, exc: StoreUnavailable, operation: str, started: float) -> None:
        """An operation found the database away: tell :attr:`health`, log it if it just went."""
        now = time.monotonic()
        exc.operation = exc.operation or operation
        exc.elapsed = round(now - started, 3)
        if self.health.failed(exc, now):
            emit(
                log,
                "store.unavailable",
                logging.WARNING,
                backend=self._db.backend,
                operation=exc.operation,
                reason=exc.reason,
                seconds=exc.elapsed,
                error=str(exc),
            )

    def _succeeded(self, operation: str) -> None:
        """An operation went through: if that ends an outage, log it and tell the listeners."""
        if self.health.healthy:
            return  # the common case, kept cheap (nothing to record)
        outage = self.health.succeeded(time.monotonic())
        if outage is not None:
            emit(
                log,
                "store.recovered",
                logging.WARNING,
                backend=self._db.backend,
                operation=operation,
                outage=round(outage, 3),
            )
            self.health.notify_recovered()

    # contacts

    async def import_contacts(self, rows: Iterable[ContactRow]) -> int:
        """Insert or update contacts by ``(user_id, phone_number)``; returns rows written."""
        batch = [(r.user_id, r.phone_number, r.name, r.external_id, r.timezone) for r in rows]

        def run(db: Database) -> int:
            if batch:
                with db.transaction():
                    # A re-import refreshes the descriptive columns only: attempts
                    # and state belong to the dialer and must survive a re-import.
                    db.executemany(
                        "INSERT INTO contacts (user_id, phone_number, name, external_id, timezone)"
                        " VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (user_id, phone_number) DO UPDATE SET"
                        " name = excluded.name, external_id = excluded.external_id,"
                        " timezone = excluded.timezone",
                        batch,
                    )
                    _bump(db, "contacts")
            return len(batch)

        return await self._run(run)

    async def contacts(self, user_id: str | None = None) -> list[Contact]:
        """All contacts, or one agent's, by id."""

        def run(db: Database) -> list[Contact]:
            if user_id is None:
                result = db.execute(f"SELECT {_CONTACT_COLUMNS} FROM contacts ORDER BY id")
            else:
                result = db.execute(
                    f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE user_id = ? ORDER BY id",
                    (user_id,),
                )
            return [_contact(db, row) for row in result.rows]

        return await self._run(run, SCAN)

    async def get_contact(self, contact_id: int) -> Contact | None:
        """One contact by id."""

        def run(db: Database) -> Contact | None:
            row = db.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE id = ?", (contact_id,)
            ).one()
            return _contact(db, row) if row else None

        return await self._run(run, READ)

    async def remove_contacts(
        self, user_id: str, phone_numbers: Iterable[str] | None = None
    ) -> int:
        """Delete the agent's contacts not in a call (only ``phone_numbers``, when given)."""
        numbers = None if phone_numbers is None else sorted(set(phone_numbers))

        def run(db: Database) -> int:
            where, params = _contacts_where(user_id, numbers)
            with db.transaction():
                ids = [
                    int(row["id"])
                    for row in db.execute(
                        f"SELECT id FROM contacts WHERE {where} AND state <> 'dialing'", params
                    ).rows
                ]
                if ids:
                    marks = ", ".join("?" for _ in ids)
                    # Past claims keep their history (number caps count it), not the contact.
                    db.execute(
                        f"UPDATE dial_claims SET contact_id = NULL WHERE contact_id IN ({marks})",
                        ids,
                    )
                    db.execute(f"DELETE FROM contacts WHERE id IN ({marks})", ids)
                    _bump(db, "contacts")
            return len(ids)

        return await self._run(run)

    async def reset_contacts(
        self, user_id: str | None = None, phone_numbers: Iterable[str] | None = None
    ) -> int:
        """Contacts not in a call made due now, with no attempts and no outcome."""
        numbers = None if phone_numbers is None else sorted(set(phone_numbers))

        def run(db: Database) -> int:
            where, params = _contacts_where(user_id, numbers)
            with db.transaction():
                count = db.execute(
                    "UPDATE contacts SET state = 'due', attempts = 0, last_outcome = NULL,"
                    f" next_due_at = NULL WHERE {where} AND state <> 'dialing'",
                    params,
                ).rowcount
                if count:
                    # Ready agents with nothing to call look again (the daemon polls this).
                    _bump(db, "contacts")
            return count

        return await self._run(run)

    async def due_contacts(
        self,
        user_id: str,
        now: datetime,
        limit: int,
        *,
        key: str | None = None,
        number_cap: NumberCap | None = None,
    ) -> DueContacts:
        """The agent's due contacts in list order, their do-not-call entries, the next due time.

        One read: contacts ``due`` at ``now`` (never dialed first, then by due
        time, then by id), at most ``limit``; which of their numbers are on the
        do-not-call list; the earliest ``next_due_at`` after ``now``; which of
        their numbers ``number_cap`` holds back, and until when; and whether
        ``key`` is claimed already (then nothing else is read).
        """

        def run(db: Database) -> DueContacts:
            if key is not None and _is_claimed(db, key):
                return DueContacts([], claimed=True)
            at = db.ts(now)
            rows = db.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts"
                " WHERE user_id = ? AND state = 'due'"
                " AND (next_due_at IS NULL OR next_due_at <= ?)"
                " ORDER BY next_due_at IS NOT NULL, next_due_at, id LIMIT ?",
                (user_id, at, limit),
            ).rows
            contacts = [_contact(db, row) for row in rows]
            listed: set[str] = set()
            numbers = sorted({c.phone_number for c in contacts})
            if numbers:
                marks = ", ".join("?" for _ in numbers)
                listed = {
                    row["phone_number"]
                    for row in db.execute(
                        f"SELECT phone_number FROM do_not_call WHERE phone_number IN ({marks})",
                        numbers,
                    ).rows
                }
            later = db.execute(
                "SELECT MIN(next_due_at) AS due FROM contacts"
                " WHERE user_id = ? AND state = 'due' AND next_due_at > ?",
                (user_id, at),
            ).one()
            next_due = db.parse_ts(later["due"]) if later else None
            capped: dict[str, datetime] = {}
            if number_cap is not None and numbers:
                for number, (calls, oldest) in _number_calls(db, numbers, number_cap.since).items():
                    if calls >= number_cap.count:
                        capped[number] = oldest + number_cap.window
            return DueContacts(contacts, frozenset(listed), next_due, capped=capped)

        return await self._run(run, READ)

    async def contacts_generation(self) -> int:
        """A number that moves on whenever contacts are imported (by any process)."""

        def run(db: Database) -> int:
            row = db.execute("SELECT value FROM store_meta WHERE key = 'contacts'").one()
            return int(row["value"]) if row else 0

        return await self._run(run, READ)

    async def last_ended_call(self, user_id: str) -> CallRecord | None:
        """The agent's call that ended last, if any."""

        def run(db: Database) -> CallRecord | None:
            row = db.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE user_id = ? AND ended_at IS NOT NULL"
                " ORDER BY ended_at DESC, conversation_id DESC LIMIT 1",
                (user_id,),
            ).one()
            return _call(db, row) if row else None

        return await self._run(run, READ)

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
        """Claim ``key`` (and the agent's oldest due contact for ``contact="next"``).

        One transaction: insert the claim unless its key exists, then (for
        ``contact="next"``) pick and lock the agent's oldest due contact, move
        it to ``dialing`` and name it in the claim; with no contact due, roll
        it all back. Of two processes claiming the same key, the second's
        insert waits for the first's transaction and then inserts nothing (or,
        if the first rolled back, goes ahead). The pick is locked by
        :attr:`Database.lock_next_contact` (PostgreSQL: ``FOR UPDATE SKIP
        LOCKED``, so claims for one agent under different keys neither share
        a contact nor wait for each other) or by the transaction itself
        (SQLite: ``BEGIN IMMEDIATE`` holds the file's write lock).
        """
        if (contact is None) == (phone_number is None):
            raise ValueError('claim_dial needs exactly one of contact="next" or phone_number')
        request_json = json.dumps(dict(request), sort_keys=True) if request else None

        def run(db: Database) -> Claim | None:
            try:
                with db.transaction():
                    # None: claimed before, a duplicate trigger.
                    return _insert_claim(
                        db, key, rule, user_id, now, contact, phone_number, request_json
                    )
            except _NoContact:
                return None  # rolled back: no contact, so no claim either

        return await self._run(run)

    async def claim_for_dial(
        self,
        key: str,
        rule: str,
        user_id: str,
        now: datetime,
        *,
        contact: Literal["next"] | int | None = None,
        phone_number: str | None = None,
        request: Mapping[str, Any] | None = None,
        number_cap: NumberCap | None = None,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> DialClaim:
        """Known key? agent busy? else :meth:`claim_dial`, plus its number's do-not-call entry.

        One worker-thread hop and one transaction for everything the dialer
        needs before it sends. The "busy" reads are taken inside the claim's
        transaction (SQLite: under the file's write lock, so no other process
        claims for the agent in between; PostgreSQL: read committed, as
        strict as reading them just before). The claim itself is exactly
        :meth:`claim_dial`'s, so what keeps it exact across processes is the
        same: a key inserted elsewhere meanwhile still comes back
        ``"claimed"``. ``contact`` may name one contact by id (the one the
        dialer chose): it is taken only while still due, else ``"no_contact"``.
        With ``number_cap``, a claim whose number has had that many calls
        since its window began is rolled back as ``"number_limit"``. ``owner``
        and ``lease_until`` say whose claim it is while it is in flight.
        """
        if (contact is None) == (phone_number is None):
            raise ValueError('claim_for_dial needs exactly one of contact="next" or phone_number')
        request_json = json.dumps(dict(request), sort_keys=True) if request else None

        def run(db: Database) -> DialClaim:
            try:
                with db.transaction():
                    if _is_claimed(db, key):
                        return DialClaim(None, "claimed")
                    open_claims = _open_claims_of(db, user_id)
                    active = _active_call(db, user_id)
                    if open_claims or active is not None:
                        return DialClaim(None, "busy", open_claims, active)
                    claim = _insert_claim(
                        db,
                        key,
                        rule,
                        user_id,
                        now,
                        contact,
                        phone_number,
                        request_json,
                        owner,
                        lease_until,
                    )
                    if claim is None:  # inserted by another process since the check
                        return DialClaim(None, "claimed")
                    if number_cap is not None:
                        _check_number_cap(db, key, claim.phone_number or "", number_cap)
                    listed = _is_do_not_call(db, claim.phone_number or "")
            except _NoContact:
                return DialClaim(None, "no_contact")  # rolled back: no claim either
            except _NumberCapped as capped:
                return DialClaim(None, "number_limit", free_at=capped.free_at)
            return DialClaim(claim, do_not_call=listed)

        return await self._run(run, CLAIM)

    async def get_claim(self, key: str) -> Claim | None:
        """The claim under ``key``, with its contact as it is now."""

        def run(db: Database) -> Claim | None:
            row = db.execute(_CLAIM_SELECT + " WHERE k.key = ?", (key,)).one()
            return _claim(db, row) if row else None

        return await self._run(run, READ)

    async def open_claims(self, user_id: str | None = None) -> list[Claim]:
        """Claims ``claimed`` or ``unknown`` (of one agent), oldest first."""

        def run(db: Database) -> list[Claim]:
            where = " WHERE k.state IN ('claimed', 'unknown')"
            params: tuple[str, ...] = ()
            if user_id is not None:
                where += " AND k.user_id = ?"
                params = (user_id,)
            result = db.execute(_CLAIM_SELECT + where + " ORDER BY k.created_at, k.key", params)
            return [_claim(db, row) for row in result.rows]

        return await self._run(run, READ if user_id is not None else SCAN)

    async def dial_context(self, key: str, user_id: str) -> DialContext:
        """Is ``key`` claimed, the agent's open claims, its active call: one operation."""

        def run(db: Database) -> DialContext:
            return DialContext(
                claimed=_is_claimed(db, key),
                open_claims=_open_claims_of(db, user_id),
                active_call=_active_call(db, user_id),
            )

        return await self._run(run, READ)

    async def retry_claim(
        self,
        key: str,
        retries: int,
        now: datetime,
        *,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        """``unknown`` with ``retries`` retries -> ``claimed`` with one more (and ``owner``'s
        lease); True if it was."""

        def run(db: Database) -> bool:
            result = db.execute(
                "UPDATE dial_claims SET state = 'claimed', retries = retries + 1,"
                " updated_at = ?, owner = ?, lease_until = ?"
                " WHERE key = ? AND state = 'unknown' AND retries = ?",
                (db.ts(now), owner, db.opt_ts(lease_until), key, retries),
            )
            return result.rowcount == 1

        return await self._run(run)

    async def renew_leases(self, owner: str, until: datetime) -> int:
        """Extend the leases of ``owner``'s claims still in flight; returns how many."""

        def run(db: Database) -> int:
            return db.execute(
                "UPDATE dial_claims SET lease_until = ? WHERE owner = ? AND state = 'claimed'",
                (db.ts(until), owner),
            ).rowcount

        return await self._run(run)

    async def take_agent_leases(
        self,
        owner: str,
        agents: Iterable[str],
        now: datetime,
        until: datetime,
        *,
        gone: Iterable[str] = (),
    ) -> set[str]:
        """Take or renew the leases of ``agents`` that are free, expired, ``owner``'s or
        a ``gone`` owner's; returns those ``owner`` holds. One transaction, each agent
        one upsert whose condition reads the row it replaces (PostgreSQL locks it, SQLite
        holds the file's write lock): of two takers of a free lease, the second sees the
        first's and leaves it."""
        wanted = sorted(set(agents))
        stopped = sorted(set(gone) - {owner})
        if not wanted:
            return set()
        stopped_sql = (
            f" OR agent_leases.owner IN ({', '.join('?' for _ in stopped)})" if stopped else ""
        )
        sql = (
            "INSERT INTO agent_leases (agent_id, owner, lease_until) VALUES (?, ?, ?)"
            " ON CONFLICT (agent_id) DO UPDATE"
            " SET owner = excluded.owner, lease_until = excluded.lease_until"
            " WHERE agent_leases.owner = excluded.owner OR agent_leases.lease_until <= ?"
            + stopped_sql
        )

        def run(db: Database) -> set[str]:
            with db.transaction():
                for agent in wanted:
                    db.execute(sql, (agent, owner, db.ts(until), db.ts(now), *stopped))
                held = db.execute(
                    "SELECT agent_id FROM agent_leases WHERE owner = ?"
                    f" AND agent_id IN ({', '.join('?' for _ in wanted)})",
                    (owner, *wanted),
                )
            return {row["agent_id"] for row in held.rows}

        return await self._run(run)

    async def agent_leases(self, agents: Iterable[str]) -> list[AgentLease]:
        """The current leases of ``agents``, in agent order."""
        wanted = sorted(set(agents))
        if not wanted:
            return []

        def run(db: Database) -> list[AgentLease]:
            found = db.execute(
                "SELECT agent_id, owner, lease_until FROM agent_leases"
                f" WHERE agent_id IN ({', '.join('?' for _ in wanted)}) ORDER BY agent_id",
                wanted,
            )
            return [
                AgentLease(row["agent_id"], row["owner"], db.decode_ts(row["lease_until"]))
                for row in found.rows
            ]

        return await self._run(run, READ)

    async def release_agent_leases(self, owner: str, agents: Iterable[str] | None = None) -> int:
        """Delete ``owner``'s leases (of ``agents``, or all); returns how many went."""
        chosen = None if agents is None else sorted(set(agents))
        if chosen is not None and not chosen:
            return 0

        def run(db: Database) -> int:
            if chosen is None:
                return db.execute("DELETE FROM agent_leases WHERE owner = ?", (owner,)).rowcount
            marks = ", ".join("?" for _ in chosen)
            return db.execute(
                f"DELETE FROM agent_leases WHERE owner = ? AND agent_id IN ({marks})",
                (owner, *chosen),
            ).rowcount

        return await self._run(run)

    async def _set_claim(
        self,
        key: str,
        state: ClaimState,
        conversation_id: str | None,
        error: str | None,
        now: datetime | None = None,
    ) -> None:
        def run(db: Database) -> None:
            _set_claim(db, key, state, conversation_id, error, now)

        await self._run(run)

    async def record_placed(self, key: str, call: CallRecord) -> None:
        """The claim is ``placed`` as ``call`` and the call is tracked: one transaction.

        A :data:`CALL_STATE` write (no fsync on SQLite), which a power loss
        may undo. That is safe because what it undoes is exactly the state of
        a process that stopped between sending a dial and hearing back, which
        the reconciler (``handlers/reconciler.py``) settles without sending
        again:

        - the claim it turns ``placed`` was committed durably before the
          request was sent (``claim_for_dial``, ``retry_claim``: DURABLE), so
          after the loss it is still ``claimed`` (or ``unknown``) under the
          owner that stopped, never free to be claimed afresh;
        - a ``claimed`` claim whose owner is gone (on this host: a pid no
          longer running, or a new start's nonce; elsewhere: its lease run
          out, ``reconcile.owner_gone``) needs reconciling; the reconciler
          marks it ``unknown`` (DURABLE) and looks for its call among the
          agent's calls seen on events, then in the platform's history;
        - the call is found there: a call of the agent to that number since
          the claim, which no tracked call owns (the lost write took this
          call's row with it, so no other claim holds it). ``Found`` records
          it ``placed`` again. A dial is sent again only when the platform
          still lists no call after ``settle``: the same rule, and the same
          risk, as for a process killed before this write;
        - and SQLite's WAL keeps a prefix of the commits: a durable commit
          after this one (the next claim of any agent) makes this one durable
          too, so a loss undoes only the writes since the last claim.
        """

        def run(db: Database) -> None:
            with db.transaction():
                _set_claim(db, key, "placed", call.conversation_id, None)
                _upsert_call(db, call)

        await self._run(run, CALL_STATE)

    async def mark_failed(self, key: str, error: str) -> None:
        """The claim placed nothing; ``error`` says why."""
        await self._set_claim(key, "failed", None, error)

    async def mark_unknown(self, key: str, error: str, now: datetime) -> None:
        """The claim's request may or may not have placed a call (as of ``now``)."""
        await self._set_claim(key, "unknown", None, error, now)

    async def release_contact(self, contact_id: int, next_due_at: datetime | None = None) -> None:
        """Back to ``due`` (at ``next_due_at``, or keeping its old due time), no attempt counted."""

        def run(db: Database) -> None:
            db.execute(
                "UPDATE contacts SET state = 'due', next_due_at = COALESCE(?, next_due_at)"
                " WHERE id = ?",
                (db.opt_ts(next_due_at), contact_id),
            )

        await self._run(run)

    async def close_contact(self, contact_id: int, reason: str) -> None:
        """``done`` with ``reason`` as its last outcome, no attempt counted."""

        def run(db: Database) -> None:
            db.execute(
                "UPDATE contacts SET state = 'done', last_outcome = ?, next_due_at = NULL"
                " WHERE id = ?",
                (reason, contact_id),
            )

        await self._run(run)

    async def record_outcome(
        self, contact_id: int, outcome: str, now: datetime, next_due_at: datetime | None
    ) -> None:
        """Count one attempt; ``due`` again at ``next_due_at`` or ``done`` when None."""
        state = "done" if next_due_at is None else "due"

        def run(db: Database) -> None:
            db.execute(
                "UPDATE contacts SET attempts = attempts + 1, last_outcome = ?,"
                " next_due_at = ?, state = ?, updated_at = ? WHERE id = ?",
                (outcome, db.opt_ts(next_due_at), state, db.ts(now), contact_id),
            )

        await self._run(run)

    # calls

    async def upsert_call(self, call: CallRecord) -> None:
        """Insert or replace the call by conversation id."""

        def run(db: Database) -> None:
            _upsert_call(db, call)

        await self._run(run, CALL_STATE)

    async def record_call_progress(
        self, call: CallRecord, *, contact_outcome: ContactOutcome | None = None
    ) -> Contact | None:
        """Upsert ``call`` and settle its contact by ``contact_outcome``: one transaction.

        One operation and one commit for a call event, where the call's end
        used to take an upsert, a read and a second write. A
        :data:`CALL_STATE` write (no fsync on SQLite): lost in a power loss,
        the call is still stored in an earlier, not ended state, its contact
        still ``dialing``; the daemon's refresh reads every such call again
        from the platform (``active_calls``, then the platform's view of each)
        and writes it again, its contact's outcome with it.
        """

        def run(db: Database) -> Contact | None:
            return _write_progress(db, call, contact_outcome)

        return await self._run(run, CALL_STATE)

    async def advance_call(
        self, conversation_id: str, change: Callable[[CallRecord], CallChange]
    ) -> CallAdvanced | None:
        """Read the call, ask ``change``, write what it says: one operation (a
        :data:`CALL_STATE` write, as :meth:`record_call_progress` is).

        The read is outside the write's transaction, as it was when it was an
        operation of its own: a call that does not change takes no write lock.
        The tracker's per-call lock keeps two events of one call apart.
        """

        def run(db: Database) -> CallAdvanced | None:
            row = db.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE conversation_id = ?", (conversation_id,)
            ).one()
            if row is None:
                return None
            previous = _call(db, row)
            changed = change(previous)
            if changed is None:
                return CallAdvanced(previous)
            written, outcome = changed
            return CallAdvanced(previous, written, _write_progress(db, written, outcome))

        return await self._run(run, CALL_STATE)

    async def get_call(self, conversation_id: str) -> CallRecord | None:
        """The call by conversation id."""
        return await self._one_call(" WHERE conversation_id = ?", conversation_id)

    async def active_calls(self) -> list[CallRecord]:
        """Calls not yet ended, oldest update first."""

        def run(db: Database) -> list[CallRecord]:
            result = db.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE state <> 'ended'"
                " ORDER BY updated_at, conversation_id"
            )
            return [_call(db, row) for row in result.rows]

        return await self._run(run, READ)

    async def active_call_for_user(self, user_id: str) -> CallRecord | None:
        """The agent's call not yet ended, if any."""

        def run(db: Database) -> CallRecord | None:
            return _active_call(db, user_id)

        return await self._run(run, READ)

    async def _one_call(self, where: str, param: str) -> CallRecord | None:
        def run(db: Database) -> CallRecord | None:
            row = db.execute(f"SELECT {_CALL_COLUMNS} FROM calls" + where, (param,)).one()
            return _call(db, row) if row else None

        return await self._run(run, READ)

    async def call_summary(self, since: datetime | None = None) -> list[UserCallSummary]:
        """Per agent: placed, active, outcomes, and dials the platform refused.

        ``since``: only calls (and refused dials) last updated at or after it.
        """

        def run(db: Database) -> list[UserCallSummary]:
            counts: dict[str, dict[str, int]] = {}
            calls_after = " WHERE updated_at >= ?" if since is not None else ""
            claims_after = " AND COALESCE(updated_at, created_at) >= ?" if since is not None else ""
            params = (db.ts(since),) if since is not None else ()
            for row in db.execute(
                "SELECT user_id, COUNT(*) AS placed,"
                " COUNT(*) FILTER (WHERE state <> 'ended') AS active,"
                " COUNT(*) FILTER (WHERE outcome = 'answered') AS answered,"
                " COUNT(*) FILTER (WHERE outcome = 'busy') AS busy,"
                " COUNT(*) FILTER (WHERE outcome = 'no_answer') AS no_answer,"
                " COUNT(*) FILTER (WHERE outcome = 'failed') AS failed,"
                " COUNT(*) FILTER (WHERE outcome = 'agent_unavailable') AS agent_unavailable"
                f" FROM calls{calls_after} GROUP BY user_id",
                params,
            ).rows:
                counts[row["user_id"]] = {k: int(v) for k, v in row.items() if k != "user_id"}
            for row in db.execute(
                "SELECT user_id, COUNT(*) AS n FROM dial_claims"
                f" WHERE state = 'failed'{claims_after} GROUP BY user_id",
                params,
            ).rows:
                counts.setdefault(row["user_id"], {})["dial_errors"] = int(row["n"])
            return [UserCallSummary(user_id=u, **c) for u, c in sorted(counts.items())]

        return await self._run(run, SCAN)

    async def contacts_summary(self) -> ContactsSummary:
        """Contacts per state."""

        def run(db: Database) -> ContactsSummary:
            result = db.execute("SELECT state, COUNT(*) AS n FROM contacts GROUP BY state")
            found = {row["state"]: int(row["n"]) for row in result.rows}
            return ContactsSummary(
                due=found.get("due", 0), dialing=found.get("dialing", 0), done=found.get("done", 0)
            )

        return await self._run(run, SCAN)

    # do not call

    async def add_do_not_call(self, numbers: Iterable[str]) -> int:
        """Add numbers; returns how many were not listed before."""
        batch = [(n,) for n in numbers]

        def run(db: Database) -> int:
            if not batch:
                return 0
            with db.transaction():
                return db.executemany(
                    "INSERT INTO do_not_call (phone_number) VALUES (?) ON CONFLICT DO NOTHING",
                    batch,
                )

        return await self._run(run)

    async def is_do_not_call(self, number: str) -> bool:
        """True when the number is listed."""

        def run(db: Database) -> bool:
            return _is_do_not_call(db, number)

        return await self._run(run, READ)

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        async with self._lock:
            if not self._closed:
                self._closed = True
                await anyio.to_thread.run_sync(self._db.close)


def _insert_claim(
    db: Database,
    key: str,
    rule: str,
    user_id: str,
    now: datetime,
    contact: Literal["next"] | int | None,
    phone_number: str | None,
    request_json: str | None,
    owner: str | None = None,
    lease_until: datetime | None = None,
) -> Claim | None:
    """Inside a transaction: claim ``key``; None if it is claimed already.

    Raises :class:`_NoContact` (roll the transaction back) when
    ``contact="next"`` finds no contact due.
    """
    at = db.ts(now)
    if not db.execute(
        "INSERT INTO dial_claims"
        " (key, rule, user_id, phone_number, state, created_at, request, owner, lease_until)"
        " VALUES (?, ?, ?, ?, 'claimed', ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (key, rule, user_id, phone_number, at, request_json, owner, db.opt_ts(lease_until)),
    ).rowcount:
        return None  # claimed before: a duplicate trigger
    picked = _take_next_contact(db, key, user_id, at, contact) if contact is not None else None
    return Claim(
        key=key,
        rule=rule,
        user_id=user_id,
        contact=picked,
        phone_number=picked.phone_number if picked else phone_number,
        state="claimed",
        created_at=db.decode_ts(at),
        request=json.loads(request_json) if request_json else {},
        owner=owner,
        lease_until=lease_until,
    )


def _write_progress(
    db: Database, call: CallRecord, outcome: ContactOutcome | None
) -> Contact | None:
    """One transaction: upsert ``call`` and, given ``outcome``, settle its contact."""
    with db.transaction():
        _upsert_call(db, call)
        if outcome is None or call.contact_id is None:
            return None
        return _settle_contact(db, call.contact_id, outcome, call.updated_at)


def _number_calls(
    db: Database, numbers: Sequence[str], since: datetime, skip_key: str = ""
) -> dict[str, tuple[int, datetime]]:
    """Per number: how many claims stand for a call to it since ``since``, the oldest when."""
    if not numbers:
        return {}
    marks = ", ".join("?" for _ in numbers)
    rows = db.execute(
        "SELECT phone_number, COUNT(*) AS calls, MIN(created_at) AS oldest FROM dial_claims"
        f" WHERE phone_number IN ({marks}) AND state IN {_CALLING_STATES}"
        " AND created_at > ? AND key <> ? GROUP BY phone_number",
        (*numbers, db.ts(since), skip_key),
    ).rows
    return {r["phone_number"]: (int(r["calls"]), db.decode_ts(r["oldest"])) for r in rows}


def _check_number_cap(db: Database, key: str, number: str, cap: NumberCap) -> None:
    """Inside a claim's transaction: raise :class:`_NumberCapped` when ``number`` is capped."""
    calls = _number_calls(db, [number], cap.since, skip_key=key).get(number)
    if calls is not None and calls[0] >= cap.count:
        raise _NumberCapped(calls[1] + cap.window)


def _contacts_where(user_id: str | None, numbers: Sequence[str] | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) for an agent's contacts, or some of their numbers."""
    clauses, params = ["1 = 1"], list[Any]()
    if user_id is not None:
        clauses.append("user_id = ?")
        params.append(user_id)
    if numbers is not None:
        clauses.append(f"phone_number IN ({', '.join('?' for _ in numbers) or 'NULL'})")
        params += numbers
    return " AND ".join(clauses), params


def _bump(db: Database, counter: str) -> None:
    """Inside a transaction: move a ``store_meta`` counter on by one."""
    db.execute(
        "INSERT INTO store_meta (key, value) VALUES (?, 1)"
        " ON CONFLICT (key) DO UPDATE SET value = store_meta.value + 1",
        (counter,),
    )


def _is_claimed(db: Database, key: str) -> bool:
    return (
        db.execute("SELECT 1 AS claimed FROM dial_claims WHERE key = ?", (key,)).one() is not None
    )


def _open_claims_of(db: Database, user_id: str) -> list[Claim]:
    result = db.execute(
        _CLAIM_SELECT + " WHERE k.state IN ('claimed', 'unknown') AND k.user_id = ?"
        " ORDER BY k.created_at, k.key",
        (user_id,),
    )
    return [_claim(db, row) for row in result.rows]


def _is_do_not_call(db: Database, number: str) -> bool:
    result = db.execute("SELECT 1 AS listed FROM do_not_call WHERE phone_number = ?", (number,))
    return result.one() is not None


def _take_next_contact(
    db: Database, key: str, user_id: str, at: Any, which: Literal["next"] | int
) -> Contact:
    """Inside claim ``key``'s transaction: move a due contact of the agent to ``dialing``.

    ``which`` is ``"next"`` (the oldest due contact) or a contact id (that
    contact, if it is the agent's and still due).
    """
    if which == "next":
        # NULL next_due_at (never dialed) sorts first: due since import.
        row = db.execute(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts"
            " WHERE user_id = ? AND state = 'due'"
            " AND (next_due_at IS NULL OR next_due_at <= ?)"
            " ORDER BY next_due_at IS NOT NULL, next_due_at, id LIMIT 1" + db.lock_next_contact,
            (user_id, at),
        ).one()
    else:
        row = db.execute(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts"
            " WHERE id = ? AND user_id = ? AND state = 'due'"
            " AND (next_due_at IS NULL OR next_due_at <= ?)" + db.lock_next_contact,
            (which, user_id, at),
        ).one()
    if row is None:
        raise _NoContact
    db.execute(
        "UPDATE contacts SET state = 'dialing', updated_at = ? WHERE id = ?", (at, row["id"])
    )
    db.execute(
        "UPDATE dial_claims SET contact_id = ?, phone_number = ? WHERE key = ?",
        (row["id"], row["phone_number"], key),
    )
    return _contact(db, {**row, "state": "dialing"})


def _set_claim(
    db: Database,
    key: str,
    state: ClaimState,
    conversation_id: str | None,
    error: str | None,
    now: datetime | None = None,
) -> None:
    result = db.execute(
        "UPDATE dial_claims SET state = ?,"
        " conversation_id = COALESCE(?, conversation_id), error = ?,"
        " updated_at = COALESCE(?, updated_at) WHERE key = ?",
        (state, conversation_id, error, db.opt_ts(now), key),
    )
    if result.rowcount == 0:
        raise KeyError(f"no dial claim {key!r}")


def _upsert_call(db: Database, call: CallRecord) -> None:
    db.execute(
        f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (conversation_id) DO UPDATE SET"
        " user_id = excluded.user_id, contact_id = excluded.contact_id,"
        " phone_number = excluded.phone_number, state = excluded.state,"
        " outcome = excluded.outcome, updated_at = excluded.updated_at,"
        " ended_at = excluded.ended_at",
        (
            call.conversation_id,
            call.user_id,
            call.contact_id,
            call.phone_number,
            call.state,
            call.outcome,
            db.ts(call.updated_at),
            db.opt_ts(call.ended_at),
        ),
    )


def _settle_contact(
    db: Database, contact_id: int, outcome: ContactOutcome, now: datetime
) -> Contact | None:
    """Inside a transaction: count (or release) the contact's attempt; None if no contact."""
    row = db.execute(f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE id = ?", (contact_id,)).one()
    if row is None:
        return None
    if not outcome.counted:
        # Never reached the contact: back to due, keeping its attempts and due time.
        db.execute("UPDATE contacts SET state = 'due' WHERE id = ?", (contact_id,))
        return _contact(db, {**row, "state": "due"})
    attempts = int(row["attempts"]) + 1
    used_up = outcome.max_attempts is not None and attempts >= outcome.max_attempts
    due = None if used_up else outcome.retry_at
    state = "done" if due is None else "due"
    db.execute(
        "UPDATE contacts SET attempts = attempts + 1, last_outcome = ?,"
        " next_due_at = ?, state = ?, updated_at = ? WHERE id = ?",
        (outcome.outcome, db.opt_ts(due), state, db.ts(now), contact_id),
    )
    return _contact(
        db,
        {
            **row,
            "attempts": attempts,
            "last_outcome": outcome.outcome,
            "next_due_at": db.opt_ts(due),
            "state": state,
        },
    )


def _active_call(db: Database, user_id: str) -> CallRecord | None:
    row = db.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls"
        " WHERE user_id = ? AND state <> 'ended' ORDER BY updated_at DESC LIMIT 1",
        (user_id,),
    ).one()
    return _call(db, row) if row else None
