"""Where events enter the handlers: call tracking, rule matches, custom handlers.

:class:`Handlers` is what the daemon wires to the listener: ``topics()`` says
what to subscribe, ``handle(event)`` takes every event, ``refresh(user_ids)``
re-reads state over REST after a gap in the event stream (the platform keeps no
events for a disconnected socket). ``start()`` runs once before events flow
(it loads the do-not-call file); ``reconcile_unknown()`` runs on a timer and
settles dials whose answer never came (see :mod:`outdial.handlers.reconcile`).

``handle`` never raises for one bad event or one failing rule: it logs and goes
on, because one malformed notification must not stop dialing for everyone.
Neither does a store whose database is away (``StoreUnavailable``): what
needed it is skipped (a dial fails closed: nothing is sent without its
claim), logged at debug level only (the store says once that it is away),
and done when the daemon re-reads everything after the store is back.

``handle`` may run for several agents at once (the daemon handles each agent's
events in order, different agents' concurrently): the dialer's per-agent locks
and the store's atomic claims keep one call per trigger, and a lock per call
(striped) keeps two updates of one call from losing either.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.config import Config
from outdial.domain import (
    AgentObservation,
    CallLeg,
    CallSeen,
    CallState,
    CallUpdate,
    Decoded,
    OutboundCall,
    PresenceSeen,
    RoutingSeen,
    WorkloadSeen,
)
from outdial.events import Event, topic_user_id
from outdial.handlers import guards, readiness
from outdial.handlers.calls import Call, Outcome, advance
from outdial.handlers.dialer import Dialer, DialResult
from outdial.handlers.disposition import contact_outcome
from outdial.handlers.donotcall import load_do_not_call_file
from outdial.handlers.pacer import (
    READY_TOPIC,
    Offer,
    Pacer,
    is_derived,
    ready_topic,
    ready_topic_user,
)
from outdial.handlers.readiness import ReadinessPolicy
from outdial.handlers.reconcile import ReconcilePolicy
from outdial.handlers.registry import HandlerRegistry
from outdial.handlers.rules import Match, RuleIndex
from outdial.handlers.templates import Template
from outdial.platforms.base import (
    AgentSnapshot,
    AgentStateReader,
    CallControl,
    Codec,
    MalformedEvent,
    PlatformError,
)
from outdial.store.base import CallRecord, Store, StoreUnavailable

__all__ = [
    "Handlers",
    "HandlingObserver",
    "RestPorts",
    "StepRunner",
    "UserStep",
    "dial_users",
    "readiness_topics",
    "ready_users",
    "rule_topics",
    "run_inline",
]

logger = logging.getLogger("outdial.handlers")

# Call events that arrive before the dial's response names the call: kept
# (newest wins, oldest dropped past this many) and applied once it is named.
_EARLY_EVENTS = 256
# Locks guarding one call's read-modify-write, shared by hash: bounded memory,
# and two calls rarely wait for each other.
_CALL_LOCK_STRIPES = 64
#: The channel id of events re-read over REST (not received live).
_REFRESH = "refresh"
#: Dials of one readiness epoch that may settle without a call (refused by the
#: platform, denied after claiming) before the agent waits for a new epoch.
MAX_FAILED_PER_EPOCH = 3
#: A busy agent (per the store) is looked at again after this long at the latest,
#: in case what keeps it busy settles without an event.
_BUSY_RECHECK = 15.0

#: One agent's part of a refresh: re-read over REST and feed through ``handle``.
UserStep = Callable[[], Awaitable[None]]
#: Runs one agent's step (``None``: no agent) and returns once it has run,
#: raising what it raised. See :attr:`Handlers.run_for_user`.
StepRunner = Callable[[str | None, UserStep], Awaitable[None]]


class RestPorts(CallControl, AgentStateReader, Protocol):
    """What the handlers ask of the platform over REST: calls, and agent re-reads."""


class HandlingObserver(Protocol):
    """What the handlers tell an observer (metrics, the status page); must not block or raise.

    ``dialed``: a rule's match was dialed (placed, skipped, failed or unknown),
    ``trigger`` being the event that fired it. ``call_progressed``: a call
    outdial placed was written with a new state (``ended_at`` set once ended).
    """

    def dialed(self, trigger: Event, result: DialResult) -> None: ...

    def call_progressed(self, record: CallRecord) -> None: ...


class _Unobserved:
    """The default :class:`HandlingObserver`: nobody is looking."""

    def dialed(self, trigger: Event, result: DialResult) -> None:
        pass

    def call_progressed(self, record: CallRecord) -> None:
        pass


async def run_inline(user_id: str | None, step: UserStep) -> None:
    """The default :data:`StepRunner`: run the step right here."""
    await step()


@dataclass(frozen=True, slots=True)
class _EarlyCall:
    """A call event for a conversation not tracked (yet): not ours, or ours before the
    dial's answer named it."""

    user_id: str | None
    call: CallSeen
    seen_at: datetime


