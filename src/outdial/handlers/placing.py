"""Sending a claimed dial, and recording what became of it.

What the dial path (:mod:`outdial.handlers.dialer`) and the reconciler
(:mod:`outdial.handlers.reconciler`) both do to a claim once it is theirs:
check the guards that need its contact, send its request (retrying what is
safe to retry, under the one claim), and write the platform's answer. A
request sent without an answer is recorded ``unknown`` and handed back as
:class:`Unanswered`, never simply retried: only the reconciler may decide to
send it again.

A request the platform refused with 429 (or the REST budget refused unsent,
:class:`~outdial.platforms.ratelimit.BudgetSpent`) placed nothing, and is not
waited out here: waiting under the agent's lock, in the agent's turn, would
hold up every agent whose events share that worker. The claim is *parked*
instead (:class:`Parked`): it stays ``claimed`` (in flight, this process's,
its lease renewed), so the agent is still busy and nothing else dials it, and
the dial comes back :data:`RATE_LIMITED` with ``retry_at``. Whoever offers it
again then (the same trigger, so the same key) sends it under the same claim
(:meth:`~outdial.handlers.reconciler.Reconciler.resume`); a restart finds it
``claimed`` by a process gone and reconciles it like any dial left in flight.

What the platform answered to a request already sent is written once the store
takes it again, however long that is: dropping it would leave a call
untracked, or its claim looking in flight.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.config import GuardsConfig
from outdial.handlers import guards
from outdial.handlers.calls import CallState
from outdial.handlers.templates import RenderedDial
from outdial.platforms.base import AmbiguousOutcome, CallControl, DialRequest, PlatformError
from outdial.platforms.ratelimit import BudgetSpent
from outdial.store.base import CallRecord, Claim, Store, StoreUnavailable

__all__ = [
    "RATE_LIMITED",
    "AgentLocks",
    "DialResult",
    "DialStatus",
    "Parked",
    "Placer",
    "RetryPolicy",
    "Sleep",
    "Unanswered",
    "contact_id",
    "request_fields",
    "request_for",
    "skipped",
]

# The dialer's logger for every part: a user's logging config names it, not the modules.
logger = logging.getLogger("outdial.dialer")

DialStatus = Literal["placed", "skipped", "failed", "unknown"]
Sleep = Callable[[float], Awaitable[None]]

#: The guard of a claimed dial parked by a 429 (or the REST budget): sent again at ``retry_at``.
RATE_LIMITED = "rate_limited"

#: Pauses (first, longest) between tries of a write recording the answer to a
#: dial already sent, while the store is away.
_WRITE_RETRY = (0.05, 0.5)


@dataclass(frozen=True, slots=True)
class DialResult:
    """What became of one match: placed, skipped by a guard, failed, or unknown.

    ``reconciled`` is True when the call was not named by the platform's
    answer but found afterwards among the agent's calls: its state may have
    moved on already, so the caller should re-read it. ``retry_at`` is set on
    a skip that time may lift (a rate limit, no contact callable yet): offer
    the same trigger again then.
    """

    status: DialStatus
    rule: str
    key: str | None = None
    conversation_id: str | None = None
    guard: str | None = None
    reason: str | None = None
    error: PlatformError | None = None
    reconciled: bool = False
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A request sent without an answer, recorded ``unknown``: ``claim`` as it now stands."""

    claim: Claim


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of retryable platform errors: full jitter, capped, a few times."""

    attempts: int = 4  # requests in all, the first one included
    base: float = 0.5
    cap: float = 10.0
    max_retry_after: float = 60.0  # a longer Retry-After gives up instead of stalling
    max_rate_limited: float = 300.0  # seconds of 429s one dial waits out before failing

    def delay(self, retry: int, rng: random.Random, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based); the platform's Retry-After wins."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return rng.uniform(0.0, min(self.cap, self.base * (2**retry)))


@dataclass(frozen=True, slots=True)
class Parked:
    """A claimed dial that was told "not now" (a 429, or the REST budget): nothing placed.

    ``since`` is when the first refusal came and ``ready_at`` when it may be
    sent again (monotonic seconds); ``sent`` counts its requests so far.
    """

    since: float
    ready_at: float
    sent: int


class AgentLocks:
    """One lock per agent: an agent's dials and reconciles run one at a time in this process,
    so "at most one active call per agent" is checked and claimed without a race."""

    def __init__(self) -> None:
        # Bounded by the agents the rules name: one lock per agent ever dialed for.
        self._locks: dict[str, anyio.Lock] = {}

    def __call__(self, user_id: str) -> anyio.Lock:
        """The lock of ``user_id``'s dials."""
        lock = self._locks.get(user_id)
        if lock is None:
            # fast_acquire: free nearly always (the agent's lane runs its dials in
            # turn), and a trip through the event loop for it delayed every dial.
            lock = self._locks[user_id] = anyio.Lock(fast_acquire=True)
        return lock


