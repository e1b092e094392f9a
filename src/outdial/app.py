"""The daemon: config, platform, listener, handlers and store wired together.

One task receives (the listener, with its own tasks per shard); one task, the
dispatcher, takes what it delivers. An event's quick part
(:meth:`Handlers.prepare`: the call tracked, the readiness facts, the rules
matched) is done by the dispatcher itself when the store answers on the event
loop without waiting (SQLite on a local file, the default): a hand-off to
another task per event was a tenth of the daemon's CPU at 10,000 events/s
(``bench/scale.py``). With a store whose every operation waits on a network
(PostgreSQL) it goes to a fixed set of workers (``[handling] workers``), each
event to the worker its agent hashes to, so a slow store holds up a share of
the agents only. Each worker reads a small bounded stream; when it is full
the dispatcher waits, and the backlog stays in the listener's own bounded
queue (which overflows as it documents). Topics without an agent all go to
one worker. Either way one agent's events are handled in order.

What waits on the platform (a dial and its answer, an offer of a ready agent,
a custom handler, a step such as a re-read) runs in the agent's *lane*: a task
of its own, behind which the agent's next items queue until it is done. One
agent's events stay in order; a slow answer or a rate limit holds up that
agent only.

A gap from the listener makes the handlers re-read the affected agents and
calls over REST, in a task of its own: a batch of agents at a time, each batch
waiting for the listener's queue to have room
(:class:`~outdial.handlers.rereads.RereadPacing`), gaps arriving meanwhile
joining the agents pending. Each agent's re-read runs as a step queued for
that agent, in order with its live events, in its lane.

A store whose database goes away (see :mod:`outdial.store.health`) does not
stop the daemon: the sockets stay up, events are still read, dials fail
closed (a dial whose claim cannot be written is never sent), and
:attr:`Daemon.store_healthy` is False. When the database answers again every
agent is re-read as after a gap, so those that could not be handled meanwhile
are looked at again within a second or so.

Replicas sharing a store share the platform's agents: where an agent has one
connection (CXone's agent session), the replica holding the agent's lease in
the store (:class:`~outdial.listener.leases.StoreLeases`, renewed with the
claims' leases) listens and the others stand by; a clean stop releases them.

Shutdown is cancellation of the daemon's task group: every socket closes and
the store is closed by its context manager.
"""

from __future__ import annotations

import logging
import signal
import zlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from random import Random

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from outdial.clock import Clock, SystemClock
from outdial.config import Config, ConfigError, load_config
from outdial.domain import DialRequest, OutboundCall, PlacedCall
from outdial.events import Event, Gap, topic_user_id
from outdial.handlers.dispatch import Handlers, UserStep, run_inline
from outdial.handlers.donotcall import DoNotCallFileError
from outdial.handlers.reconcile import ClaimOwner
from outdial.handlers.reconciler import pid_alive_here
from outdial.handlers.registry import HandlerRegistry
from outdial.handlers.rereads import RereadPacing
from outdial.handlers.rules import RuleError
from outdial.listener import Listener
from outdial.listener.leases import StoreLeases
from outdial.log import emit
from outdial.loop import running_loop
from outdial.observe import Observatory
from outdial.observe.server import serve as serve_observe
from outdial.platforms.base import AgentSnapshot, CallSnapshot, PlatformBundle
from outdial.platforms.registry import bundle_for
from outdial.store import open_store
from outdial.store.base import Store, StoreUnavailable

__all__ = [
    "Daemon",
    "PlatformUnreachable",
    "open_daemon",
    "platform_from_config",
    "run_until_signalled",
]

log = logging.getLogger("outdial.app")

#: How long a shutdown may take before we stop waiting for sockets to close politely.
SHUTDOWN_GRACE = 5.0
#: Seconds between looks at the store for newly imported contacts.
CONTACTS_POLL = 0.5


@dataclass(slots=True)
class _Step:
    """A step queued to a worker for ``user_id`` (a refresh, a timer's look); ``done`` is set
    once it ran (``error``: it raised)."""

    user_id: str | None
    run: UserStep
    done: anyio.Event
    error: Exception | None = None

    async def __call__(self) -> None:
        try:
            await self.run()
        except Exception as exc:  # handed back to whoever queued the step
            self.error = exc
        finally:
            self.done.set()


