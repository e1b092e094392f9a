"""Where outdial keeps contacts, dial claims, calls and the do-not-call list.

:func:`open_store` turns a ``[store] url`` into an open :class:`Store`, which
is five roles on one database (:class:`ContactStore`, :class:`ClaimStore`,
:class:`CallStore`, :class:`DoNotCallStore`, :class:`AgentLeaseStore`); a caller that needs only one
names that one:

- ``sqlite:///outdial.db``: a file relative to the working directory
- ``sqlite:////var/lib/outdial/outdial.db``: an absolute path
- ``sqlite:///:memory:``: a private in-memory database (tests, demos)
- ``postgresql://...``: PostgreSQL (``store/postgres.py``, needs psycopg 3)

``settings`` (:class:`StoreSettings`, from the ``[store]`` keys) sets the
statement and connect timeouts and PostgreSQL's TCP keepalives. Every store
operation raises :class:`StoreUnavailable` when the database does not take
it; ``store.health`` says whether it answers now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from outdial.store.base import (
    AgentLease,
    AgentLeaseStore,
    CallRecord,
    CallStore,
    Claim,
    ClaimState,
    ClaimStore,
    Contact,
    ContactRow,
    ContactsSummary,
    ContactState,
    ContactStore,
    DoNotCallStore,
    Store,
    StoreError,
    StoreSettings,
    StoreUnavailable,
    UserCallSummary,
)
from outdial.store.health import StoreHealth
from outdial.store.sqlite import SqliteStore

__all__ = [
    "AgentLease",
    "AgentLeaseStore",
    "CallRecord",
    "CallStore",
    "Claim",
    "ClaimState",
    "ClaimStore",
    "Contact",
    "ContactRow",
    "ContactState",
    "ContactStore",
    "ContactsSummary",
    "DoNotCallStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreHealth",
    "StoreSettings",
    "StoreUnavailable",
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


async def _open(url: str, settings: StoreSettings) -> Store:
    if url.startswith("sqlite:"):
        return SqliteStore(sqlite_path(url), settings)
    if url.startswith(("postgresql://", "postgres://")):
        from outdial.store.postgres import PostgresStore

        return await PostgresStore.connect(url, settings=settings)
    raise StoreError(f"unsupported store url {url!r}: use sqlite:///PATH or postgresql://...")


def open_store(
    url: str, settings: StoreSettings | None = None
) -> AbstractAsyncContextManager[Store]:
    """Open the store at ``url`` for the body of an ``async with``; closed on exit.

    ``settings``: timeouts and keepalives (by default those of an empty ``[store]``).
    """

    @asynccontextmanager
    async def cm() -> AsyncIterator[Store]:
        store = await _open(url, settings or StoreSettings())
        try:
            yield store
        finally:
            await store.aclose()

    return cm()
