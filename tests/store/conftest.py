"""Store fixtures: every contract test runs on SQLite and on PostgreSQL.

The PostgreSQL server and a schema per test come from ``tests/conftest.py``
(``postgres_url``, ``postgres_schema``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from outdial.store import SqliteStore, Store

OpenReplica = Callable[[], Awaitable[Store]]


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
