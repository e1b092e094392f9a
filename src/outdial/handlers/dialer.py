"""The dialer: guards, an idempotency claim, the platform request, the record.

Exactly one call per trigger comes from the order of the steps:

1. the idempotency key is a digest of the rule, the event's identity and the
   dial target, so a duplicate delivery of the event gets the same key;
2. the key is claimed in the store *before* anything is sent; a second claim
   of the same key gets nothing and places nothing;
3. retries of a retryable error (429, 5xx, network trouble before sending)
   happen under that one claim (:mod:`outdial.handlers.placing`); a 429
   parks the claim and the dial is sent again when its trigger is offered
   again, never waited out in the agent's turn;
4. an ambiguous outcome (sent, no answer) is recorded as ``unknown`` and is
   never simply retried: a second request could be a second call. The
   :class:`~outdial.handlers.reconciler.Reconciler` settles it against the
   agent's calls on the platform, at once and again on each
   :meth:`Dialer.reconcile`.

A store whose database is away fails a dial closed: a claim that cannot be
written is never sent.

No limit is waited out in the agent's turn (the worker that runs it also
runs other agents' events): a dial the ``calls_per_second`` bucket or the
platform's REST budget would hold back is skipped with ``retry_at`` before
anything is claimed, and its trigger offered again then (:meth:`Dialer.wait_out`
is the wait, run off the turn).

Per agent, dials run one at a time (an anyio lock per agent, shared with the
reconciler), so "at most one active call per agent" is checked and claimed
without a race in this process. A claim still open (in flight elsewhere, or
unknown) counts as the agent's active call: an agent whose last dial may be
ringing is not dialed again.

This module is the dial path (template, guards before the claim, the claim);
sending and recording live in :mod:`outdial.handlers.placing`, reconciling in
:mod:`outdial.handlers.reconciler`.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.config import GuardsConfig
from outdial.handlers import guards, reconcile
from outdial.handlers.placing import (
    RATE_LIMITED,
    AgentLocks,
    DialResult,
    Placer,
    RetryPolicy,
    Sleep,
    contact_id,
    request_fields,
    request_for,
    skipped,
)
from outdial.handlers.reconcile import ClaimOwner, ReconcilePolicy
from outdial.handlers.reconciler import RecentCalls, Reconciler, pid_alive_here, this_process
from outdial.handlers.rules import Match
from outdial.handlers.selection import choose_contact
from outdial.handlers.templates import RenderedDial, TemplateError
from outdial.platforms.base import CallControl
from outdial.platforms.ratelimit import RequestBudget
from outdial.store.base import CallRecord, Claim, NumberCap, Store

__all__ = ["REST_BUDGET", "WAITED_OUT", "DialResult", "Dialer", "RetryPolicy", "idempotency_key"]

#: The guard of a dial the platform's REST budget holds back (nothing claimed).
REST_BUDGET = "rest_budget"
#: Skips whose wait :meth:`Dialer.wait_out` does (off the agent's turn) before offering again.
WAITED_OUT = frozenset({RATE_LIMITED, REST_BUDGET})

logger = logging.getLogger("outdial.dialer")


def idempotency_key(rule: str, event_identity: str, dial: RenderedDial) -> str:
    """Deterministic key of one trigger: same rule, same event, same target -> same key."""
    text = "\n".join((rule, event_identity, dial.user_id, dial.target))
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _busy(active_call: CallRecord | None, open_claims: Sequence[Claim]) -> list[str]:
    """What keeps an agent busy, as :func:`guards.check_one_active_call` names it."""
    busy = [active_call.conversation_id] if active_call else []
    busy += [f"unresolved dial {c.key[:12]} ({c.state})" for c in open_claims]
    return busy


class _Bucket(guards.TokenBucket):
    """The ``calls_per_second`` bucket, which takes back a token no dial followed."""

    def refund(self) -> None:
        """Give back one token taken for a dial that then placed nothing (no contact chosen)."""
        self._tokens = min(self.burst, self._tokens + 1.0)


class Dialer:
    """Turns a rule match into at most one outbound call.

    ``recent_calls`` (the agent's calls seen on its events, not tracked yet)
    is where the reconciler looks first for an unknown dial's call; the
    composition that builds the dialer wires it (see
    :class:`~outdial.handlers.tracker.EarlyCalls`).
    """

    def __init__(
        self,
        platform: CallControl,
        store: Store,
        guards_config: GuardsConfig,
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Sleep | None = None,
        reconcile_policy: ReconcilePolicy | None = None,
        contacts_scanned: int = 50,
        recent_calls: RecentCalls | None = None,
        owner: ClaimOwner | None = None,
        pid_alive: Callable[[int], bool] | None = None,
    ) -> None:
        self.platform = platform
        self.store = store
        self.config = guards_config
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.reconcile_policy = reconcile_policy or ReconcilePolicy()
        #: How many of an agent's due contacts one dial looks through for a callable one.
        self.contacts_scanned = contacts_scanned
        #: This process, as the owner of the claims it makes (see :meth:`renew_leases`).
        self.owner = owner or this_process()
        self.bucket = _Bucket(guards_config.calls_per_second, clock.monotonic())
        self._lock = AgentLocks()
        # Retry-After waits run on the injected sleep, else on the clock.
        self._wait: Sleep = sleep or self._clock_sleep
        self._placer = Placer(
            platform,
            store,
            guards_config,
            clock,
            retry=self.retry,
            rng=rng or random.Random(),
            sleep=sleep or anyio.sleep,
        )
        #: Settles this dialer's unknown dials (and those of processes gone).
        self.reconciler = Reconciler(
            platform,
            store,
            self._placer,
            self._lock,
            clock,
            guards_config,
            policy=self.reconcile_policy,
            owner=self.owner,
            pid_alive=pid_alive or pid_alive_here,
            recent_calls=recent_calls,
        )

    async def _clock_sleep(self, seconds: float) -> None:
        await self.clock.sleep_until(self.clock.monotonic() + seconds)

    def _budget(self) -> RequestBudget | None:
        """The platform's REST budget, if it has one (test doubles do not)."""
        budget = getattr(self.platform, "budget", None)
        return budget if isinstance(budget, RequestBudget) else None

    async def wait_out(self, result: DialResult) -> None:
        """Wait until a dial skipped with ``retry_at`` may be offered again.

        For skips in :data:`WAITED_OUT`: run it anywhere but in the agent's
        turn (the pacer does). Until ``retry_at`` (a 429's Retry-After), then
        until the REST budget grants a request (on the budget's own sleep).
        """
        if result.retry_at is not None:
            delay = (result.retry_at - self.clock.now()).total_seconds()
            if delay > 0:
                await self._wait(delay)
        budget = self._budget()
        if budget is not None:
            await budget.until_ready()

    async def resume(self, key: str) -> DialResult | None:
        """Send the claim ``key`` parked by a 429 again; None when it is not parked (any more)."""
        claim = await self.store.get_claim(key)
        if claim is None:
            return None
        async with self._lock(claim.user_id):
            if self._placer.parked(key) is None:
                return None
            return await self.reconciler.resume(key)

    def apply_guards(self, guards_config: GuardsConfig) -> None:
        """Use the guards of a reloaded config from the next dial on (with a fresh rate bucket)."""
        self.config = guards_config
        self.bucket = _Bucket(guards_config.calls_per_second, self.clock.monotonic())
        self._placer.use_guards(guards_config)
        self.reconciler.use_guards(guards_config)

    async def dial(self, match: Match) -> DialResult:
        """Guard, claim, place and record the dial ``match`` asks for."""
        try:
            spec = match.render_dial()
        except TemplateError as exc:
            return skipped(match.name, None, "template", str(exc))
        key = idempotency_key(match.name, match.event.identity, spec)
        async with self._lock(spec.user_id):
            return await self._dial_locked(match.name, key, spec)

    def needs_reconciling(self, claim: Claim, now: datetime) -> bool:
        """Whether ``claim`` is reconciled now: unknown, or in flight for a process gone."""
        return self.reconciler.needs_reconciling(claim, now)

    async def reconcile(self, key: str, *, allow_retry: bool = True) -> DialResult | None:
        """Reconcile the claim ``key`` if it needs it; None when it does not (any more).

        See :meth:`~outdial.handlers.reconciler.Reconciler.reconcile`.
        """
        return await self.reconciler.reconcile(key, allow_retry=allow_retry)

    async def renew_leases(self) -> int:
        """Renew the leases of this process's claims in flight; call it every lease / 3."""
        until = reconcile.lease_until(self.clock.now(), self.reconcile_policy)
        return await self.store.renew_leases(str(self.owner), until)

    async def _dial_locked(self, rule: str, key: str, spec: RenderedDial) -> DialResult:
        if self._placer.parked(key) is not None:
            # Offered again after a 429: sent again under the claim it has.
            return await self.reconciler.resume(key)
        if spec.contact == "next":
            return await self._dial_next_contact(rule, key, spec)
        assert spec.phone_number is not None
        # A number from the event is normalized before claiming, so the claim
        # records the number actually dialed.
        decision = guards.normalize_number(spec.phone_number, self.config.default_region)
        if isinstance(decision, guards.Deny):
            return await self._deny_unclaimed(rule, key, spec.user_id, decision)
        number = decision.value
        deferred = self._budget_holds(rule, key, spec.user_id) or self._take_rate_token(rule, key)
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

        The ``calls_per_second`` token is taken before the store is read, and
        given back when no contact is chosen: dials deferred by the bucket all
        come back when the next token is due, and those the bucket refuses
        then cost no read (the one that takes it takes it at once, before any
        wait lets the others see it still there).
        """
        deferred = self._budget_holds(rule, key, spec.user_id) or self._take_rate_token(
            rule, key, user=spec.user_id
        )
        if deferred is not None:
            return deferred
        chosen: int | DialResult | None = None
        try:
            chosen = await self._choose_contact(rule, key, spec)
        finally:
            if not isinstance(chosen, int):
                self.bucket.refund()  # no dial follows: the token is another's
        if isinstance(chosen, DialResult):
            return chosen
        return await self._claim_and_place(rule, key, spec, contact=chosen)

    async def _choose_contact(self, rule: str, key: str, spec: RenderedDial) -> int | DialResult:
        """The id of the agent's first contact callable now, or why there is none."""
        now = self.clock.now()
        due = await self.store.due_contacts(
            spec.user_id, now, self.contacts_scanned, key=key, number_cap=self._number_cap(now)
        )
        if due.claimed:
            return skipped(rule, key, "idempotency", "already_claimed", user=spec.user_id)
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
            return skipped(
                rule, key, "contacts", choice.reason, retry_at=choice.retry_at, user=spec.user_id
            )
        return choice.contact.id

    def _number_cap(self, now: datetime) -> NumberCap | None:
        """``[guards] max_calls_per_number`` as the store checks it, None when off."""
        limit = self.config.max_calls_per_number
        if limit.count <= 0:
            return None
        window = timedelta(seconds=limit.per)
        return NumberCap(limit.count, now - window, window)

    def _budget_holds(self, rule: str, key: str, user: str) -> DialResult | None:
        """Skip (nothing claimed) a dial the REST budget would make wait; None: send it.

        Checked before the ``calls_per_second`` token, so a token is not spent
        on a dial that cannot go. The dial request itself never waits for the
        budget either (it is refused unsent, and its claim parked), should
        another request take the last grant between here and the send.
        """
        budget = self._budget()
        wait = budget.wait() if budget is not None else 0.0
        if wait <= 0:
            return None
        return skipped(
            rule,
            key,
            REST_BUDGET,
            f"rest_budget, next request in {wait:.3f}s",
            retry_at=self.clock.now() + timedelta(seconds=wait),
            user=user,
            level=logging.DEBUG,
        )

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
        return skipped(
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
            lease_until=reconcile.lease_until(now, self.reconcile_policy),
        )
        claim = outcome.claim
        if claim is None:
            if outcome.refused == "number_limit":
                limit = self.config.max_calls_per_number
                return skipped(
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
                    return skipped(rule, key, decision.guard, decision.reason, user=spec.user_id)
            if outcome.refused == "no_contact":
                # Taken or changed since it was read (another replica): look again.
                return skipped(rule, key, "contacts", "contact_taken", retry_at=self.clock.now())
            return skipped(rule, key, "idempotency", "already_claimed", user=spec.user_id)

        number, denied = await self._placer.contact_guards(
            claim, (claim.phone_number, outcome.do_not_call)
        )
        if denied is not None:
            await self._placer.deny_claimed(claim, denied)
            return skipped(
                rule,
                key,
                denied.guard,
                denied.reason,
                user=spec.user_id,
                contact=contact_id(claim),
            )
        sent = await self._placer.place(claim, request_for(claim, number))
        return await self.reconciler.settle(sent)

    async def _deny_unclaimed(
        self, rule: str, key: str, user_id: str, denied: guards.Deny
    ) -> DialResult:
        """An event's number that cannot be dialed: skipped, reported as the guards rank it.

        Rare, so it pays a read of its own: a duplicate trigger and a busy agent
        are reported before the number, as when they are checked in the claim.
        """
        context = await self.store.dial_context(key, user_id)
        if context.claimed:
            return skipped(rule, key, "idempotency", "already_claimed", user=user_id)
        decision = guards.check_one_active_call(_busy(context.active_call, context.open_claims))
        if isinstance(decision, guards.Deny):
            return skipped(rule, key, decision.guard, decision.reason, user=user_id)
        return skipped(rule, key, denied.guard, denied.reason, user=user_id)
