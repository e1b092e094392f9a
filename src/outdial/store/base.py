"""The :class:`Store` protocol, its roles, and the records it keeps.

The store is the daemon's memory: personal contact lists, the dial claims that
make "exactly one call per trigger" hold, the calls being tracked, and the
do-not-call list. Each of those is a role protocol (:class:`ContactStore`,
:class:`ClaimStore`, :class:`CallStore`, :class:`DoNotCallStore`) that a caller
needing only one may name; :class:`Store` is all four on one database. Every
method is async; a backend may do its I/O however it likes (a worker thread
for SQLite, a native async driver for PostgreSQL).

Times are timezone-aware UTC ``datetime`` values everywhere. States and
outcomes are plain strings so the store does not depend on the handlers; the
values are those of :class:`outdial.handlers.calls.CallState` and ``Outcome``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from outdial.store.health import StoreHealth
    from outdial.store.timings import Timings

__all__ = [
    "AgentLease",
    "AgentLeaseStore",
    "CallRecord",
    "CallStore",
    "Claim",
    "ClaimState",
    "ClaimStore",
    "Contact",
    "ContactOutcome",
    "ContactRow",
    "ContactState",
    "ContactStore",
    "ContactsSummary",
    "DialClaim",
    "DialContext",
    "DoNotCallStore",
    "DueContacts",
    "NumberCap",
    "Store",
    "StoreError",
    "StoreSettings",
    "StoreUnavailable",
    "UnavailableReason",
    "UserCallSummary",
]

#: ``due``: may be dialed once ``next_due_at`` has passed; ``dialing``: claimed by a
#: dial whose call has not ended; ``done``: answered, out of attempts, or excluded.
ContactState = Literal["due", "dialing", "done"]

#: ``claimed``: written before the request is sent; ``placed``: the platform gave a
#: conversation id; ``failed``: the platform refused (or a guard denied after the
#: claim); ``unknown``: sent without an answer, the call may or may not exist.
ClaimState = Literal["claimed", "placed", "failed", "unknown"]


class StoreError(Exception):
    """A store that cannot be opened or used (bad URL, unsupported backend)."""


#: Why a store operation did not complete: ``connection``, the connection failed
#: or was lost (refused, reset, the server shut down); ``timeout``, a statement
#: or a connection attempt took longer than its timeout (a hung backend, a lock
#: held elsewhere); ``locked``, SQLite's file stayed locked past the timeout;
#: ``full``, the disk (or the database) is full; ``io``, another resource or
#: I/O failure (read-only, too many connections, an I/O error); ``down``, not
#: tried at all: the store is known to be away and its next probe is not due.
UnavailableReason = Literal["connection", "timeout", "locked", "full", "io", "down"]


class StoreUnavailable(StoreError):
    """The database did not take an operation; it may answer again later.

    Raised instead of the driver's own exception (never a raw psycopg or
    sqlite3 error). What the caller must assume depends on the operation: a
    read read nothing; a write was rolled back, except that a connection lost
    during its commit leaves unknown whether it committed. ``operation`` names
    the store method, ``elapsed`` is how long it took to fail (seconds).
    """

    def __init__(
        self,
        reason: UnavailableReason,
        message: str,
        *,
        operation: str | None = None,
        elapsed: float | None = None,
    ) -> None:
        self.reason: UnavailableReason = reason
        self.operation = operation
        self.elapsed = elapsed
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How a store talks to its database (the ``[store]`` keys other than ``url``).

    ``statement_timeout``: seconds one statement may take. PostgreSQL cancels
    it then (``statement_timeout``) and the client gives up on a backend that
    does not answer at all (a hung server) at the same moment; SQLite waits
    that long for a locked file. ``connect_timeout``: seconds to establish a
    PostgreSQL connection. ``keepalives_*``: libpq's TCP keepalives (idle
    seconds before the first probe, seconds between probes, probes lost
    before the connection is dead), so a peer gone without a word is noticed
    on an idle connection too.
    """

    statement_timeout: float = 5.0
    connect_timeout: float = 5.0
    keepalives_idle: int = 10
    keepalives_interval: int = 5
    keepalives_count: int = 3


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One row of a personal contact list to import (``phone_number`` in E.164)."""

    user_id: str
    phone_number: str
    name: str | None = None
    external_id: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact as stored; ``next_due_at`` None means due since it was imported."""

    id: int
    user_id: str
    phone_number: str
    name: str | None
    external_id: str | None
    timezone: str | None
    attempts: int
    last_outcome: str | None
    next_due_at: datetime | None
    state: ContactState


