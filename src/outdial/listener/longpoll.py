"""One long-polled agent session (CXone ``get-next-event``), as a pure machine.

State in, decision out: the shell tells :class:`LongPollSession` what happened
(a session came up, a poll answered 200, 304 or 409, a poll failed or hung, a
backoff ran out) with the time it happened, and gets back the actions to take,
in order. The machine owns no task, socket or sleep; time is passed in.

The platform's rules it encodes (``CXONE.md``):

* every 200 carries a **new session id**, which the next poll must use; a 304
  means "nothing yet", poll again at once; a 409 means the session is over:
  start (or join) a new one;
* one poll is in flight at a time; a poll that has not answered
  ``poll_timeout + poll_watchdog`` seconds after it was sent is a dead
  connection;
* a failed or hung poll is a **gap** (its answer, and the events in it, may be
  lost), closed by the next answer; so is the time before a session first comes
  up (startup) and the time between a 409 and the next session;
* only one replica may poll an agent's session (two would make each other's
  ids stale on every poll): a replica refused the agent's connection lease
  stands by (no session, no polls) and asks again, and one that lost it steps
  down without ending the session, which the new holder joins;
* a **snapshot** (an ``AgentSessionStart`` in any batch but a session's first,
  which is what a poll with a stale session id returns, or a batch marked
  ``icBranchValue: 3``) renews the state after missed events: its events are
  delivered *and* a gap is reported, so the handlers re-read what they need.

Transitions live in one table (:data:`TRANSITIONS`), keyed by the state and
what happened, as h11's ``_state.py`` keeps them; an input the table has no row
for is a bug in the shell (:class:`LongPollError`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from outdial.listener.backoff import Backoff

__all__ = [
    "TRANSITIONS",
    "BackOff",
    "BackoffElapsed",
    "Deliver",
    "EndSession",
    "Input",
    "LeaseLost",
    "LeaseRefused",
    "LongPollError",
    "LongPollSession",
    "Output",
    "Poll",
    "PollAnswered",
    "PollEmpty",
    "PollFailed",
    "ReportGap",
    "ResumeRequested",
    "SessionEnded",
    "SessionStarted",
    "Standby",
    "StandbyElapsed",
    "StartFailed",
    "StartProblem",
    "StartSession",
    "State",
    "Stop",
    "StopRequested",
    "WatchdogExpired",
]

#: The event type that opens a session, and a snapshot.
SESSION_START_TYPE = "AgentSessionStart"


class LongPollError(RuntimeError):
    """An input the machine cannot take in its state: the shell broke the protocol."""


class State(enum.Enum):
    """Where one agent's session is."""

    #: Bringing the first session up (nothing known yet).
    STARTING = "starting"
    #: A session is up; one poll is (or is about to be) in flight.
    POLLING = "polling"
    #: Waiting out a backoff after a failure, before polling or starting again.
    BACKING_OFF = "backing_off"
    #: Bringing a session up again (after a 409, or after a start failed).
    RESTARTING = "restarting"
    #: Another replica holds the agent's connection lease: no session, no polls,
    #: the lease asked for again now and then (the holder may stop or crash).
    STANDBY = "standby"
    #: No session: no topics are wanted, or a fatal error ended it all.
    STOPPED = "stopped"


class StartProblem(enum.Enum):
    """Why starting or joining a session failed, as the shell classifies the error."""

    #: Network trouble, 429, 5xx: back off and try again.
    RETRYABLE = "retryable"
    #: The agent (or station) already has a session (``SessionInProgress``,
    #: ``StationIDInUse``, ``PhoneNumberInUse``): join it instead.
    IN_PROGRESS = "in_progress"
    #: Nothing to join yet (the agent is not logged in): back off, an agent logs in later.
    UNAVAILABLE = "unavailable"
    #: The platform knows no such agent (``InvalidAgentId``), or refused the start
    #: without saying why: this agent's session stops (nothing to poll) and a gap
    #: makes the re-read name the agent; the other agents' sessions go on.
    UNKNOWN_AGENT = "unknown_agent"
    #: Credentials, permissions, configuration: retrying cannot help.
    FATAL = "fatal"