def contact_id(claim: Claim) -> int | None:
    """The id of the contact ``claim`` dials, None for a number from an event."""
    return claim.contact.id if claim.contact else None


def request_fields(dial: RenderedDial) -> dict[str, Any]:
    """The request fields of a dial other than agent and number, as kept on its claim."""
    fields: dict[str, Any] = {
        "caller_id": dial.caller_id,
        "caller_id_name": dial.caller_id_name,
        "queue_id": dial.queue_id,
        "label": dial.label,
        "attributes": dict(dial.attributes) or None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def request_for(claim: Claim, number: str) -> DialRequest:
    """The platform request a claim sends to ``number`` (its stored fields, typed again)."""
    fields: Mapping[str, Any] = claim.request

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    attributes = fields.get("attributes")
    return DialRequest(
        user_id=claim.user_id,
        phone_number=number,
        caller_id=text("caller_id"),
        caller_id_name=text("caller_id_name"),
        queue_id=text("queue_id"),
        label=text("label"),
        attributes=(
            {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        ),
    )


def skipped(
    rule: str,
    key: str | None,
    guard: str,
    reason: str,
    *,
    retry_at: datetime | None = None,
    user: str | None = None,
    contact: int | None = None,
    level: int = logging.INFO,
) -> DialResult:
    """A dial that placed nothing because of ``guard``: logged (``dial.skipped``) and returned."""
    log.emit(
        logger,
        "dial.skipped",
        level,
        rule=rule,
        user=user,
        contact=contact,
        guard=guard,
        reason=reason,
        key=key,
        retry_at=retry_at.isoformat() if retry_at else None,
    )
    return DialResult("skipped", rule, key, guard=guard, reason=reason, retry_at=retry_at)


class Placer:
    """Guards a claimed dial's contact, sends its request, and records the answer."""

    def __init__(
        self,
        platform: CallControl,
        store: Store,
        guards_config: GuardsConfig,
        clock: Clock,
        *,
        retry: RetryPolicy,
        rng: random.Random,
        sleep: Sleep,
    ) -> None:
        self.platform = platform
        self.store = store
        self.clock = clock
        self.retry = retry
        self._guards = guards_config
        self._rng = rng
        self._sleep = sleep
        # Claims parked by a 429, by key; at most one per agent (a parked claim
        # keeps its agent busy), so bounded by the agents dialed for.
        self._parked: dict[str, Parked] = {}

    def parked(self, key: str) -> Parked | None:
        """The claim ``key`` as parked by a 429, None when it is not parked."""
        return self._parked.get(key)

    def unpark(self, key: str) -> Parked | None:
        """Take the claim ``key`` out of the parked ones (it is sent again, or settled)."""
        return self._parked.pop(key, None)

    def park_again(self, key: str, parked: Parked) -> None:
        """Put back a parking :meth:`unpark` took, the claim not sent after all."""
        self._parked[key] = parked

    def use_guards(self, guards_config: GuardsConfig) -> None:
        """Check the guards of a reloaded config from the next claim on."""
        self._guards = guards_config

    async def contact_guards(
        self, claim: Claim, listed: tuple[str | None, bool] | None = None
    ) -> tuple[str, guards.Deny | None]:
        """Guards that need the claimed contact; returns the E.164 number to dial.

        ``listed`` is a number and whether it is on the do-not-call list, as
        read with the claim; the list is read again for any other number.
        """
        contact = claim.contact
        raw = claim.phone_number or ""
        decision: guards.Decision
        if contact is not None:
            decision = guards.check_attempts(contact.attempts, self._guards.max_attempts)
            if isinstance(decision, guards.Deny):
                return raw, decision
            # Imported numbers may be in national format: normalize like event numbers.
            decision = guards.normalize_number(raw, self._guards.default_region)
            if isinstance(decision, guards.Deny):
                return raw, decision
            raw = decision.value or raw
        known = listed[1] if listed is not None and listed[0] == raw else None
        return raw, await self._number_guards(raw, contact.timezone if contact else None, known)

    async def _number_guards(
        self, raw: str, timezone: str | None, listed: bool | None = None
    ) -> guards.Deny | None:
        """Do-not-call, then the calling window (the rate token was taken before the claim).

        ``listed``: whether ``raw`` is on the do-not-call list, if already read.
        """
        decision: guards.Decision
        if listed is None:
            listed = await self.store.is_do_not_call(raw)
        decision = guards.check_do_not_call(listed)
        if isinstance(decision, guards.Deny):
            return decision
        decision = guards.check_window(raw, self.clock.now(), self._guards.calling_window, timezone)
        if isinstance(decision, guards.Deny):
            return decision
        return None

    async def deny_claimed(self, claim: Claim, denied: guards.Deny) -> None:
        """Record why a claimed dial placed nothing, and put its contact back in order."""
        await self.store.mark_failed(claim.key, f"denied by {denied.guard}: {denied.reason}")
        contact = claim.contact
        if contact is None:
            return
        if denied.guard in ("do_not_call", "number", "max_attempts"):
            # No later attempt can pass these: take it out of the queue.
            await self.store.close_contact(contact.id, denied.reason.split(" ", 1)[0])
        else:
            # Outside the window: due again when it opens, so it does not block
            # the agent's queue meanwhile (None keeps its old due time).
            await self.store.release_contact(contact.id, denied.retry_at)

    async def place(
        self, claim: Claim, request: DialRequest, parked: Parked | None = None
    ) -> DialResult | Unanswered:
        """Send the claimed dial; retry what is safe to retry, under the one claim.

        A 429 is the platform's "not now": it never placed the call, so the
        claim is parked (see the module docs) and the dial returned skipped
        (:data:`RATE_LIMITED`) with ``retry_at`` its Retry-After, never slept
        on here; ``parked`` is the claim's parking when it is sent again. It
        is given up once ``retry.max_rate_limited`` seconds have passed since
        the first 429 (a rate limit delays a dial, it does not drop it).
        Other retryable errors get ``retry.attempts`` requests in all, a short
        backoff apart. Sent without an answer, it is :class:`Unanswered`: the
        caller reconciles it.
        """
        rule = claim.rule
        contact = contact_id(claim)
        tries = max(1, self.retry.attempts)
        attempt = 0
        sent = parked.sent if parked else 0
        while True:
            sent += 1
            try:
                placed = await self.platform.place_call(request)
            except PlatformError as exc:
                if isinstance(exc, AmbiguousOutcome):
                    return await self._unknown(claim, str(exc), logging.WARNING)
                if exc.status == 429 or isinstance(exc, BudgetSpent):
                    return await self._park(claim, exc, sent, parked)
                if exc.retryable and attempt + 1 < tries:
                    delay = self.retry.delay(attempt, self._rng, exc.retry_after)
                    attempt += 1
                    if delay > self.retry.max_retry_after:
                        return await self.failed(claim, str(exc), exc)
                else:
                    return await self.failed(claim, str(exc), exc)
                log.emit(
                    logger,
                    "dial.retry",
                    rule=rule,
                    user=request.user_id,
                    key=claim.key,
                    attempt=sent,
                    delay=round(delay, 3),
                    error=str(exc),
                )
                # Short (``retry.cap`` at most, a few times): waited out here.
                await self._sleep(delay)
                continue
            except Exception as exc:
                # Not a classified platform error (a bug or an unmapped network
                # error): whether the request got out is unknown, so say so.
                return await self._unknown(claim, repr(exc), logging.ERROR)
            await self.record_placed(claim, placed.conversation_id, request.phone_number)
            log.emit(
                logger,
                "dial.placed",
                rule=rule,
                user=request.user_id,
                conversation=placed.conversation_id,
                contact=contact,
                number=request.phone_number,
                key=claim.key,
                attempts=sent,
            )
            return DialResult("placed", rule, claim.key, conversation_id=placed.conversation_id)

    async def _park(
        self, claim: Claim, exc: PlatformError, sent: int, parked: Parked | None
    ) -> DialResult:
        """A 429 (or the budget) refused the claimed dial: park it, or give up after long enough."""
        now = self.clock.monotonic()
        since = parked.since if parked else now
        limited_for = now - since
        if limited_for >= self.retry.max_rate_limited:
            return await self.failed(claim, str(exc), exc)
        delay = self.retry.delay(0, self._rng, exc.retry_after)
        delay = min(delay, self.retry.max_rate_limited - limited_for)
        self._parked[claim.key] = Parked(since, now + delay, sent)
        log.emit(
            logger,
            "dial.retry",
            rule=claim.rule,
            user=claim.user_id,
            key=claim.key,
            attempt=sent,
            delay=round(delay, 3),
            error=str(exc),
            parked=True,
        )
        retry_at = self.clock.now() + timedelta(seconds=delay)
        return DialResult(
            "skipped",
            claim.rule,
            claim.key,
            guard=RATE_LIMITED,
            reason=f"rate_limited, sent again in {delay:.3f}s under the same claim",
            error=exc,
            retry_at=retry_at,
        )

    async def record_placed(self, claim: Claim, conversation_id: str, number: str) -> None:
        """Write that ``claim`` placed ``conversation_id``, and track the call from now on."""
        # One transaction: a crash cannot leave a placed claim without its
        # tracked call, nor a tracked call whose claim still looks open.
        call = CallRecord(
            conversation_id=conversation_id,
            user_id=claim.user_id,
            contact_id=contact_id(claim),
            phone_number=number,
            state=CallState.DIALING.value,
            outcome=None,
            updated_at=self.clock.now(),
        )
        await self._write_after_send(
            claim, "placed", lambda: self.store.record_placed(claim.key, call)
        )

    async def _write_after_send(
        self, claim: Claim, what: str, write: Callable[[], Awaitable[None]]
    ) -> None:
        """Write what became of ``claim``'s sent request, waiting for the store if it is away.

        Tried again until the store takes it (idempotent writes), under the
        agent's lock: this agent's next dial waits for it. Cancelled with
        the daemon (the claim is then reconciled as one left in flight).
        """
        pause = _WRITE_RETRY[0]
        deferred = False
        while True:
            try:
                await write()
            except StoreUnavailable as exc:
                if not deferred:
                    deferred = True
                    log.emit(
                        logger,
                        "dial.write_deferred",
                        logging.WARNING,
                        rule=claim.rule,
                        user=claim.user_id,
                        key=claim.key,
                        write=what,
                        reason=exc.reason,
                    )
                await self._sleep(pause)
                pause = min(pause * 2, _WRITE_RETRY[1])
                continue
            if deferred:
                log.emit(
                    logger, "dial.write_done", rule=claim.rule, user=claim.user_id, key=claim.key
                )
            return

    async def _unknown(self, claim: Claim, error: str, level: int) -> Unanswered:
        """Sent without an answer: record it ``unknown`` for the reconciler."""
        now = self.clock.now()
        await self._write_after_send(
            claim, "unknown", lambda: self.store.mark_unknown(claim.key, error, now)
        )
        log.emit(
            logger,
            "dial.unknown",
            level,
            rule=claim.rule,
            user=claim.user_id,
            key=claim.key,
            contact=contact_id(claim),
            error=error,
        )
        return Unanswered(replace(claim, state="unknown", error=error, updated_at=now))

    async def failed(self, claim: Claim, error: str, exc: PlatformError | None) -> DialResult:
        """Record that ``claim`` placed no call (its contact's attempt counts as failed)."""
        contact = claim.contact
        now = self.clock.now()

        async def write() -> None:
            await self.store.mark_failed(claim.key, error)
            if contact is not None:
                due = guards.next_due_at("failed", contact.attempts + 1, now, self._guards)
                await self.store.record_outcome(contact.id, "failed", now, due)

        await self._write_after_send(claim, "failed", write)
        log.emit(
            logger,
            "dial.failed",
            logging.WARNING,
            rule=claim.rule,
            user=claim.user_id,
            key=claim.key,
            contact=contact_id(claim),
            status=exc.status if exc else None,
            code=exc.code if exc else None,
            details=("; ".join(f"{d.field}: {d.code}" for d in exc.details) or None)
            if exc
            else None,
            correlation_id=exc.correlation_id if exc else None,
            error=error,
        )
        return DialResult("failed", claim.rule, claim.key, reason=error, error=exc)
