"""Reconciling a dial whose fate is unknown: pure decisions, no I/O.

A dial request that was sent but never answered (a read timeout, a dropped
connection) may or may not have placed a call. Sending it again could ring the
callee twice, so before anything is retried the agent's recent outbound calls
are read from the platform and :func:`decide` says what they mean:

- a call of that agent to that number that started since the claim was made
  (give or take ``skew``) and that no other claim owns: the dial **was**
  placed; track that call (:class:`Found`);
- no such call, but the platform's call history may still be catching up:
  ask again later (:class:`Wait`);
- no such call after ``settle`` seconds: the request never took effect, so
  it may be sent again under the same claim (:class:`Retry`), at most
  ``max_retries`` times, then the dial is given up as failed (:class:`GiveUp`).

A lookup that fails (the platform is down) decides nothing: the claim stays
``unknown`` and is reconciled again later. Failing closed here means a late
call, never a second one.

Why ``settle`` defaults to 60 s: Genesys Cloud lists a conversation in the
analytics detail query within seconds of it starting, but that index is not
transactional with call creation and lags further under load; and a request
that timed out on our side may still be queued on theirs. 60 s after the
dial turned unknown covers both with a wide margin, and costs only a late
retry in the rare case the call really was not placed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from outdial.handlers import guards
from outdial.platforms.base import OutboundCall
from outdial.store.base import Claim

__all__ = [
    "ClaimOwner",
    "Decision",
    "Found",
    "GiveUp",
    "ReconcilePolicy",
    "Retry",
    "Wait",
    "decide",
    "is_stale",
    "lease_until",
    "needs_reconciling",
    "owner_gone",
    "search_window",
]


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """How unknown dials are reconciled (all durations in seconds)."""

    #: How far the platform's clock may be from ours. Widens the search, and a
    #: call that started up to this long before the claim still counts.
    skew: float = 120.0
    #: How long after the dial became unknown "no such call" becomes conclusive
    #: (the platform's call history lags; see the module docs).
    settle: float = 60.0
    #: A claim still ``claimed`` this long after its last send belongs to a
    #: process that stopped between sending and hearing back: reconcile it.
    #: Longer than any live dial (its retries and Retry-After waits included).
    stale_after: float = 600.0
    #: Second sends of one claim after reconciling found nothing; then give up.
    max_retries: int = 2
    #: How long a claim in flight stays its process's without a renewal (the owner
    #: renews it while it lives); another replica may reconcile it after that.
    lease: float = 15.0


@dataclass(frozen=True, slots=True)
class Found:
    """The dial placed this call: record it as placed and track it."""

    conversation_id: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing found yet, but too early to be sure: ask again at ``until`` or later."""

    until: datetime


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing found and the wait is over: send the dial again under the same claim."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Nothing found after ``max_retries`` second sends: the dial failed."""

    reason: str


Decision = Found | Wait | Retry | GiveUp


def last_send(claim: Claim) -> datetime:
    """When the claim's request was last sent (or last found unanswered)."""
    return claim.updated_at or claim.created_at


def is_stale(claim: Claim, now: datetime, policy: ReconcilePolicy) -> bool:
    """True for a ``claimed`` claim whose process must have stopped mid-dial."""
    return claim.state == "claimed" and now - last_send(claim) >= timedelta(
        seconds=policy.stale_after
    )


@dataclass(frozen=True, slots=True)
class ClaimOwner:
    """Which process a claim in flight belongs to: its host, its pid, and a nonce.

    The nonce tells a restarted process that got the same pid from the one
    that made the claim.
    """

    host: str
    pid: int
    nonce: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.nonce}"

    @classmethod
    def parse(cls, text: str | None) -> ClaimOwner | None:
        """The owner written as ``host:pid:nonce``; None for anything else."""
        if not text:
            return None
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        if not host or not pid.isdigit() or not rest:
            return None
        return cls(host, int(pid), rest)


def owner_gone(
    claim: Claim, now: datetime, me: ClaimOwner, pid_alive: Callable[[int], bool]
) -> bool:
    """True when the process that owns a ``claimed`` claim is known to be gone.

    On this host a process that no longer runs (or whose pid now belongs to
    another process of ours: a different nonce under our own pid) is gone at
    once; elsewhere, once its lease has run out without a renewal. A claim
    without an owner (made before owners) falls back to ``stale_after``.
    """
    if claim.state != "claimed":
        return False
    owner = ClaimOwner.parse(claim.owner)
    if owner is None or owner == me:
        return False
    if owner.host == me.host and (owner.pid == me.pid or not pid_alive(owner.pid)):
        return True
    return claim.lease_until is not None and claim.lease_until <= now


def needs_reconciling(
    claim: Claim, now: datetime, policy: ReconcilePolicy, *, gone: bool = False
) -> bool:
    """``unknown`` claims, and ``claimed`` ones left behind by a stopped process.

    ``gone`` is :func:`owner_gone` for the claim: its process stopped
    mid-dial, so the claim need not wait for ``stale_after``.
    """
    if claim.state == "unknown":
        return True
    return claim.state == "claimed" and (gone or is_stale(claim, now, policy))


def lease_until(now: datetime, policy: ReconcilePolicy) -> datetime:
    """Until when a claim made or renewed at ``now`` is its process's (see :func:`owner_gone`)."""
    return now + timedelta(seconds=policy.lease)


def search_window(
    claim: Claim, now: datetime, policy: ReconcilePolicy
) -> tuple[datetime, datetime]:
    """The interval of call start times to ask the platform about."""
    skew = timedelta(seconds=policy.skew)
    return claim.created_at - skew, now + skew


def _same_number(reported: str | None, number: str, default_region: str) -> bool:
    if not reported:
        return False
    normalized = guards.normalize_number(reported, default_region)
    return isinstance(normalized, guards.Allow) and normalized.value == number


def decide(
    claim: Claim,
    number: str,
    calls: Sequence[OutboundCall],
    known: Collection[str],
    now: datetime,
    policy: ReconcilePolicy,
    default_region: str,
) -> Decision:
    """What the agent's outbound ``calls`` say about the unknown dial ``claim``.

    ``number`` is the E.164 number the claim dials; ``known`` are conversation
    ids other claims already own (never taken for this one). Of several
    matching calls the earliest is the one: later ones would be retries.
    """
    earliest = claim.created_at - timedelta(seconds=policy.skew)
    matching = [
        call
        for call in calls
        if call.conversation_id not in known
        and call.started_at >= earliest
        and _same_number(call.phone_number, number, default_region)
    ]
    if matching:
        first = min(matching, key=lambda c: (c.started_at, c.conversation_id))
        return Found(first.conversation_id, first.started_at)
    conclusive_at = last_send(claim) + timedelta(seconds=policy.settle)
    if now < conclusive_at:
        return Wait(conclusive_at)
    if claim.retries >= policy.max_retries:
        return GiveUp(f"no call found after {claim.retries + 1} unanswered sends")
    return Retry()
