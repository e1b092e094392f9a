"""One Genesys notification channel's lifecycle, as a pure machine.

State in, decision out: the shell
(:class:`~outdial.platforms.genesys.channel.ChannelSupervisor`) tells
:class:`ChannelLifecycle` what happened (a channel was created, a socket
connected, the subscriptions were read or replaced, a socket ended, a
``socket_closing`` warning came, the channel's expiry came near, a request
failed, a backoff ran out, the topics changed) with the time it happened, and
gets back what to do, in order. The machine owns no task, socket or sleep.

The platform's rules it encodes (``DESIGN.md``):

* a channel outlives its socket: after a socket ends, the channel is checked
  (``HEAD``) and reused while it exists, so only a channel that is gone is
  created anew, and a reused channel is read (``GET``) before it is replaced
  (``PUT``) so that a channel still carrying the topics costs no write;
* events are not durable: the time between the last frame of a socket and the
  next socket carrying the topics again is a **gap**, and so is the time
  before the first socket; a gap is reported once it is over;
* a channel lives 24 hours and a ``socket_closing`` warning comes about a
  minute before the platform drops a socket: the machine then **rotates make
  before break**, a new channel carries the topics before the old socket is
  closed, so a rotation is no gap;
* a failed request backs off (full jitter, :class:`~outdial.listener.backoff.Backoff`);
  a fatal one (credentials, permissions, a rejected subscription, a 400)
  stops with what to fix.

Every transition is a row of :data:`TRANSITIONS`, keyed by the state and what
happened (refined, h11 style, where the outcome depends on what the machine
knows: a rotation whose old socket already ended falls back to a reconnect).
A row names the next state and the *steps* taken on the way, each of which
yields the outputs it stands for. An input the table has no row for is a bug
in the shell (:class:`LifecycleError`), as is an answer to a request that was
never made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from outdial.listener.backoff import Backoff
from outdial.listener.state import ChannelState
from outdial.platforms.base import ChannelInfo, SubscriptionResult
from outdial.platforms.genesys.plan import subscription_change

__all__ = [
    "TRANSITIONS",
    "BackOff",
    "BackoffElapsed",
    "ChangeSubscriptions",
    "ChannelCreated",
    "ChannelExists",
    "ChannelGone",
    "ChannelLifecycle",
    "CheckChannel",
    "CloseSocket",
    "ClosingWarning",
    "Connect",
    "CreateChannel",
    "Enter",
    "ExpiryNear",
    "Failed",
    "FinishRotation",
    "Input",
    "LifecycleError",
    "Output",
    "PutSubscriptions",
    "ReadSubscriptions",
    "ReportGap",
    "Rotated",
    "Shutdown",
    "SocketConnected",
    "SocketEnded",
    "SocketLost",
    "StartRotation",
    "Stop",
    "Subscribed",
    "SubscriptionsPut",
    "SubscriptionsRead",
    "TopicsChangeAnswered",
    "TopicsChangeFailed",
    "TopicsChanged",
    "TopicsUpdated",
    "rejection_message",
]


class LifecycleError(RuntimeError):
    """An input the machine cannot take in its state: the shell broke the protocol."""


# -- inputs (what happened) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelCreated:
    """``POST .../channels`` answered: the new channel expires ``expires_in`` s from now."""

    channel: ChannelInfo
    expires_in: float | None


@dataclass(frozen=True, slots=True)
class ChannelExists:
    """``HEAD`` answered 200: the channel is still there and is reused."""


@dataclass(frozen=True, slots=True)
class ChannelGone:
    """The channel no longer exists (``HEAD`` 404, a 404 on its subscriptions, a
    refused socket handshake)."""

    error: str | None = None


@dataclass(frozen=True, slots=True)
class SocketConnected:
    """The socket :class:`Connect` asked for is open."""

    socket: int


@dataclass(frozen=True, slots=True)
class SubscriptionsRead:
    """``GET .../subscriptions`` answered: the topics the channel carries now."""

    topics: frozenset[str]


@dataclass(frozen=True, slots=True)
class SubscriptionsPut:
    """``PUT .../subscriptions`` (of :class:`PutSubscriptions`) answered, topic by topic."""

    results: tuple[SubscriptionResult, ...]


@dataclass(frozen=True, slots=True)
class SocketEnded:
    """A socket ended: ``how`` (a ``SessionEnd`` value; None: unknown), its last frame,
    the close code and who closed (``"outdial"``, ``"platform"``, ``""``), and the
    silence that made the keepalive declare it dead (None: it was not)."""

    socket: int
    how: str | None
    last_frame_at: float | None
    close_code: int | None = None
    closed_by: str = ""
    silent_for: float | None = None


@dataclass(frozen=True, slots=True)
class ClosingWarning:
    """A ``v2.system.socket_closing`` warning came on a socket."""


@dataclass(frozen=True, slots=True)
class ExpiryNear:
    """:attr:`ChannelLifecycle.deadline` has passed with nothing else happening."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The request in flight failed; ``fatal`` when retrying cannot help."""

    error: str
    fatal: bool = False
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class BackoffElapsed:
    """The :class:`BackOff` asked for is over."""