def _to_call(record: CallRecord) -> Call:
    return Call(
        conversation_id=record.conversation_id,
        user_id=record.user_id,
        phone_number=record.phone_number,
        contact_id=record.contact_id,
        state=CallState(record.state),
        outcome=Outcome(record.outcome) if record.outcome else None,
    )


class Handlers:
    """Everything the daemon does with an event, behind one ``handle``."""

    def __init__(
        self,
        config: Config,
        platform: RestPorts,
        store: Store,
        clock: Clock,
        *,
        codec: Codec,
        registry: HandlerRegistry | None = None,
        dialer: Dialer | None = None,
        reconcile_policy: ReconcilePolicy | None = None,
    ) -> None:
        self.config = config
        self.platform = platform
        #: Reads the platform's events into domain terms, and names its topics.
        self.codec = codec
        self.store = store
        self.clock = clock
        self.rules = RuleIndex.compile(config.rules)
        self.registry = registry or HandlerRegistry()
        self.dialer = dialer or Dialer(
            platform,
            store,
            config.guards,
            clock,
            reconcile_policy=reconcile_policy or policy_from_config(config),
        )
        if self.dialer.recent_calls is None:
            self.dialer.recent_calls = self.recent_calls
        #: False stops new dials (a draining shutdown) while calls are still tracked.
        self.dialing_enabled = True
        self.readiness = ReadinessPolicy.from_config(
            config.readiness, check_routing=codec.has_routing_status
        )
        #: Readiness facts, offers and wake-ups of the agents ready rules name.
        self.pacer = Pacer(clock, ready_users(self.rules, self.registry))
        # Live events seen per topic: a re-read that began before one of them is
        # older than what it said, and must not overwrite it.
        self._live_seen: dict[str, int] = {}
        # One call's events are read-modify-written in the store; these keep two
        # concurrent handle() calls from losing one of the updates.
        self._call_locks = tuple(anyio.Lock() for _ in range(_CALL_LOCK_STRIPES))
        # Each with the agent whose topic carried it and when it was seen.
        self._early: OrderedDict[str, _EarlyCall] = OrderedDict()
        #: How ``refresh`` runs each agent's step. Inline by default; the daemon
        #: sets a runner that queues the step behind the agent's pending events
        #: (so one agent's events, live or re-read, are handled in order).
        self.run_for_user: StepRunner = run_inline
        #: Told of each dial and call change (the daemon sets its metrics here).
        self.observer: HandlingObserver = _Unobserved()

    def recent_calls(self, user_id: str) -> list[OutboundCall]:
        """The agent's outbound calls seen on its events but not tracked (yet): where an
        unknown dial is looked for first, before asking the platform's call history."""
        calls: list[OutboundCall] = []
        for early in self._early.values():
            call = early.call
            if early.user_id != user_id or not call.outbound or not call.number:
                continue
            started = call.started_at or early.seen_at
            calls.append(OutboundCall(call.update.conversation_id, started, call.number))
        return calls

    def _call_lock(self, conversation_id: str) -> anyio.Lock:
        return self._call_locks[zlib.crc32(conversation_id.encode()) % _CALL_LOCK_STRIPES]

    async def start(self) -> None:
        """Prepare the store before the first event: load ``guards.do_not_call_file``.

        Raises :class:`~outdial.handlers.donotcall.DoNotCallFileError` naming
        every line that is not a phone number (or why the file cannot be
        read): the daemon must not start with a do-not-call list it could not
        read in full.
        """
        path = self.config.guards.do_not_call_file
        if not path:
            return
        numbers = await load_do_not_call_file(path, self.config.guards.default_region)
        added = await self.store.add_do_not_call(numbers)
        log.emit(logger, "do_not_call.loaded", path=path, numbers=len(numbers), new=added)

    async def apply_config(self, config: Config) -> None:
        """Use the rules and guards of a reloaded ``config`` from the next event on.

        The new rules are compiled before anything changes, so a bad reload
        (raising :class:`~outdial.handlers.rules.RuleError`) leaves the running
        rules in place. Claims, calls and contacts are untouched.
        """
        rules = RuleIndex.compile(config.rules)
        guards_changed = config.guards != self.config.guards
        path = config.guards.do_not_call_file
        numbers: list[str] = []
        if guards_changed and path:
            # Read before changing anything: a bad file refuses the whole reload.
            numbers = await load_do_not_call_file(path, config.guards.default_region)
        self.config, self.rules = config, rules
        self.readiness = ReadinessPolicy.from_config(
            config.readiness, check_routing=self.codec.has_routing_status
        )
        self.pacer.track(ready_users(rules, self.registry))
        # Rules, guards or readiness may have changed: every tracked agent is looked at again.
        for user in self.pacer.tracked:
            self.pacer.wake_at(user, self.clock.now())
        if guards_changed:
            self.dialer.config = config.guards
            self.dialer.bucket = guards.TokenBucket(
                config.guards.calls_per_second, self.clock.monotonic()
            )
            if numbers:
                await self.store.add_do_not_call(numbers)
        log.emit(logger, "handlers.reloaded", rules=len(config.rules))

    async def reconcile_unknown(self) -> int:
        """Reconcile every dial whose outcome is unknown; returns how many were settled.

        Settled means: its call was found (and is tracked now), it was sent
        again because the platform has no call for it, or it was given up as
        failed. Dials still waiting (the platform's call history may lag, or
        the lookup failed) stay unknown for the next run. Call it periodically
        (every 10 to 30 s); ``refresh`` calls it too. While dialing is
        disabled nothing is sent again. Never raises for one claim.
        """
        settled = 0
        now = self.clock.now()
        for claim in await self.store.open_claims():
            if not self.dialer.needs_reconciling(claim, now):
                continue
            try:
                result = await self.dialer.reconcile(claim.key, allow_retry=self.dialing_enabled)
            except Exception as exc:
                self._error("reconcile", None, exc, key=claim.key)
                continue
            if result is None:
                continue
            if result.status != "unknown":
                settled += 1
            self._dial_settled(claim.user_id, claim.key, result)
            try:
                await self._after_dial(result)
            except Exception as exc:
                self._error("reconcile.after", None, exc, key=claim.key)
        return settled

    def _dial_settled(self, user_id: str, key: str, result: DialResult) -> None:
        """A reconciled dial: the agent's open dial is the call now, or gone; look again."""
        if not self.pacer.is_tracked(user_id) or result.status == "unknown":
            return
        facts = self.pacer.update(user_id, lambda f: readiness.with_dial_closed(f, key))
        if result.status == "placed" and result.conversation_id:
            cid = result.conversation_id
            self.pacer.update(user_id, lambda f: readiness.with_dial_open(f, cid))
        elif result.status == "failed":
            offer = self.pacer.offers.get(user_id)
            if offer is not None and offer.consumed:
                self.pacer.set_offer(user_id, offer, consumed=False, attempt=offer.attempt + 1)
        del facts
        self.pacer.wake_at(user_id, self.clock.now())

    def dial_users(self) -> set[str]:
        """Agents the rules may dial for (whose calls must be tracked)."""
        return dial_users(self.rules)

    def topics(self) -> set[str]:
        """Every platform topic to subscribe: the rules', the custom handlers', call tracking,
        and what readiness needs for the agents ready rules name (derived topics are
        outdial's own and never subscribed)."""
        topics = rule_topics(self.rules, self.codec) | self.registry.topics()
        topics |= readiness_topics(self.pacer.tracked, self.codec)
        return {t for t in topics if not is_derived(t)}

    async def handle(self, event: Event) -> None:
        """Track calls and readiness, dial for every matching rule, run custom handlers,
        then look at the agent's readiness; never raises."""
        await self._handle(event, pace=True)

    async def _handle(self, event: Event, *, pace: bool) -> None:
        if event.channel_id != _REFRESH:
            self._live_seen[event.topic] = self._live_seen.get(event.topic, 0) + 1
        user = topic_user_id(event.topic)
        tracked = self.pacer.is_tracked(user)
        decoded = self._decode(event)
        call = decoded.call
        own = False
        if call is not None:
            try:
                own = await self._track_call(call, user)
                if tracked and call.leg is not None and user is not None:
                    leg = call.leg
                    self.pacer.update(user, lambda f: readiness.with_call(f, leg))
            except Exception as exc:
                self._error("call.track", event, exc)
        elif tracked and user is not None:
            for seen in decoded.observations:
                self._observe(user, seen)
        try:
            matches = self.rules.match(event)
            custom = self.registry.match(event)
        except Exception as exc:
            self._error("rules.match", event, exc)
            return
        if call is not None and any(not _fires_on_own(m) for m in matches):
            own = own or await self._dialed_now(user, call)
            if own:
                ignored = [m.name for m in matches if not _fires_on_own(m)]
                matches = [m for m in matches if _fires_on_own(m)]
                log.emit(
                    logger,
                    "rule.own_call",
                    user=user,
                    conversation=call.update.conversation_id,
                    rules=",".join(ignored),
                    reason="a call outdial placed; set on_own_calls = true to fire on it",
                )
        for match in matches if self.dialing_enabled else ():
            await self._dial_match(user, match)
        for handler, match in custom:
            try:
                await handler(event, match)
            except Exception as exc:
                self._error(f"handler {match.name}", event, exc)
        if tracked and pace and user is not None:
            await self.pace(user)

    async def _dial_match(self, user: str | None, match: Match) -> None:
        """Dial for one rule match; a skip that time lifts is offered again then.

        A dial held back by a rate limit (``calls_per_second``, the per-number
        cap) keeps its trigger: the same match, so the same idempotency key,
        is tried again when the limit lets it through, in the agent's turn.
        """
        try:
            result = await self.dialer.dial(match)
            self.observer.dialed(match.event, result)
            await self._after_dial(result)
        except Exception as exc:
            self._error(f"rule {match.name}", match.event, exc)
            return
        if result.status == "skipped" and result.retry_at is not None:
            target = user or ""

            async def again() -> None:
                if self.dialing_enabled:
                    await self._dial_match(user, match)

            if not self.pacer.call_at(target, result.retry_at, again):
                log.emit(
                    logger,
                    "dial.deferred_dropped",
                    logging.WARNING,
                    rule=match.name,
                    user=user,
                    reason="too many deferred dials waiting",
                )

    # -- readiness -------------------------------------------------------------

    def _decode(self, event: Event) -> Decoded:
        """What the event says, in domain terms; a malformed body says nothing (logged)."""
        try:
            return self.codec.decode(event, self.clock.now())
        except MalformedEvent as exc:
            calls = self.codec.is_calls_topic(event.topic)
            log.emit(
                logger,
                "call.malformed" if calls else "event.malformed",
                logging.WARNING,
                topic=event.topic,
                reason=str(exc),
            )
            return Decoded()

    def _observe(self, user_id: str, seen: AgentObservation) -> None:
        """Feed what an event says of the agent's presence, routing or workload into the facts."""
        if isinstance(seen, PresenceSeen):
            self.pacer.update(user_id, lambda f: readiness.with_presence(f, seen))
        elif isinstance(seen, RoutingSeen):
            self.pacer.update(user_id, lambda f: readiness.with_routing_status(f, seen.status))
        elif isinstance(seen, WorkloadSeen):
            self.pacer.update(user_id, lambda f: readiness.with_workload(f, seen))

    async def _seed(self, user_id: str) -> None:
        """Before an agent's first look: its last ended call from the store.

        The epoch names the agent's last call; a restarted daemon (or another
        replica) reads it here, so it computes the epoch the running one did.
        """
        self.pacer.seeded(user_id)
        record = await self.store.last_ended_call(user_id)
        if record is not None and record.ended_at is not None:
            leg = CallLeg(record.conversation_id, ended=True, done_at=record.ended_at)
            self.pacer.update(user_id, lambda f: readiness.with_call(f, leg))

    async def pace(self, user_id: str) -> None:
        """Look at one tracked agent: when ready, offer the readiness to the rules.

        Level-triggered: called after every input that may change the
        answer, and again by the pacer's timers when time alone may. The
        offer of an epoch is made until a dial is placed (or open) for it;
        a skip that time lifts schedules the next look, one that only new
        contacts lift waits for the next import. Never raises.
        """
        if not self.pacer.is_tracked(user_id):
            return
        try:
            if self.pacer.needs_seed(user_id):
                await self._seed(user_id)
            for _ in range(MAX_FAILED_PER_EPOCH + 1):
                if not await self._offer(user_id):
                    return
        except Exception as exc:
            self._error("readiness", None, exc, user=user_id)

    async def _offer(self, user_id: str) -> bool:
        """One look; True when it should look again at once (a dial settled without a call)."""
        facts = self.pacer.facts[user_id]
        verdict = readiness.assess(facts, self.readiness, self.clock.now())
        previous = self.pacer.verdicts.get(user_id)
        self.pacer.verdicts[user_id] = verdict
        flipped = previous is None or previous.ready != verdict.ready
        if flipped or previous != verdict:
            log.emit(
                logger,
                "agent.ready" if verdict.ready else "agent.not_ready",
                # A change of readiness is news; a new reason for not being ready, detail.
                logging.INFO if flipped or verdict.ready else logging.DEBUG,
                user=user_id,
                reason=verdict.reason,
                epoch=verdict.epoch,
            )
        if not verdict.ready or verdict.epoch is None:
            if verdict.recheck_at is not None:
                self.pacer.wake_at(user_id, verdict.recheck_at)
            return False
        offer = self.pacer.offer_for(user_id, verdict.epoch)
        if offer.consumed or not self.dialing_enabled:
            return False
        if offer.attempt > MAX_FAILED_PER_EPOCH:
            return False
        event = self._ready_event(user_id, facts, verdict, offer.attempt)
        if not offer.published:
            offer = self.pacer.set_offer(user_id, offer, published=True)
            for handler, match in self.registry.match(event):
                try:
                    await handler(event, match)
                except Exception as exc:
                    self._error(f"handler {match.name}", event, exc)
        matches = self.rules.match(event)
        if not matches:
            self.pacer.set_offer(user_id, offer, consumed=True)
            return False
        again = False
        for match in matches:
            try:
                result = await self.dialer.dial(match)
            except Exception as exc:
                self._error(f"rule {match.name}", event, exc)
                continue
            self.observer.dialed(event, result)
            offer, retry = await self._took(user_id, offer, result)
            again = again or retry
            await self._after_dial(result)
        return again

    async def _took(self, user_id: str, offer: Offer, result: DialResult) -> tuple[Offer, bool]:
        """What one dial's result means for the agent's offer; True: look again now."""
        pacer = self.pacer
        if result.status in ("placed", "unknown"):
            ref = result.conversation_id or result.key or ""
            pacer.update(user_id, lambda f: readiness.with_dial_open(f, ref))
            return pacer.set_offer(user_id, offer, consumed=True), False
        if result.status == "failed":
            return pacer.set_offer(user_id, offer, attempt=offer.attempt + 1), True
        if result.guard == "idempotency":
            claim = await self.store.get_claim(result.key or "")
            if claim is not None and claim.state == "failed":
                # This attempt's dial settled without a call (maybe in another replica).
                return pacer.set_offer(user_id, offer, attempt=offer.attempt + 1), True
            # Placed or in flight elsewhere: that dial is this readiness's.
            return pacer.set_offer(user_id, offer, consumed=True), False
        if result.retry_at is not None:
            # A rate limit, a window, a retry or the per-number cap: look again then.
            pacer.wake_at(user_id, result.retry_at)
        if result.guard == "contacts":
            pacer.wait_for_contacts(user_id)
        elif result.guard == "one_active_call":
            pacer.wake_at(user_id, self.clock.now() + timedelta(seconds=_BUSY_RECHECK))
        elif result.retry_at is None:
            # A skip that neither time nor contacts lift (a template error, ...).
            return pacer.set_offer(user_id, offer, consumed=True), False
        return offer, False

    def _ready_event(
        self, user_id: str, facts: readiness.AgentFacts, verdict: readiness.Readiness, attempt: int
    ) -> Event:
        """The derived ``outdial.users.{id}.ready`` event of one readiness epoch.

        Its identity (the base of the dial's idempotency key) is the epoch and
        the attempt, never the body: the same readiness seen live or re-read,
        here or in another replica, is one trigger.
        """
        topic = ready_topic(user_id)
        body = {
            "userId": user_id,
            "presence": facts.presence,
            "routingStatus": facts.routing_status,
            "since": verdict.since.isoformat() if verdict.since else None,
            "epoch": verdict.epoch,
        }
        identity = f"ready:{user_id}:{verdict.epoch}:{attempt}"
        return Event(
            topic=topic,
            body=body,
            channel_id="readiness",
            received_at=self.clock.monotonic(),
            _identity=identity,
        )

    async def contacts_changed(self) -> None:
        """Contacts were imported: agents that waited for one are looked at again."""
        for user in self.pacer.waiting():
            self.pacer.wake_at(user, self.clock.now())

    # -- gaps ----------------------------------------------------------------

    async def refresh(self, user_ids: Iterable[str]) -> set[str]:
        """Re-read what a gap in the events may have hidden, and feed it through ``handle``.

        Calls first: a call that ended during the gap must be ended before a
        refreshed presence can trigger the agent's next dial (one active call
        per agent). A call the platform no longer knows is taken as ended: it
        is ANSWERED if we saw it connected, otherwise FAILED (we cannot know
        why it did not connect, and FAILED retries later than busy/no-answer).

        Before both, dials whose outcome is unknown are reconciled: one that
        was placed after all is an active call to refresh, and an agent with
        an unresolved dial is not dialed again.

        Each call and each agent is one step, run through :attr:`run_for_user`
        for its agent, ``config.handling.refresh_concurrency`` at a time: the
        REST reads overlap, and each agent's re-read state is handled in
        order with its live events while other agents' events go on. Agent
        states are read in bulk (as few requests as the platform allows).
        Readiness is looked at once per agent, after all of its state is in.

        Returns the agents whose state could not be read (the caller re-reads
        them later: no agent is dropped from a refresh).
        """
        try:
            await self.reconcile_unknown()
        except Exception as exc:
            self._error("refresh.reconcile", None, exc)
        users = list(dict.fromkeys(user_ids))
        reread = set(users)
        try:
            active = await self.store.active_calls()
        except StoreUnavailable as exc:
            # Nothing can be applied without the store: all of them are re-read later.
            self._error("refresh.calls", None, exc)
            return set(users)
        calls = [
            (record.user_id, self._call_step(record.conversation_id, record.user_id))
            for record in active
        ]
        await self._run_steps(calls)
        # Agents whose calls were re-read but whose state is not: look at them now.
        for record in active:
            if record.user_id not in reread and self.pacer.is_tracked(record.user_id):
                self.pacer.wake_at(record.user_id, self.clock.now())
        if not users:
            return set()
        seen_before = dict(self._live_seen)
        try:
            states = await self.platform.get_agent_states(users)
        except PlatformError as exc:
            self._error("refresh.agents", None, exc, users=len(users))
            return set(users)
        still_active = {record.conversation_id for record in active}
        steps = [
            (state.user_id, self._agent_step(state, still_active, seen_before)) for state in states
        ]
        await self._run_steps(steps)
        return set(users) - {state.user_id for state in states}

    async def _run_steps(self, steps: list[tuple[str, UserStep]]) -> None:
        """Run every step through ``run_for_user``, a bounded number at once."""
        if not steps:
            return
        slots = anyio.Semaphore(self.config.handling.refresh_concurrency)

        async def one(user_id: str, step: UserStep) -> None:
            try:
                await self.run_for_user(user_id, step)
            except Exception as exc:  # one agent's step never ends the others'
                self._error("refresh.step", None, exc, user=user_id)
            finally:
                slots.release()

        async with anyio.create_task_group() as tg:
            for user_id, step in steps:
                # Taken before the task starts: at most that many tasks exist at once.
                await slots.acquire()
                tg.start_soon(one, user_id, step)

    def _call_step(self, conversation_id: str, user_id: str) -> UserStep:
        async def step() -> None:
            await self._refresh_call(conversation_id, user_id)

        return step

    def _agent_step(
        self, state: AgentSnapshot, tracked_calls: set[str], seen_before: Mapping[str, int]
    ) -> UserStep:
        """One agent's re-read state, applied in the agent's turn.

        The read was made before the step runs (in bulk, for many agents): a
        part of it whose topic had a live event since the read began is
        older than that event and is left out.
        """
        user_id = state.user_id

        def fresh(topic: str) -> bool:
            return self._live_seen.get(topic, 0) == seen_before.get(topic, 0)

        async def step() -> None:
            if not state.known:
                log.emit(
                    logger,
                    "agent.unknown",
                    logging.WARNING,
                    user=user_id,
                    reason="the platform does not know this user id; check the rules' users",
                )
                return
            workload_reread = False
            for topic, body in state.reread_events():
                if not fresh(topic):
                    continue
                event = self._synthetic(topic, dict(body))
                workload_reread = workload_reread or any(
                    isinstance(seen, WorkloadSeen) for seen in self._decode(event).observations
                )
                await self._handle(event, pace=False)
            if not self.pacer.is_tracked(user_id):
                return
            facts = self.pacer.facts[user_id]
            if workload_reread and facts.active_calls == 0 and facts.acw_calls == 0:
                # Nothing going on: calls still listed ended unseen during the gap.
                now = self.clock.now()
                self.pacer.update(
                    user_id, lambda f: readiness.with_calls_settled(f, now, tracked_calls)
                )
            await self.pace(user_id)

        return step

    async def _refresh_call(self, conversation_id: str, user_id: str) -> None:
        """Feed the platform's view of one tracked call through ``handle``."""
        try:
            snapshot = await self.platform.get_call(conversation_id)
        except PlatformError as exc:
            self._error("refresh.call", None, exc, conversation=conversation_id)
            return
        if snapshot is None:
            update = CallUpdate(conversation_id, CallState.ENDED, disconnect_type="unknown")
            async with self._call_lock(conversation_id):
                # Re-read under the lock: an event may have ended it meanwhile.
                current = await self.store.get_call(conversation_id)
                if current is not None:
                    await self._apply(current, update)
            if self.pacer.is_tracked(user_id):
                leg = CallLeg(conversation_id, ended=True, done_at=self.clock.now())
                self.pacer.update(user_id, lambda f: readiness.with_call(f, leg))
            return
        # Not paced here: the agent's own re-read (or the caller) looks at readiness.
        topic = self.codec.calls_topic(user_id)
        await self._handle(self._synthetic(topic, dict(snapshot.body)), pace=False)

    def _synthetic(self, topic: str, body: Mapping[str, Any]) -> Event:
        return Event(
            topic=topic,
            body=body,
            channel_id=_REFRESH,
            received_at=self.clock.monotonic(),
            facts=self.codec.identity_facts,
        )

    async def _track_call(self, call: CallSeen, user_id: str | None) -> bool:
        """Advance the stored call an event is about; True when it is one outdial placed
        (it is tracked in the store)."""
        cid = call.update.conversation_id
        async with self._call_lock(cid):
            record = await self.store.get_call(cid)
            if record is None:
                # Not ours, or ours but the dial's response is not back yet.
                self._early[cid] = _EarlyCall(user_id, call, self.clock.now())
                self._early.move_to_end(cid)
                while len(self._early) > _EARLY_EVENTS:
                    self._early.popitem(last=False)
                return False
            await self._apply(record, call.update)
        return True

    async def _dialed_now(self, user_id: str | None, call: CallSeen) -> bool:
        """Whether an untracked call is one of outdial's whose dial is still open.

        A dial whose answer is unknown (or not back yet) has no tracked call,
        but its call's events already come: a call of the agent to a number
        an open claim of the agent dials is taken as outdial's own.
        """
        if user_id is None or not call.number:
            return False
        region = self.config.guards.default_region
        number = guards.normalize_number(call.number, region)
        if not isinstance(number, guards.Allow):
            return False
        for claim in await self.store.open_claims(user_id):
            claimed = guards.normalize_number(claim.phone_number or "", region)
            if isinstance(claimed, guards.Allow) and claimed.value == number.value:
                return True
        return False

    async def _after_dial(self, result: DialResult) -> None:
        if result.status != "placed" or result.conversation_id is None:
            return
        # Under the call's lock: a call event handled by another worker (the
        # dial was for another agent than the event's) either finds the call
        # recorded, or has left its event here before we look.
        async with self._call_lock(result.conversation_id):
            early = self._early.pop(result.conversation_id, None)
            if early is not None:
                record = await self.store.get_call(result.conversation_id)
                if record is not None:
                    await self._apply(record, early.call.update)
        if result.reconciled:
            # Found afterwards: the call may have moved on (or ended) unseen.
            record = await self.store.get_call(result.conversation_id)
            if record is not None:
                await self._refresh_call(record.conversation_id, record.user_id)

    async def _apply(self, record: CallRecord, update: CallUpdate) -> None:
        """Advance one stored call; on its end, record the contact's outcome.

        One store operation (one transaction) writes the call and, when it
        ended, its contact's outcome (or release): the end of a call costs one
        commit, and the two are never written apart.
        """
        call = _to_call(record)
        new = advance(call, update)
        if new == call:
            return
        now = self.clock.now()
        config = self.config.guards
        settled = contact_outcome(new, now, config)
        written = CallRecord(
            conversation_id=new.conversation_id,
            user_id=new.user_id,
            contact_id=new.contact_id,
            phone_number=new.phone_number,
            state=new.state.value,
            outcome=new.outcome.value if new.outcome else None,
            updated_at=now,
            ended_at=now if new.ended else None,
        )
        contact = await self.store.record_call_progress(written, contact_outcome=settled)
        self.observer.call_progressed(written)
        log.emit(
            logger,
            "call.state",
            conversation=new.conversation_id,
            user=new.user_id,
            state=new.state.value,
            previous=call.state.value,
        )
        if not new.ended or new.outcome is None:
            return
        counted: bool | None = None
        next_due_at = None
        if contact is not None and settled is not None:
            counted = settled.counted
            # The contact's attempts as written (this one included when counted).
            next_due_at = guards.next_due_at(settled.outcome, contact.attempts, now, config)
        log.emit(
            logger,
            "call.ended",
            conversation=new.conversation_id,
            user=new.user_id,
            outcome=new.outcome.value,
            contact=new.contact_id,
            disconnect_type=update.disconnect_type,
            ended_by=update.ended_by,
            q850=update.q850,
            next_due_at=next_due_at.isoformat() if next_due_at else None,
            attempt_counted=counted,
        )

    def _error(self, where: str, event: Event | None, exc: BaseException, **fields: object) -> None:
        if isinstance(exc, StoreUnavailable):
            # Expected while the database is away, and said once by the store.
            log.emit(
                logger,
                "handler.store_unavailable",
                logging.DEBUG,
                where=where,
                topic=event.topic if event else None,
                reason=exc.reason,
                **fields,
            )
            return
        log.emit(
            logger,
            "handler.error",
            logging.ERROR,
            where=where,
            topic=event.topic if event else None,
            error=f"{type(exc).__name__}: {exc}",
            **fields,
        )


