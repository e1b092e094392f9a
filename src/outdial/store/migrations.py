"""The schema's versions: one ordered list of migrations for both SQL backends.

A database records the last migration it went through (SQLite in ``PRAGMA
user_version``, PostgreSQL in the ``outdial_migrations`` table); opening a
store runs the ones after it, in order, in one transaction, and records each.
A database from before versions were recorded reads as version 0 and goes
through every step: each step is idempotent (creates only what is missing,
adds only the columns a table lacks), so a database of any earlier release
comes out in the same shape as a new one, its rows kept.

A database whose version is newer than :data:`LATEST` was written by a newer
outdial, whose schema this code does not know: it is refused
(:func:`check_version`) rather than used half understood.

To change the schema, append a :class:`Migration` (never edit or reorder one
that was released: databases out there have gone through it) and write it
idempotently with :class:`SchemaEditor`, whose column types and
:meth:`~SchemaEditor.add_column` hide the dialects' differences.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from outdial.store.base import StoreError

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "ColumnTypes",
    "Migration",
    "SchemaEditor",
    "check_version",
    "migrate",
]


@dataclass(frozen=True, slots=True)
class ColumnTypes:
    """A backend's names for the column types that differ between dialects."""

    #: An auto-assigned integer primary key.
    serial: str
    #: A 64-bit integer.
    bigint: str
    #: A point in time (the store keeps timezone-aware UTC).
    timestamp: str
    #: A JSON document.
    json: str


class SchemaEditor(ABC):
    """A backend's connection while it migrates, inside the migrations' transaction."""

    #: The backend's column types.
    types: ColumnTypes

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run one DDL statement."""

    @abstractmethod
    def add_column(self, table: str, name: str, decl: str) -> None:
        """Add column ``name`` (type and default ``decl``) to ``table`` unless it has one."""

    @abstractmethod
    def version(self) -> int:
        """The last migration this database went through (0: none recorded)."""

    @abstractmethod
    def set_version(self, migration: Migration) -> None:
        """Record that the database went through ``migration``."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: ``apply`` makes it so, and does nothing when it is so already."""

    version: int
    name: str
    apply: Callable[[SchemaEditor], None]


def _tables(db: SchemaEditor) -> None:
    t = db.types
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS contacts (
    id {t.serial},
    user_id TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    name TEXT,
    external_id TEXT,
    timezone TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT,
    next_due_at {t.timestamp},
    state TEXT NOT NULL DEFAULT 'due',
    updated_at {t.timestamp},
    UNIQUE (user_id, phone_number)
)"""
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS contacts_next_due ON contacts (user_id, state, next_due_at, id)"
    )
    # As the first release had it: the columns added since are later steps,
    # so that a table of any age goes through the same ones.
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS dial_claims (
    key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    user_id TEXT NOT NULL,
    contact_id {t.bigint} REFERENCES contacts (id),
    phone_number TEXT,
    state TEXT NOT NULL,
    conversation_id TEXT,
    error TEXT,
    created_at {t.timestamp} NOT NULL
)"""
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS dial_claims_open ON dial_claims (user_id, created_at)"
        " WHERE state IN ('claimed', 'unknown')"
    )
    # The per-number cap counts a number's recent claims.
    db.execute(
        "CREATE INDEX IF NOT EXISTS dial_claims_number ON dial_claims (phone_number, created_at)"
    )
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS calls (
    conversation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    contact_id {t.bigint},
    phone_number TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    updated_at {t.timestamp} NOT NULL,
    ended_at {t.timestamp}
)"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS calls_active ON calls (user_id) WHERE state <> 'ended'")
    db.execute("CREATE TABLE IF NOT EXISTS do_not_call (phone_number TEXT PRIMARY KEY)")
    # Counters other processes poll: "contacts" moves on every import, so a
    # running daemon notices contacts imported by `outdial contacts import`.
    db.execute(
        f"CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value {t.bigint} NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS calls_ended ON calls (user_id, ended_at)")


def _claim_retries(db: SchemaEditor) -> None:
    # A reconciled retry sends the dial again as it was, and counts its sends.
    db.add_column("dial_claims", "request", db.types.json)
    db.add_column("dial_claims", "retries", "INTEGER NOT NULL DEFAULT 0")
    db.add_column("dial_claims", "updated_at", db.types.timestamp)


def _claim_leases(db: SchemaEditor) -> None:
    # A claim in flight names its process, whose lease a crash lets lapse.
    db.add_column("dial_claims", "owner", "TEXT")
    db.add_column("dial_claims", "lease_until", db.types.timestamp)


def _agent_leases(db: SchemaEditor) -> None:
    # One replica at a time listens to an agent (CXone: one session per agent).
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS agent_leases (
    agent_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until {db.types.timestamp} NOT NULL
)"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS agent_leases_owner ON agent_leases (owner)")


#: Every migration, in order; a database's version is the last one it went through.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables", _tables),
    Migration(2, "claim_retries", _claim_retries),
    Migration(3, "claim_leases", _claim_leases),
    Migration(4, "agent_leases", _agent_leases),
)

#: The schema version this code writes and reads.
LATEST = MIGRATIONS[-1].version


def check_version(found: int, database: str) -> None:
    """Raise :class:`StoreError` (one line) when ``database`` is newer than this code knows.

    ``database`` names it as a user would recognise it (a path, a masked URL).
    """
    if found > LATEST:
        raise StoreError(
            f"{database} has schema version {found}, newer than this outdial knows"
            f" ({LATEST}): it was written by a newer release; upgrade outdial to use it"
        )


def migrate(db: SchemaEditor, database: str) -> int:
    """Run the migrations ``db`` has not been through, in order; returns the version found.

    The caller holds the transaction (and whatever lock keeps other processes
    from migrating at the same time) around the whole run.
    """
    found = db.version()
    check_version(found, database)
    for migration in MIGRATIONS:
        if migration.version > found:
            migration.apply(db)
            db.set_version(migration)
    return found
