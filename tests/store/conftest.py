"""Store fixtures: every contract test runs on SQLite and on PostgreSQL.

PostgreSQL tests use ``OUTDIAL_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a schema of its
own that is dropped afterwards. Without a reachable server they are skipped,
saying why; with ``OUTDIAL_REQUIRE_POSTGRES=1`` they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from outdial.store import SqliteStore, Store

try:
    import psycopg
    from psycopg import sql
except ImportError:  # the postgres extra is not installed: SQLite still runs
    psycopg = None  # type: ignore[assignment]

POSTGRES_URL = os.environ.get(
    "OUTDIAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

OpenReplica = Callable[[], Awaitable[Store]]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL; skips (or fails, if required) when it cannot be reached."""
    required = os.environ.get("OUTDIAL_REQUIRE_POSTGRES") == "1"
    if psycopg is None:
        reason = "psycopg is not installed (pip install 'outdial[postgres]')"
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = (
            f"PostgreSQL not reachable at {POSTGRES_URL} ({str(exc).strip()}); set "
            "OUTDIAL_TEST_POSTGRES_URL to a server, or OUTDIAL_REQUIRE_POSTGRES=1 to fail "
            "instead of skipping"
        )
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema name for one test, dropped (with everything in it) afterwards."""
    schema = f"outdial_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def open_replica(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[OpenReplica]:
    """Opens another store on the same database each time it is called (a "replica")."""
    opened: list[Store] = []
    if request.param == "sqlite":

        async def open_sqlite() -> Store:
            store = SqliteStore(tmp_path / "outdial.db")
            opened.append(store)
            return store

        opener: OpenReplica = open_sqlite
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")

        from outdial.store.postgres import PostgresStore

        async def open_postgres() -> Store:
            store = await PostgresStore.connect(url, schema=schema)
            opened.append(store)
            return store

        opener = open_postgres
    try:
        yield opener
    finally:
        for store in opened:
            await store.aclose()


@pytest.fixture
async def store(open_replica: OpenReplica) -> Store:
    """One store on each backend."""
    return await open_replica()
