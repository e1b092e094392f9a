"""One CXone agent's events, long polled: the thin anyio shell around the pure machine.

:class:`CxoneSessionSource` runs :class:`~outdial.listener.longpoll.LongPollSession`
for one agent: it carries out each action (start or join the session, poll,
deliver, report a gap, back off, end the session) and feeds back what
happened. Every wait is on the injected clock (``clock.sleep_until``), the
poll's watchdog included, so tests move time by hand.

Each event goes to the :class:`~outdial.platforms.cxone.correlate.DialCorrelator`
first (a dial waiting for its contact is resolved before any handler sees the
call), then to the sink as ``cxone.users.{agentId}.{Type}``, unknown types too.
The agent's live session id is kept in the shared
:class:`~outdial.platforms.cxone.correlate.SessionRegistry` for ``dial-phone``.

Replicas: an agent has one session, and two replicas polling it would make each
other's rotating ids stale on every poll. So before starting or joining it the
source asks the daemon's :class:`~outdial.platforms.base.ConnectionLeases`; a
replica refused stands by (no session, no polls) and asks again every
``recheck_after`` seconds, taking over (joining the session left behind) once
the holder's lease lapses or is released. A standby replica gets no events of
the agent, so it never finds them ready and never dials for them.

:class:`CxoneSources` shards topics one agent per source (one session per
agent is the only way CXone offers).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from random import Random

import anyio

from outdial.clock import Clock
from outdial.config import CxonePlatformConfig, ListenerConfig
from outdial.events import Event, Gap, topic_user_id
from outdial.listener.backoff import Backoff
from outdial.listener.longpoll import (
    BackOff,
    BackoffElapsed,
    Deliver,
    EndSession,
    Input,
    LeaseLost,
    LeaseRefused,
    LongPollSession,
    Output,
    Poll,
    PollAnswered,
    PollEmpty,
    PollFailed,
    ReportGap,
    ResumeRequested,
    SessionEnded,
    SessionStarted,
    Standby,
    StandbyElapsed,
    StartFailed,
    StartProblem,
    StartSession,
    State,
    Stop,
    StopRequested,
    WatchdogExpired,
)
from outdial.listener.state import ChannelState, ListenerFatal, SupervisorStats
from outdial.log import emit
from outdial.platforms.base import (
    ALWAYS_HELD,
    AuthError,
    ConnectionLeases,
    PlatformError,
    SourceSink,
    SubscriptionResult,
)
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.client import CxoneClient
from outdial.platforms.cxone.codec import CxoneCodec, topic_agent, topic_for
from outdial.platforms.cxone.correlate import DialCorrelator, SessionRegistry

#: What identifies an event's state (shared with re-reads: one trigger, live or re-read).
_IDENTITY = CxoneCodec().identity_facts

__all__ = ["IN_PROGRESS_CODES", "CxoneSessionSource", "CxoneSources", "agent_of_topic"]

log = logging.getLogger("outdial.listener")

#: Start errors that mean "this agent or station has a session already": join it.
IN_PROGRESS_CODES = ("SessionInProgress", "StationIDInUse", "PhoneNumberInUse")
#: Errors no retry can mend, whatever the mode.
_FATAL_CODES = ("ImpersonateNotEnabled",)
#: A start refused because the platform knows no such agent.
_UNKNOWN_AGENT_CODES = ("InvalidAgentId",)

_STATS_STATE = {
    State.STARTING: ChannelState.CONNECTING,
    State.POLLING: ChannelState.SUBSCRIBED,
    State.BACKING_OFF: ChannelState.DEGRADED,
    State.RESTARTING: ChannelState.RECONNECTING,
    State.STANDBY: ChannelState.STANDBY,
    State.STOPPED: ChannelState.STOPPED,
}


def agent_of_topic(topic: str) -> str | None:
    """The agent a topic names (``cxone.users.{id}.{Type}``)."""
    return topic_agent(topic) or topic_user_id(topic)


def _error_text(exc: PlatformError) -> str:
    return " ".join(str(part) for part in (exc.code, exc.message, exc.body) if part)


def start_problem(exc: PlatformError, *, joining: bool) -> StartProblem:
    """How a failed start (or join) should be handled."""
    text = _error_text(exc)
    if isinstance(exc, AuthError) or any(code in text for code in _FATAL_CODES):
        return StartProblem.FATAL
    if any(code in text for code in _UNKNOWN_AGENT_CODES):
        return StartProblem.UNKNOWN_AGENT
    if exc.retryable:
        return StartProblem.RETRYABLE
    if any(code in text for code in IN_PROGRESS_CODES):
        return StartProblem.IN_PROGRESS
    # Joining can fail only because there is nothing to join yet: agents log in later.
    if joining:
        return StartProblem.UNAVAILABLE
    if exc.code is None:
        # Refused without a word (the error body format is not published, and may be
        # empty): which agent's problem it is cannot be told, so only this agent's
        # session stops; the re-read its gap asks for names an agent the platform
        # does not know.
        return StartProblem.UNKNOWN_AGENT
    return StartProblem.FATAL


class CxoneSessionSource:
    """The :class:`~outdial.platforms.base.EventSource` of one agent's session."""

    def __init__(
        self,
        name: str,
        agent_id: str,
        topics: frozenset[str],
        sink: SourceSink,
        *,
        client: CxoneClient,
        settings: CxonePlatformConfig,
        listener: ListenerConfig,
        clock: Clock,
        rng: Random,
        sessions: SessionRegistry,
        correlator: DialCorrelator,
        leases: ConnectionLeases = ALWAYS_HELD,
    ) -> None:
        self.name = name
        self.agent_id = agent_id
        self.topics = frozenset(topics)
        self._sink = sink
        self._client = client
        self._settings = settings
        self._listener = listener
        self._clock = clock
        self._rng = rng
        self._sessions = sessions
        self._correlator = correlator
        self._leases = leases
        # Refused the agent's lease at the latest ask (another replica listens).
        self._on_standby = False
        self._machine: LongPollSession | None = None
        self._stop_wanted = not self.topics
        # Stopped because the platform knows no such agent: idle until topics are set again.
        self._parked = False
        self._interrupt: anyio.CancelScope | None = None
        self._resume: anyio.Event | None = None
        self._stats = SupervisorStats()

    @property
    def stats(self) -> SupervisorStats:
        """State and counters, in the shape the Genesys channels report."""
        return self._stats

    @property
    def last_frame_at(self) -> float | None:
        """When the session last answered a poll (monotonic; None: never)."""
        return self._machine.last_heard if self._machine is not None else None

    @property
    def connection_id(self) -> str | None:
        """The current session id (it changes on every poll answer)."""
        return self._machine.session_id if self._machine is not None else None

    async def update_topics(self, topics: frozenset[str]) -> list[SubscriptionResult]:
        """Carry ``topics`` (this agent's) from now on: none ends the session, some bring
        it back. A session carries all of an agent's events, so nothing is refused."""
        self.topics = frozenset(topics)
        if not self.topics:
            self._stop_wanted = True
            if self._interrupt is not None:
                self._interrupt.cancel()
        else:
            # Topics set again (a reload, say): an agent the platform did not know is tried anew.
            self._stop_wanted = self._parked = False
            if self._resume is not None:
                self._resume.set()
        return []

    async def run(self) -> None:
        """Keep the agent's session polled until cancelled; ``ListenerFatal`` if it cannot."""
        backoff = Backoff(
            self._listener.backoff_base,
            self._listener.backoff_cap,
            self._listener.stable_after,
            self._rng,
        )
        machine = LongPollSession(
            mode=self._settings.session,
            poll_timeout=self._settings.poll_timeout,
            poll_watchdog=self._settings.poll_watchdog,
            backoff=backoff,
        )
        self._machine = machine
        todo: deque[Output] = deque(machine.begin(self._clock.monotonic()))
        self._set_state(machine.state)
        try:
            while todo:
                happened = await self._do(todo.popleft())
                if happened is None:
                    continue
                self._count(happened)
                todo.extend(machine.handle(happened, self._clock.monotonic()))
                self._sessions.set(self.agent_id, machine.session_id)
                self._set_state(machine.state)
        finally:
            self._sessions.set(self.agent_id, None)
            if machine.owned and machine.session_id is not None:
                await self._end_quietly(machine.session_id)
            self._set_state(State.STOPPED)

    # -- carrying out one action ---------------------------------------------------

    async def _do(self, action: Output) -> Input | None:
        match action:
            case StartSession(join=join):
                return await self._start(join)
            case Poll():
                return await self._interruptible_poll(action)
            case Deliver(session_id=sid, events=events):
                self._deliver(sid, events)
                return None
            case ReportGap(start=start, end=end, reason=reason):
                self._report_gap(start, end, reason)
                return None
            case BackOff(until=until, seconds=seconds, error=error):
                return await self._back_off(until, seconds, error)
            case EndSession(session_id=sid):
                await self._end_quietly(sid)
                return None
            case Standby():
                return await self._standby()
            case Stop(fatal=fatal, parked=parked):
                if fatal is not None:
                    raise ListenerFatal(f"CXone agent {self.agent_id}: {fatal}")
                self._parked = parked
                await self._release_lease()
                return await self._idle()
        raise AssertionError(f"unknown action {action!r}")  # pragma: no cover

    async def _start(self, join: bool) -> Input:
        if not await self._hold_lease():
            return LeaseRefused()
        try:
            if join:
                sid = await self._client.join_session(self.agent_id)
            else:
                sid = await self._client.start_session(self.agent_id)
        except PlatformError as exc:
            problem = start_problem(exc, joining=join)
            if problem is StartProblem.UNKNOWN_AGENT:
                emit(
                    log,
                    "cxone.session_refused",
                    logging.WARNING,
                    agent=self.agent_id,
                    error=str(exc),
                    advice="this agent's session stays stopped until the config is reloaded",
                )
            return StartFailed(problem, str(exc), exc.retry_after)
        emit(log, "cxone.session_started", agent=self.agent_id, session=sid, joined=join)
        return SessionStarted(sid, joined=join)

    async def _interruptible_poll(self, action: Poll) -> Input:
        if self._stop_wanted:
            return StopRequested()
        if not self._leases.holds(self.agent_id):
            # Our lease lapsed (a renewal came too late) and another replica took it:
            # polling on would make its session id stale on every poll.
            emit(log, "cxone.lease_lost", logging.WARNING, agent=self.agent_id)
            return LeaseLost()
        with anyio.CancelScope() as scope:
            self._interrupt = scope
            try:
                return await self._poll(action)
            finally:
                self._interrupt = None
        return StopRequested()

    async def _poll(self, action: Poll) -> Input:
        """One poll, abandoned (a dead connection) if unanswered by its deadline."""
        outcome: Input = WatchdogExpired()
        async with anyio.create_task_group() as tg:

            async def poll() -> None:
                nonlocal outcome
                outcome = await self._poll_once(action)
                tg.cancel_scope.cancel()

            tg.start_soon(poll)
            await self._clock.sleep_until(action.deadline)
            tg.cancel_scope.cancel()
        return outcome

    async def _poll_once(self, action: Poll) -> Input:
        try:
            answer = await self._client.get_next_event(action.session_id, action.timeout)
        except AuthError as exc:
            return PollFailed(str(exc), fatal=True)
        except PlatformError as exc:
            if exc.retryable or exc.code == "outdial.unexpected.answer":
                return PollFailed(str(exc), retry_after=exc.retry_after)
            if exc.status in (400, 404, 410):
                return SessionEnded(f"session unknown (HTTP {exc.status})")
            return PollFailed(str(exc), fatal=True)
        if answer.status == 304:
            return PollEmpty()
        if answer.status == 409:
            return SessionEnded()
        return PollAnswered(answer.session_id or action.session_id, answer.events, answer.renewal)

    def _deliver(self, session_id: str, events: Sequence[object]) -> None:
        """Hand each event of a batch on, after the dial correlator saw it."""
        now = self._clock.monotonic()
        for body in events:
            if not isinstance(body, dict):
                continue
            # Before the handlers: a dial waiting for this contact is resolved first.
            self._correlator.observe(self.agent_id, body)
            kind = wire.event_type(body) or "Untyped"
            self._sink.deliver(
                Event(
                    topic=topic_for(self.agent_id, kind),
                    body=body,
                    channel_id=session_id,
                    received_at=now,
                    facts=_IDENTITY,
                )
            )

    def _report_gap(self, start: float, end: float, reason: str) -> None:
        self._stats.gaps += 1
        self._stats.longest_recovery = max(self._stats.longest_recovery, end - start)
        emit(
            log,
            "listener.gap",
            shard=self.name,
            agent=self.agent_id,
            reason=reason,
            seconds=round(end - start, 3),
        )
        self._sink.report_gap(Gap(topics=self.topics, start=start, end=end, reason=reason))

    async def _back_off(self, until: float, seconds: float, error: str | None) -> Input:
        emit(
            log,
            "channel.backoff",
            logging.WARNING,
            shard=self.name,
            agent=self.agent_id,
            delay=round(seconds, 3),
            error=error,
        )
        if self._stop_wanted:
            return StopRequested()
        with anyio.CancelScope() as scope:
            self._interrupt = scope
            try:
                await self._clock.sleep_until(until)
            finally:
                self._interrupt = None
            return BackoffElapsed()
        return StopRequested()

    async def _hold_lease(self) -> bool:
        """Whether this replica may hold the agent's session now (a store that cannot
        say counts as no: standing by is safe, two replicas polling is not)."""
        try:
            held = await self._leases.hold(self.agent_id)
        except Exception as exc:  # the store's trouble is reported by the store
            emit(log, "cxone.lease_unknown", logging.WARNING, agent=self.agent_id, error=repr(exc))
            held = False
        # Said once each way, not at every ask.
        if not held and not self._on_standby:
            emit(log, "cxone.standby", agent=self.agent_id)
        elif held and self._on_standby:
            emit(log, "cxone.lease_taken", agent=self.agent_id)
        self._on_standby = not held
        return held

    async def _release_lease(self) -> None:
        try:
            await self._leases.release(self.agent_id)
        except Exception as exc:  # it lapses by itself in the end
            emit(
                log,
                "cxone.lease_release_failed",
                logging.WARNING,
                agent=self.agent_id,
                error=repr(exc),
            )

    async def _standby(self) -> Input:
        """Another replica listens to the agent: wait ``recheck_after``, then ask again."""
        if self._stop_wanted:
            return StopRequested()
        with anyio.CancelScope() as scope:
            self._interrupt = scope
            try:
                await self._clock.sleep_until(self._clock.monotonic() + self._leases.recheck_after)
            finally:
                self._interrupt = None
            return StandbyElapsed()
        return StopRequested()

    async def _idle(self) -> Input:
        """No topics wanted: wait until some are (cancellation ends the source)."""
        emit(log, "cxone.session_stopped", agent=self.agent_id)
        while self._stop_wanted or self._parked:
            self._resume = anyio.Event()
            await self._resume.wait()
        self._resume = None
        return ResumeRequested()

    async def _end_quietly(self, session_id: str) -> None:
        """End our session; shielded, as it runs while the source is being cancelled, and
        bounded by ``request_timeout`` on the clock (a held REST budget must not keep a
        shutdown waiting: the platform ends an idle session by itself in the end)."""
        ended = False
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:

                async def end() -> None:
                    nonlocal ended
                    try:
                        await self._client.end_session(session_id)
                    except PlatformError as exc:
                        emit(
                            log,
                            "cxone.end_failed",
                            logging.WARNING,
                            agent=self.agent_id,
                            error=str(exc),
                        )
                    else:
                        ended = True
                    tg.cancel_scope.cancel()

                tg.start_soon(end)
                await self._clock.sleep_until(
                    self._clock.monotonic() + self._settings.request_timeout
                )
                tg.cancel_scope.cancel()
        emit(log, "cxone.session_ended", agent=self.agent_id, session=session_id, ended=ended)

    # -- stats -----------------------------------------------------------------------

    def _count(self, happened: Input) -> None:
        stats = self._stats
        match happened:
            case SessionStarted():
                stats.connects += 1
                stats.channels_created += 1
            case StartFailed(error=error) | PollFailed(error=error):
                stats.last_error = error
                if isinstance(happened, PollFailed):
                    stats.reconnects += 1
            case SessionEnded():
                stats.reconnects += 1
            case WatchdogExpired():
                stats.reconnects += 1
                if self.last_frame_at is not None:
                    stats.last_dead_after = self._clock.monotonic() - self.last_frame_at
            case _:
                pass

    def _set_state(self, state: State) -> None:
        mapped = _STATS_STATE[state]
        if mapped is not self._stats.state:
            self._stats.state = mapped
            self._stats.transitions[mapped.value] = self._stats.transitions.get(mapped.value, 0) + 1
            emit(log, f"channel.{mapped.value}", shard=self.name, agent=self.agent_id)