_WorkItem = Event | _Step


class PlatformUnreachable(Exception):
    """No channel connected within ``[listener] give_up_after`` seconds of the start."""


def platform_from_config(
    config: Config, clock: Clock | None = None, rng: Random | None = None
) -> PlatformBundle:
    """The ports of the platform ``config.platform`` names (``kind``)."""
    return bundle_for(config, clock or SystemClock(), rng)


class _RestPorts:
    """A bundle's call control and agent reads as the one REST side the handlers ask."""

    def __init__(self, bundle: PlatformBundle) -> None:
        self._calls = bundle.calls
        self._agents = bundle.agents

    async def place_call(self, request: DialRequest) -> PlacedCall:
        return await self._calls.place_call(request)

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        return await self._calls.get_call(conversation_id)

    async def find_outbound_calls(
        self, user_id: str, since: datetime, until: datetime, phone_number: str | None = None
    ) -> list[OutboundCall]:
        return await self._calls.find_outbound_calls(user_id, since, until, phone_number)

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> Sequence[AgentSnapshot]:
        return await self._agents.get_agent_states(user_ids, give_up_after=give_up_after)


def owner_gone_here(text: str, me: ClaimOwner) -> bool:
    """Whether the process ``text`` names (``host:pid:nonce``) ran on this host and is gone.

    Only a pid that no longer runs counts: another daemon in this very process
    (tests; one pid, another nonce) is alive and keeps its leases.
    """
    owner = ClaimOwner.parse(text)
    if owner is None or owner == me or owner.host != me.host or owner.pid == me.pid:
        return False
    return not pid_alive_here(owner.pid)


