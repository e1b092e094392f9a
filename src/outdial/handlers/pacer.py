"""The pacer's memory and clock: per agent readiness facts, offers, and wake-up times.

Pacing is level-triggered: whenever an agent is ready and one of their contacts
can be called now, a dial is offered. :class:`~outdial.handlers.dispatch.Handlers`
looks at an agent after every input that may change that (an event, a re-read,
a dial's result); this module keeps what it needs between looks:

* :class:`AgentFacts` per tracked agent (the agents that rules on
  ``outdial.users.{userId}.ready`` name), updated by the pure functions of
  :mod:`outdial.handlers.readiness`;
* per agent, the offer of the current readiness epoch (:class:`Offer`): which
  attempt of the epoch it is, whether it has been published to custom
  handlers, and whether it is *consumed* (a dial was placed or is open for it,
  or no rule dials for it), after which nothing is offered until a new epoch;
* a timer heap: the earliest time each agent must be looked at again because
  time alone may change the answer (the end of ``after_call``, a calling window
  opening, a retry coming due, the next ``calls_per_second`` token). One task,
  :meth:`Pacer.run`, sleeps on the injected clock until the earliest one;
* deferred steps waiting on a wait of their own (:meth:`Pacer.call_after`: a
  dial held back by a 429 or the REST budget), each waited out in a task of
  :meth:`Pacer.run`, never in an agent's turn.

Nothing that blocked a turn loses it: a skip that time lifts is a scheduled
look, a skip that only new contacts lift is remembered (:meth:`Pacer.waiting`)
and looked at again after the next import.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import anyio

from outdial.clock import Clock
from outdial.handlers.readiness import AgentFacts, Readiness

__all__ = ["MAX_DEFERRED", "READY_TOPIC", "Offer", "Pacer", "ready_topic"]

#: Deferred steps (rate-limited dials waiting for their turn) kept at most.
MAX_DEFERRED = 10_000

#: The derived topic outdial publishes readiness on; rules subscribe to it like any topic.
READY_TOPIC = "outdial.users.{userId}.ready"
_READY_PREFIX = "outdial.users."
_READY_SUFFIX = ".ready"


def ready_topic(user_id: str) -> str:
    """The readiness topic of one agent."""
    return READY_TOPIC.replace("{userId}", user_id)


def is_derived(topic: str) -> bool:
    """True for topics outdial makes itself (never subscribed on the platform)."""
    return topic.startswith("outdial.")


def ready_topic_user(topic: str) -> str | None:
    """The agent of an ``outdial.users.{id}.ready`` topic, else None."""
    if topic.startswith(_READY_PREFIX) and topic.endswith(_READY_SUFFIX):
        user = topic[len(_READY_PREFIX) : -len(_READY_SUFFIX)]
        return user if user and "." not in user else None
    return None


@dataclass(frozen=True, slots=True)
class Offer:
    """The current readiness epoch of one agent, as offered to the rules.

    ``attempt`` counts dials of the epoch that settled without a call (the
    platform refused, a guard denied after claiming): each gets a fresh
    idempotency key, so the next contact can be tried in the same readiness.
    """

    epoch: str
    attempt: int = 0
    published: bool = False
    consumed: bool = False


StepRunner = Callable[[str, Callable[[], Awaitable[None]]], Awaitable[None]]


class Pacer:
    """Per agent facts, verdicts and offers, and the timers that look at agents again."""

    def __init__(self, clock: Clock, tracked: Iterable[str] = ()) -> None:
        self.clock = clock
        self.facts: dict[str, AgentFacts] = {}
        #: The last verdict per agent (what a status page shows).
        self.verdicts: dict[str, Readiness] = {}
        self.offers: dict[str, Offer] = {}
        self._seeded: set[str] = set()
        self._waiting_contacts: set[str] = set()
        self._timers: list[tuple[float, int, str]] = []
        # Deferred steps (a rate-limited dial offered again): (deadline, seq, user, step).
        self._calls: list[tuple[float, int, str, Callable[[], Awaitable[None]]]] = []
        #: Deferred steps dropped because too many were waiting (see :data:`MAX_DEFERRED`).
        self.deferred_dropped = 0
        # Steps behind a wait of their own, not started yet: (user, wait, step).
        self._after: list[
            tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
        ] = []
        # Of those, how many are started and still waiting.
        self._after_waiting = 0
        self._due_at: dict[str, float] = {}
        self._seq = itertools.count()
        self._changed: anyio.Event | None = None
        self.tracked: frozenset[str] = frozenset()
        self.track(tracked)

    # -- which agents --------------------------------------------------------

    def track(self, users: Iterable[str]) -> set[str]:
        """Track exactly ``users`` from now on; returns the newly tracked ones."""
        wanted = frozenset(users)
        added = set(wanted - self.tracked)
        for gone in self.tracked - wanted:
            for table in (self.facts, self.verdicts, self.offers, self._due_at):
                table.pop(gone, None)
            self._seeded.discard(gone)
            self._waiting_contacts.discard(gone)
        for user in added:
            self.facts.setdefault(user, AgentFacts(user))
        self.tracked = wanted
        return added

    def is_tracked(self, user_id: str | None) -> bool:
        """True for an agent whose readiness is followed."""
        return user_id is not None and user_id in self.tracked

    def needs_seed(self, user_id: str) -> bool:
        """True until :meth:`seeded` is called for the agent (its last call read from the store)."""
        return user_id not in self._seeded

    def seeded(self, user_id: str) -> None:
        """The agent's facts have been seeded from the store."""
        self._seeded.add(user_id)

    # -- facts and offers ----------------------------------------------------

    def update(self, user_id: str, change: Callable[[AgentFacts], AgentFacts]) -> AgentFacts:
        """Apply a pure change to the agent's facts and keep the result."""
        facts = change(self.facts.get(user_id) or AgentFacts(user_id))
        self.facts[user_id] = facts
        return facts

    def offer_for(self, user_id: str, epoch: str) -> Offer:
        """The agent's offer for ``epoch``: the one in progress, or a fresh one."""
        offer = self.offers.get(user_id)
        if offer is None or offer.epoch != epoch:
            offer = Offer(epoch)
            self.offers[user_id] = offer
        return offer

    def set_offer(self, user_id: str, offer: Offer, **changes: object) -> Offer:
        """Record changes to the agent's current offer."""
        offer = replace(offer, **changes)  # type: ignore[arg-type]
        self.offers[user_id] = offer
        return offer

    # -- waiting for contacts ------------------------------------------------

    def wait_for_contacts(self, user_id: str) -> None:
        """The agent was ready with nothing callable: look again after the next import."""
        self._waiting_contacts.add(user_id)

    def waiting(self) -> list[str]:
        """Take the agents waiting for contacts (each is looked at again once)."""
        users = sorted(self._waiting_contacts)
        self._waiting_contacts.clear()
        return users

    # -- timers ----------------------------------------------------------------

    def wake_at(self, user_id: str, when: datetime) -> None:
        """Look at the agent again at wall time ``when`` (the earliest asked time wins)."""
        delay = (when - self.clock.now()).total_seconds()
        deadline = self.clock.monotonic() + max(0.0, delay)
        current = self._due_at.get(user_id)
        if current is not None and current <= deadline:
            return
        self._due_at[user_id] = deadline
        heapq.heappush(self._timers, (deadline, next(self._seq), user_id))
        if self._changed is not None:
            self._changed.set()

    def call_at(self, user_id: str, when: datetime, step: Callable[[], Awaitable[None]]) -> bool:
        """Run ``step`` as one of the agent's steps at wall time ``when`` (a deferred dial).

        At most :data:`MAX_DEFERRED` wait at once; past that the oldest is dropped
        (counted in :attr:`deferred_dropped`) and False is returned for it.
        """
        delay = (when - self.clock.now()).total_seconds()
        deadline = self.clock.monotonic() + max(0.0, delay)
        heapq.heappush(self._calls, (deadline, next(self._seq), user_id, step))
        kept = True
        if len(self._calls) > MAX_DEFERRED:
            # The one due last goes: the others have waited longer for their turn.
            latest = max(range(len(self._calls)), key=lambda i: self._calls[i][:2])
            self._calls.pop(latest)
            heapq.heapify(self._calls)
            self.deferred_dropped += 1
            kept = False
        if self._changed is not None:
            self._changed.set()
        return kept

    def call_after(
        self,
        user_id: str,
        wait: Callable[[], Awaitable[None]],
        step: Callable[[], Awaitable[None]],
    ) -> bool:
        """Run ``step`` as one of the agent's steps once ``wait()`` returns.

        For a wait the clock alone cannot say (a 429's Retry-After on the
        dialer's sleep, the REST budget on its own): :meth:`run` awaits it in
        a task of its own, outside every agent's turn. Bounded like
        :meth:`call_at`: past :data:`MAX_DEFERRED` waiting, the new one is
        dropped (counted) and False is returned.
        """
        if len(self._after) + self._after_waiting + len(self._calls) >= MAX_DEFERRED:
            self.deferred_dropped += 1
            return False
        self._after.append((user_id, wait, step))
        if self._changed is not None:
            self._changed.set()
        return True

    def next_wake(self) -> float | None:
        """The monotonic time of the earliest pending look or deferred step, if any."""
        self._drop_stale()
        times = [t[0] for t in (self._timers[:1] + self._calls[:1])]
        return min(times) if times else None

    def due_calls(self, now: float) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """Take the deferred steps due at monotonic ``now``, earliest first."""
        calls = []
        while self._calls and self._calls[0][0] <= now:
            _, _, user, step = heapq.heappop(self._calls)
            calls.append((user, step))
        return calls

    def due(self, now: float) -> list[str]:
        """Take the agents whose look is due at monotonic ``now``."""
        users: list[str] = []
        while True:
            self._drop_stale()
            if not self._timers or self._timers[0][0] > now:
                return users
            _, _, user = heapq.heappop(self._timers)
            self._due_at.pop(user, None)
            users.append(user)

    def _drop_stale(self) -> None:
        # Entries superseded by an earlier wake_at, or of agents no longer tracked.
        while self._timers:
            deadline, _, user = self._timers[0]
            if self._due_at.get(user) == deadline:
                return
            heapq.heappop(self._timers)

    async def run(self, look: StepRunner, step: Callable[[str], Awaitable[None]]) -> None:
        """Forever: sleep on the clock until the earliest look is due, then run them.

        ``look(user, fn)`` runs ``fn`` as one of the agent's steps (in order
        with the agent's events); ``step(user)`` is the look itself. Due looks
        run a few at a time, so one slow dial does not hold up the others.
        """
        slots = anyio.Semaphore(8)

        async def one(user: str) -> None:
            async with slots:

                async def fn() -> None:
                    await step(user)

                await look(user, fn)

        async def deferred(user: str, fn: Callable[[], Awaitable[None]]) -> None:
            async with slots:
                await look(user, fn)

        async def after(
            user: str, wait: Callable[[], Awaitable[None]], fn: Callable[[], Awaitable[None]]
        ) -> None:
            try:
                await wait()  # holding no slot: a long wait must not hold up the looks
            finally:
                self._after_waiting -= 1
            await deferred(user, fn)

        async with anyio.create_task_group() as tg:
            while True:
                changed = anyio.Event()
                self._changed = changed
                deadline = self.next_wake()
                if deadline is None:
                    await changed.wait()
                elif deadline > self.clock.monotonic():
                    await _first_of(changed.wait(), self.clock.sleep_until(deadline))
                now = self.clock.monotonic()
                for user in self.due(now):
                    if user in self.tracked:
                        tg.start_soon(one, user)
                for user, fn in self.due_calls(now):
                    tg.start_soon(deferred, user, fn)
                started, self._after = self._after, []
                for user, wait, fn in started:
                    self._after_waiting += 1
                    tg.start_soon(after, user, wait, fn)


async def _first_of(first: Awaitable[None], second: Awaitable[None]) -> None:
    """Return as soon as either awaitable finishes (the other is cancelled)."""
    async with anyio.create_task_group() as tg:

        async def run(awaitable: Awaitable[None]) -> None:
            await awaitable
            tg.cancel_scope.cancel()

        tg.start_soon(run, first)
        tg.start_soon(run, second)
