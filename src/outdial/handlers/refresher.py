"""The gap refresher: what a gap in the events may have hidden, re-read over REST.

The platform keeps no events for a disconnected socket, so after a gap (and
when the store comes back) :meth:`GapRefresher.refresh` re-reads the calls
outdial tracks and the agents' states, and feeds them to the router as
*synthetic* events on the channel ``"refresh"``: the same rules, tracking and
readiness apply to them as to live events.

A re-read is older than any live event of its topic that came after the read
began: the refresher counts live events per topic (:meth:`GapRefresher.saw`)
and leaves out the parts of a bulk read whose topic moved on meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, Protocol

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.domain import CallLeg, WorkloadSeen
from outdial.events import Event
from outdial.handlers import readiness
from outdial.handlers.live import Live, UserStep
from outdial.handlers.pacer import Pacer
from outdial.handlers.tracker import CallTracker
from outdial.handlers.trouble import decode, report
from outdial.platforms.base import (
    AgentSnapshot,
    AgentStateReader,
    CallControl,
    Codec,
    PlatformError,
)
from outdial.store.base import Store, StoreUnavailable

__all__ = ["REFRESH", "GapRefresher", "RestPorts"]

logger = logging.getLogger("outdial.handlers")

#: The channel id of events re-read over REST (not received live).
REFRESH = "refresh"


class RestPorts(CallControl, AgentStateReader, Protocol):
    """What the handlers ask of the platform over REST: calls, and agent re-reads."""


class GapRefresher:
    """Re-reads calls and agents after a gap and feeds them back as synthetic events.

    The router's steps it runs are given at construction: ``feed`` handles a
    re-read event (without looking at readiness: that is done once per agent,
    after all of its state is in), ``reconcile`` settles unknown dials first,
    and ``pace`` looks at one agent's readiness.
    """

    def __init__(
        self,
        platform: RestPorts,
        store: Store,
        clock: Clock,
        codec: Codec,
        pacer: Pacer,
        tracker: CallTracker,
        live: Live,
        *,
        feed: Callable[[Event], Awaitable[None]],
        reconcile: Callable[[], Awaitable[int]],
        pace: Callable[[str], Awaitable[None]],
    ) -> None:
        self.platform = platform
        self.store = store
        self.clock = clock
        self.codec = codec
        self.pacer = pacer
        self._tracker = tracker
        self._live = live
        self._feed = feed
        self._reconcile = reconcile
        self._pace = pace
        # Live events seen per topic: a re-read that began before one of them is
        # older than what it said, and must not overwrite it.
        self._live_seen: dict[str, int] = {}
        # The calls tracked when refresh_calls last read them.
        self._tracked_calls: set[str] = set()

    def saw(self, event: Event) -> None:
        """Count ``event`` for its topic when it came live (re-read events are not news)."""
        if event.channel_id != REFRESH:
            self._live_seen[event.topic] = self._live_seen.get(event.topic, 0) + 1

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

        Each call and each agent is one step, run through ``run_for_user``
        for its agent, ``config.handling.refresh_concurrency`` at a time: the
        REST reads overlap, and each agent's re-read state is handled in
        order with its live events while other agents' events go on. Agent
        states are read in bulk (as few requests as the platform allows).
        Readiness is looked at once per agent, after all of its state is in.

        Returns the agents whose state could not be read (the caller re-reads
        them later: no agent is dropped from a refresh).

        :meth:`refresh_calls` and :meth:`refresh_agents` are its two halves,
        for a caller that re-reads many agents in batches.
        """
        users = list(dict.fromkeys(user_ids))
        if not await self.refresh_calls(set(users)):
            return set(users)
        return await self.refresh_agents(users)

    async def refresh_calls(self, reread: Collection[str] = ()) -> bool:
        """Reconcile unknown dials, then re-read every tracked call; False if the store is away.

        Agents with a re-read call that are not in ``reread`` (their state is
        not being re-read) are looked at again now.
        """
        try:
            await self._reconcile()
        except Exception as exc:
            report("refresh.reconcile", None, exc)
        try:
            active = await self.store.active_calls()
        except StoreUnavailable as exc:
            # Nothing can be applied without the store: all of them are re-read later.
            report("refresh.calls", None, exc)
            return False
        self._tracked_calls = {record.conversation_id for record in active}
        calls = [
            (record.user_id, self._call_step(record.conversation_id, record.user_id))
            for record in active
        ]
        await self._run_steps(calls)
        for record in active:
            if record.user_id not in reread and self.pacer.is_tracked(record.user_id):
                self.pacer.wake_at(record.user_id, self.clock.now())
        return True

    async def refresh_agents(self, user_ids: Iterable[str]) -> set[str]:
        """Re-read the state of ``user_ids`` (in bulk) and apply it, each in its agent's turn.

        Returns the agents whose state could not be read. The calls tracked
        when :meth:`refresh_calls` last ran are the ones an idle agent's
        re-read may settle.
        """
        users = list(dict.fromkeys(user_ids))
        if not users:
            return set()
        seen_before = dict(self._live_seen)
        try:
            states = await self.platform.get_agent_states(users)
        except PlatformError as exc:
            report("refresh.agents", None, exc, users=len(users))
            return set(users)
        steps = [
            (state.user_id, self._agent_step(state, self._tracked_calls, seen_before))
            for state in states
        ]
        await self._run_steps(steps)
        return set(users) - {state.user_id for state in states}

    async def _run_steps(self, steps: list[tuple[str, UserStep]]) -> None:
        """Run every step through ``run_for_user``, a bounded number at once."""
        if not steps:
            return
        slots = anyio.Semaphore(self._live.config.handling.refresh_concurrency)

        async def one(user_id: str, step: UserStep) -> None:
            try:
                await self._live.run_for_user(user_id, step)
            except Exception as exc:  # one agent's step never ends the others'
                report("refresh.step", None, exc, user=user_id)
            finally:
                slots.release()

        async with anyio.create_task_group() as tg:
            for user_id, step in steps:
                # Taken before the task starts: at most that many tasks exist at once.
                await slots.acquire()
                tg.start_soon(one, user_id, step)

    def _call_step(self, conversation_id: str, user_id: str) -> UserStep:
        async def step() -> None:
            await self.refresh_call(conversation_id, user_id)

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
                    isinstance(seen, WorkloadSeen)
                    for seen in decode(self.codec, event, self.clock.now()).observations
                )
                await self._feed(event)
            if not self.pacer.is_tracked(user_id):
                return
            facts = self.pacer.facts[user_id]
            if workload_reread and facts.active_calls == 0 and facts.acw_calls == 0:
                # Nothing going on: calls still listed ended unseen during the gap.
                now = self.clock.now()
                self.pacer.update(
                    user_id, lambda f: readiness.with_calls_settled(f, now, tracked_calls)
                )
            await self._pace(user_id)

        return step

    async def refresh_call(self, conversation_id: str, user_id: str) -> None:
        """Feed the platform's view of one tracked call through ``handle``."""
        try:
            snapshot = await self.platform.get_call(conversation_id)
        except PlatformError as exc:
            report("refresh.call", None, exc, conversation=conversation_id)
            return
        if snapshot is None:
            await self._tracker.end_unseen(conversation_id)
            if self.pacer.is_tracked(user_id):
                leg = CallLeg(conversation_id, ended=True, done_at=self.clock.now())
                self.pacer.update(user_id, lambda f: readiness.with_call(f, leg))
            return
        # Not paced here: the agent's own re-read (or the caller) looks at readiness.
        topic = self.codec.calls_topic(user_id)
        await self._feed(self._synthetic(topic, dict(snapshot.body)))

    def _synthetic(self, topic: str, body: Mapping[str, Any]) -> Event:
        return Event(
            topic=topic,
            body=body,
            channel_id=REFRESH,
            received_at=self.clock.monotonic(),
            facts=self.codec.identity_facts,
        )