# -- inputs (what happened) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """The session is up (``joined``: it is the agent's own, which we must not end)."""

    session_id: str
    joined: bool = False


@dataclass(frozen=True, slots=True)
class StartFailed:
    """Starting or joining failed."""

    problem: StartProblem
    error: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class PollAnswered:
    """A 200: events, and the session id the next poll must use.

    ``renewal``: the answer carried ``icBranchValue: 3`` (a state renewal).
    """

    session_id: str
    events: tuple[Mapping[str, Any], ...] = ()
    renewal: bool = False


@dataclass(frozen=True, slots=True)
class PollEmpty:
    """A 304: no events this time."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A 409 (or a session the platform no longer knows): start or join anew."""

    reason: str = "session ended"


@dataclass(frozen=True, slots=True)
class PollFailed:
    """A poll got no usable answer; ``fatal`` when retrying cannot help."""

    error: str
    fatal: bool = False
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class WatchdogExpired:
    """The poll in flight passed its deadline (the shell has abandoned it)."""


@dataclass(frozen=True, slots=True)
class BackoffElapsed:
    """The backoff the machine asked for is over."""


@dataclass(frozen=True, slots=True)
class LeaseRefused:
    """Another replica holds the agent's connection lease: the session was not started."""


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The agent's lease went to another replica (ours lapsed): stop polling its session."""


@dataclass(frozen=True, slots=True)
class StandbyElapsed:
    """Time to ask for the agent's lease again."""


@dataclass(frozen=True, slots=True)
class StopRequested:
    """No topics are wanted any more: end the session."""


@dataclass(frozen=True, slots=True)
class ResumeRequested:
    """Topics are wanted again after a stop."""


Input = (
    SessionStarted
    | StartFailed
    | PollAnswered
    | PollEmpty
    | SessionEnded
    | PollFailed
    | WatchdogExpired
    | BackoffElapsed
    | LeaseRefused
    | LeaseLost
    | StandbyElapsed
    | StopRequested
    | ResumeRequested
)

# -- outputs (what to do) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartSession:
    """Start a session for the agent (``join``: join the agent's own instead)."""

    join: bool


@dataclass(frozen=True, slots=True)
class Poll:
    """Send ``get-next-event`` on ``session_id``; it is dead if unanswered at ``deadline``."""

    session_id: str
    timeout: float
    deadline: float


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand these events on, as received on ``session_id``."""

    session_id: str
    events: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ReportGap:
    """Events may have been missed in ``[start, end]`` (monotonic times)."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True, slots=True)
class BackOff:
    """Wait until ``until`` (``seconds`` from now), then report :class:`BackoffElapsed`."""

    seconds: float
    until: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EndSession:
    """End ``session_id`` (``DELETE``): it is ours and no longer wanted."""

    session_id: str


@dataclass(frozen=True, slots=True)
class Standby:
    """Stand by (another replica listens to the agent): ask for the lease again later,
    then report :class:`StandbyElapsed` (the shell knows how often to ask)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Nothing more to do: ``fatal`` says why it cannot go on (None: stopped on request).

    ``parked``: the platform knows no such agent; wait until the topics are set again
    (a reload) rather than resuming at once.
    """

    fatal: str | None = None
    parked: bool = False


Output = StartSession | Poll | Deliver | ReportGap | BackOff | EndSession | Standby | Stop

# -- the table ------------------------------------------------------------------

