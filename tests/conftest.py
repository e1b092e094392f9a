"""Shared fixtures: the anyio backend, and a PostgreSQL server for the tests that need one.

PostgreSQL tests use ``OUTDIAL_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a schema of its
own that is dropped afterwards. Without a reachable server they are skipped,
saying why; with ``OUTDIAL_REQUIRE_POSTGRES=1`` they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

try:
    import psycopg
    from psycopg import sql
except ImportError:  # the postgres extra is not installed: SQLite still runs
    psycopg = None  # type: ignore[assignment]

POSTGRES_URL = os.environ.get(
    "OUTDIAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


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


@pytest.fixture
def anyio_backend() -> str:
    """outdial runs on asyncio (the websockets server and client are asyncio-based)."""
    return "asyncio"
