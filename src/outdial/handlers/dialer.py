"""The dialer: guards, an idempotency claim, the platform request, the record.

Exactly one call per trigger comes from the order of the steps:

1. the idempotency key is a digest of the rule, the event's identity and the
   dial target, so a duplicate delivery of the event gets the same key;
2. the key is claimed in the store *before* anything is sent; a second claim
   of the same key gets nothing and places nothing;
3. retries of a retryable error (429, 5xx, network trouble before sending)
   happen under that one claim;
4. an ambiguous outcome (sent, no answer) is recorded as ``unknown`` and is
   never simply retried: a second request could be a second call. It is
   reconciled against the agent's calls on the platform
   (:mod:`outdial.handlers.reconcile` decides): a matching call found means it
   was placed, and it is tracked; only a call still not found once the
   platform's history has had time to catch up lets the dial be sent again,
   under the same claim, a bounded number of times. A lookup that fails
   leaves the claim ``unknown`` for the next :meth:`Dialer.reconcile`.

A store whose database is away fails a dial closed: a claim that cannot be
written is never sent. What the platform answered to a request already sent
(placed, refused, no answer) is written once the store takes it again,
however long that is: dropping it would leave a call untracked, or its claim
looking in flight.

Per agent, dials run one at a time (an anyio lock per agent), so "at most one
active call per agent" is checked and claimed without a race in this process.
A claim still open (in flight elsewhere, or unknown) counts as the agent's
active call: an agent whose last dial may be ringing is not dialed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.config import GuardsConfig
from outdial.handlers import guards, reconcile
from outdial.handlers.calls import CallState
from outdial.handlers.reconcile import ClaimOwner, Found, ReconcilePolicy
from outdial.handlers.rules import Match
from outdial.handlers.selection import choose_contact
from outdial.handlers.templates import RenderedDial, TemplateError
from outdial.platforms.base import (
    AmbiguousOutcome,
    CallControl,
    DialRequest,
    OutboundCall,
    PlatformError,
)
from outdial.store.base import CallRecord, Claim, NumberCap, Store, StoreUnavailable

__all__ = ["DialResult", "Dialer", "RetryPolicy", "idempotency_key"]

logger = logging.getLogger("outdial.dialer")

DialStatus = Literal["placed", "skipped", "failed", "unknown"]

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


def _contact_id(claim: Claim) -> int | None:
    return claim.contact.id if claim.contact else None


def this_process() -> ClaimOwner:
    """This process as a claim owner: host name, pid, and a nonce of this start."""
    return ClaimOwner(socket.gethostname(), os.getpid(), secrets.token_hex(4))


def pid_alive_here(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host (signal 0 probes, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


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


def idempotency_key(rule: str, event_identity: str, dial: RenderedDial) -> str:
    """Deterministic key of one trigger: same rule, same event, same target -> same key."""
    text = "\n".join((rule, event_identity, dial.user_id, dial.target))
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


Sleep = Callable[[float], Awaitable[None]]


def _busy(active_call: CallRecord | None, open_claims: Sequence[Claim]) -> list[str]:
    """What keeps an agent busy, as :func:`guards.check_one_active_call` names it."""
    busy = [active_call.conversation_id] if active_call else []
    busy += [f"unresolved dial {c.key[:12]} ({c.state})" for c in open_claims]
    return busy


class Dialer:
    """Turns a rule match into at most one outbound call."""

    def __init__(
        self,
        platform: CallControl,
        store: Store,
        guards_config: GuardsConfig,
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = anyio.sleep,
        reconcile_policy: ReconcilePolicy | None = None,
        contacts_scanned: int = 50,
        recent_calls: Callable[[str], Sequence[OutboundCall]] | None = None,
        owner: ClaimOwner | None = None,
        pid_alive: Callable[[int], bool] | None = None,
    ) -> None:
        self.platform = platform
        self.store = store
        self.config = guards_config
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.reconcile_policy = reconcile_policy or ReconcilePolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep
        #: How many of an agent's due contacts one dial looks through for a callable one.
        self.contacts_scanned = contacts_scanned
        #: The agent's calls already seen on its events (not tracked yet): an unknown
        #: dial is looked for there first, before the platform's call history.
        self.recent_calls = recent_calls
        #: This process, as the owner of the claims it makes (see :meth:`renew_leases`).
        self.owner = owner or this_process()
        self._pid_alive = pid_alive or pid_alive_here
        self.bucket = guards.TokenBucket(guards_config.calls_per_second, clock.monotonic())
        # Bounded by the agents the rules name: one lock per agent ever dialed for.
        self._user_locks: dict[str, anyio.Lock] = {}

    async def dial(self, match: Match) -> DialResult:
        """Guard, claim, place and record the dial ``match`` asks for."""
        try:
            spec = match.render_dial()
        except TemplateError as exc:
            return self._skipped(match.name, None, "template", str(exc))
        key = idempotency_key(match.name, match.event.identity, spec)
        async with self._lock(spec.user_id):
            return await self._dial_locked(match.name, key, spec)

    def apply_guards(self, guards_config: GuardsConfig) -> None:
        """Use the guards of a reloaded config from the next dial on (with a fresh rate bucket)."""
        self.config = guards_config
        self.bucket = guards.TokenBucket(guards_config.calls_per_second, self.clock.monotonic())

    def needs_reconciling(self, claim: Claim, now: datetime) -> bool:
        """Whether ``claim`` is reconciled now: unknown, or in flight for a process gone."""
        gone = reconcile.owner_gone(claim, now, self.owner, self._pid_alive)
        return reconcile.needs_reconciling(claim, now, self.reconcile_policy, gone=gone)

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.reconcile_policy.lease)

    async def renew_leases(self) -> int:
        """Renew the leases of this process's claims in flight; call it every lease / 3."""
        return await self.store.renew_leases(str(self.owner), self._lease_until(self.clock.now()))

    def _lock(self, user_id: str) -> anyio.Lock:
        return self._user_locks.setdefault(user_id, anyio.Lock())

    async def reconcile(self, key: str, *, allow_retry: bool = True) -> DialResult | None:
        """Reconcile the claim ``key`` if it needs it; None when it does not (any more).

        With ``allow_retry`` False (dialing is stopping) a dial found not
        placed stays ``unknown`` instead of being sent again.
        """
        claim = await self.store.get_claim(key)
        if claim is None:
            return None
        async with self._lock(claim.user_id):
            # Re-read under the lock: a dial or another reconcile may have settled it.
            claim = await self.store.get_claim(key)
            if claim is None or not self.needs_reconciling(claim, self.clock.now()):
                return None
            return await self._reconcile_locked(claim, allow_retry=allow_retry)

    async def _dial_locked(self, rule: str, key: str, spec: RenderedDial) -> DialResult:
        if spec.contact == "next":
            return await self._dial_next_contact(rule, key, spec)
        assert spec.phone_number is not None
        # A number from the event is normalized before claiming, so the claim
        # records the number actually dialed.
        decision = guards.normalize_number(spec.phone_number, self.config.default_region)
        if isinstance(decision, guards.Deny):
            return await self._deny_unclaimed(rule, key, spec.user_id, decision)
        number = decision.value
        deferred = self._take_rate_token(rule, key)
        if deferred is not None:
            return deferred
        return await self._claim_and_place(rule, key, spec, phone_number=number)

    async def _dial_next_contact(self, rule: str, key: str, spec: RenderedDial) -> DialResult:
        """``contact = "next"``: the first of the agent's contacts callable now.

        The agent's due contacts are read in list order and checked one by one
        (:func:`~outdial.handlers.selection.choose_contact`): contacts that can
        never be called are closed, contacts outside their calling window are
        passed over untouched (they keep their place), and the first callable
        one is claimed by id. When none is callable the result says when one
        may be (``retry_at``), and nothing is claimed.
        """
        now = self.clock.now()
        due = await self.store.due_contacts(
            spec.user_id, now, self.contacts_scanned, key=key, number_cap=self._number_cap(now)
        )
        if due.claimed:
            return self._skipped(rule, key, "idempotency", "already_claimed", user=spec.user_id)
        choice = choose_contact(
            due.contacts,
            due.do_not_call,
            now,
            self.config,
            next_due_at=due.next_due_at,
            capped=due.capped,
        )
        for contact, denied in choice.closed:
            await self.store.close_contact(contact.id, denied.reason.split(" ", 1)[0])
            log.emit(
                logger,
                "contact.closed",
                rule=rule,
                user=spec.user_id,
                contact=contact.id,
                guard=denied.guard,
                reason=denied.reason,
            )
        if choice.contact is None:
            return self._skipped(
                rule, key, "contacts", choice.reason, retry_at=choice.retry_at, user=spec.user_id
            )
        deferred = self._take_rate_token(rule, key, user=spec.user_id)
        if deferred is not None:
            return deferred
        return await self._claim_and_place(rule, key, spec, contact=choice.contact.id)

    def _number_cap(self, now: datetime) -> NumberCap | None:
        """``[guards] max_calls_per_number`` as the store checks it, None when off."""
        limit = self.config.max_calls_per_number
        if limit.count <= 0:
            return None
        window = timedelta(seconds=limit.per)
        return NumberCap(limit.count, now - window, window)

    def _take_rate_token(
        self, rule: str, key: str, *, user: str | None = None
    ) -> DialResult | None:
        """Spend a ``calls_per_second`` token, or say when the next one comes (nothing claimed).

        A rate-limited dial is deferred, never dropped: the caller offers it
        again at ``retry_at``.
        """
        wait = self.bucket.try_acquire(self.clock.monotonic())
        if wait <= 0:
            return None
        retry_at = self.clock.now() + timedelta(seconds=wait)
        return self._skipped(
            rule,
            key,
            "calls_per_second",
            f"rate_limited, next token in {wait:.3f}s",
            retry_at=retry_at,
            user=user,
            level=logging.DEBUG,
        )

    async def _claim_and_place(
        self,
        rule: str,
        key: str,
        spec: RenderedDial,
        *,
        contact: int | None = None,
        phone_number: str | None = None,
    ) -> DialResult:
        store = self.store
        # One store operation, one transaction: a duplicate trigger is reported
        # as one (whatever the agent is doing now), a busy agent is refused,
        # else the dial is claimed, and the claimed number's do-not-call entry
        # comes back with it. Under the agent's lock, so no dial of this
        # process for the agent can slip in either.
        now = self.clock.now()
        outcome = await store.claim_for_dial(
            key,
            rule,
            spec.user_id,
            now,
            contact=contact,
            phone_number=phone_number,
            request=request_fields(spec),
            number_cap=self._number_cap(now),
            owner=str(self.owner),
            lease_until=self._lease_until(now),
        )
        claim = outcome.claim
        if claim is None:
            if outcome.refused == "number_limit":
                limit = self.config.max_calls_per_number
                return self._skipped(
                    rule,
                    key,
                    "max_calls_per_number",
                    f"max_calls_per_number {limit.count} in {limit.per:g}s",
                    retry_at=outcome.free_at,
                    user=spec.user_id,
                )
            if outcome.refused == "busy":
                decision = guards.check_one_active_call(
                    _busy(outcome.active_call, outcome.open_claims)
                )
                if isinstance(decision, guards.Deny):
                    return self._skipped(
                        rule, key, decision.guard, decision.reason, user=spec.user_id
                    )
            if outcome.refused == "no_contact":
                # Taken or changed since it was read (another replica): look again.
                return self._skipped(
                    rule, key, "contacts", "contact_taken", retry_at=self.clock.now()
                )
            return self._skipped(rule, key, "idempotency", "already_claimed", user=spec.user_id)

        number, denied = await self._contact_guards(
            claim, (claim.phone_number, outcome.do_not_call)
        )
        if denied is not None:
            await self._deny_claimed(claim, denied)
            return self._skipped(
                rule,
                key,
                denied.guard,
                denied.reason,
                user=spec.user_id,
                contact=_contact_id(claim),
            )
        return await self._place(claim, request_for(claim, number))

    async def _deny_unclaimed(
        self, rule: str, key: str, user_id: str, denied: guards.Deny
    ) -> DialResult:
        """An event's number that cannot be dialed: skipped, reported as the guards rank it.

        Rare, so it pays a read of its own: a duplicate trigger and a busy agent
        are reported before the number, as when they are checked in the claim.
        """
        context = await self.store.dial_context(key, user_id)
        if context.claimed:
            return self._skipped(rule, key, "idempotency", "already_claimed", user=user_id)
        decision = guards.check_one_active_call(_busy(context.active_call, context.open_claims))
        if isinstance(decision, guards.Deny):
            return self._skipped(rule, key, decision.guard, decision.reason, user=user_id)
        return self._skipped(rule, key, denied.guard, denied.reason, user=user_id)

    async def _contact_guards(
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
            decision = guards.check_attempts(contact.attempts, self.config.max_attempts)
            if isinstance(decision, guards.Deny):
                return raw, decision
            # Imported numbers may be in national format: normalize like event numbers.
            decision = guards.normalize_number(raw, self.config.default_region)
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
        decision = guards.check_window(raw, self.clock.now(), self.config.calling_window, timezone)
        if isinstance(decision, guards.Deny):
            return decision
        return None

    async def _deny_claimed(self, claim: Claim, denied: guards.Deny) -> None:
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

    async def _place(self, claim: Claim, request: DialRequest) -> DialResult:
        """Send the claimed dial; retry what is safe to retry, under the one claim.

        A 429 is the platform's "not now": it never placed the call, so it is
        retried after its Retry-After without using up one of the attempts, for
        up to ``retry.max_rate_limited`` seconds in all (a rate limit delays a
        dial, it does not drop it). Other retryable errors get
        ``retry.attempts`` requests in all.
        """
        rule = claim.rule
        contact_id = claim.contact.id if claim.contact else None
        tries = max(1, self.retry.attempts)
        attempt = 0
        sent = 0
        limited_for = 0.0
        while True:
            sent += 1
            try:
                placed = await self.platform.place_call(request)
            except PlatformError as exc:
                if isinstance(exc, AmbiguousOutcome):
                    return await self._unknown(claim, str(exc), logging.WARNING)
                rate_limited = exc.status == 429
                if rate_limited and limited_for < self.retry.max_rate_limited:
                    delay = self.retry.delay(attempt, self._rng, exc.retry_after)
                    delay = min(delay, self.retry.max_rate_limited - limited_for)
                    limited_for += delay
                elif exc.retryable and attempt + 1 < tries:
                    delay = self.retry.delay(attempt, self._rng, exc.retry_after)
                    attempt += 1
                    if delay > self.retry.max_retry_after:
                        return await self._failed(claim, str(exc), exc)
                else:
                    return await self._failed(claim, str(exc), exc)
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
                await self._sleep(delay)
                continue
            except Exception as exc:
                # Not a classified platform error (a bug or an unmapped network
                # error): whether the request got out is unknown, so say so.
                return await self._unknown(claim, repr(exc), logging.ERROR)
            await self._record_placed(claim, placed.conversation_id, request.phone_number)
            log.emit(
                logger,
                "dial.placed",
                rule=rule,
                user=request.user_id,
                conversation=placed.conversation_id,
                contact=contact_id,
                number=request.phone_number,
                key=claim.key,
                attempts=sent,
            )
            return DialResult("placed", rule, claim.key, conversation_id=placed.conversation_id)

    async def _record_placed(self, claim: Claim, conversation_id: str, number: str) -> None:
        # One transaction: a crash cannot leave a placed claim without its
        # tracked call, nor a tracked call whose claim still looks open.
        call = CallRecord(
            conversation_id=conversation_id,
            user_id=claim.user_id,
            contact_id=claim.contact.id if claim.contact else None,
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

    async def _unknown(self, claim: Claim, error: str, level: int) -> DialResult:
        """Sent without an answer: record it, then reconcile right away."""
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
            contact=claim.contact.id if claim.contact else None,
            error=error,
        )
        # The call is often listed already; if not, the decision says wait.
        unknown = replace(claim, state="unknown", error=error, updated_at=now)
        return await self._reconcile_locked(unknown, allow_retry=True)

    def _claim_number(self, claim: Claim) -> str:
        raw = claim.phone_number or ""
        normalized = guards.normalize_number(raw, self.config.default_region)
        if isinstance(normalized, guards.Allow) and normalized.value:
            return normalized.value
        return raw

    async def _reconcile_locked(self, claim: Claim, *, allow_retry: bool) -> DialResult:
        """Look for the unknown dial's call on the platform and act on :func:`reconcile.decide`."""
        policy = self.reconcile_policy
        now = self.clock.now()
        if claim.state == "claimed":
            # Left behind by a process that stopped mid-dial: unknown since its last send.
            since = reconcile.last_send(claim)
            error = "the dialing process stopped before the platform answered"
            await self.store.mark_unknown(claim.key, error, since)
            claim = replace(claim, state="unknown", error=error, updated_at=since)
        number = self._claim_number(claim)
        seen = list(self.recent_calls(claim.user_id)) if self.recent_calls else []
        if seen:
            known = {
                c.conversation_id for c in seen if await self.store.get_call(c.conversation_id)
            }
            local = reconcile.decide(
                claim, number, seen, known, now, policy, self.config.default_region
            )
            if isinstance(local, reconcile.Found):
                return await self._found(claim, local, number, source="events")
        start, end = reconcile.search_window(claim, now, policy)
        try:
            calls = await self.platform.find_outbound_calls(
                claim.user_id, start, end, phone_number=number
            )
            known = {
                c.conversation_id for c in calls if await self.store.get_call(c.conversation_id)
            }
        except Exception as exc:
            log.emit(
                logger,
                "dial.reconcile_failed",
                logging.WARNING,
                rule=claim.rule,
                user=claim.user_id,
                key=claim.key,
                error=f"{type(exc).__name__}: {exc}",
            )
            reason = f"reconcile lookup failed: {exc}"
            return DialResult("unknown", claim.rule, claim.key, reason=reason)
        decision = reconcile.decide(
            claim, number, calls, known, now, policy, self.config.default_region
        )
        fields: dict[str, Any] = {"rule": claim.rule, "user": claim.user_id, "key": claim.key}
        if isinstance(decision, reconcile.Found):
            return await self._found(claim, decision, number, source="history")
        if isinstance(decision, reconcile.Wait):
            log.emit(logger, "dial.unresolved", **fields, until=decision.until.isoformat())
            reason = f"no call found yet; conclusive after {decision.until.isoformat()}"
            return DialResult("unknown", claim.rule, claim.key, reason=reason)
        if isinstance(decision, reconcile.GiveUp):
            return await self._failed(claim, f"reconciled: {decision.reason}", None)
        if not allow_retry:
            return DialResult("unknown", claim.rule, claim.key, reason="not placed; dialing off")
        return await self._resend(claim, now)

    async def _found(self, claim: Claim, found: Found, number: str, *, source: str) -> DialResult:
        """The unknown dial's call was found (on the agent's events, or in the history)."""
        await self._record_placed(claim, found.conversation_id, number)
        log.emit(
            logger,
            "dial.placed",
            rule=claim.rule,
            user=claim.user_id,
            key=claim.key,
            conversation=found.conversation_id,
            contact=claim.contact.id if claim.contact else None,
            number=number,
            reconciled=True,
            found_in=source,
        )
        return DialResult(
            "placed", claim.rule, claim.key, conversation_id=found.conversation_id, reconciled=True
        )

    async def _resend(self, claim: Claim, now: datetime) -> DialResult:
        """Send an unknown dial again: the platform has no call for it."""
        if not await self.store.retry_claim(
            claim.key,
            claim.retries,
            now,
            owner=str(self.owner),
            lease_until=self._lease_until(now),
        ):
            # Another reconciler (a replica) took it first.
            return self._skipped(
                claim.rule, claim.key, "idempotency", "retried_elsewhere", user=claim.user_id
            )
        fresh = await self.store.get_claim(claim.key)
        if fresh is None:  # pragma: no cover (claims are never deleted)
            raise KeyError(claim.key)
        log.emit(
            logger,
            "dial.resend",
            rule=fresh.rule,
            user=fresh.user_id,
            key=fresh.key,
            retry=fresh.retries,
        )
        number, denied = await self._contact_guards(fresh)
        if denied is not None:
            await self._deny_claimed(fresh, denied)
            return self._skipped(
                fresh.rule,
                fresh.key,
                denied.guard,
                denied.reason,
                user=fresh.user_id,
                contact=_contact_id(fresh),
            )
        return await self._place(fresh, request_for(fresh, number))

    async def _failed(self, claim: Claim, error: str, exc: PlatformError | None) -> DialResult:
        contact = claim.contact
        now = self.clock.now()

        async def write() -> None:
            await self.store.mark_failed(claim.key, error)
            if contact is not None:
                due = guards.next_due_at("failed", contact.attempts + 1, now, self.config)
                await self.store.record_outcome(contact.id, "failed", now, due)

        await self._write_after_send(claim, "failed", write)
        log.emit(
            logger,
            "dial.failed",
            logging.WARNING,
            rule=claim.rule,
            user=claim.user_id,
            key=claim.key,
            contact=claim.contact.id if claim.contact else None,
            status=exc.status if exc else None,
            code=exc.code if exc else None,
            details=("; ".join(f"{d.field}: {d.code}" for d in exc.details) or None)
            if exc
            else None,
            correlation_id=exc.correlation_id if exc else None,
            error=error,
        )
        return DialResult("failed", claim.rule, claim.key, reason=error, error=exc)

    def _skipped(
        self,
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