@dataclass(frozen=True, slots=True)
class Claim:
    """A dial claimed under an idempotency key; ``contact`` is set for ``contact="next"``.

    ``request`` holds the dial's request fields other than the agent and the
    number (caller id, label, ...), so a dial reconciled as "never placed" is
    sent again exactly as it was. ``retries`` counts those second sends;
    ``updated_at`` is when the claim last became ``unknown`` (or was retried).
    """

    key: str
    rule: str
    user_id: str
    contact: Contact | None
    phone_number: str | None
    state: ClaimState
    created_at: datetime
    conversation_id: str | None = None
    error: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    updated_at: datetime | None = None
    #: The process whose dial this is while ``claimed`` (``host:pid:nonce``), and until
    #: when its lease holds without a renewal; None on claims older than owners.
    owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call outdial placed and tracks until it ends."""

    conversation_id: str
    user_id: str
    contact_id: int | None
    phone_number: str
    state: str
    outcome: str | None
    updated_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ContactOutcome:
    """How an ended call settles its contact, for :meth:`Store.record_call_progress`.

    ``counted``: one attempt is counted with ``outcome`` (as
    :meth:`Store.record_outcome` does), and the contact is due again at
    ``retry_at``, unless ``retry_at`` is None or the attempts, this one
    included as read in the write's own transaction, reach ``max_attempts``:
    then it is ``done``. Not counted (the call never reached the contact:
    agent unavailable): the contact goes back to ``due`` with its attempts
    and its old due time (as :meth:`Store.release_contact` does without a
    time). Plain values: the policy is decided before the store is asked
    (:mod:`outdial.handlers.disposition`), never inside its transaction.
    """

    outcome: str
    counted: bool
    retry_at: datetime | None = None
    max_attempts: int | None = None


#: What a call becomes (written as is) and how its contact settles, or None: unchanged.
CallChange = tuple[CallRecord, ContactOutcome | None] | None


@dataclass(frozen=True, slots=True)
class CallAdvanced:
    """What :meth:`CallStore.advance_call` found and wrote: the call as it was stored,
    as written (None: unchanged) and its contact as settled (None: not settled)."""

    previous: CallRecord
    written: CallRecord | None = None
    contact: Contact | None = None


@dataclass(frozen=True, slots=True)
class DialContext:
    """What the dialer reads before claiming a dial, read in one store operation.

    ``claimed``: the key has a claim already (a duplicate trigger);
    ``open_claims``: the agent's claims still ``claimed`` or ``unknown``, oldest
    first; ``active_call``: the agent's call that has not ended, if any.
    """

    claimed: bool
    open_claims: list[Claim]
    active_call: CallRecord | None


@dataclass(frozen=True, slots=True)
class DialClaim:
    """What :meth:`Store.claim_for_dial` did, decided in one transaction.

    Exactly one of ``claim`` and ``refused`` is set. ``refused`` says why
    nothing was claimed: ``"claimed"``, the key has a claim already (a
    duplicate trigger); ``"busy"``, the agent has an active call
    (``active_call``) or open claims (``open_claims``, oldest first);
    ``"no_contact"``, ``contact="next"`` found no contact due.
    ``do_not_call`` tells whether the claim's number, exactly as claimed, is
    on the do-not-call list (False when nothing was claimed).
    """

    claim: Claim | None
    refused: Literal["claimed", "busy", "no_contact", "number_limit"] | None = None
    open_claims: list[Claim] = field(default_factory=list)
    active_call: CallRecord | None = None
    do_not_call: bool = False
    #: With ``"number_limit"``: when the number may be called again.
    free_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NumberCap:
    """At most ``count`` calls to one number in a window of ``window`` that began at ``since``.

    A call counts from its claim: placed, in flight, or unknown (a dial that
    was refused or denied placed nothing and does not count).
    """

    count: int
    since: datetime
    window: timedelta


@dataclass(frozen=True, slots=True)
class DueContacts:
    """An agent's due contacts as :meth:`Store.due_contacts` reads them.

    ``contacts``: due now, in list order; ``do_not_call``: which of their
    numbers are listed; ``next_due_at``: when the agent's next contact that is
    not due yet comes due (None: none waits); ``claimed``: the key asked about
    has a claim already (a duplicate trigger: nothing else was read).
    """

    contacts: list[Contact]
    do_not_call: frozenset[str] = frozenset()
    next_due_at: datetime | None = None
    claimed: bool = False
    #: Numbers among the contacts' that the per-number cap holds back, and until when.
    capped: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserCallSummary:
    """Per agent: calls placed and how the ended ones ended; ``dial_errors`` never got a call.

    ``agent_unavailable`` counts calls whose agent leg failed before the customer
    was dialed (no attempt was counted against the contact).
    """

    user_id: str
    placed: int = 0
    active: int = 0
    answered: int = 0
    busy: int = 0
    no_answer: int = 0
    failed: int = 0
    dial_errors: int = 0
    agent_unavailable: int = 0


@dataclass(frozen=True, slots=True)
class ContactsSummary:
    """How many contacts are in each state."""

    due: int = 0
    dialing: int = 0
    done: int = 0


class ClaimStore(Protocol):
    """Dial claims: what makes "exactly one call per trigger" hold.

    A dial is claimed under its trigger's deterministic idempotency key, and
    the claim is durable (committed) when :meth:`claim_for_dial` or
    :meth:`claim_dial` returns, before the dial's request is sent: a process
    that stops after sending leaves a claim behind, never a call nobody knows
    of. A key is claimed at most once, also by processes (replicas) sharing
    the database; a claim's contact is taken in the claim's own transaction.
    Every method is one transaction: a claim moves ``claimed`` -> ``placed`` |
    ``failed`` | ``unknown``, and back from ``unknown`` to ``claimed`` only by
    :meth:`retry_claim`'s compare-and-set.
    """

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
        """Atomically claim a dial under ``key``; None means: place nothing.

        None when ``key`` was claimed before (a duplicate trigger), or when
        ``contact="next"`` and the agent has no contact due at ``now``. With
        ``contact="next"`` the oldest due contact is moved to ``dialing`` in
        the same transaction, so two claims never get the same contact (not
        even from two processes sharing the store). ``request`` (JSON-able)
        is kept with the claim for a reconciled retry.
        """
        ...

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
        """What the dialer does before sending, in one operation and one transaction.

        ``contact`` is ``"next"`` (the agent's oldest due contact) or the id of
        the contact the dialer chose (taken only while it is still due).

        In order: refuse as ``"claimed"`` when ``key`` has a claim; refuse as
        ``"busy"`` when the agent has a call that has not ended or a claim
        still ``claimed`` or ``unknown``; then claim exactly as
        :meth:`claim_dial` does (``"claimed"`` if another process claimed the
        key meanwhile, ``"no_contact"`` when ``contact="next"`` finds none
        due); and say whether the claimed number is on the do-not-call list.
        """
        ...

    async def get_claim(self, key: str) -> Claim | None:
        """The claim recorded under ``key``, if any."""
        ...

    async def dial_context(self, key: str, user_id: str) -> DialContext:
        """Whether ``key`` has a claim, the agent's :meth:`open_claims` and its call
        that has not ended (as :meth:`CallStore.active_call_for_user`), in one
        operation (one round trip)."""
        ...

    async def record_placed(self, key: str, call: CallRecord) -> None:
        """The claim is ``placed`` as ``call.conversation_id`` and ``call`` is tracked.

        One transaction: the claim is never placed without its call tracked,
        nor the call tracked while its claim still looks open. ``KeyError``
        (and nothing written) when ``key`` has no claim.
        """
        ...

    async def mark_failed(self, key: str, error: str) -> None:
        """The dial was refused (or denied after claiming); nothing was placed."""
        ...

    async def mark_unknown(self, key: str, error: str, now: datetime) -> None:
        """The request was sent but no answer came at ``now``: the call may exist."""
        ...

    async def open_claims(self, user_id: str | None = None) -> list[Claim]:
        """Claims still ``claimed`` or ``unknown`` (of one agent if given), oldest first.

        ``claimed`` ones are dials in flight, or, when old, dials of a process
        that stopped between claiming and hearing back; ``unknown`` ones wait
        for reconciliation.
        """
        ...

    async def renew_leases(self, owner: str, until: datetime) -> int:
        """Extend to ``until`` the leases of ``owner``'s claims still ``claimed``."""
        ...

    async def retry_claim(
        self,
        key: str,
        retries: int,
        now: datetime,
        *,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        """Take an ``unknown`` claim back to ``claimed`` to send its dial again.

        Compare-and-set: only succeeds while the claim is ``unknown`` with
        exactly ``retries`` retries so far, and counts this one; of several
        reconcilers (replicas) at most one gets True and may send.
        """
        ...


class CallStore(Protocol):
    """The calls outdial placed, tracked until they end, and what they came to.

    A call is keyed by its conversation id, so writing it again (a repeated
    or re-read event) replaces it rather than adding one. An ended call and
    its contact's outcome are written together (:meth:`record_call_progress`,
    and :meth:`advance_call`, which reads the call first in the same
    operation), so a contact never loses or gains an attempt to a crash
    between the two.
    """

    async def upsert_call(self, call: CallRecord) -> None:
        """Insert or replace a call by conversation id."""
        ...

    async def record_call_progress(
        self, call: CallRecord, *, contact_outcome: ContactOutcome | None = None
    ) -> Contact | None:
        """``upsert_call(call)`` and, given ``contact_outcome``, settle the call's contact.

        One operation and one transaction: an ended call is never stored
        without its contact's outcome (or release), nor the other way round.
        The contact is ``call.contact_id``; the outcome is recorded at
        ``call.updated_at``. Returns the contact as written, or None when no
        outcome was given, the call names no contact, or the contact does not
        exist (the call is written all the same).
        """
        ...

    async def advance_call(
        self, conversation_id: str, change: Callable[[CallRecord], CallChange]
    ) -> CallAdvanced | None:
        """Read a call, ask ``change`` what it becomes, and record that: one operation.

        ``change`` (pure, quick: it runs inside the operation) gets the call
        as stored and returns what to write, as :meth:`record_call_progress`
        takes it, or None to leave it as it is. Returns None when no call has
        ``conversation_id``. A call event costs one store operation this way,
        where a read and then a write were two (with their two hops or
        loop passes).
        """
        ...

    async def get_call(self, conversation_id: str) -> CallRecord | None:
        """A call by conversation id."""
        ...

    async def active_calls(self) -> list[CallRecord]:
        """Every call that has not ended."""
        ...

    async def active_call_for_user(self, user_id: str) -> CallRecord | None:
        """The agent's call that has not ended, if any."""
        ...

    async def last_ended_call(self, user_id: str) -> CallRecord | None:
        """The agent's call that ended last (by ``ended_at``), if any."""
        ...

    async def call_summary(self, since: datetime | None = None) -> list[UserCallSummary]:
        """Per agent counts of calls placed and their outcomes, by user id.

        ``dial_errors`` counts the agent's claims that ended ``failed``.
        """
        ...


class ContactStore(Protocol):
    """Agents' personal contact lists and where each contact stands.

    A contact is in at most one dial at a time: it is ``dialing`` from the
    claim that took it (:class:`ClaimStore`, same transaction) until its
    outcome, release or close, and list edits (remove, reset) leave a
    ``dialing`` contact alone. A re-import refreshes the descriptive columns
    and never the dialer's bookkeeping (attempts, outcome, due time).
    :meth:`contacts_generation` moves on with every import, removal and
    reset, so other processes sharing the database notice the list changed.
    """

    async def import_contacts(self, rows: Iterable[ContactRow]) -> int:
        """Insert contacts; a known ``(user_id, phone_number)`` is updated, not duplicated.

        Returns how many rows were written (inserted or updated).
        """
        ...

    async def contacts(self, user_id: str | None = None) -> list[Contact]:
        """All contacts (of one agent when ``user_id`` is given), by id."""
        ...

    async def get_contact(self, contact_id: int) -> Contact | None:
        """One contact by id."""
        ...

    async def remove_contacts(
        self, user_id: str, phone_numbers: Iterable[str] | None = None
    ) -> int:
        """Delete the agent's contacts (only ``phone_numbers``, when given); returns how many.

        A contact in a call (``dialing``) stays: its call still reports to it.
        """
        ...

    async def reset_contacts(
        self, user_id: str | None = None, phone_numbers: Iterable[str] | None = None
    ) -> int:
        """Make contacts due again, as newly imported: no attempts, no outcome, due now.

        Every contact, or the agent's (only ``phone_numbers``, when given);
        one in a call (``dialing``) is left alone. Returns how many were reset.
        """
        ...

    async def due_contacts(
        self,
        user_id: str,
        now: datetime,
        limit: int,
        *,
        key: str | None = None,
        number_cap: NumberCap | None = None,
    ) -> DueContacts:
        """The agent's contacts due at ``now`` in list order (at most ``limit``), which of
        their numbers are on the do-not-call list, the next due time after ``now``, and
        which numbers ``number_cap`` holds back; when ``key`` has a claim already, only
        that (``claimed``). One read, so what it says holds together."""
        ...

    async def contacts_generation(self) -> int:
        """A counter that moves on whenever contacts are imported, by any process."""
        ...

    async def release_contact(self, contact_id: int, next_due_at: datetime | None = None) -> None:
        """Put a ``dialing`` contact back to ``due`` without counting an attempt."""
        ...

    async def close_contact(self, contact_id: int, reason: str) -> None:
        """Mark a contact ``done`` without counting an attempt (do-not-call, invalid number)."""
        ...

    async def record_outcome(
        self, contact_id: int, outcome: str, now: datetime, next_due_at: datetime | None
    ) -> None:
        """Count an attempt with ``outcome``; due again at ``next_due_at``, or done if None."""
        ...

    async def contacts_summary(self) -> ContactsSummary:
        """How many contacts are due, dialing and done."""
        ...


class DoNotCallStore(Protocol):
    """Numbers that must never be dialed, in E.164.

    Adding is idempotent. The dialer's own reads (:meth:`ClaimStore.claim_for_dial`,
    :meth:`ContactStore.due_contacts`) consult the same list inside their operation.
    """

    async def add_do_not_call(self, numbers: Iterable[str]) -> int:
        """Add E.164 numbers to the do-not-call list; returns how many were new."""
        ...

    async def is_do_not_call(self, number: str) -> bool:
        """True when the E.164 number must never be dialed."""
        ...


@dataclass(frozen=True, slots=True)
class AgentLease:
    """Which process holds an agent's platform connection, and until when."""

    agent_id: str
    owner: str
    until: datetime


class AgentLeaseStore(Protocol):
    """Leases on agents' platform connections: one replica at a time listens to an agent.

    A platform that gives an agent one connection (CXone: one agent session,
    whose id every poll rotates) cannot be listened to by two replicas at
    once; the replica holding the agent's lease does, the others stand by.
    A lease is taken or renewed atomically, also by processes sharing the
    database: of two takers of a free lease, exactly one gets it.
    """

    async def take_agent_leases(
        self,
        owner: str,
        agents: Iterable[str],
        now: datetime,
        until: datetime,
        *,
        gone: Iterable[str] = (),
    ) -> set[str]:
        """Take or renew, until ``until``, the lease of each agent that is free, expired
        at ``now``, already ``owner``'s, or held by an owner in ``gone`` (known to have
        stopped); returns the agents ``owner`` holds afterwards."""
        ...

    async def agent_leases(self, agents: Iterable[str]) -> list[AgentLease]:
        """The current leases of ``agents`` (agents never leased are left out)."""
        ...

    async def release_agent_leases(self, owner: str, agents: Iterable[str] | None = None) -> int:
        """Give up ``owner``'s leases (of ``agents``; None: all of them); returns how many."""
        ...


class Store(ClaimStore, CallStore, ContactStore, DoNotCallStore, AgentLeaseStore, Protocol):
    """Where outdial keeps contacts, dial claims, calls, the do-not-call list and agent leases.

    All five roles on one database, so that an operation spanning them (a
    claim taking a contact, a call's end settling it) is one transaction.
    Every method raises :class:`StoreUnavailable` when the database does not
    take the operation (and nothing else of the driver's); ``health`` tells
    whether it answers now, and calls its listeners when it is back.
    """

    health: StoreHealth
    #: How long dials' claims have taken, lock and durable commit included.
    claim_timings: Timings

    @property
    def answers_inline(self) -> bool:
        """Whether the quick operations (reads, call-state writes) are answered on the
        event loop without waiting (SQLite on a local file): a caller need not hand
        them to a task of their own to keep other work going."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...
