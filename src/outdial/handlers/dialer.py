"""The dialer: guards, an idempotency claim, the platform request, the record.

Exactly one call per trigger comes from the order of the steps:

1. the idempotency key is a digest of the rule, the event's identity and the
   dial target, so a duplicate delivery of the event gets the same key;
2. the key is claimed in the store *before* anything is sent; a second claim
   of the same key gets nothing and places nothing;
3. retries of a retryable error (429, 5xx, network trouble before sending)
   happen under that one claim;
4. an ambiguous outcome (sent, no answer) is recorded as ``unknown`` and never
   retried: a second request could be a second call.

Per agent, dials run one at a time (an anyio lock per agent), so "at most one
active call per agent" is checked and claimed without a race in this process.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.config import GuardsConfig
from outdial.handlers import guards
from outdial.handlers.calls import CallState
from outdial.handlers.rules import Match
from outdial.handlers.templates import RenderedDial, TemplateError
from outdial.platforms.base import AmbiguousOutcome, DialRequest, Platform, PlatformError
from outdial.store.base import CallRecord, Claim, Store

__all__ = ["DialResult", "Dialer", "RetryPolicy", "idempotency_key"]

logger = logging.getLogger("outdial.dialer")

DialStatus = Literal["placed", "skipped", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class DialResult:
    """What became of one match: placed, skipped by a guard, failed, or unknown."""

    status: DialStatus
    rule: str
    key: str | None = None
    conversation_id: str | None = None
    guard: str | None = None
    reason: str | None = None
    error: PlatformError | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of retryable platform errors: full jitter, capped, a few times."""

    attempts: int = 4  # requests in all, the first one included
    base: float = 0.5
    cap: float = 10.0
    max_retry_after: float = 60.0  # a longer Retry-After gives up instead of stalling

    def delay(self, retry: int, rng: random.Random, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based); the platform's Retry-After wins."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return rng.uniform(0.0, min(self.cap, self.base * (2**retry)))


def idempotency_key(rule: str, event_identity: str, dial: RenderedDial) -> str:
    """Deterministic key of one trigger: same rule, same event, same target -> same key."""
    text = "\n".join((rule, event_identity, dial.user_id, dial.target))
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


Sleep = Callable[[float], Awaitable[None]]