#: What happened, as the table reads it: the input's kind, refined where the next
#: state depends on what the machine knows (has it a session; was it joining).
Key = Literal[
    "started",
    "start_retry",
    "start_join",
    "start_fatal",
    "start_unknown",
    "answered",
    "empty",
    "ended",
    "poll_failed",
    "poll_fatal",
    "watchdog",
    "backoff_to_poll",
    "backoff_to_first_start",
    "backoff_to_restart",
    "lease_refused",
    "lease_lost",
    "standby_to_first_start",
    "standby_to_restart",
    "stop",
    "resume",
]

_S = State
#: ``(state, what happened) -> next state``. Every pair not listed is a protocol error.
TRANSITIONS: dict[tuple[State, Key], State] = {
    (_S.STARTING, "started"): _S.POLLING,
    (_S.STARTING, "start_retry"): _S.BACKING_OFF,
    (_S.STARTING, "start_join"): _S.STARTING,
    (_S.STARTING, "start_fatal"): _S.STOPPED,
    (_S.STARTING, "start_unknown"): _S.STOPPED,
    (_S.STARTING, "lease_refused"): _S.STANDBY,
    (_S.STARTING, "stop"): _S.STOPPED,
    (_S.RESTARTING, "started"): _S.POLLING,
    (_S.RESTARTING, "start_retry"): _S.BACKING_OFF,
    (_S.RESTARTING, "start_join"): _S.RESTARTING,
    (_S.RESTARTING, "start_fatal"): _S.STOPPED,
    (_S.RESTARTING, "start_unknown"): _S.STOPPED,
    (_S.RESTARTING, "lease_refused"): _S.STANDBY,
    (_S.RESTARTING, "stop"): _S.STOPPED,
    (_S.POLLING, "answered"): _S.POLLING,
    (_S.POLLING, "empty"): _S.POLLING,
    (_S.POLLING, "ended"): _S.RESTARTING,
    (_S.POLLING, "poll_failed"): _S.BACKING_OFF,
    (_S.POLLING, "watchdog"): _S.BACKING_OFF,
    (_S.POLLING, "poll_fatal"): _S.STOPPED,
    (_S.POLLING, "lease_lost"): _S.STANDBY,
    (_S.POLLING, "stop"): _S.STOPPED,
    (_S.BACKING_OFF, "backoff_to_poll"): _S.POLLING,
    (_S.BACKING_OFF, "backoff_to_first_start"): _S.STARTING,
    (_S.BACKING_OFF, "backoff_to_restart"): _S.RESTARTING,
    (_S.BACKING_OFF, "stop"): _S.STOPPED,
    (_S.STANDBY, "standby_to_first_start"): _S.STARTING,
    (_S.STANDBY, "standby_to_restart"): _S.RESTARTING,
    (_S.STANDBY, "stop"): _S.STOPPED,
    (_S.STOPPED, "resume"): _S.STARTING,
}