def _fires_on_own(match: Match) -> bool:
    """Whether a rule's match stands on an event about a call outdial placed."""
    return match.rule is None or match.rule.on_own_calls


def policy_from_config(config: Config) -> ReconcilePolicy:
    """The ``[reconcile]`` section as the dialer's :class:`ReconcilePolicy`."""
    settings = config.reconcile
    return ReconcilePolicy(
        skew=settings.skew,
        settle=settings.settle,
        stale_after=settings.stale_after,
        max_retries=settings.max_retries,
        lease=settings.lease,
    )


def dial_users(rules: RuleIndex) -> set[str]:
    """Agents the rules may dial for (whose calls must be tracked).

    A literal ``dial.user`` names its agent; ``{userId}`` (or any other
    template, which cannot be known before the event) stands for the rule's
    ``users``.
    """
    users: set[str] = set()
    for rule in rules.rules:
        template = Template.parse(rule.dial.user, rule.name, "user")
        if template.is_literal:
            users.add(template.render(rule.name, "user", {}, {}, {}))
        else:
            users.update(rule.users)
    return users


def rule_topics(rules: RuleIndex, codec: Codec) -> set[str]:
    """What the rules need subscribed: their own topics and each dialed agent's calls."""
    return rules.topics() | {codec.calls_topic(user) for user in dial_users(rules)}


def ready_users(rules: RuleIndex, registry: HandlerRegistry | None = None) -> set[str]:
    """Agents whose readiness outdial follows: those that rules (or custom handlers) on
    ``outdial.users.{userId}.ready`` name."""
    users: set[str] = set()
    for rule in rules.rules:
        if rule.topic == READY_TOPIC:
            users.update(rule.users)
        elif (user := ready_topic_user(rule.topic)) is not None:
            users.add(user)
    for topic in registry.topics() if registry is not None else ():
        if (user := ready_topic_user(topic)) is not None:
            users.add(user)
    return users


def readiness_topics(users: Iterable[str], codec: Codec) -> set[str]:
    """The platform topics readiness reads, for each of ``users``."""
    return {topic for user in users for topic in codec.agent_topics(user)}
