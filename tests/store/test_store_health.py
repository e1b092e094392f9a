"""A store whose database fails: classified errors, the health state, probes, recovery.

The pure parts (``StoreHealth``, the error classifiers, the PostgreSQL
connection string) are tested directly; SQLite's locked and full files for
real; PostgreSQL's statement timeout on the shared server (which cancels its
own statement: nothing here stops or kills a backend of that server; the
faults that do run on a private server in ``tests/resilience``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outdial.config import StoreConfig
from outdial.store import (
    ContactRow,
    SqliteStore,
    StoreError,
    StoreHealth,
    StoreSettings,
    StoreUnavailable,
    open_store,
)
from outdial.store.sql import Database
from outdial.store.sqlite import classify as classify_sqlite

AGENT = "agent-1"


def rows(n: int, start: int = 0) -> list[ContactRow]:
    return [ContactRow(AGENT, f"+44121{i:07d}", name="n" * 200) for i in range(start, start + n)]


class Events(logging.Handler):
    """outdial's structured log events, by name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "outdial", None)
        if isinstance(fields, dict):
            self.events.append(dict(fields))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    logger = logging.getLogger("outdial")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# StoreHealth, the pure state


def test_health_fails_fast_while_away_and_probes_once_per_interval() -> None:
    health = StoreHealth(probe_interval=0.5)
    assert health.healthy
    assert health.admits(0.0)
    error = StoreUnavailable("connection", "refused")
    assert health.failed(error, 10.0) is True  # it just went away: say so once
    assert health.failed(error, 10.1) is False  # still away: not again
    assert (health.healthy, health.since, health.error) == (False, 10.0, error)
    assert not health.admits(10.2)  # not before the next probe is due
    assert not health.take_probe(10.2)
    assert health.admits(10.6)
    assert health.take_probe(10.6)  # this one probes ...
    assert not health.take_probe(10.6)  # ... and no other until the next interval
    down = health.down_error(11.0, "claim_for_dial")
    assert (down.reason, down.operation, down.elapsed) == ("down", "claim_for_dial", 0.0)
    assert "for 1.0s" in str(down)
    assert "refused" in str(down)


def test_health_recovers_once_and_tells_its_listeners() -> None:
    health = StoreHealth()
    told: list[str] = []
    remove = health.on_recovered(lambda: told.append("back"))
    assert health.succeeded(1.0) is None  # healthy all along: no recovery
    health.failed(StoreUnavailable("timeout", "hung"), 2.0)
    assert health.succeeded(5.5) == 3.5
    health.notify_recovered()
    assert told == ["back"]
    assert (health.healthy, health.since, health.error) == (True, None, None)
    remove()
    health.notify_recovered()
    assert told == ["back"]


# Classifying driver errors


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("database is locked", "locked"),
        ("database table is locked", "locked"),
        ("database or disk is full", "full"),
        ("disk I/O error", "io"),
        ("attempt to write a readonly database", "io"),
    ],
)
def test_sqlite_errors_that_may_pass_are_unavailable(message: str, reason: str) -> None:
    error = classify_sqlite(sqlite3.OperationalError(message))
    assert isinstance(error, StoreUnavailable)
    assert error.reason == reason


def test_other_sqlite_errors_are_plain_store_errors() -> None:
    error = classify_sqlite(sqlite3.IntegrityError("UNIQUE constraint failed: contacts.id"))
    assert type(error) is StoreError


def test_postgres_errors_are_classified() -> None:
    psycopg = pytest.importorskip("psycopg")
    from psycopg_pool import PoolTimeout

    from outdial.store.postgres import classify

    cases: list[tuple[BaseException, str | None]] = [
        (psycopg.OperationalError("connection refused"), "connection"),
        (psycopg.InterfaceError("the connection is closed"), "connection"),
        (psycopg.errors.AdminShutdown("terminating connection"), "connection"),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), "connection"),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), "timeout"),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), "timeout"),
        (psycopg.errors.DiskFull("could not extend file"), "full"),
        (psycopg.errors.TooManyConnections("too many clients"), "io"),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), "io"),
        (PoolTimeout("couldn't get a connection after 5.00 sec"), "connection"),
        (psycopg.errors.UniqueViolation("duplicate key"), None),
        (psycopg.errors.DeadlockDetected("deadlock detected"), None),
    ]
    for exc, reason in cases:
        error = classify(exc)
        if reason is None:
            assert type(error) is StoreError, exc
        else:
            assert isinstance(error, StoreUnavailable), exc
            assert error.reason == reason, exc
    hung = classify(psycopg.OperationalError("server closed the connection"), timeout=2.0)
    assert isinstance(hung, StoreUnavailable)
    assert hung.reason == "timeout"
    assert "within 2s" in str(hung)


def test_the_postgres_connection_string_gets_timeouts_and_keepalives() -> None:
    pytest.importorskip("psycopg")
    from psycopg.conninfo import conninfo_to_dict

    from outdial.store.postgres import conninfo_for

    settings = StoreSettings(
        statement_timeout=2.5,
        connect_timeout=0.5,
        keepalives_idle=7,
        keepalives_interval=3,
        keepalives_count=4,
    )
    url = "postgresql://outdial:s3cret@db:5433/od?options=-csearch_path%3Dmine&connect_timeout=60"
    params = conninfo_to_dict(conninfo_for(url, settings, schema="theirs"))
    assert params["options"] == (
        "-csearch_path=mine -c statement_timeout=2500 -c TimeZone=UTC -c search_path=theirs"
    )
    assert params["connect_timeout"] == "2"  # libpq's least, and [store] wins over the URL
    assert (params["keepalives"], params["keepalives_idle"]) == ("1", "7")
    assert (params["keepalives_interval"], params["keepalives_count"]) == ("3", "4")
    assert params["application_name"] == "outdial"
    assert (params["host"], params["port"], params["dbname"]) == ("db", "5433", "od")
    assert params["password"] == "s3cret"  # still needed to connect, never printed
    with pytest.raises(StoreError, match="invalid PostgreSQL URL") as caught:
        conninfo_for("postgresql://outdial:s3cret@db/od?nonsense=1", settings)
    assert "s3cret" not in str(caught.value)


