"""The daemon while its database goes away and comes back, against the faithful fake.

One agent on the ready topic works through a list of answered contacts, so it
dials all the time; its database then fails as operators see it fail:
PostgreSQL restarted (fast and immediate), stopped and started again, the
daemon's connections terminated (``pg_terminate_backend``), its backend hung
(SIGSTOP), and a SQLite file locked by another process. Each time the daemon
must not exit, must dial again within 5 s of the database answering, and
must never call a contact twice (every contact answers, so each is called
exactly once: a second call to one number in the fake's record is a
duplicate).

PostgreSQL runs privately for these tests (``pg_cluster.py``): the shared
server is never restarted.

The SQLite lock runs on both platforms (the ``backend`` fixture); the
PostgreSQL faults stay on Genesys: how the daemon rides out its store does not
depend on the platform, and each of them restarts or stops a server, which is
the slow part of this suite.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from backends import Backend, Fake, GenesysBackend, backend_fixture  # noqa: F401 (fixture)
from daemon_harness import NUMBERS, Watched, daemon_for
from pg_cluster import Cluster, make_cluster, remove_cluster

from outdial.fake import Outcome
from outdial.store import StoreSettings, open_store

pytestmark = pytest.mark.anyio

#: Done means: dialing again within this many seconds of the database answering.
RECOVERY = 5.0
SETTINGS = StoreSettings(statement_timeout=2.0, connect_timeout=2.0)
GENESYS = GenesysBackend()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One private PostgreSQL server for the module (each test has a database of its own)."""
    server = make_cluster()
    try:
        yield server
    finally:
        remove_cluster(server)


@pytest.fixture
async def database(cluster: Cluster) -> str:
    """A fresh database on the private server (started again if a test left it stopped)."""
    await cluster.ensure_running()
    name = f"outdial_{uuid.uuid4().hex[:12]}"
    await cluster.sql(f"CREATE DATABASE {name}")
    return name


@asynccontextmanager
async def dialing(
    url: str, settings: StoreSettings = SETTINGS, backend: Backend = GENESYS
) -> AsyncIterator[tuple[Fake, Watched]]:
    """The daemon on ``url`` dialing one ready agent through ``NUMBERS`` (all answer)."""
    [agent] = backend.agent_ids(1)
    async with backend.start([agent]) as fake:
        for number in NUMBERS:
            fake.set_outcome(number, Outcome.ANSWERED)
        config = fake.config(url)
        contacts = [(agent, n) for n in NUMBERS]
        async with (
            open_store(url, settings) as store,
            daemon_for(config, contacts=contacts, store=store) as run,
        ):
            await run.until("call.ended", 2)  # dialing, one call after the other
            yield fake, run
            assert run.log.named("daemon.stopped") == []  # it never exited
            assert run.log.named("daemon.refresh_failed") == []


def assert_each_contact_called_once(fake: Fake) -> None:
    dialed = fake.numbers()
    assert len(dialed) == len(set(dialed)), f"a contact was called twice: {dialed}"
    assert fake.requests == len(dialed)


async def dials_again(run: Watched, fault: float, answered: float, already: int) -> float:
    """Seconds from ``answered`` to the first dial placed after the ``already`` before it.

    That dial must come after the ``fault`` began; it may come a little
    before ``answered`` (the daemon can reconnect before ``pg_ctl`` has seen
    the server is up), which counts as no wait at all.
    """
    await run.until("dial.placed", already + 1)
    placed = run.times("dial.placed")[already]
    assert placed > fault, "that dial was placed before the fault"
    return max(0.0, placed - answered)


async def in_flight(fake: Fake, run: Watched, hold: float) -> int:
    """Hold the answer to the next dial for ``hold`` s; return once it is sent.

    Returns how many dials are placed with it (it included): the next one
    after that is a dial made after the fault.
    """
    sent = fake.requests
    fake.hold_next_dial_answer(hold)
    await fake.wait_for(lambda: fake.requests > sent, timeout=10)
    return sent + 1


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_postgresql_restart_while_dialing(
    cluster: Cluster, database: str, mode: str
) -> None:
    async with dialing(cluster.url(database)) as (platform, run):
        # A dial is in flight as the server restarts: its answer may come while it is away.
        placed = await in_flight(platform, run, 0.2)
        fault = anyio.current_time()
        await cluster.restart(mode)
        answered = anyio.current_time()
        resumed = await dials_again(run, fault, answered, placed)
        await run.until("call.ended", placed + 1)  # the call in flight was tracked to its end
    print(f"\nrestart -m {mode}: dialed again {resumed:.2f}s after the server answered")
    assert resumed <= RECOVERY
    assert_each_contact_called_once(platform)