class CxoneSources:
    """The :class:`~outdial.platforms.base.EventSourceFactory` of CXone: one agent a source."""

    def __init__(
        self,
        *,
        client: CxoneClient,
        settings: CxonePlatformConfig,
        listener: ListenerConfig,
        clock: Clock,
        rng: Random,
        sessions: SessionRegistry,
        correlator: DialCorrelator,
    ) -> None:
        self._client = client
        self._settings = settings
        self._listener = listener
        self._clock = clock
        self._rng = rng
        self._sessions = sessions
        self._correlator = correlator
        self._leases: ConnectionLeases = ALWAYS_HELD

    def use_leases(self, leases: ConnectionLeases) -> None:
        """Ask ``leases`` before starting or joining any agent's session (replicas)."""
        self._leases = leases

    def shard(
        self, current: Sequence[frozenset[str]], wanted: Iterable[str]
    ) -> list[frozenset[str]]:
        """Topics grouped by agent; an existing source keeps its agent at its index (empty
        once its agent is no longer wanted), new agents get new sources, in id order.
        Topics that name no agent cannot be carried and are left out."""
        by_agent: dict[str, set[str]] = {}
        for topic in wanted:
            agent = agent_of_topic(topic)
            if agent is not None:
                by_agent.setdefault(agent, set()).add(topic)
        shards: list[frozenset[str]] = []
        placed: set[str] = set()
        for topics in current:
            agents = {a for t in topics if (a := agent_of_topic(t)) is not None}
            agent = min(agents) if agents else None
            if agent is None or agent in placed:
                shards.append(frozenset())
                continue
            placed.add(agent)
            shards.append(frozenset(by_agent.get(agent, ())))
        for agent in sorted(by_agent.keys() - placed):
            shards.append(frozenset(by_agent[agent]))
        return shards

    def source(self, name: str, topics: frozenset[str], sink: SourceSink) -> CxoneSessionSource:
        """The session source of the one agent ``topics`` name."""
        agents = {a for t in topics if (a := agent_of_topic(t)) is not None}
        if len(agents) != 1:
            raise ValueError(f"a CXone source carries one agent's topics, got {sorted(agents)}")
        return CxoneSessionSource(
            name,
            agents.pop(),
            topics,
            sink,
            client=self._client,
            settings=self._settings,
            listener=self._listener,
            clock=self._clock,
            rng=self._rng,
            sessions=self._sessions,
            correlator=self._correlator,
            leases=self._leases,
        )