@dataclass(frozen=True, slots=True)
class TopicsChanged:
    """The shard must carry ``topics`` from now on."""

    topics: frozenset[str]


@dataclass(frozen=True, slots=True)
class TopicsChangeAnswered:
    """The :class:`ChangeSubscriptions` request answered, topic by topic."""

    results: tuple[SubscriptionResult, ...]


@dataclass(frozen=True, slots=True)
class TopicsChangeFailed:
    """The :class:`ChangeSubscriptions` request failed."""

    error: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The shell is ending (cancelled, or stopping after :class:`Stop`)."""


Input = (
    ChannelCreated
    | ChannelExists
    | ChannelGone
    | SocketConnected
    | SubscriptionsRead
    | SubscriptionsPut
    | SocketEnded
    | ClosingWarning
    | ExpiryNear
    | Failed
    | BackoffElapsed
    | TopicsChanged
    | TopicsChangeAnswered
    | TopicsChangeFailed
    | Shutdown
)

# -- outputs (what to do) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateChannel:
    """``POST .../channels``; answer :class:`ChannelCreated` (or :class:`Failed`)."""


@dataclass(frozen=True, slots=True)
class CheckChannel:
    """``HEAD .../channels/{id}``; answer :class:`ChannelExists` or :class:`ChannelGone`."""

    channel_id: str


@dataclass(frozen=True, slots=True)
class Connect:
    """Open socket number ``socket`` on ``channel``; answer :class:`SocketConnected`.

    Report its end, whenever it comes, as :class:`SocketEnded` with that number.
    """

    socket: int
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class ReadSubscriptions:
    """``GET .../subscriptions``; answer :class:`SubscriptionsRead`."""

    channel_id: str


@dataclass(frozen=True, slots=True)
class PutSubscriptions:
    """``PUT .../subscriptions`` with exactly ``topics``; answer :class:`SubscriptionsPut`."""

    channel_id: str
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChangeSubscriptions:
    """A runtime topic change: ``POST`` (add) or ``PUT`` (replace) ``topics``.

    Answer :class:`TopicsChangeAnswered` or :class:`TopicsChangeFailed`.
    """

    channel_id: str
    method: Literal["post", "put"]
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close socket ``socket`` (its :class:`SocketEnded` follows)."""

    socket: int