@pytest.mark.postgres
async def test_postgresql_stopped_then_started_while_a_dial_is_in_flight(
    cluster: Cluster, database: str
) -> None:
    async with dialing(cluster.url(database)) as (platform, run):
        placed = await in_flight(platform, run, 1.0)
        fault = anyio.current_time()
        await cluster.stop("fast")
        # The daemon notices, says so once, fails closed, and keeps the answer
        # that comes back meanwhile until it can write it.
        await run.until("store.unavailable")
        await run.until("dial.write_deferred")
        assert not run.daemon.store_healthy
        # The sockets stay up, and a gap in them meanwhile is taken in stride:
        # its refresh reads nothing now, and waits for the store.
        assert platform.platform.connected_channels
        gaps = run.daemon.gaps_handled
        await platform.break_events()
        await run.log.until(lambda: run.daemon.gaps_handled > gaps)
        await run.until("daemon.refreshed", unread=1)
        requests = platform.requests
        await cluster.start()
        answered = anyio.current_time()
        resumed = await dials_again(run, fault, answered, placed)
        assert run.daemon.store_healthy
        await run.until("call.ended", placed + 1)
        [down] = run.log.named("store.unavailable")
        [back] = run.log.named("store.recovered")
    print(
        f"\nstop/start: dialed again {resumed:.2f}s after the server answered "
        f"(store recovered {back['_at'] - answered:+.2f}s from then; down: {down['reason']})"
    )
    assert requests == placed  # nothing was sent while it was away
    assert resumed <= RECOVERY
    assert_each_contact_called_once(platform)


@pytest.mark.postgres
async def test_the_daemons_connection_terminated_while_dialing(
    cluster: Cluster, database: str
) -> None:
    async with dialing(cluster.url(database)) as (platform, run):
        placed = await in_flight(platform, run, 0.2)
        assert await cluster.terminate(database) == 1
        terminated = anyio.current_time()
        resumed = await dials_again(run, terminated, terminated, placed)
        await run.until("call.ended", placed + 1)
    print(f"\npg_terminate_backend: dialed again {resumed:.2f}s after")
    assert resumed <= RECOVERY
    assert_each_contact_called_once(platform)


@pytest.mark.postgres
async def test_a_hung_backend_is_given_up_within_the_statement_timeout(
    cluster: Cluster, database: str
) -> None:
    timeout = 1.0
    settings = StoreSettings(statement_timeout=timeout, connect_timeout=2.0)
    async with dialing(cluster.url(database), settings) as (platform, run):
        [pid] = await cluster.backends(database)
        os.kill(pid, signal.SIGSTOP)  # our private server's backend: it answers nothing now
        stopped = anyio.current_time()
        try:
            await run.until("store.unavailable")
        finally:
            os.kill(pid, signal.SIGCONT)
        continued = anyio.current_time()
        [down] = run.log.named("store.unavailable")
        placed = len(run.log.named("dial.placed"))
        resumed = await dials_again(run, stopped, continued, placed)
    print(
        f"\nhung backend: given up after {down['seconds']:.2f}s of statement_timeout "
        f"{timeout}s ({down['_at'] - stopped:.2f}s after SIGSTOP); dialed again {resumed:.2f}s "
        "after SIGCONT"
    )
    assert down["reason"] == "timeout"
    assert timeout <= down["seconds"] <= timeout + 0.25
    assert resumed <= RECOVERY
    assert_each_contact_called_once(platform)


async def test_a_sqlite_file_locked_by_another_process(tmp_path: Path, backend: Backend) -> None:
    path = tmp_path / "outdial.db"
    settings = StoreSettings(statement_timeout=0.5)
    async with dialing(f"sqlite:///{path}", settings, backend) as (platform, run):
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the write lock, held
            await run.until("store.unavailable")
            assert not run.daemon.store_healthy
            requests = platform.requests
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        released = anyio.current_time()
        assert platform.requests == requests
        placed = len(run.log.named("dial.placed"))
        resumed = await dials_again(run, released, released, placed)
        [down] = run.log.named("store.unavailable")
    print(f"\nsqlite locked: dialed again {resumed:.2f}s after the lock was released")
    assert down["reason"] == "locked"
    assert resumed <= RECOVERY
    assert_each_contact_called_once(platform)
