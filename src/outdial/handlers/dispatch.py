"""Where events enter the handlers: the router, and the parts it composes.

:class:`Handlers` is what the daemon wires to the listener: ``topics()`` says
what to subscribe, ``handle(event)`` takes every event, ``refresh(user_ids)``
re-reads state over REST after a gap in the event stream (the platform keeps no
events for a disconnected socket). ``start()`` runs once before events flow
(it loads the do-not-call file); ``reconcile_unknown()`` runs on a timer and
settles dials whose answer never came (see :mod:`outdial.handlers.reconcile`).

The router routes; its parts, each with one concern, do the work:

* :class:`~outdial.handlers.tracker.CallTracker`: the store's calls, advanced
  by what events say of them;
* :class:`~outdial.handlers.offers.ReadinessOffers`: readiness facts in, offers
  of a ready agent's epoch to the rules out;
* :class:`~outdial.handlers.refresher.GapRefresher`: re-reads after a gap, fed
  back through the router as synthetic events;
* the :class:`~outdial.handlers.dialer.Dialer`: one call per trigger.

They are built here and given what they need at construction; what changes
while the daemon runs (rules, guards, the dialer, the observer, ...) they read
from one shared :class:`~outdial.handlers.live.Live`.

``handle`` never raises for one bad event or one failing rule: it logs and goes
on, because one malformed notification must not stop dialing for everyone.
Neither does a store whose database is away (``StoreUnavailable``): what
needed it is skipped (a dial fails closed: nothing is sent without its
claim), logged at debug level only (the store says once that it is away),
and done when the daemon re-reads everything after the store is back.

``handle`` may run for several agents at once (the daemon handles each agent's
events in order, different agents' concurrently): the dialer's per-agent locks
and the store's atomic claims keep one call per trigger, and the tracker's
lock per call keeps two updates of one call from losing either.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from functools import partial

from outdial import log
from outdial.clock import Clock
from outdial.config import Config
from outdial.domain import Decoded
from outdial.events import Event, topic_user_id
from outdial.handlers.dialer import WAITED_OUT, Dialer, DialResult
from outdial.handlers.donotcall import load_do_not_call_file
from outdial.handlers.live import (
    HandlingObserver,
    Live,
    StepRunner,
    UserStep,
    run_inline,
)
from outdial.handlers.offers import MAX_FAILED_PER_EPOCH, ReadinessOffers
from outdial.handlers.pacer import MAX_DEFERRED, READY_TOPIC, Pacer, is_derived, ready_topic_user
from outdial.handlers.readiness import ReadinessPolicy
from outdial.handlers.reconcile import ReconcilePolicy
from outdial.handlers.refresher import GapRefresher, RestPorts
from outdial.handlers.registry import HandlerFn, HandlerRegistry
from outdial.handlers.rules import Match, RuleIndex
from outdial.handlers.templates import Template
from outdial.handlers.tracker import CallTracker, EarlyCalls
from outdial.handlers.trouble import decode, report
from outdial.platforms.base import Codec
from outdial.store.base import Store

__all__ = [
    "MAX_FAILED_PER_EPOCH",
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
        reconcile_policy: ReconcilePolicy | None = None,
    ) -> None:
        self.platform = platform
        #: Reads the platform's events into domain terms, and names its topics.
        self.codec = codec
        self.store = store
        self.clock = clock
        self.registry = registry or HandlerRegistry()
        rules = RuleIndex.compile(config.rules)
        # Shared by the tracker (which fills it) and the dialer's reconciler (which
        # looks there first for an unknown dial's call): wired here, at construction.
        early = EarlyCalls()
        dialer = Dialer(
            platform,
            store,
            config.guards,
            clock,
            reconcile_policy=reconcile_policy or policy_from_config(config),
            recent_calls=early.recent_calls,
        )
        self._live = Live(config, rules, _readiness_policy(config, codec), dialer)
        #: Readiness facts, offers and wake-ups of the agents ready rules name.
        self.pacer = Pacer(clock, ready_users(rules, self.registry))
        # Event dials ``calls_per_second`` deferred, first come first served, and
        # whether the one timer of the line is set (see _queue_for_token).
        self._token_line: deque[tuple[str | None, Match]] = deque()
        self._token_line_armed = False
        #: The calls outdial placed, advanced by their events.
        self.tracker = CallTracker(store, clock, self._live, early)
        #: Readiness looks and offers, per tracked agent.
        self.offers = ReadinessOffers(
            store, clock, self.pacer, self.registry, self._live, after_dial=self._after_dial
        )
        #: Re-reads after gaps, fed back through this router.
        self.refresher = GapRefresher(
            platform,
            store,
            clock,
            codec,
            self.pacer,
            self.tracker,
            self._live,
            feed=self._reread,
            reconcile=self.reconcile_unknown,
            pace=self.pace,
        )

    # -- what may change while running (read by the parts from Live) ------------

    @property
    def config(self) -> Config:
        """The config in force (a reload replaces it, see :meth:`apply_config`)."""
        return self._live.config

    @property
    def rules(self) -> RuleIndex:
        """The compiled rules in force."""
        return self._live.rules

    @property
    def readiness(self) -> ReadinessPolicy:
        """When a tracked agent is ready, per ``[readiness]``."""
        return self._live.readiness

    @property
    def dialer(self) -> Dialer:
        """The dialer every rule match goes through."""
        return self._live.dialer

    @dialer.setter
    def dialer(self, dialer: Dialer) -> None:
        self._live.dialer = dialer

    @property
    def dialing_enabled(self) -> bool:
        """False stops new dials (a draining shutdown) while calls are still tracked."""
        return self._live.dialing_enabled

    @dialing_enabled.setter
    def dialing_enabled(self, enabled: bool) -> None:
        self._live.dialing_enabled = enabled

    @property
    def run_for_user(self) -> StepRunner:
        """How ``refresh`` runs each agent's step. Inline by default; the daemon
        sets a runner that queues the step behind the agent's pending events
        (so one agent's events, live or re-read, are handled in order)."""
        return self._live.run_for_user

    @run_for_user.setter
    def run_for_user(self, runner: StepRunner) -> None:
        self._live.run_for_user = runner

    @property
    def observer(self) -> HandlingObserver:
        """Told of each dial and call change (the daemon sets its metrics here)."""
        return self._live.observer

    @observer.setter
    def observer(self, observer: HandlingObserver) -> None:
        self._live.observer = observer

    # -- lifecycle -----------------------------------------------------------------

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
        self._live.config, self._live.rules = config, rules
        self._live.readiness = _readiness_policy(config, self.codec)
        self.pacer.track(ready_users(rules, self.registry))
        # Rules, guards or readiness may have changed: every tracked agent is looked at again.
        for user in self.pacer.tracked:
            self.pacer.wake_at(user, self.clock.now())
        if guards_changed:
            self.dialer.apply_guards(config.guards)
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
                report("reconcile", None, exc, key=claim.key)
                continue
            if result is not None and await self._reconciled(claim.user_id, claim.key, result):
                settled += 1
        return settled

    async def _reconciled(self, user: str, key: str, result: DialResult) -> bool:
        """After a reconcile (or a parked resend) of ``key``: True when it settled."""
        self.offers.dial_settled(user, key, result)
        try:
            await self._after_dial(result)
        except Exception as exc:
            report("reconcile.after", None, exc, key=key)
        if result.guard in WAITED_OUT and result.retry_at is not None:
            # Sent again and refused with a 429 once more: sent again when that is over.
            dialer = self.dialer

            async def again() -> None:
                resumed = await dialer.resume(key) if self.dialing_enabled else None
                if resumed is not None:
                    await self._reconciled(user, key, resumed)

            self.pacer.call_after(user, partial(dialer.wait_out, result), again)
        return result.status != "unknown" and result.guard not in WAITED_OUT

    # -- subscriptions -------------------------------------------------------------

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

    # -- events --------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """Track calls and readiness, dial for every matching rule, run custom handlers,
        then look at the agent's readiness; never raises."""
        rest = await self.prepare(event)
        if rest is not None:
            await rest()

    async def prepare(self, event: Event) -> UserStep | None:
        """Handle ``event`` up to where it would wait on the platform; return the rest.

        What is quick is done here: the call tracked, the readiness facts
        updated, the rules matched. What waits on the platform's answer (a
        dial, an offer of a ready agent) is returned as a step for the caller
        to run next for this agent (the daemon runs it beside the worker, so
        other agents' events go on meanwhile), or None when nothing is left.
        ``handle`` is ``prepare`` and then its step. Never raises.
        """
        user = topic_user_id(event.topic)
        outcome = await self._bookkeep(event, user)
        if outcome is None:
            return None
        matches, custom = outcome
        tracked = self.pacer.is_tracked(user)
        dials = matches if self.dialing_enabled else []
        if not dials and not custom and not (tracked and self.offers.may_dial(user)):
            # Nothing that waits: a look at a not-ready agent is quick, done here.
            if tracked and user is not None:
                await self.pace(user)
            return None

        async def rest() -> None:
            await self._dial_and_pace(event, user, dials, custom, pace=True)

        return rest

    async def _reread(self, event: Event) -> None:
        """A re-read event: handled as a live one, readiness looked at by the refresher."""
        user = topic_user_id(event.topic)
        outcome = await self._bookkeep(event, user)
        if outcome is not None:
            matches, custom = outcome
            dials = matches if self.dialing_enabled else []
            await self._dial_and_pace(event, user, dials, custom, pace=False)

    async def _bookkeep(
        self, event: Event, user: str | None
    ) -> tuple[list[Match], list[tuple[HandlerFn, Match]]] | None:
        """Track the call or the readiness facts ``event`` speaks of, and match the rules.

        Returns the rules' matches (without those that do not fire on
        outdial's own calls) and the custom handlers', or None when matching
        failed (reported).
        """
        self.refresher.saw(event)
        tracked = self.pacer.is_tracked(user)
        # What an event says of an agent's presence, routing or workload feeds
        # readiness only: for an agent whose readiness is not followed it is not
        # read at all (the rules match the body as it came). Call events always
        # are, for tracking. Measured: decoding was 8 % of the daemon's CPU at
        # 10,000 presence events/s of agents dialed by an event rule.
        if tracked or self.codec.is_calls_topic(event.topic):
            decoded = decode(self.codec, event, self.clock.now())
        else:
            decoded = _UNREAD
        call = decoded.call
        own = False
        if call is not None:
            try:
                own = await self.tracker.track(call, user)
                if tracked and call.leg is not None and user is not None:
                    self.offers.call_seen(user, call.leg)
            except Exception as exc:
                report("call.track", event, exc)
        elif tracked and user is not None:
            for seen in decoded.observations:
                self.offers.observe(user, seen)
        try:
            matches = self.rules.match(event)
            custom = self.registry.match(event)
        except Exception as exc:
            report("rules.match", event, exc)
            return None
        if call is not None and any(not _fires_on_own(m) for m in matches):
            own = own or await self.tracker.dialed_now(user, call)
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
        return matches, custom

    async def _dial_and_pace(
        self,
        event: Event,
        user: str | None,
        dials: list[Match],
        custom: list[tuple[HandlerFn, Match]],
        *,
        pace: bool,
    ) -> None:
        """Dial every match, run the custom handlers, then look at the agent's readiness."""
        for match in dials:
            await self._dial_match(user, match)
        for handler, match in custom:
            try:
                await handler(event, match)
            except Exception as exc:
                report(f"handler {match.name}", event, exc)
        if pace and user is not None and self.pacer.is_tracked(user):
            await self.pace(user)

    async def _dial_match(self, user: str | None, match: Match, *, head: bool = False) -> None:
        """Dial for one rule match; a skip that time lifts is offered again then.

        A dial held back by a rate limit (``calls_per_second``, the per-number
        cap, the REST budget, a 429) keeps its trigger: the same match, so the
        same idempotency key, is tried again when the limit lets it through,
        in the agent's turn; the wait itself is never in a turn (the worker
        running it goes on with other agents' events at once). A dial parked
        by a 429 is sent again then under the claim it already has.
        ``head``: this is the longest-waiting dial of the token line.
        """
        try:
            result = await self.dialer.dial(match)
            self.observer.dialed(match.event, result)
            await self._after_dial(result)
        except Exception as exc:
            report(f"rule {match.name}", match.event, exc)
            result = None
        if result is not None and result.guard == "calls_per_second" and result.retry_at:
            self._queue_for_token(user, match, result.retry_at, head=head)
            return
        if head:
            # The head went (or is done with the bucket): the next one asks at once.
            self._arm_token_line(self.clock.now())
        if result is None:
            return
        if result.status == "skipped" and result.retry_at is not None:
            target = user or ""

            async def again() -> None:
                if self.dialing_enabled:
                    await self._dial_match(user, match)

            if result.guard in WAITED_OUT:
                # A 429's Retry-After, the REST budget: waited out by the pacer, off this turn.
                kept = self.pacer.call_after(target, partial(self.dialer.wait_out, result), again)
            else:
                kept = self.pacer.call_at(target, result.retry_at, again)
            if not kept:
                log.emit(
                    logger,
                    "dial.deferred_dropped",
                    logging.WARNING,
                    rule=match.name,
                    user=user,
                    reason="too many deferred dials waiting",
                )

    def _queue_for_token(
        self, user: str | None, match: Match, when: datetime, *, head: bool
    ) -> None:
        """Line a dial ``calls_per_second`` deferred up for a token; the head keeps its place.

        One timer for the whole line, at the next token, offers only its head
        again: offering every deferred dial again at each token would send a
        herd through the workers (and the store) every 1/rate seconds, ahead
        of the triggers that find a token at once. A dial that finds one at
        once may still go before the line (the bucket is not a queue).
        """
        if head:
            self._token_line.appendleft((user, match))
        elif len(self._token_line) >= MAX_DEFERRED:
            self.pacer.deferred_dropped += 1
            log.emit(
                logger,
                "dial.deferred_dropped",
                logging.WARNING,
                rule=match.name,
                user=user,
                reason="too many deferred dials waiting",
            )
            return
        else:
            self._token_line.append((user, match))
        self._arm_token_line(when)

    def _arm_token_line(self, when: datetime) -> None:
        """Offer the token line's head again at ``when``, unless that is set already."""
        if self._token_line_armed or not self._token_line:
            return
        entry = self._token_line[0]

        async def turn() -> None:
            self._token_line_armed = False
            try:
                self._token_line.remove(entry)
            except ValueError:  # pragma: no cover (only a turn takes the head out)
                return
            if self.dialing_enabled:
                await self._dial_match(entry[0], entry[1], head=True)
            else:
                self._arm_token_line(self.clock.now())

        self._token_line_armed = self.pacer.call_at(entry[0] or "", when, turn)

    async def _after_dial(self, result: DialResult) -> None:
        """After any dial: track its call; re-read one found by reconciling (it may have
        moved on unseen)."""
        stale = await self.tracker.after_dial(result)
        if stale is not None:
            await self.refresher.refresh_call(stale.conversation_id, stale.user_id)

    # -- the parts' entry points, as the daemon calls them -------------------------

    async def pace(self, user_id: str) -> None:
        """Look at one tracked agent's readiness and offer it to the rules; never raises.

        See :meth:`~outdial.handlers.offers.ReadinessOffers.pace`.
        """
        await self.offers.pace(user_id)

    async def contacts_changed(self) -> None:
        """Contacts were imported: agents that waited for one are looked at again."""
        await self.offers.contacts_changed()

    async def refresh(self, user_ids: Iterable[str]) -> set[str]:
        """Re-read what a gap in the events may have hidden; returns the agents not read.

        See :meth:`~outdial.handlers.refresher.GapRefresher.refresh`.
        """
        return await self.refresher.refresh(user_ids)

    async def refresh_calls(self) -> bool:
        """Reconcile unknown dials and re-read every tracked call; False if the store is away.

        See :meth:`~outdial.handlers.refresher.GapRefresher.refresh_calls`.
        """
        return await self.refresher.refresh_calls()

    async def refresh_agents(self, user_ids: Iterable[str]) -> set[str]:
        """Re-read the state of ``user_ids``; returns the agents not read.

        See :meth:`~outdial.handlers.refresher.GapRefresher.refresh_agents`.
        """
        return await self.refresher.refresh_agents(user_ids)


#: The decoding of an event that is not read (see ``Handlers._bookkeep``).
_UNREAD = Decoded()


def _readiness_policy(config: Config, codec: Codec) -> ReadinessPolicy:
    return ReadinessPolicy.from_config(config.readiness, check_routing=codec.has_routing_status)


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