def test_store_config_keys_become_store_settings() -> None:
    config = StoreConfig.model_validate(
        {"url": "sqlite:///x.db", "statement_timeout": 1.5, "keepalives_count": 9}
    )
    assert config.settings() == StoreSettings(statement_timeout=1.5, keepalives_count=9)
    assert StoreConfig().settings() == StoreSettings()


# SQLite: a locked file, a full one


@pytest.mark.anyio
async def test_sqlite_busy_timeout_is_the_statement_timeout(tmp_path: Path) -> None:
    settings = StoreSettings(statement_timeout=1.25)
    async with open_store(f"sqlite:///{tmp_path / 'o.db'}", settings) as store:

        def busy_timeout(db: Database) -> int:
            return int(db.execute("PRAGMA busy_timeout").rows[0]["timeout"])

        assert await store._run(busy_timeout) == 1250  # type: ignore[attr-defined]


def test_sqlite_tries_a_locked_operation_again_within_the_timeout(tmp_path: Path) -> None:
    from outdial.store.sqlite import _SqliteDatabase

    db = _SqliteDatabase(str(tmp_path / "o.db"), timeout=5.0)
    tries: list[int] = []

    def flaky(_: Database) -> str:
        tries.append(1)
        if len(tries) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert db.run(flaky) == "done"
    assert len(tries) == 3
    db.close()


@pytest.mark.anyio
async def test_a_locked_sqlite_file_is_unavailable_then_recovers(
    tmp_path: Path, events: Events
) -> None:
    path = tmp_path / "o.db"
    store = SqliteStore(path, StoreSettings(statement_timeout=0.3))
    await store.import_contacts(rows(1))
    recovered: list[bool] = []
    store.health.on_recovered(lambda: recovered.append(True))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await store.import_contacts(rows(1, start=1))
    assert caught.value.reason == "locked"
    assert 0.3 <= time.monotonic() - started < 1.0  # waited its timeout, then gave up
    assert not store.health.healthy
    # Away: everything fails at once, reads too, until a probe finds it back.
    store.health.probe_interval = 3600.0
    with pytest.raises(StoreUnavailable) as down:
        await store.contacts()
    assert down.value.reason == "down"
    holder.execute("ROLLBACK")
    holder.close()
    store.health.probe_interval = 0.0  # the next operation probes (no waiting for it)
    assert len(await store.contacts()) == 1
    assert store.health.healthy
    assert recovered == [True]
    [unavailable] = events.named("store.unavailable")
    assert (unavailable["backend"], unavailable["operation"]) == ("sqlite", "import_contacts")
    assert unavailable["reason"] == "locked"
    [back] = events.named("store.recovered")
    assert back["operation"] == "probe"
    await store.aclose()


@pytest.mark.anyio
async def test_a_full_sqlite_database_is_unavailable_until_it_has_room(
    tmp_path: Path, events: Events
) -> None:
    store = SqliteStore(tmp_path / "o.db")
    conn = store._db.conn  # type: ignore[attr-defined]
    conn.execute("PRAGMA max_page_count = 1")  # no more pages than it has now: full

    async def fill() -> None:
        for start in range(0, 10_000, 20):
            await store.import_contacts(rows(20, start))

    with pytest.raises(StoreUnavailable) as caught:
        await fill()
    assert caught.value.reason == "full"
    assert not store.health.healthy
    # The probe needs room too: reads that would fit do not bring it back.
    store.health.probe_interval = 0.0
    with pytest.raises(StoreUnavailable) as still:
        await store.contacts()
    assert still.value.reason == "full"
    assert not store.health.healthy
    conn.execute("PRAGMA max_page_count = 1000000")  # room again
    before = len(await store.contacts())
    assert store.health.healthy
    assert await store.import_contacts(rows(20, 20_000)) == 20  # no transaction left open
    assert len(await store.contacts()) == before + 20
    assert [e["reason"] for e in events.named("store.unavailable")] == ["full"]
    assert len(events.named("store.recovered")) == 1
    await store.aclose()


def test_a_sqlite_file_that_cannot_be_opened_is_a_one_line_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the SQLite store") as caught:
        SqliteStore(tmp_path / "missing-dir" / "o.db")
    assert type(caught.value) is StoreError


# PostgreSQL on the shared server: its own statement timeout


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_postgres_statement_past_its_timeout_is_unavailable_then_recovers(
    postgres_url: str, postgres_schema: str, events: Events
) -> None:
    from outdial.store.postgres import PostgresStore

    store = await PostgresStore.connect(
        postgres_url, schema=postgres_schema, settings=StoreSettings(statement_timeout=0.3)
    )
    try:
        await store.import_contacts(rows(2))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await store._run(lambda db: db.execute("SELECT pg_sleep(3)"))
        assert caught.value.reason == "timeout"
        assert time.monotonic() - started < 1.0
        assert not store.health.healthy
        store.health.probe_interval = 0.0
        assert len(await store.contacts()) == 2  # probed, then back on the pool's connection
        assert store.health.healthy
        [down] = events.named("store.unavailable")
        assert (down["backend"], down["reason"]) == ("postgresql", "timeout")
        assert len(events.named("store.recovered")) == 1
    finally:
        await store.aclose()