class Dialer:
    """Turns a rule match into at most one outbound call."""

    def __init__(
        self,
        platform: Platform,
        store: Store,
        guards_config: GuardsConfig,
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = anyio.sleep,
        max_rate_wait: float = 2.0,
    ) -> None:
        self.platform = platform
        self.store = store
        self.config = guards_config
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._max_rate_wait = max_rate_wait
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
        lock = self._user_locks.setdefault(spec.user_id, anyio.Lock())
        async with lock:
            return await self._dial_locked(match.name, key, spec)

    async def _dial_locked(self, rule: str, key: str, spec: RenderedDial) -> DialResult:
        store = self.store
        active = await store.active_call_for_user(spec.user_id)
        decision = guards.check_one_active_call([active.conversation_id] if active else [])
        if isinstance(decision, guards.Deny):
            return self._skipped(rule, key, decision.guard, decision.reason)

        number: str | None = None
        if spec.phone_number is not None:
            # A number from the event is normalized before claiming, so the
            # claim records the number actually dialed.
            decision = guards.normalize_number(spec.phone_number, self.config.default_region)
            if isinstance(decision, guards.Deny):
                return self._skipped(rule, key, decision.guard, decision.reason)
            number = decision.value

        now = self.clock.now()
        claim = await store.claim_dial(
            key,
            rule,
            spec.user_id,
            now,
            contact="next" if spec.contact == "next" else None,
            phone_number=number,
        )
        if claim is None:
            if await store.get_claim(key) is not None:
                return self._skipped(rule, key, "idempotency", "already_claimed")
            return self._skipped(rule, key, "contacts", "no_due_contact")

        number, denied = await self._contact_guards(claim)
        if denied is not None:
            await self._deny_claimed(claim, denied)
            return self._skipped(rule, key, denied.guard, denied.reason)
        return await self._place(rule, claim, spec, number)

    async def _contact_guards(self, claim: Claim) -> tuple[str, guards.Deny | None]:
        """Guards that need the claimed contact; returns the E.164 number to dial."""
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
        return raw, await self._number_guards(raw, contact.timezone if contact else None)

    async def _number_guards(self, raw: str, timezone: str | None) -> guards.Deny | None:
        """Do-not-call, calling window, then the calls-per-second budget."""
        decision: guards.Decision
        decision = guards.check_do_not_call(await self.store.is_do_not_call(raw))
        if isinstance(decision, guards.Deny):
            return decision
        decision = guards.check_window(raw, self.clock.now(), self.config.calling_window, timezone)
        if isinstance(decision, guards.Deny):
            return decision
        # Last, so a dial denied above spends no token; waits briefly for one
        # rather than dropping the trigger.
        waited = 0.0
        while True:
            wait = self.bucket.try_acquire(self.clock.monotonic())
            if wait <= 0:
                return None
            if waited + wait > self._max_rate_wait:
                return guards.Deny("calls_per_second", f"rate_limited after {waited:.2f}s")
            await self._sleep(wait)
            waited += wait

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

    async def _place(self, rule: str, claim: Claim, spec: RenderedDial, number: str) -> DialResult:
        request = DialRequest(
            user_id=spec.user_id,
            phone_number=number,
            caller_id=spec.caller_id,
            caller_id_name=spec.caller_id_name,
            queue_id=spec.queue_id,
            label=spec.label,
            attributes=dict(spec.attributes),
        )
        contact_id = claim.contact.id if claim.contact else None
        tries = max(1, self.retry.attempts)
        for attempt in range(tries):
            try:
                placed = await self.platform.place_call(request)
            except AmbiguousOutcome as exc:
                # The call may exist; a retry could ring the callee twice. The
                # contact stays "dialing" until someone reconciles it.
                await self.store.mark_unknown(claim.key, str(exc))
                log.emit(
                    logger,
                    "dial.unknown",
                    logging.WARNING,
                    rule=rule,
                    user=spec.user_id,
                    key=claim.key,
                    contact=contact_id,
                    error=str(exc),
                )
                return DialResult("unknown", rule, claim.key, reason=str(exc), error=exc)
            except PlatformError as exc:
                if exc.retryable and attempt + 1 < tries:
                    delay = self.retry.delay(attempt, self._rng, exc.retry_after)
                    if delay <= self.retry.max_retry_after:
                        log.emit(
                            logger,
                            "dial.retry",
                            rule=rule,
                            user=spec.user_id,
                            key=claim.key,
                            attempt=attempt + 1,
                            delay=round(delay, 3),
                            error=str(exc),
                        )
                        await self._sleep(delay)
                        continue
                return await self._failed(rule, claim, spec, exc)
            except Exception as exc:
                # Not a classified platform error (a bug or an unmapped network
                # error): whether the request got out is unknown, so say so.
                await self.store.mark_unknown(claim.key, repr(exc))
                log.emit(
                    logger,
                    "dial.unknown",
                    logging.ERROR,
                    rule=rule,
                    user=spec.user_id,
                    key=claim.key,
                    contact=contact_id,
                    error=repr(exc),
                )
                return DialResult("unknown", rule, claim.key, reason=repr(exc))
            await self.store.mark_placed(claim.key, placed.conversation_id)
            now = self.clock.now()
            await self.store.upsert_call(
                CallRecord(
                    conversation_id=placed.conversation_id,
                    user_id=spec.user_id,
                    contact_id=contact_id,
                    phone_number=number,
                    state=CallState.DIALING.value,
                    outcome=None,
                    updated_at=now,
                )
            )
            log.emit(
                logger,
                "dial.placed",
                rule=rule,
                user=spec.user_id,
                conversation=placed.conversation_id,
                contact=contact_id,
                number=number,
                key=claim.key,
                attempts=attempt + 1,
            )
            return DialResult("placed", rule, claim.key, conversation_id=placed.conversation_id)
        raise AssertionError("unreachable: the loop returns")  # pragma: no cover

    async def _failed(
        self, rule: str, claim: Claim, spec: RenderedDial, exc: PlatformError
    ) -> DialResult:
        await self.store.mark_failed(claim.key, str(exc))
        if claim.contact is not None:
            attempts = claim.contact.attempts + 1
            now = self.clock.now()
            due = guards.next_due_at("failed", attempts, now, self.config)
            await self.store.record_outcome(claim.contact.id, "failed", now, due)
        log.emit(
            logger,
            "dial.failed",
            logging.WARNING,
            rule=rule,
            user=spec.user_id,
            key=claim.key,
            contact=claim.contact.id if claim.contact else None,
            status=exc.status,
            code=exc.code,
            details="; ".join(f"{d.field}: {d.code}" for d in exc.details) or None,
            correlation_id=exc.correlation_id,
            error=str(exc),
        )
        return DialResult("failed", rule, claim.key, reason=str(exc), error=exc)

    def _skipped(self, rule: str, key: str | None, guard: str, reason: str) -> DialResult:
        log.emit(logger, "dial.skipped", rule=rule, guard=guard, reason=reason, key=key)
        return DialResult("skipped", rule, key, guard=guard, reason=reason)
