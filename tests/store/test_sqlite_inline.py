"""SQLite's two ways to run an operation: inline on the event loop, or in the worker thread.

What a user would notice: claims reach the disk (``synchronous=FULL``) before a
dial is sent, call-state writes do not wait for it (``NORMAL``), and a file
another process holds locked never stalls the event loop: the write waits in
the worker thread while everything else goes on, and completes when the lock
is let go.

How the tests see it: a temporary trigger on each table calls back into
Python inside the writing transaction, which reads ``PRAGMA synchronous`` as
that transaction commits with it, and notes the thread it runs on.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from outdial.store import CallRecord, ContactRow, SqliteStore, StoreSettings, StoreUnavailable
from outdial.store.base import ContactOutcome
from outdial.store.disksync import SyncTimes

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AGENT = "agent-1"
FULL, NORMAL = 2, 1


@dataclass(frozen=True)
class Write:
    """One row written, as seen from inside its transaction."""

    table: str
    synchronous: int
    on_loop: bool  # the event loop's thread (the test's main thread), not a worker


class Watched:
    """Every row written to the store's tables, with the transaction's ``synchronous``."""

    def __init__(self, store: SqliteStore) -> None:
        conn: sqlite3.Connection = store._db.conn  # type: ignore[attr-defined]
        self.writes: list[Write] = []
        self.statements: list[tuple[str, bool]] = []

        def seen(table: str) -> int:
            # Nested in the trigger's statement: the same connection, the same transaction.
            synchronous = int(conn.execute("PRAGMA synchronous").fetchone()["synchronous"])
            self.writes.append(Write(table, synchronous, _on_main_thread()))
            return 0

        conn.create_function("outdial_test_seen", 1, seen)
        for table in ("dial_claims", "calls", "contacts"):
            for event in ("INSERT", "UPDATE"):
                conn.execute(
                    f"CREATE TEMP TRIGGER seen_{table}_{event.lower()} AFTER {event}"
                    f" ON main.{table} BEGIN SELECT outdial_test_seen('{table}'); END"
                )
        # Every statement, and which thread ran it (the pragmas the store sets included).
        conn.set_trace_callback(lambda sql: self.statements.append((sql, _on_main_thread())))

    def take(self, *, distinct: bool = True) -> list[Write]:
        """The writes since the last call, in order (each distinct one once)."""
        writes, self.writes = self.writes, []
        self.statements.clear()
        return list(dict.fromkeys(writes)) if distinct else writes

    def threads_of(self, prefix: str) -> list[bool]:
        """For each statement starting with ``prefix`` so far: did it run on the loop?"""
        return [loop for sql, loop in self.statements if sql.startswith(prefix)]


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def call(state: str = "dialing", *, contact_id: int | None = 1) -> CallRecord:
    ended = NOW if state == "ended" else None
    outcome = "answered" if state == "ended" else None
    return CallRecord("conv-1", AGENT, contact_id, "+441212345601", state, outcome, NOW, ended)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outdial.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path, StoreSettings(statement_timeout=5.0))
    await store.import_contacts([ContactRow(AGENT, "+441212345601")])
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
def holder(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file (another process, to SQLite: its own locks)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


async def test_a_first_claim_commits_with_fsync_in_the_thread_call_state_without_on_the_loop(
    store: SqliteStore,
) -> None:
    watched = Watched(store)
    claimed = await store.claim_for_dial("k1", "r", AGENT, NOW, contact="next")
    assert claimed.claim is not None
    # The claim and its contact moving to dialing: durable before any dial is sent.
    assert watched.take() == [
        Write("dial_claims", FULL, on_loop=False),
        Write("contacts", FULL, on_loop=False),
    ]
    await store.record_placed("k1", call("dialing"))
    assert watched.take() == [
        Write("dial_claims", NORMAL, on_loop=True),
        Write("calls", NORMAL, on_loop=True),
    ]
    assert await store.record_call_progress(call("connected")) is None
    assert watched.take() == [Write("calls", NORMAL, on_loop=True)]
    settled = await store.record_call_progress(
        call("ended"), contact_outcome=ContactOutcome("answered", counted=True)
    )
    assert settled is not None
    assert settled.state == "done"
    assert watched.take() == [
        Write("calls", NORMAL, on_loop=True),
        Write("contacts", NORMAL, on_loop=True),
    ]
    # What decides a second send is durable again, whatever ran before it.
    await store.mark_unknown("k1", "timeout", NOW)
    assert watched.take() == [Write("dial_claims", FULL, on_loop=False)]
    assert await store.retry_claim("k1", 0, NOW)
    assert watched.take() == [Write("dial_claims", FULL, on_loop=False)]
    # Reads of a few rows run on the loop; whole-table ones in the thread.
    assert (await store.get_call("conv-1")) is not None
    assert watched.threads_of("SELECT") == [True]
    watched.take()
    assert len(await store.contacts()) == 1
    assert watched.threads_of("SELECT") == [False]
    # Everything the claim wrote is there, as written.
    got = await store.get_claim("k1")
    assert got is not None
    assert (got.state, got.conversation_id, got.retries) == ("claimed", "conv-1", 1)


async def test_the_baseline_runs_everything_in_the_thread_with_fsync(path: Path) -> None:
    store = SqliteStore(path, fast_path=False)
    try:
        await store.import_contacts([ContactRow(AGENT, "+441212345601")])
        watched = Watched(store)
        assert await store.record_call_progress(call("connected")) is None
        assert watched.take() == [Write("calls", FULL, on_loop=False)]
        assert (await store.get_call("conv-1")) is not None
        assert watched.threads_of("SELECT") == [False]
    finally:
        await store.aclose()


async def test_a_memory_store_runs_inline_too() -> None:
    store = SqliteStore(":memory:")
    try:
        watched = Watched(store)
        await store.record_call_progress(call("connected", contact_id=None))
        assert [w.on_loop for w in watched.take()] == [True]
    finally:
        await store.aclose()


async def test_a_write_meeting_another_process_lock_waits_in_the_thread_not_on_the_loop(
    path: Path, holder: sqlite3.Connection
) -> None:
    # A wait far longer than the test may take: had the write waited for the
    # lock on the loop, nothing else would run until it gave up (then the
    # deadline below has passed, and the test fails).
    store = SqliteStore(path, StoreSettings(statement_timeout=30.0))
    try:
        await _waits_in_the_thread(store, holder)
    finally:
        await store.aclose()


async def _waits_in_the_thread(store: SqliteStore, holder: sqlite3.Connection) -> None:
    watched = Watched(store)
    holder.execute("BEGIN IMMEDIATE")  # as `outdial contacts import` holds it mid-import
    written = anyio.Event()
    outcome: dict[str, Any] = {}

    async def write() -> None:
        try:
            outcome["contact"] = await store.record_call_progress(call("connected"))
        except Exception as exc:  # reported below, not swallowed
            outcome["error"] = exc
        written.set()

    async def meanwhile() -> None:
        # The loop keeps running while the write waits: this task gets round
        # many times (a write that waited on the loop would let it run only
        # once the lock were gone, which only this task lets go of).
        ticks = 0
        while ticks < 200:
            assert not written.is_set(), f"the write finished under the lock: {outcome}"
            ticks += 1
            await anyio.lowlevel.checkpoint()
        outcome["ticks_while_waiting"] = ticks
        holder.execute("ROLLBACK")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            tg.start_soon(meanwhile)
        await written.wait()
    assert "error" not in outcome, outcome
    assert outcome["ticks_while_waiting"] == 200
    # Tried on the loop first (met the lock at once), then done in the thread.
    assert watched.threads_of("BEGIN IMMEDIATE")[0] is True
    assert watched.threads_of("BEGIN IMMEDIATE")[-1] is False
    assert watched.take() == [Write("calls", NORMAL, on_loop=False)]
    stored = await store.get_call("conv-1")
    assert stored is not None
    assert stored.state == "connected"
    assert store.health.healthy


async def test_reads_go_on_while_another_process_holds_the_write_lock(
    store: SqliteStore, holder: sqlite3.Connection
) -> None:
    await store.record_call_progress(call("connected"))
    watched = Watched(store)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE calls SET state = 'ended'")  # not committed: unseen
    with anyio.fail_after(1):
        stored = await store.get_call("conv-1")
    assert stored is not None
    assert stored.state == "connected"
    assert watched.threads_of("SELECT") == [True]  # WAL: a reader takes no writer's lock


async def test_an_inline_write_locked_out_too_long_makes_the_store_unavailable(
    path: Path, holder: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="outdial")
    store = SqliteStore(path, StoreSettings(statement_timeout=0.3))
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as caught:
            await store.record_call_progress(call("connected"))
        assert (caught.value.reason, caught.value.operation) == ("locked", "record_call_progress")
        assert caught.value.elapsed is not None
        assert caught.value.elapsed >= 0.3  # the thread's wait, not the loop's failing try
        assert not store.health.healthy
        assert "store.unavailable" in caplog.text
        holder.execute("ROLLBACK")
        store.health.probe_interval = 0.0
        assert await store.record_call_progress(call("connected")) is None
        assert store.health.healthy
        assert "store.recovered" in caplog.text
    finally:
        await store.aclose()


async def test_a_claim_commits_with_fsync_on_the_loop_only_while_the_disk_syncs_fast(
    store: SqliteStore,
) -> None:
    db: Any = store._db
    db.sync_times = SyncTimes(samples=1)
    db.sync_times.record(0.0002)  # claims have lately committed in 0.2 ms
    watched = Watched(store)
    claimed = await store.claim_for_dial("k1", "r", AGENT, NOW, contact="next")
    assert claimed.claim is not None
    assert watched.take() == [
        Write("dial_claims", FULL, on_loop=True),
        Write("contacts", FULL, on_loop=True),
    ], "durable all the same: the fsync is made before the dial is sent"
    assert db.sync_times.seen == 2, "its own commit time is measured too"
    db.sync_times.record(0.050)  # a 50 ms fsync: the disk turned slow
    claimed = await store.claim_for_dial("k2", "r", "agent-2", NOW, phone_number="+441212345602")
    assert claimed.claim is not None
    assert watched.take() == [Write("dial_claims", FULL, on_loop=False)]
    assert db.sync_times.seen == 4, "measured in the thread as well, so it can come back"


async def test_inline_commits_leave_the_wal_checkpoint_to_the_thread_now_and_then(
    store: SqliteStore,
) -> None:
    from outdial.store.sqlite import _INLINE_COMMITS

    watched = Watched(store)
    for i in range(2 * _INLINE_COMMITS + 2):
        await store.record_call_progress(call("dialing" if i % 2 else "connected"))
    on_loop = [w.on_loop for w in watched.take(distinct=False)]
    # Every _INLINE_COMMITS-th and one more goes to the thread, where a checkpoint may sync.
    assert on_loop.count(False) == 2
    assert on_loop.index(False) == _INLINE_COMMITS
    # A claim (durable, in the thread: no commit times yet) starts the count again.
    await store.claim_for_dial("k1", "r", AGENT, NOW, contact="next")
    for _ in range(_INLINE_COMMITS):
        await store.record_call_progress(call("connected"))
    calls = [w.on_loop for w in watched.take(distinct=False) if w.table == "calls"]
    assert calls == [True] * _INLINE_COMMITS


def test_a_file_on_a_network_file_system_is_never_run_inline(tmp_path: Path) -> None:
    from outdial.store.sqlite import _on_network_fs

    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /srv/nfs nfs4 rw 0 0\n"
        "//host/share /srv/my\\040share cifs rw 0 0\n"
        "/dev/sdb1 /srv/nfs/local xfs rw 0 0\n"
    )
    assert not _on_network_fs("/var/lib/outdial/o.db", str(mounts))
    assert _on_network_fs("/srv/nfs/o.db", str(mounts))
    assert _on_network_fs("/srv/my share/o.db", str(mounts))
    assert not _on_network_fs("/srv/nfs/local/o.db", str(mounts))  # the longest mount wins
    assert not _on_network_fs("/srv/nfsother/o.db", str(mounts))  # a prefix is not a mount
    assert not _on_network_fs("/x.db", str(tmp_path / "absent"))  # unknown: WAL mode decides


async def test_the_store_says_whether_it_answers_on_the_loop(path: Path) -> None:
    """The daemon hands events to worker tasks only when the store would make it wait."""
    fast, baseline = SqliteStore(path), SqliteStore(path, fast_path=False)
    try:
        assert fast.answers_inline
        assert not baseline.answers_inline
    finally:
        await fast.aclose()
        await baseline.aclose()


async def test_inline_operations_run_back_to_back_yet_a_loop_of_them_lets_others_run(
    store: SqliteStore,
) -> None:
    """A dial reads its agent's contacts and claims one without a trip through the event
    loop between them (each trip put every other agent's events before the dial); a task
    doing nothing but store calls still lets the others run every few of them."""
    from outdial.store.sql import _INLINE_RUN

    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    operations = 10 * _INLINE_RUN
    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()  # it has started
        before = turns
        for _ in range(operations):
            assert await store.get_call("conv-none") is None
        let_run = turns - before
        tg.cancel_scope.cancel()
    assert let_run < operations, "every inline operation went through the loop"
    assert let_run >= operations // _INLINE_RUN - 1, f"the others ran {let_run} times only"


class _Clock:
    """``time`` for the store's module: monotonic() says what the test set."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_only_a_claims_commit_counts_as_the_disks_time_not_the_statements_before_it(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outdial.store.sqlite as sqlite_module
    from outdial.store.sql import CLAIM

    clock = _Clock()
    monkeypatch.setattr(sqlite_module, "time", clock)
    db: Any = store._db
    db.sync_times = SyncTimes(samples=1)

    def slow_statements(database: Any) -> None:
        with database.transaction():
            database.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('t', 1)")
            # 50 ms before the COMMIT: in the worker thread, waiting for the
            # interpreter's lock while the loop is busy; not the disk.
            clock.now += 0.050

    db.run(slow_statements, CLAIM)
    assert db.sync_times.seen == 1
    assert db.sync_times.fast, "its COMMIT took no time: the disk is fast"

    def advance(sql: str) -> None:
        if sql == "COMMIT":
            clock.now += 0.050  # what a slow fsync looks like from here: COMMIT returns late

    db.conn.set_trace_callback(advance)
    db.run(slow_statements, CLAIM)
    assert not db.sync_times.fast, "a 50 ms COMMIT is a slow disk: claims go to the thread"