@dataclass(frozen=True, slots=True)
class BackOff:
    """Wait until ``until`` (``seconds`` from now), then report :class:`BackoffElapsed`.

    ``attempt`` counts failures since the last stable connection; ``severe``: the
    streak is long enough to alert on; ``error``: what failed (None: a socket ended).
    """

    seconds: float
    until: float
    attempt: int
    severe: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReportGap:
    """Events may have been missed in ``[start, end]`` (monotonic times)."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True, slots=True)
class Enter:
    """The channel is in ``state`` now; leaving ``subscribed`` says why (``reason``,
    and the socket's close code and who closed it)."""

    state: ChannelState
    reason: str | None = None
    close_code: int | None = None
    closed_by: str | None = None


@dataclass(frozen=True, slots=True)
class SocketLost:
    """The socket carrying the topics ended (counted as a reconnect); ``silent_for``: the
    silence after which it was declared dead (None: it was closed, not dead)."""

    silent_for: float | None


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The channel was (re)subscribed to ``topics`` topics."""

    channel_id: str
    topics: int


@dataclass(frozen=True, slots=True)
class StartRotation:
    """A make-before-break rotation begins (its duplicates are the listener's to drop)."""


@dataclass(frozen=True, slots=True)
class FinishRotation:
    """The rotation is over, however it ended."""


@dataclass(frozen=True, slots=True)
class Rotated:
    """The topics moved to ``channel_id`` in ``took`` seconds, without a gap."""

    channel_id: str
    took: float


@dataclass(frozen=True, slots=True)
class TopicsUpdated:
    """A runtime change is done: ``topics`` are carried, ``rejected`` were refused."""

    channel_id: str
    method: Literal["post", "put"]
    topics: frozenset[str]
    rejected: tuple[SubscriptionResult, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """Retrying cannot help: stop with ``message`` (what to fix)."""

    message: str


Output = (
    CreateChannel
    | CheckChannel
    | Connect
    | ReadSubscriptions
    | PutSubscriptions
    | ChangeSubscriptions
    | CloseSocket
    | BackOff
    | ReportGap
    | Enter
    | SocketLost
    | Subscribed
    | StartRotation
    | FinishRotation
    | Rotated
    | TopicsUpdated
    | Stop
)

#: The requests of the run loop, one in flight at a time, and the inputs that answer each.
_REQUESTS = (CreateChannel, CheckChannel, Connect, ReadSubscriptions, PutSubscriptions, BackOff)
_ANSWERS: dict[type[object], tuple[type[object], ...]] = {
    ChannelCreated: (CreateChannel,),
    ChannelExists: (CheckChannel,),
    ChannelGone: (CreateChannel, CheckChannel, Connect, ReadSubscriptions, PutSubscriptions),
    SocketConnected: (Connect,),
    SubscriptionsRead: (ReadSubscriptions,),
    SubscriptionsPut: (PutSubscriptions,),
    Failed: (CreateChannel, CheckChannel, Connect, ReadSubscriptions, PutSubscriptions),
    BackoffElapsed: (BackOff,),
}

# -- the table ------------------------------------------------------------------

#: What happened, as the table reads it: the input's kind, refined by what the
#: machine knows (is the topic set already carried; did the old socket of a
#: rotation end already; which socket ended).
Key = Literal[
    "created",
    "connected",  # on a reused channel: read what it carries
    "connected_fresh",  # on a new channel with topics to put
    "connected_synced",  # on a new channel, and no topics are wanted
    "read_same",
    "read_differs",
    "put_ok",
    "put_stale",  # the topics changed while the PUT was in flight: put again
    "rejected",
    "exists",
    "gone",
    "gone_old_gone",
    "failed",
    "failed_old_gone",
    "fatal",
    "backoff_elapsed",
    "ended",  # the socket carrying the topics
    "up_ended",  # the socket being brought up, before it carries the topics
    "old_ended",  # a rotation's old socket, before the new one carries the topics
    "old_closed",  # a rotation's old socket, closed by us once the new one does
    "stale_ended",  # a socket nothing waits for any more
    "warned",
    "expiring",
    "retopic",
    "retopic_done",
    "retopic_failed",
    "shutdown",
]

#: What the machine does on the way to the next state, in order. Each names a
#: method ``_do_<step>``; a step whose subject is absent (no socket up to close)
#: yields nothing.
Step = Literal[
    "open",  # connect the known channel, or create one when none is known
    "create",
    "connect",
    "read",
    "put",
    "announce",  # the PUT took: log it
    "synced",  # the channel carries exactly the topics: runtime changes go to it
    "promote",  # the socket brought up is the one carrying the topics now
    "gap",
    "enter",
    "settle",  # in subscribed: act on what happened while getting there
    "stash",  # note a socket's end, acted on once the machine is ready for it
    "warn",  # note a closing warning, acted on once subscribed
    "lost",
    "lost_old",
    "check",
    "forget",
    "back_off",
    "back_off_quiet",
    "close_up",
    "close_old",
    "close_live",
    "start_rotation",
    "finish_rotation",
    "rotated",
    "rotation_gap",  # the old socket stopped before the new one carried the topics
    "stop",
    "change_topics",
    "topics_updated",
]

_C, _S, _D, _R, _T, _X = (
    ChannelState.CONNECTING,
    ChannelState.SUBSCRIBED,
    ChannelState.DEGRADED,
    ChannelState.RECONNECTING,
    ChannelState.ROTATING,
    ChannelState.STOPPED,
)

_Row = tuple[ChannelState, tuple[Step, ...]]
_TOPIC_ROWS: dict[Key, tuple[Step, ...]] = {
    "retopic": ("change_topics",),
    "retopic_done": ("topics_updated",),
    # The channel may not carry what is wanted now: reconnecting resyncs it.
    "retopic_failed": ("close_live",),
}


def _bringing_up(state: ChannelState) -> dict[tuple[ChannelState, Key], _Row]:
    """Connecting and reconnecting: bring a socket up on a channel carrying the topics."""
    done: tuple[Step, ...] = ("synced", "promote", "gap", "enter", "settle")
    return {
        (state, "created"): (state, ("connect",)),
        (state, "connected"): (state, ("read",)),
        (state, "connected_fresh"): (state, ("put",)),
        (state, "connected_synced"): (_S, done),
        (state, "read_same"): (_S, done),
        (state, "read_differs"): (state, ("put",)),
        (state, "put_ok"): (_S, ("announce", *done)),
        (state, "put_stale"): (state, ("put",)),
        (state, "rejected"): (_X, ("close_up", "enter", "stop")),
        (state, "failed"): (state, ("close_up", "back_off")),
        (state, "gone"): (state, ("close_up", "forget", "back_off_quiet")),
        (state, "fatal"): (_X, ("close_up", "enter", "stop")),
        (state, "backoff_elapsed"): (state, ("open",)),
        (state, "up_ended"): (state, ("stash",)),
        (state, "stale_ended"): (state, ()),
        (state, "warned"): (state, ("warn",)),
        (state, "shutdown"): (_X, ("enter",)),
        # Before the first subscription (connecting) no change can be in flight.
        **{
            (state, key): (state, steps)
            for key, steps in _TOPIC_ROWS.items()
            if state is _R or key == "retopic"
        },
    }


#: ``(state, what happened) -> (next state, steps)``. Every pair not listed is a
#: protocol error of the shell.
TRANSITIONS: dict[tuple[ChannelState, Key], _Row] = {
    **_bringing_up(_C),
    **_bringing_up(_R),
    # -- subscribed: wait for the socket to end, a warning, or the expiry --------
    (_S, "ended"): (_D, ("lost", "enter", "check")),
    (_S, "warned"): (_T, ("enter", "start_rotation", "create")),
    (_S, "expiring"): (_T, ("enter", "start_rotation", "create")),
    (_S, "stale_ended"): (_S, ()),
    (_S, "shutdown"): (_X, ("enter",)),
    **{(_S, key): (_S, steps) for key, steps in _TOPIC_ROWS.items()},
    # -- degraded: the socket ended; is its channel still there? back off --------
    (_D, "exists"): (_D, ("back_off_quiet",)),
    (_D, "gone"): (_D, ("forget", "back_off_quiet")),
    # Unknown: try the channel again; a refused handshake will tell.
    (_D, "failed"): (_D, ("back_off_quiet",)),
    (_D, "fatal"): (_X, ("enter", "stop")),
    (_D, "backoff_elapsed"): (_R, ("enter", "open")),
    (_D, "stale_ended"): (_D, ()),
    (_D, "warned"): (_D, ("warn",)),
    (_D, "shutdown"): (_X, ("enter",)),
    **{(_D, key): (_D, steps) for key, steps in _TOPIC_ROWS.items()},
    # -- rotating: a new channel carries the topics before the old socket closes -
    (_T, "created"): (_T, ("connect",)),
    (_T, "connected_fresh"): (_T, ("put",)),
    (_T, "connected_synced"): (_T, ("synced", "close_old")),
    (_T, "put_ok"): (_T, ("announce", "synced", "close_old")),
    (_T, "put_stale"): (_T, ("put",)),
    (_T, "old_closed"): (_S, ("finish_rotation", "rotated", "rotation_gap", "enter", "settle")),
    (_T, "rejected"): (_X, ("close_up", "finish_rotation", "enter", "stop")),
    (_T, "failed"): (_T, ("close_up", "back_off")),
    (_T, "gone"): (_T, ("close_up", "forget", "back_off")),
    (_T, "fatal"): (_X, ("close_up", "finish_rotation", "enter", "stop")),
    # The old socket is gone too: fall back to a plain reconnect (the gap runs
    # from the old socket's last frame).
    (_T, "failed_old_gone"): (_D, ("close_up", "finish_rotation", "lost_old", "enter", "check")),
    (_T, "gone_old_gone"): (
        _D,
        ("close_up", "forget", "finish_rotation", "lost_old", "enter", "check"),
    ),
    (_T, "backoff_elapsed"): (_T, ("create",)),
    (_T, "old_ended"): (_T, ("stash",)),
    (_T, "up_ended"): (_T, ("stash",)),
    (_T, "stale_ended"): (_T, ()),
    (_T, "warned"): (_T, ("warn",)),
    (_T, "shutdown"): (_X, ("finish_rotation", "enter")),
    **{(_T, key): (_T, steps) for key, steps in _TOPIC_ROWS.items()},
    # -- stopped ------------------------------------------------------------------
    (_X, "shutdown"): (_X, ()),
    **{(_X, key): (_X, steps) for key, steps in _TOPIC_ROWS.items()},
}


def rejection_message(rejected: Iterable[SubscriptionResult]) -> str:
    """What to tell an operator whose subscriptions the platform rejected."""
    refused = list(rejected)
    listed = ", ".join(f"{r.topic} ({r.reason or 'no reason given'})" for r in refused)
    return (
        f"the platform rejected {len(refused)} subscription(s): {listed}; "
        "check the OAuth client's permissions and the user ids in the rules"
    )


class ChannelLifecycle:
    """The decisions of one shard's channel: bring up, watch, reconnect, rotate, stop.

    Call :meth:`begin` once, then :meth:`handle` with each thing that happened;
    carry out the outputs in order. One request of the run loop (the outputs
    answered by an input: create, check, connect, read, put, back off) is in
    flight at a time; sockets' ends and warnings may come at any time, and so
    may topic changes (:class:`TopicsChanged`, whose :class:`ChangeSubscriptions`
    is answered by the caller that made the change).
    """

    def __init__(
        self,
        topics: frozenset[str],
        *,
        backoff: Backoff,
        rotate_before_expiry: float,
        error_after: int,
    ) -> None:
        self.state = ChannelState.CONNECTING
        #: The topics the shard must carry.
        self.topics = frozenset(topics)
        #: The channel carrying the topics, or to be reused (None: create one).
        self.channel: ChannelInfo | None = None
        #: The channel that carries exactly :attr:`topics` (runtime changes go to it).
        self.subscribed_channel: str | None = None
        #: The socket carrying the topics (in a rotation, the old one; None: none).
        self.live: int | None = None
        self._backoff = backoff
        self._margin = rotate_before_expiry
        self._error_after = error_after
        self._begun = False
        self._expires_at: float | None = None
        self._sockets = 0
        # The socket being brought up, on which channel, and whether that
        # channel is new (so nothing needs reading from it).
        self._up: int | None = None
        self._up_connected = False
        self._up_channel: ChannelInfo | None = None
        self._up_expires_at: float | None = None
        self._fresh = False
        # Ends noted while the machine was not ready to act on them.
        self._up_ended: SocketEnded | None = None
        self._old_ended: SocketEnded | None = None
        self._warned = False
        self._awaiting: Output | None = None
        self._put: frozenset[str] | None = None
        self._changing: tuple[str, Literal["post", "put"], frozenset[str]] | None = None
        self._gap_start: float | None = None
        self._gap_reason = "startup"
        self._why: SocketEnded | None = None
        self._rotation_started_at = 0.0
        self._rotated_at = float("-inf")
        self._carrying_since = 0.0
        # The socket carrying the topics is being closed (a failed topic change).
        self._live_closing = False
        self._old_stopped = False

    @property
    def deadline(self) -> float | None:
        """When to report :class:`ExpiryNear` if nothing else happens first (None: never)."""
        if self.state is not ChannelState.SUBSCRIBED or self._awaiting is not None:
            return None
        if self._expires_at is None:
            return None
        return self._expires_at - self._margin

    @property
    def gap_open(self) -> bool:
        """Events may be being missed right now."""
        return self.gap_since is not None

    @property
    def gap_since(self) -> float | None:
        """Since when events may be being missed (None: they are not)."""
        if self._gap_start is None and self._old_gone() and self._old_ended is not None:
            # A rotation's old socket ended before the new one carries the topics.
            return self._old_ended.last_frame_at
        return self._gap_start

    def begin(self, now: float) -> list[Output]:
        """The first actions: create a channel; nothing is known before the first socket."""
        if self._begun:
            raise LifecycleError("begin() twice")
        self._begun = True
        self._gap_start, self._gap_reason = now, "startup"
        self._awaiting = CreateChannel()
        return [CreateChannel()]

    def handle(self, happened: Input, now: float) -> list[Output]:
        """What to do, in order, now that ``happened`` happened at ``now``."""
        return self._step(happened, now)

    def key(self, happened: Input) -> Key:
        """How the table reads ``happened`` in the current state (raises if it cannot)."""
        answers = _ANSWERS.get(type(happened))
        if answers is not None and not isinstance(self._awaiting, answers):
            raise LifecycleError(
                f"{type(happened).__name__} answers no request in flight "
                f"({type(self._awaiting).__name__ if self._awaiting else 'none'})"
            )
        match happened:
            case ChannelCreated():
                return "created"
            case ChannelExists():
                return "exists"
            case ChannelGone():
                return "gone_old_gone" if self._old_gone() else "gone"
            case SocketConnected(socket=socket):
                if socket != self._up:
                    raise LifecycleError(f"socket {socket} connected, {self._up} was asked for")
                if not self._fresh:
                    return "connected"
                return "connected_fresh" if self.topics else "connected_synced"
            case SubscriptionsRead(topics=topics):
                return "read_same" if topics == self.topics else "read_differs"
            case SubscriptionsPut(results=results):
                if self._put != self.topics:
                    return "put_stale"
                return "rejected" if any(not r.permitted for r in results) else "put_ok"
            case Failed(fatal=True):
                return "fatal"
            case Failed():
                return "failed_old_gone" if self._old_gone() else "failed"
            case BackoffElapsed():
                return "backoff_elapsed"
            case SocketEnded(socket=socket):
                return self._ended_key(socket)
            case ClosingWarning():
                return "warned"
            case ExpiryNear():
                if self.deadline is None:
                    raise LifecycleError("ExpiryNear without a deadline")
                return "expiring"
            case TopicsChanged():
                return "retopic"
            case TopicsChangeAnswered() | TopicsChangeFailed():
                if self._changing is None:
                    raise LifecycleError(f"{type(happened).__name__} without a change in flight")
                if isinstance(happened, TopicsChangeAnswered):
                    return "retopic_done"
                return "retopic_failed"
            case Shutdown():
                return "shutdown"
        raise LifecycleError(f"unknown input {happened!r}")  # pragma: no cover

    # -- the table, applied ----------------------------------------------------------

    def _step(self, happened: Input, now: float) -> list[Output]:
        key = self.key(happened)
        row = TRANSITIONS.get((self.state, key))
        if row is None:
            raise LifecycleError(f"{type(happened).__name__} ({key}) in state {self.state.value}")
        if type(happened) in _ANSWERS:
            self._awaiting = None
        target, steps = row
        # The state moves first: a step that acts on something noted earlier
        # ("settle", "close_old") feeds it through the table from the new state.
        self.state = target
        outputs: list[Output] = []
        for step in steps:
            method: Callable[[Input, float], Iterable[Output]] = getattr(self, f"_do_{step}")
            for output in method(happened, now):
                # (A step that fed something through the table passes on outputs
                # whose request is registered already.)
                if isinstance(output, _REQUESTS) and output is not self._awaiting:
                    if self._awaiting is not None:  # pragma: no cover - guarded by the table
                        raise LifecycleError(f"two requests in flight: {self._awaiting}, {output}")
                    self._awaiting = output
                outputs.append(output)
        return outputs

    def _old_gone(self) -> bool:
        return self.state is ChannelState.ROTATING and self._old_ended is not None

    def _ended_key(self, socket: int) -> Key:
        if socket == self._up:
            return "up_ended"
        if socket == self.live and self.state is ChannelState.SUBSCRIBED:
            return "ended"
        if socket == self.live and self.state is ChannelState.ROTATING:
            return "old_closed" if isinstance(self._awaiting, CloseSocket) else "old_ended"
        return "stale_ended"

    # -- steps -----------------------------------------------------------------------

    def _do_open(self, happened: Input, now: float) -> Iterable[Output]:
        if self.channel is None:
            yield from self._do_create(happened, now)
            return
        self._sockets += 1
        self._up, self._up_connected, self._fresh = self._sockets, False, False
        self._up_channel, self._up_expires_at = self.channel, self._expires_at
        yield Connect(self._up, self.channel)

    def _do_create(self, happened: Input, now: float) -> Iterable[Output]:
        yield CreateChannel()

    def _do_connect(self, happened: Input, now: float) -> Iterable[Output]:
        assert isinstance(happened, ChannelCreated)
        self._sockets += 1
        self._up, self._up_connected, self._fresh = self._sockets, False, True
        self._up_channel = happened.channel
        self._up_expires_at = None if happened.expires_in is None else now + happened.expires_in
        yield Connect(self._up, happened.channel)

    def _on_connected(self) -> ChannelInfo:
        # Connected: this is the channel from now on (the one to reuse, too).
        assert self._up_channel is not None
        self._up_connected = True
        self.channel, self._expires_at = self._up_channel, self._up_expires_at
        self.subscribed_channel = None
        return self._up_channel

    def _do_read(self, happened: Input, now: float) -> Iterable[Output]:
        yield ReadSubscriptions(self._on_connected().id)

    def _do_put(self, happened: Input, now: float) -> Iterable[Output]:
        if isinstance(happened, SocketConnected):
            self._on_connected()
        assert self.channel is not None
        self._put = self.topics
        yield PutSubscriptions(self.channel.id, tuple(sorted(self.topics)))

    def _do_announce(self, happened: Input, now: float) -> Iterable[Output]:
        assert self.channel is not None
        yield Subscribed(self.channel.id, len(self.topics))

    def _do_synced(self, happened: Input, now: float) -> Iterable[Output]:
        if isinstance(happened, SocketConnected):
            self._on_connected()
        assert self.channel is not None
        self._put = None
        self.subscribed_channel = self.channel.id
        return ()

    def _do_promote(self, happened: Input, now: float) -> Iterable[Output]:
        self.live, self._up, self._up_connected = self._up, None, False
        self._live_closing = False
        return ()

    def _do_gap(self, happened: Input, now: float) -> Iterable[Output]:
        # Up again: the connection counts as up from here, and the backoff
        # resets at the next failure once it has stayed up for stable_after.
        self._backoff.connected(now)
        if self._gap_start is not None:
            yield ReportGap(self._gap_start, now, self._gap_reason)
            self._gap_start = None

    def _do_enter(self, happened: Input, now: float) -> Iterable[Output]:
        if self.state is ChannelState.DEGRADED and self._why is not None:
            why, self._why = self._why, None
            yield Enter(
                self.state,
                reason=self._gap_reason,
                close_code=why.close_code,
                closed_by=why.closed_by or None,
            )
            return
        yield Enter(self.state)

    def _do_settle(self, happened: Input, now: float) -> Iterable[Output]:
        # Subscribed at last: what happened on the way is acted on now. A socket
        # that ended wins over a warning, which stays noted for the next socket.
        if self._up_ended is not None and self._up_ended.socket == self.live:
            ended, self._up_ended = self._up_ended, None
            yield from self._step(ended, now)
        elif self._warned:
            yield from self._step(ClosingWarning(), now)

    def _do_stash(self, happened: Input, now: float) -> Iterable[Output]:
        assert isinstance(happened, SocketEnded)
        if happened.socket == self._up:
            self._up_ended = happened
        else:
            self._old_ended = happened
        return ()

    def _do_warn(self, happened: Input, now: float) -> Iterable[Output]:
        self._warned = True
        return ()

    def _lose(self, ended: SocketEnded, now: float) -> Iterable[Output]:
        # Events since the socket's last frame may be lost, but not before the
        # last rotation closed its predecessor (which carried them until then).
        start = ended.last_frame_at if ended.last_frame_at is not None else now
        self._gap_start = max(start, self._rotated_at)
        self._gap_reason = f"socket {ended.how or 'ended'}"
        self._why = ended
        self.subscribed_channel = None
        self.live, self._live_closing = None, False
        yield SocketLost(ended.silent_for)

    def _do_lost(self, happened: Input, now: float) -> Iterable[Output]:
        assert isinstance(happened, SocketEnded)
        return self._lose(happened, now)

    def _do_lost_old(self, happened: Input, now: float) -> Iterable[Output]:
        assert self._old_ended is not None
        ended, self._old_ended = self._old_ended, None
        return self._lose(ended, now)

    def _do_check(self, happened: Input, now: float) -> Iterable[Output]:
        if self.channel is None:
            return self._do_back_off_quiet(happened, now)
        return (CheckChannel(self.channel.id),)

    def _do_forget(self, happened: Input, now: float) -> Iterable[Output]:
        self.channel, self._expires_at = None, None
        return ()

    def _back_off(self, now: float, error: str | None, at_least: float | None) -> BackOff:
        seconds = self._backoff.failed(now, at_least)
        attempt = self._backoff.attempts
        return BackOff(seconds, now + seconds, attempt, attempt >= self._error_after, error)

    def _do_back_off(self, happened: Input, now: float) -> Iterable[Output]:
        if isinstance(happened, Failed):
            yield self._back_off(now, happened.error, happened.retry_after)
        else:
            assert isinstance(happened, ChannelGone)
            yield self._back_off(now, happened.error, None)

    def _do_back_off_quiet(self, happened: Input, now: float) -> Iterable[Output]:
        yield self._back_off(now, None, None)

    def _do_close_up(self, happened: Input, now: float) -> Iterable[Output]:
        up, connected = self._up, self._up_connected
        self._up, self._up_connected, self._up_ended, self._put = None, False, None, None
        if up is not None and connected:
            yield CloseSocket(up)

    def _do_close_old(self, happened: Input, now: float) -> Iterable[Output]:
        # Make before break: only now that the new channel carries the topics.
        assert self.live is not None
        self._carrying_since = now
        self._old_stopped = self._old_ended is not None or self._live_closing
        yield CloseSocket(self.live)
        self._awaiting = CloseSocket(self.live)
        if self._old_ended is not None:  # it ended on its own meanwhile
            ended, self._old_ended = self._old_ended, None
            yield from self._step(ended, now)

    def _do_close_live(self, happened: Input, now: float) -> Iterable[Output]:
        self._changing = None
        self.subscribed_channel = None
        if self.live is not None:
            self._live_closing = True
            yield CloseSocket(self.live)

    def _do_start_rotation(self, happened: Input, now: float) -> Iterable[Output]:
        self._rotation_started_at = now
        yield StartRotation()

    def _do_finish_rotation(self, happened: Input, now: float) -> Iterable[Output]:
        self._warned = False
        yield FinishRotation()

    def _do_rotated(self, happened: Input, now: float) -> Iterable[Output]:
        self._awaiting = None
        self._do_promote(happened, now)
        self._backoff.connected(now)
        # The old socket carried the topics until its last frame.
        assert isinstance(happened, SocketEnded)
        self._rotated_at = happened.last_frame_at if happened.last_frame_at is not None else now
        assert self.channel is not None
        yield Rotated(self.channel.id, now - self._rotation_started_at)

    def _do_rotation_gap(self, happened: Input, now: float) -> Iterable[Output]:
        # Not make-before-break after all: the old socket stopped (on its own, or
        # closed after a failed topic change) before the new one carried the
        # topics, so events in between may be lost.
        assert isinstance(happened, SocketEnded)
        stopped, self._old_stopped = self._old_stopped, False
        last = happened.last_frame_at
        if stopped and last is not None and last < self._carrying_since:
            reason = f"socket {happened.how or 'ended'}"
            yield ReportGap(last, self._carrying_since, reason)

    def _do_stop(self, happened: Input, now: float) -> Iterable[Output]:
        self.subscribed_channel = None
        if isinstance(happened, SubscriptionsPut):
            yield Stop(rejection_message(r for r in happened.results if not r.permitted))
        else:
            assert isinstance(happened, Failed)
            yield Stop(happened.error)

    def _do_change_topics(self, happened: Input, now: float) -> Iterable[Output]:
        assert isinstance(happened, TopicsChanged)
        action, listed = subscription_change(self.topics, happened.topics)
        self.topics = happened.topics
        if action == "none" or self.subscribed_channel is None:
            return
        method: Literal["post", "put"] = "post" if action == "post" else "put"
        self._changing = (self.subscribed_channel, method, happened.topics)
        yield ChangeSubscriptions(self.subscribed_channel, method, tuple(listed))

    def _do_topics_updated(self, happened: Input, now: float) -> Iterable[Output]:
        assert isinstance(happened, TopicsChangeAnswered)
        assert self._changing is not None
        channel, method, wanted = self._changing
        self._changing = None
        rejected = tuple(r for r in happened.results if not r.permitted and r.topic in wanted)
        self.topics = wanted - {r.topic for r in rejected}
        yield TopicsUpdated(channel, method, self.topics, rejected)
