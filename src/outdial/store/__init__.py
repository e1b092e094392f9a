"""Where outdial keeps contacts, dial claims, calls and the do-not-call list.

:func:`open_store` turns a ``[store] url`` into an open :class:`Store`:

- ``sqlite:///outdial.db``: a file relative to the working directory
- ``sqlite:////var/lib/outdial/outdial.db``: an absolute path
- ``sqlite:///:memory:``: a private in-memory database (tests, demos)
- ``postgresql://...``: PostgreSQL (``store/postgres.py``, needs psycopg 3)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from outdial.store.base import (
    CallRecord,
    Claim,
    ClaimState,
    Contact,
    ContactRow,
    ContactsSummary,
    ContactState,
    Store,
    StoreError,
    UserCallSummary,
)
from outdial.store.sqlite import SqliteStore

__all__ = [
    "CallRecord",
    "Claim",
    "ClaimState",
    "Contact",
    "ContactRow",
    "ContactState",
    "ContactsSummary",
    "SqliteStore",
    "Store",
    "StoreError",
    "UserCallSummary",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite:///PATH`` URL (``:memory:`` stays as it is)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise StoreError(f"not a SQLite store url (want sqlite:///PATH): {url!r}")
    path = url[len(prefix) :]
    if not path:
        raise StoreError(f"SQLite store url has no path: {url!r}")
    return path


async def _open(url: str) -> Store:
    if url.startswith("sqlite:"):
        return SqliteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from outdial.store.postgres import PostgresStore

        return await PostgresStore.connect(url)
    raise StoreError(f"unsupported store url {url!r}: use sqlite:///PATH or postgresql://...")


def open_store(url: str) -> AbstractAsyncContextManager[Store]:
    """Open the store at ``url`` for the body of an ``async with``; closed on exit."""

    @asynccontextmanager
    async def cm() -> AsyncIterator[Store]:
        store = await _open(url)
        try:
            yield store
        finally:
            await store.aclose()

    return cm()