class Daemon:
    """outdial running: listener in, handlers out."""

    _gap_wakeup: anyio.Event  # made in run(): an Event belongs to the running event loop

    def __init__(
        self,
        config: Config,
        *,
        platform: PlatformBundle,
        store: Store,
        clock: Clock | None = None,
        rng: Random | None = None,
        registry: HandlerRegistry | None = None,
    ) -> None:
        self.config = config
        self.platform = platform
        self.store = store
        self.clock = clock or SystemClock()
        self.handlers = Handlers(
            config,
            _RestPorts(platform),
            store,
            self.clock,
            codec=platform.codec,
            registry=registry,
        )
        me = self.handlers.dialer.owner
        #: Which agents' connections this replica holds (one replica listens to an agent).
        self.leases = StoreLeases(
            store,
            str(me),
            self.clock,
            config.reconcile.lease,
            gone=lambda owner: owner_gone_here(owner, me),
        )
        # Before the listener makes its first source: every source asks these leases.
        platform.sources.use_leases(self.leases)
        self.listener = Listener(
            platform.sources, self.handlers.topics(), config.listener, self.clock
        )
        self.events_handled = 0
        self.gaps_handled = 0
        #: Metrics and the status board, fed by hooks; served when ``[observe] listen`` is set.
        self.observatory = Observatory(self)
        self.handlers.observer = self.observatory
        # Empty when the dispatcher does the quick part itself (a store answering inline).
        self._workers: list[MemoryObjectSendStream[_WorkItem]] = []
        # Agents whose handling runs in a lane now (a dial, a step; or whose quick part
        # is under way), each with the items that came for it meanwhile, in order.
        self._lanes: dict[str | None, deque[_WorkItem]] = {}
        # Events queued per lane at most (steps are bounded by their callers).
        self._lane_size = config.handling.worker_queue_size
        # Events queued in all lanes together at most, before the dispatcher waits
        # for them to drain (see _take_event): as many as the workers' queues hold.
        self._lane_budget = config.handling.workers * config.handling.worker_queue_size
        self._lane_backlog = 0
        self._lane_room: anyio.Event | None = None  # set when a lane takes its next event
        self._lane_wait_after = 0.0  # lanes stalled: no waiting for them before this time
        #: Events dropped because their agent's lane was full (each agent re-read after).
        self.lane_overflowed = 0
        self._tg: anyio.abc.TaskGroup | None = None
        # Agents to re-read after gaps not yet refreshed: at most every subscribed agent.
        self._gap_users: set[str] = set()
        #: How agents are re-read after gaps: batches, in the handlers' spare time.
        self.reread_pacing = RereadPacing()
        #: Agents re-read after gaps (and the store's recoveries) so far.
        self.agents_reread = 0

    @property
    def agents_reread_pending(self) -> int:
        """Agents of reported gaps not re-read yet."""
        return len(self._gap_users)

    @property
    def lanes_queued(self) -> int:
        """Events waiting in agents' lanes, behind what each agent is doing."""
        return self._lane_backlog

    @property
    def store_healthy(self) -> bool:
        """False while the store's database is away: the daemon is not ready (nothing dials)."""
        return self.store.health.healthy

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled, or raise ``ListenerFatal`` when the platform refuses us."""
        emit(
            log,
            "daemon.start",
            rules=len(self.config.rules),
            topics=len(self.listener.topics),
            loop=running_loop(),
        )
        handling = self.config.handling
        self._gap_wakeup = anyio.Event()
        unsubscribe = self.store.health.on_recovered(self._store_recovered)
        try:
            await self.handlers.start()
            async with AsyncExitStack() as streams, anyio.create_task_group() as tg:
                self._tg = tg
                for _ in range(0 if self.store.answers_inline else handling.workers):
                    send, receive = anyio.create_memory_object_stream[_WorkItem](
                        handling.worker_queue_size
                    )
                    streams.enter_context(send)
                    streams.enter_context(receive)
                    self._workers.append(send)
                    tg.start_soon(self._work, receive)
                self.handlers.run_for_user = self._run_for_user
                tg.start_soon(self.listener.run)
                tg.start_soon(self._reconcile_periodically)
                tg.start_soon(self._refresh_after_gaps)
                tg.start_soon(self.handlers.pacer.run, self._run_for_user, self.handlers.pace)
                tg.start_soon(self._watch_contacts)
                tg.start_soon(self._renew_leases)
                address = self.config.observe.address
                if address is not None:
                    host, port = address
                    self.observatory.address = await tg.start(
                        serve_observe, self.observatory, host, port
                    )
                if self.config.listener.give_up_after is not None:
                    tg.start_soon(self._give_up_if_never_connected)
                task_status.started()
                async for item in self.listener:
                    await self._consume(item)
        finally:
            unsubscribe()
            # The sources have ended their sessions: a standby replica may take over now
            # rather than once the leases lapse.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE):
                try:
                    await self.leases.release_all()
                except Exception as exc:  # they lapse by themselves in the end
                    emit(log, "daemon.lease_release_failed", logging.WARNING, error=repr(exc))
            self.handlers.run_for_user = run_inline
            self._workers = []
            self._tg = None
            emit(log, "daemon.stopped", events=self.events_handled, gaps=self.gaps_handled)

    def _worker_for(self, user_id: str | None) -> MemoryObjectSendStream[_WorkItem]:
        # crc32, not hash(): the same agent lands on the same worker in every run.
        index = 0 if user_id is None else zlib.crc32(user_id.encode()) % len(self._workers)
        return self._workers[index]

    async def _work(self, items: MemoryObjectReceiveStream[_WorkItem]) -> None:
        """One worker: its agents' events and steps, each agent's in order.

        An event is handled here up to where it would wait on the platform
        (:meth:`Handlers.prepare`); what is left (a dial, an offer) runs in
        the agent's *lane*, a task of its own, and so does every step (a
        refresh's REST reads, a timer's look). While an agent has a lane, its
        next items are queued there, behind it, and the worker goes on with
        other agents' events: a dial waiting for the platform's answer (or a
        rate limit) holds up its agent only.
        """
        inbox = _Inbox(items)
        while True:
            try:
                item = await inbox.next()
            except anyio.EndOfStream:
                return
            if isinstance(item, _Step):
                self._take_step(item)
            else:
                await self._take_event(item, topic_user_id(item.topic))

    async def _take_event(self, event: Event, user: str | None) -> None:
        """Handle ``event``'s quick part now, or queue it behind what its agent is doing.

        While the quick part runs the agent has a lane that is not started
        yet: a step queued for the agent meanwhile (a refresh, a timer's
        look; they come from other tasks) waits in it, after this event.
        """
        if self._lane_backlog >= self._lane_budget:
            await self._wait_for_lanes()
        lanes = self._lanes
        lane = lanes.get(user)
        if lane is not None:
            if len(lane) >= self._lane_size:
                self._lane_overflow(user, event)
            else:
                lane.append(event)  # behind what the agent is doing
                self._lane_backlog += 1
            return
        queued: deque[_WorkItem] = deque()
        lanes[user] = queued
        try:
            rest = await self.handlers.prepare(event)
        except BaseException:  # cancelled (prepare reports its own errors)
            del lanes[user]
            raise
        if rest is None and not queued:
            del lanes[user]
            return
        self._start_lane(user, rest)
        if rest is not None:
            # Let the lane start now (a dial runs up to its request) rather than after
            # the dozens of queued events the dispatcher takes in a row: at 10,000
            # events/s that wait was most of a dial's latency. One loop pass per step.
            await anyio.lowlevel.checkpoint()

    async def _wait_for_lanes(self) -> None:
        """The lanes together hold ``workers x worker_queue_size`` events: wait while they
        take them, so that the backlog stays in the listener's bounded queue.

        Under a load past what the CPU handles, the dispatcher (which takes a
        few dozen events a pass) would fill the lanes (which take one event in
        a few passes) and drop from them, an event at a time and after its
        parse and dispatch were paid for; waiting moves the overflow to the
        listener's queue, one gap for the lot (``bench/throughput.py``). Lanes
        that take nothing for ``_LANE_STALL`` seconds are waiting on the
        platform, not on the CPU: then the dispatcher goes on, for a while
        without waiting at all, and full lanes drop as they do for one slow
        agent.
        """
        if anyio.current_time() < self._lane_wait_after:
            return
        while self._lane_backlog >= self._lane_budget:
            room = self._lane_room = anyio.Event()
            with anyio.move_on_after(_LANE_STALL):
                await room.wait()
            if not room.is_set():
                self._lane_room = None
                self._lane_wait_after = anyio.current_time() + _LANE_STALL_PAUSE
                emit(log, "daemon.lanes_stalled", logging.WARNING, queued=self._lane_backlog)
                return

    def _take_step(self, step: _Step) -> None:
        """Run ``step`` in its agent's lane, behind what the agent is doing."""
        user = step.user_id
        lane = self._lanes.get(user)
        if lane is not None:
            lane.append(step)  # never dropped: its callers bound them
            return
        self._lanes[user] = deque()
        self._start_lane(user, step)

    def _lane_overflow(self, user: str | None, event: Event) -> None:
        """An agent's lane is full (its dial waits long, its events keep coming): drop the
        event, counted, and re-read the agent once its lane has drained.

        The listener's overflow policy, for one agent: the re-read, a step
        queued behind the lane (steps are never dropped), brings back what
        the dropped events said. Other agents are not touched.
        """
        self.lane_overflowed += 1
        if user is None:
            return  # nothing to re-read (no agent topics here)
        if user not in self._gap_users:
            emit(
                log,
                "daemon.lane_overflow",
                logging.WARNING,
                user=user,
                queued=self._lane_size,
                topic=event.topic,
            )
        self._gap_users.add(user)
        self._gap_wakeup.set()

    def _start_lane(self, user: str | None, first: UserStep | None) -> None:
        """Run ``first`` for ``user`` (its lane is in ``_lanes``) beside the dispatcher, then
        the agent's items queued meanwhile."""
        assert self._tg is not None
        self._tg.start_soon(self._lane, user, first)

    async def _lane(self, user: str | None, first: UserStep | None) -> None:
        queued = self._lanes[user]
        try:
            # Neither raises (a step keeps its error, handle() reports its own); should
            # one all the same, the agent's next items are still handled.
            if first is not None:
                try:
                    await first()
                except Exception as exc:
                    emit(log, "daemon.lane_failed", logging.ERROR, user=user, error=repr(exc))
            while queued:
                item = queued.popleft()
                if not isinstance(item, _Step):
                    self._lane_backlog -= 1
                    room = self._lane_room
                    if room is not None:
                        self._lane_room = None
                        room.set()
                try:
                    await (item() if isinstance(item, _Step) else self.handlers.handle(item))
                except Exception as exc:
                    emit(log, "daemon.lane_failed", logging.ERROR, user=user, error=repr(exc))
        finally:
            # Nothing awaits between the last look at the queue and this: an item
            # for the agent is either in it (handled above) or taken afresh.
            del self._lanes[user]
            # Cancelled with events still queued (the daemon stopping): not queued now.
            self._lane_backlog -= sum(1 for item in queued if not isinstance(item, _Step))

    async def _run_for_user(self, user_id: str | None, step: UserStep) -> None:
        """Run ``step`` for ``user_id`` after the agent's events already queued; return once run."""
        item = _Step(user_id, step, anyio.Event())
        if self._workers:
            await self._worker_for(user_id).send(item)
        else:
            self._take_step(item)  # in order: the agent's events are prepared or in its lane
        await item.done.wait()
        if item.error is not None:
            raise item.error

    def _store_recovered(self) -> None:
        """The store's database answers again: re-read every agent, as after a gap.

        While it was away, events were read but not acted on (a call's end not
        recorded, a ready agent not dialed); the refresh re-reads the calls
        and agents from the platform and looks at each agent again.
        """
        users = {uid for t in self.listener.topics if (uid := topic_user_id(t)) is not None}
        self._gap_users |= users | self.handlers.pacer.tracked
        self._gap_wakeup.set()
        emit(log, "daemon.store_recovered", users=len(self._gap_users))

    async def _refresh_after_gaps(self) -> None:
        """Re-read the agents of reported gaps, a batch at a time, in the handlers' spare time.

        Runs beside the dispatcher, so a refresh (a REST read per agent and
        call) never stops events from flowing. Each round re-reads the
        tracked calls once, then the agents pending, one batch after another
        (:class:`~outdial.handlers.rereads.RereadPacing`: a batch waits for
        the listener's queue to have room, at most ``hold`` seconds). Agents
        of gaps reported meanwhile join the pending set and are re-read in
        the same round; an agent pending twice is re-read once.
        """
        while True:
            await self._gap_wakeup.wait()
            self._gap_wakeup = anyio.Event()
            started = anyio.current_time()
            users = 0
            unread: set[str] = set()
            try:
                if await self.handlers.refresh_calls():
                    first = True
                    while self._gap_users:
                        if not first:
                            await self._spare_time()
                        first = False
                        batch = self.reread_pacing.take(self._gap_users)
                        users += len(batch)
                        self.agents_reread += len(batch)
                        unread |= await self.handlers.refresh_agents(batch)
                else:
                    unread = set(self._gap_users)
                    self._gap_users.clear()
            except Exception as exc:  # never let one refresh stop the next
                emit(log, "daemon.refresh_failed", logging.ERROR, error=repr(exc))
                unread |= self._gap_users
                self._gap_users.clear()
            elapsed = anyio.current_time() - started
            emit(
                log,
                "daemon.refreshed",
                users=users,
                unread=len(unread) or None,
                seconds=round(elapsed, 3),
            )
            if unread:
                # Never dropped: read again after a pause (the platform was failing).
                self._gap_users |= unread
                if not self.store_healthy:
                    continue  # the store coming back wakes us (_store_recovered)
                await anyio.sleep(self.config.listener.backoff_base)
                self._gap_wakeup.set()

    async def _spare_time(self) -> None:
        """Wait until the next re-read batch may start (the handlers have room)."""
        pacing = self.reread_pacing
        size = self.config.listener.queue_size
        begun = anyio.current_time()
        # Polled, not signalled: a look at the queue's depth every few tens of
        # milliseconds costs nothing, a signal would cost every event a check.
        while True:
            if pacing.may_start(self.listener.queue_depth, size, anyio.current_time() - begun):
                return
            await anyio.sleep(pacing.poll)

    async def _give_up_if_never_connected(self) -> None:
        """Stop the daemon if no channel ever connected within ``give_up_after`` seconds.

        Only a first start gives up: once connected, an outage is ridden out
        (that is what the daemon is for). Under a service manager the exit
        (code 4) restarts it, and shows in its status.
        """
        seconds = self.config.listener.give_up_after
        assert seconds is not None
        await anyio.sleep(seconds)
        supervisors = self.listener.supervisors
        # A source that stood by for another replica is no sign of an unreachable platform.
        if any(s.stats.connects or s.stats.transitions.get("standby") for s in supervisors):
            return
        last = next((s.stats.last_error for s in supervisors if s.stats.last_error), None)
        raise PlatformUnreachable(
            f"the platform was not reached in {seconds:g} s (listener.give_up_after)"
            + (f"; last error: {last}" if last else "")
            + "; check platform.region (or api_url and login_url) and the network"
        )

    async def _renew_leases(self) -> None:
        """Keep this process's claims in flight and agents' connections its own: renew
        their leases, lease / 3 apart.

        A replica reconciles a claim whose lease ran out (its process is gone),
        and takes over an agent whose lease did; on this host a dead owner is
        noticed at once, lease or not.
        """
        while True:
            await anyio.sleep(self.config.reconcile.lease / 3)
            try:
                await self.handlers.dialer.renew_leases()
            except Exception as exc:  # the store's trouble shows elsewhere too
                emit(log, "daemon.lease_renewal_failed", logging.WARNING, error=repr(exc))
            try:
                await self.leases.renew()
            except Exception as exc:  # kept as held: the store cannot say otherwise now
                emit(log, "daemon.lease_renewal_failed", logging.WARNING, error=repr(exc))

    async def _watch_contacts(self) -> None:
        """Notice contacts imported while running (``outdial contacts import``, any process).

        The store keeps a counter that every import moves on; a cheap read of
        it, twice a second, wakes the agents that were ready with nothing to
        call. While the store is away this read is also what probes it
        (:mod:`outdial.store.health`), so its coming back is noticed within
        about a poll.
        """
        generation: int | None = None  # not read yet: the store may be away
        while True:
            current: int | None = None
            try:
                current = await self.handlers.store.contacts_generation()
            except StoreUnavailable:
                pass  # said once by the store (store.unavailable)
            except Exception as exc:  # the store's own trouble shows elsewhere too
                emit(log, "daemon.contacts_poll_failed", logging.WARNING, error=repr(exc))
            if current is not None:
                if generation is not None and current != generation:
                    await self.handlers.contacts_changed()
                generation = current
            await anyio.sleep(CONTACTS_POLL)

    async def _reconcile_periodically(self) -> None:
        """Settle dials whose outcome is unknown (sent, then no answer), on a timer.

        Gaps reconcile too (``refresh`` starts with it); the timer covers a
        quiet, healthy connection, where no gap would ever come.
        """
        while True:
            await anyio.sleep(self.config.reconcile.interval)
            try:
                settled = await self.handlers.reconcile_unknown()
            except StoreUnavailable:
                continue  # said once by the store; its recovery re-reads everything
            except Exception as exc:  # never let bookkeeping stop the daemon
                emit(log, "daemon.reconcile_failed", logging.ERROR, error=repr(exc))
            else:
                if settled:
                    emit(log, "daemon.reconciled", dials=settled)

    async def reload(self, config: Config) -> list[str]:
        """Apply a changed config without a restart: rules, users (topics) and guards.

        Sections that need a restart to change (platform, store, listener,
        reconcile) keep their running values; their names are returned so the
        caller can say so. Topics change with the smallest subscription
        request, without reconnecting.
        """
        needs_restart = [
            name
            for name in ("platform", "store", "listener", "handling", "reconcile", "observe")
            if getattr(config, name) != getattr(self.config, name)
        ]
        before = self.listener.topics
        await self.handlers.apply_config(config)
        self.config = config.model_copy(
            update={name: getattr(self.config, name) for name in needs_restart}
        )
        rejected = await self.listener.set_topics(self.handlers.topics())
        for result in rejected:
            emit(
                log,
                "daemon.topic_rejected",
                logging.ERROR,
                topic=result.topic,
                reason=result.reason,
            )
        # Nothing is known of newly subscribed agents: read their state, as after a gap.
        added = self.listener.topics - before
        await self.handlers.refresh(sorted({u for t in added if (u := topic_user_id(t))}))
        emit(
            log,
            "daemon.reloaded",
            rules=len(config.rules),
            topics=len(self.listener.topics),
            needs_restart=",".join(needs_restart) or None,
        )
        return needs_restart

    async def _consume(self, item: Event | Gap) -> None:
        """Dispatch one item from the listener: an event to its agent's worker, a gap to refresh."""
        if isinstance(item, Gap):
            self.gaps_handled += 1
            self.observatory.gap(item)
            users = {uid for t in item.topics if (uid := topic_user_id(t)) is not None}
            self._gap_users |= users
            self._gap_wakeup.set()
            emit(log, "daemon.gap", users=len(users), pending=len(self._gap_users))
        else:
            self.events_handled += 1
            self.observatory.event(item)
            user = topic_user_id(item.topic)
            if not self._workers:
                await self._take_event(item, user)
                return
            worker = self._worker_for(user)
            try:
                # Handed over without a trip through the event loop while the
                # worker has room: anyio's send() is a full loop pass per event.
                # The listener's receive() checkpoints every few dozen items,
                # so this loop still yields.
                worker.send_nowait(item)
            except anyio.WouldBlock:
                await worker.send(item)  # full: wait, the backlog stays in the listener