class LongPollSession:
    """The decisions of one agent's long-polled session.

    ``mode`` is how a session is brought up: ``"start"`` one of our own (ended
    when no longer wanted), or ``"join"`` the agent's (never ended by us).
    Call :meth:`begin` once, then :meth:`handle` with each thing that happened.
    """

    def __init__(
        self,
        *,
        mode: Literal["start", "join"],
        poll_timeout: float,
        poll_watchdog: float,
        backoff: Backoff,
    ) -> None:
        self.mode = mode
        self.poll_timeout = poll_timeout
        self.poll_watchdog = poll_watchdog
        self._backoff = backoff
        self.state = State.STARTING
        #: The id the next poll uses (None: no session).
        self.session_id: str | None = None
        #: The session was started by us (so it is ours to end).
        self.owned = False
        #: Why the machine stopped for good (None: it has not).
        self.fatal: str | None = None
        #: When the session last answered (or came up): a gap starts there.
        self.last_heard: float | None = None
        self._begun = False
        self._joining = mode == "join"
        self._first_batch = False
        self._ever_up = False
        self._gap_start: float | None = None
        self._gap_reason = "startup"
        self._last_error: str | None = None

    @property
    def last_error(self) -> str | None:
        """What the latest failure said (None: none since the last success)."""
        return self._last_error

    @property
    def gap_open(self) -> bool:
        """Events may be being missed right now."""
        return self._gap_start is not None

    def begin(self, now: float) -> list[Output]:
        """The first actions: start (or join) the session; nothing is known before it."""
        if self._begun:
            raise LongPollError("begin() twice")
        self._begun = True
        self._gap_start = now
        self._gap_reason = "startup"
        return [StartSession(join=self._joining)]

    def handle(self, happened: Input, now: float) -> list[Output]:
        """What to do, in order, now that ``happened`` happened at ``now``."""
        if not self._begun:
            raise LongPollError("handle() before begin()")
        key = self._key(happened)
        target = TRANSITIONS.get((self.state, key))
        if target is None:
            raise LongPollError(f"{type(happened).__name__} ({key}) in state {self.state.value}")
        outputs = self._act(happened, key, now)
        self.state = target
        return outputs

    # -- reading what happened ------------------------------------------------------

    def _key(self, happened: Input) -> Key:
        match happened:
            case SessionStarted():
                return "started"
            case StartFailed(problem=StartProblem.FATAL):
                return "start_fatal"
            case StartFailed(problem=StartProblem.UNKNOWN_AGENT):
                return "start_unknown"
            case StartFailed(problem=StartProblem.IN_PROGRESS) if not self._joining:
                return "start_join"
            case StartFailed():
                return "start_retry"
            case PollAnswered():
                return "answered"
            case PollEmpty():
                return "empty"
            case SessionEnded():
                return "ended"
            case PollFailed(fatal=True):
                return "poll_fatal"
            case PollFailed():
                return "poll_failed"
            case WatchdogExpired():
                return "watchdog"
            case BackoffElapsed():
                if self.session_id is not None:
                    return "backoff_to_poll"
                return "backoff_to_restart" if self._ever_up else "backoff_to_first_start"
            case LeaseRefused():
                return "lease_refused"
            case LeaseLost():
                return "lease_lost"
            case StandbyElapsed():
                return "standby_to_restart" if self._ever_up else "standby_to_first_start"
            case StopRequested():
                return "stop"
            case ResumeRequested():
                if self.fatal is not None:
                    raise LongPollError(f"resume after a fatal stop ({self.fatal})")
                return "resume"
        raise LongPollError(f"unknown input {happened!r}")  # pragma: no cover

    # -- acting on it ---------------------------------------------------------------

    def _act(self, happened: Input, key: Key, now: float) -> list[Output]:
        match happened:
            case SessionStarted(session_id=sid, joined=joined):
                return self._started(sid, joined, now)
            case StartFailed(error=error, retry_after=retry_after):
                self._last_error = error
                if key == "start_fatal":
                    return self._fatal(error)
                if key == "start_unknown":
                    # Not the daemon's end: the re-read this gap asks for names the agent.
                    self.session_id = None
                    self.owned = False
                    return [ReportGap(now, now, "agent unknown"), Stop(parked=True)]
                if key == "start_join":
                    self._joining = True
                    return [StartSession(join=True)]
                return [self._back_off(now, error, retry_after)]
            case PollAnswered(session_id=sid, events=events, renewal=renewal):
                return self._answered(sid, events, renewal, now)
            case PollEmpty():
                gap = self._close_gap(now)
                self.last_heard = now
                return [*gap, self._poll(now)]
            case SessionEnded(reason=reason):
                self._open_gap(self._heard_or(now), reason)
                self.session_id = None
                # The platform ended it: there is nothing of ours left to end.
                self.owned = False
                self._joining = self.mode == "join"
                return [StartSession(join=self._joining)]
            case PollFailed(error=error, retry_after=retry_after):
                self._last_error = error
                if key == "poll_fatal":
                    return self._fatal(error)
                self._open_gap(self._heard_or(now), "poll failed")
                return [self._back_off(now, error, retry_after)]
            case WatchdogExpired():
                error = "poll unanswered past its watchdog (dead connection)"
                self._last_error = error
                self._open_gap(self._heard_or(now), "poll hung")
                return [self._back_off(now, error, None)]
            case BackoffElapsed():
                if self.session_id is not None:
                    return [self._poll(now)]
                return [StartSession(join=self._joining)]
            case LeaseRefused():
                # The gap open since startup (or the last outage) stays open: its
                # end, once the lease is ours, makes the handlers re-read the agent.
                return [Standby()]
            case LeaseLost():
                self._open_gap(self._heard_or(now), "lease lost")
                self.session_id = None
                # Never ended by us now: the new holder polls (or joins) it.
                self.owned = False
                return [Standby()]
            case StandbyElapsed():
                return [StartSession(join=self._joining)]
            case StopRequested():
                outputs: list[Output] = []
                if self.session_id is not None and self.owned:
                    outputs.append(EndSession(self.session_id))
                self.session_id = None
                self.owned = False
                self._gap_start = None
                return [*outputs, Stop()]
            case ResumeRequested():
                self._gap_start = now
                self._gap_reason = "startup"
                self._joining = self.mode == "join"
                return [StartSession(join=self._joining)]
        raise LongPollError(f"unknown input {happened!r}")  # pragma: no cover

    def _started(self, session_id: str, joined: bool, now: float) -> list[Output]:
        self.session_id = session_id
        self.owned = not joined
        self._first_batch = True
        self._ever_up = True
        self._last_error = None
        self._backoff.connected(now)
        gap = self._close_gap(now)
        self.last_heard = now
        return [*gap, self._poll(now)]

    def _answered(
        self,
        session_id: str,
        events: Sequence[Mapping[str, Any]],
        renewal: bool,
        now: float,
    ) -> list[Output]:
        # A session's first batch opens with AgentSessionStart; any later one that
        # does is what a poll with a stale id gets: the state as it is now.
        restated = not self._first_batch and any(
            e.get("Type") == SESSION_START_TYPE for e in events
        )
        snapshot = renewal or restated
        self._first_batch = False
        self.session_id = session_id
        outputs: list[Output] = []
        if events:
            outputs.append(Deliver(session_id, tuple(events)))
        if self._gap_start is not None:
            if snapshot:
                self._gap_reason += "; state renewal"
            outputs.extend(self._close_gap(now))
        elif snapshot:
            start = self.last_heard if self.last_heard is not None else now
            outputs.append(ReportGap(start, now, "state renewal"))
        self.last_heard = now
        outputs.append(self._poll(now))
        return outputs

    def _poll(self, now: float) -> Poll:
        if self.session_id is None:  # pragma: no cover - guarded by the table
            raise LongPollError("poll without a session")
        return Poll(
            self.session_id,
            timeout=self.poll_timeout,
            deadline=now + self.poll_timeout + self.poll_watchdog,
        )

    def _back_off(self, now: float, error: str | None, retry_after: float | None) -> BackOff:
        seconds = self._backoff.failed(now, retry_after)
        return BackOff(seconds, now + seconds, error)

    def _fatal(self, error: str) -> list[Output]:
        self.fatal = error
        self.session_id = None
        self.owned = False
        return [Stop(fatal=error)]

    def _heard_or(self, now: float) -> float:
        return self.last_heard if self.last_heard is not None else now

    def _open_gap(self, start: float, reason: str) -> None:
        # An open gap keeps its earlier start: one outage is one gap however it goes on.
        if self._gap_start is None:
            self._gap_start = start
            self._gap_reason = reason

    def _close_gap(self, now: float) -> list[Output]:
        if self._gap_start is None:
            return []
        gap = ReportGap(self._gap_start, now, self._gap_reason)
        # Polls work again: the connection counts as up from here, and the backoff
        # resets at the next failure once it has stayed up for stable_after.
        self._backoff.connected(now)
        self._gap_start = None
        return [gap]
