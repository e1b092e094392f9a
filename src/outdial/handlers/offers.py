"""Readiness offers: an agent's readiness, offered to the rules as a derived event.

Readiness is level-triggered (see ``DESIGN.md``, "Readiness and pacing"):
after every input that may change it, :meth:`ReadinessOffers.pace` asks the
pure :func:`~outdial.handlers.readiness.assess` whether the agent is ready, and
offers a ready agent's epoch as an ``outdial.users.{id}.ready`` event to the
custom handlers (once) and to the rules (until a dial is placed or open for
it). What a dial's result means for the offer (consumed, tried again with the
next attempt, looked at again later) is decided in :meth:`ReadinessOffers._took`.
The :class:`~outdial.handlers.pacer.Pacer` keeps the facts, offers and timers
between looks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from outdial import log
from outdial.clock import Clock
from outdial.domain import AgentObservation, CallLeg, PresenceSeen, RoutingSeen, WorkloadSeen
from outdial.events import Event
from outdial.handlers import readiness
from outdial.handlers.dialer import DialResult
from outdial.handlers.live import Live
from outdial.handlers.pacer import Offer, Pacer, ready_topic
from outdial.handlers.registry import HandlerRegistry
from outdial.handlers.trouble import report
from outdial.store.base import Store

__all__ = ["MAX_FAILED_PER_EPOCH", "ReadinessOffers"]

logger = logging.getLogger("outdial.handlers")

#: Dials of one readiness epoch that may settle without a call (refused by the
#: platform, denied after claiming) before the agent waits for a new epoch.
MAX_FAILED_PER_EPOCH = 3
#: A busy agent (per the store) is looked at again after this long at the latest,
#: in case what keeps it busy settles without an event.
_BUSY_RECHECK = 15.0

#: What follows every dial (the router's): track the call it placed.
AfterDial = Callable[[DialResult], Awaitable[None]]


class ReadinessOffers:
    """The tracked agents' readiness facts in, offers of each ready epoch out.

    ``after_dial`` is the router's step after any dial (tracking the call it
    placed), run after each dial an offer makes.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        pacer: Pacer,
        registry: HandlerRegistry,
        live: Live,
        *,
        after_dial: AfterDial,
    ) -> None:
        self.store = store
        self.clock = clock
        self.pacer = pacer
        self.registry = registry
        self._live = live
        self._after_dial = after_dial

    def observe(self, user_id: str, seen: AgentObservation) -> None:
        """Feed what an event says of the agent's presence, routing or workload into the facts."""
        if isinstance(seen, PresenceSeen):
            self.pacer.update(user_id, lambda f: readiness.with_presence(f, seen))
        elif isinstance(seen, RoutingSeen):
            self.pacer.update(user_id, lambda f: readiness.with_routing_status(f, seen.status))
        elif isinstance(seen, WorkloadSeen):
            self.pacer.update(user_id, lambda f: readiness.with_workload(f, seen))

    def call_seen(self, user_id: str, leg: CallLeg) -> None:
        """Feed what an event says of one of the agent's calls into the facts."""
        self.pacer.update(user_id, lambda f: readiness.with_call(f, leg))

    def may_dial(self, user_id: str | None) -> bool:
        """Whether a look at the agent now may dial (or wait on the store or the platform).

        Quick and pure: False when the agent is not ready, or its readiness
        was already offered and taken; True otherwise (also before its first
        look, which reads the store). A caller that runs slow work apart runs
        a look that may dial there, and a quick one where it is.
        """
        if user_id is None or not self.pacer.is_tracked(user_id):
            return False
        if self.pacer.needs_seed(user_id):
            return True
        if not self._live.dialing_enabled:
            return False
        facts = self.pacer.facts.get(user_id)
        if facts is None:
            return True
        verdict = readiness.assess(facts, self._live.readiness, self.clock.now())
        if not verdict.ready or verdict.epoch is None:
            return False
        offer = self.pacer.offers.get(user_id)
        if offer is None or offer.epoch != verdict.epoch:
            return True
        return not offer.consumed and offer.attempt <= MAX_FAILED_PER_EPOCH

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
            report("readiness", None, exc, user=user_id)

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

    async def _offer(self, user_id: str) -> bool:
        """One look; True when it should look again at once (a dial settled without a call)."""
        live = self._live
        facts = self.pacer.facts[user_id]
        verdict = readiness.assess(facts, live.readiness, self.clock.now())
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
        if offer.consumed or not live.dialing_enabled:
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
                    report(f"handler {match.name}", event, exc)
        matches = live.rules.match(event)
        if not matches:
            self.pacer.set_offer(user_id, offer, consumed=True)
            return False
        again = False
        for match in matches:
            try:
                result = await live.dialer.dial(match)
            except Exception as exc:
                report(f"rule {match.name}", event, exc)
                continue
            live.observer.dialed(event, result)
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

    def dial_settled(self, user_id: str, key: str, result: DialResult) -> None:
        """A reconciled dial: the agent's open dial is the call now, or gone; look again."""
        if not self.pacer.is_tracked(user_id) or result.status == "unknown":
            return
        self.pacer.update(user_id, lambda f: readiness.with_dial_closed(f, key))
        if result.status == "placed" and result.conversation_id:
            cid = result.conversation_id
            self.pacer.update(user_id, lambda f: readiness.with_dial_open(f, cid))
        elif result.status == "failed":
            offer = self.pacer.offers.get(user_id)
            if offer is not None and offer.consumed:
                self.pacer.set_offer(user_id, offer, consumed=False, attempt=offer.attempt + 1)
        self.pacer.wake_at(user_id, self.clock.now())

    async def contacts_changed(self) -> None:
        """Contacts were imported: agents that waited for one are looked at again."""
        for user in self.pacer.waiting():
            self.pacer.wake_at(user, self.clock.now())