#: Lanes that take no event for this long wait on the platform: the dispatcher stops
#: waiting for them (for _LANE_STALL_PAUSE seconds), and full lanes drop.
_LANE_STALL = 0.1
_LANE_STALL_PAUSE = 1.0

#: A worker takes at most this many queued items in a row without a checkpoint.
_FAIR_EVERY = 32


class _Inbox:
    """A worker's end of its stream: what is queued is taken without a loop pass.

    anyio's ``receive()`` is a checkpoint before and after every item, a full
    event-loop pass each; taking what is queued directly skips them. Every
    ``_FAIR_EVERY`` items in a row it is a checkpoint all the same, so a worker
    whose items never await anything still lets the other tasks run and
    still sees cancellation.
    """

    def __init__(self, items: MemoryObjectReceiveStream[_WorkItem]) -> None:
        self._items = items
        self._streak = 0

    async def next(self) -> _WorkItem:
        """The next item; raises ``anyio.EndOfStream`` once the stream is closed and empty."""
        if self._streak < _FAIR_EVERY:
            try:
                item = self._items.receive_nowait()
            except anyio.WouldBlock:
                pass
            else:
                self._streak += 1
                return item
        self._streak = 0
        return await self._items.receive()


@asynccontextmanager
async def open_daemon(
    config: Config,
    *,
    clock: Clock | None = None,
    rng: Random | None = None,
    registry: HandlerRegistry | None = None,
) -> AsyncIterator[Daemon]:
    """A daemon with its store and platform client, both closed on exit.

    ``registry`` adds custom Python handlers (see
    :class:`~outdial.handlers.registry.HandlerRegistry`) to the config's rules.
    """
    clock = clock or SystemClock()
    async with open_store(config.store.url, config.store.settings()) as store:
        platform = platform_from_config(config, clock)
        try:
            yield Daemon(
                config, platform=platform, store=store, clock=clock, rng=rng, registry=registry
            )
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE):
                await platform.aclose()


async def run_until_signalled(config: Config, config_path: str | None = None) -> None:
    """``outdial run``: the daemon until SIGTERM or SIGINT, then a clean, bounded stop.

    SIGHUP re-reads ``config_path`` and applies it (see :meth:`Daemon.reload`);
    a config with problems is reported and the running one kept.
    """
    async with open_daemon(config) as daemon, anyio.create_task_group() as tg:

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
                async for signum in sigs:
                    emit(log, "daemon.signal", signal=signal.Signals(signum).name)
                    if signum == signal.SIGHUP:
                        await _reload_from(daemon, config_path)
                        continue
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(on_signals)
        await daemon.run()
        tg.cancel_scope.cancel()


async def _reload_from(daemon: Daemon, config_path: str | None) -> None:
    if config_path is None:
        return
    try:
        config = load_config(config_path)
        await daemon.reload(config)
    except (ConfigError, RuleError, DoNotCallFileError) as exc:
        emit(log, "daemon.reload_refused", logging.ERROR, error=str(exc))
