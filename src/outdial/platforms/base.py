"""The ports between outdial and a platform, and how platform errors are classified.

A platform is a bundle of narrow ports (:class:`PlatformBundle`, built by
:mod:`outdial.platforms.registry` from ``[platform] kind``):

* :class:`CallControl`: place a call for an agent, read one, find the agent's
  recent outbound calls (to reconcile a dial whose answer never came);
* :class:`AgentStateReader`: re-read many agents' state after a gap;
* :class:`Codec`: which topics carry an agent's state and calls, and what an
  event says in :mod:`outdial.domain` terms;
* :class:`EventSourceFactory`: how topics are split over connections (Genesys:
  notification channels of 1,000 topics; CXone: one session per agent) and the
  :class:`EventSource` that keeps each connection alive;
* :class:`ConnectionLeases`, which the daemon gives the factory: whether this
  replica may hold an agent's connection now (a platform with one connection
  per agent asks it; one whose connections are per replica ignores it).

Handlers, pacer, store and the listener's generic part use only these; the
Genesys channel API (:class:`ChannelApi`) is the Genesys event source's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from outdial.domain import Decoded, DialRequest, OutboundCall, PlacedCall
from outdial.events import Event, Gap

__all__ = [
    "ALWAYS_HELD",
    "AgentSnapshot",
    "AgentState",
    "AgentStateReader",
    "AlwaysHeld",
    "AmbiguousOutcome",
    "AuthError",
    "CallControl",
    "CallSnapshot",
    "ChannelApi",
    "ChannelGone",
    "ChannelInfo",
    "Codec",
    "ConnectionLeases",
    "DialRequest",
    "EventSource",
    "EventSourceFactory",
    "FieldProblem",
    "MalformedEvent",
    "OutboundCall",
    "PlacedCall",
    "PlatformBundle",
    "PlatformError",
    "RetryableError",
    "SourceSink",
    "SubscriptionResult",
]


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One field the platform (or our own pre-check) found wrong."""

    field: str
    code: str
    message: str = ""


class PlatformError(Exception):
    """An error answer from the platform, with the platform's own fields.

    ``retryable`` tells the caller whether backing off and trying again can help
    (network trouble, 429, 5xx) or not (400 validation, 403, 404, 401 after a refresh).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Sequence[FieldProblem] = (),
        context_id: str | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.details = tuple(details)
        self.context_id = context_id
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.body = dict(body) if body else {}
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = f"{self.status} {self.code}: {self.message}" if self.status else self.message
        parts = [head]
        for detail in self.details:
            suffix = f" ({detail.message})" if detail.message else ""
            parts.append(f"field {detail.field}: {detail.code}{suffix}")
        if self.correlation_id:
            parts.append(f"correlation id {self.correlation_id}")
        if self.context_id and self.context_id != self.correlation_id:
            parts.append(f"context id {self.context_id}")
        return "; ".join(parts)


class RetryableError(PlatformError):
    """Network trouble, 429 (``retry_after`` set when the platform said) or 5xx."""

    retryable = True


class AuthError(PlatformError):
    """Credentials rejected (401 after one refresh) or not allowed (403): fix the config."""


class ChannelGone(PlatformError):
    """The notification channel no longer exists (expired or evicted): make a new one."""


class AmbiguousOutcome(PlatformError):
    """The request was sent but no answer came back: it may or may not have taken effect."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A notification channel: where to connect and when it expires."""

    id: str
    connect_uri: str
    expires: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriptionResult:
    """One topic's subscription state as the platform answered it."""

    topic: str
    permitted: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """A call conversation read over REST (same body shape as its events)."""

    conversation_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AgentState:
    """An agent's state read over REST, to refill a gap.

    ``presence`` is the platform's UserPresence body (it has more fields than
    the presence event body); ``routing_status`` is in the event's shape,
    ``{"status", "startTime"}``; ``conversation_summary`` is the body of the
    conversation summary (as its event carries it). Each is None when the
    platform had nothing to say about it. ``known`` is False when the platform
    does not know the user id at all (then every part is None).
    """

    user_id: str
    presence: Mapping[str, Any] | None
    routing_status: Mapping[str, Any] | None
    conversation_summary: Mapping[str, Any] | None = None
    known: bool = True

    def reread_events(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The state as the Genesys events that would have said it: ``(topic, body)``."""
        user = self.user_id
        events: list[tuple[str, Mapping[str, Any]]] = []
        if self.presence:
            events.append((f"v2.users.{user}.presence", dict(self.presence)))
        if self.routing_status:
            body = {"id": user, "routingStatus": dict(self.routing_status)}
            events.append((f"v2.users.{user}.routingStatus", body))
        if self.conversation_summary is not None:
            events.append((f"v2.users.{user}.conversationsummary", dict(self.conversation_summary)))
        return events


class MalformedEvent(ValueError):
    """An event whose body the codec cannot read; ``where`` names the field."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class AgentSnapshot(Protocol):
    """One agent's state re-read over REST, as the platform's own events would say it.

    ``known`` is False when the platform does not know the agent at all. The
    events are fed through the handlers like live ones (so rules on agent
    topics see a re-read too), each on the topic that would have carried it.
    """

    @property
    def user_id(self) -> str: ...

    @property
    def known(self) -> bool: ...

    def reread_events(self) -> list[tuple[str, Mapping[str, Any]]]:
        """``(topic, body)`` of each event that says this state."""
        ...


class CallControl(Protocol):
    """Placing, reading and finding an agent's calls."""

    async def place_call(self, request: DialRequest) -> PlacedCall:
        """Place an outbound call on behalf of ``request.user_id``; the answer names the call.

        Raises :class:`AmbiguousOutcome` when the request may have taken effect
        but the call cannot be named (no answer, or the platform's answer did
        not lead to a call in time): the dialer reconciles it, never re-sends.
        """
        ...

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        """The call as it is now, in the shape of its events; None when the platform
        no longer knows it."""
        ...

    async def find_outbound_calls(
        self,
        user_id: str,
        since: datetime,
        until: datetime,
        phone_number: str | None = None,
    ) -> list[OutboundCall]:
        """The agent's outbound calls that started in ``[since, until)``, oldest first.

        Reconciles a dial whose answer never came: found, the call exists and
        must not be placed again. Ended calls are listed too. The platform's
        history may lag a few seconds behind, so "not listed" only means "not
        placed" once the caller has waited long enough. With ``phone_number``
        (E.164) the platform may be asked for calls to that number only; calls
        to other numbers may still be listed, so the caller checks the number.
        """
        ...


class AgentStateReader(Protocol):
    """Re-reading agents' state after a gap."""

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> Sequence[AgentSnapshot]:
        """Every agent's state, one per distinct id in ``user_ids``, in their order.

        No agent is dropped: an agent the platform does not know comes back with
        ``known=False``; retryable failures are retried until ``give_up_after`` seconds
        have passed, then raised (a :class:`RetryableError`), as is any other error.
        """
        ...


class Codec(Protocol):
    """The platform's topics and event bodies, read into :mod:`outdial.domain` terms.

    Every topic names its agent as ``<namespace>.users.<id>.<what>`` (so
    :func:`outdial.events.topic_user_id` works for any platform).
    """

    #: Whether the platform has a routing status that readiness must check.
    has_routing_status: bool

    def agent_topics(self, user_id: str) -> frozenset[str]:
        """Every topic readiness needs for one agent (its state and its calls)."""
        ...

    def calls_topic(self, user_id: str) -> str:
        """The topic that carries the agent's calls (their progress is tracked there)."""
        ...

    def is_calls_topic(self, topic: str) -> bool:
        """True for an agent's calls topic."""
        ...

    def identity_facts(self, topic: str, body: Mapping[str, Any]) -> Any:
        """What identifies the state an event says, so that the same state seen live and
        re-read over REST (whose bodies differ in extra fields) is one trigger."""
        ...

    def decode(self, event: Event, observed: datetime) -> Decoded:
        """What ``event`` says; raises :class:`MalformedEvent` for a body it cannot read.

        ``observed`` is now: no time read off the event is later than it.
        """
        ...


class SourceSink(Protocol):
    """Where an event source hands what it receives (the listener)."""

    def deliver(self, event: Event) -> None:
        """One event, as received (never blocks)."""
        ...

    def report_gap(self, gap: Gap) -> None:
        """Events on ``gap.topics`` may have been missed in ``[gap.start, gap.end]``."""
        ...

    def rotation_started(self) -> None:
        """Two connections carry the same topics for a while: duplicates are coming."""
        ...

    def rotation_finished(self) -> None:
        """The overlap is over."""
        ...


class EventSource(Protocol):
    """One connection's events (a Genesys channel, a CXone agent session), kept alive.

    ``stats.state`` and the counters feed logs, metrics and the status page;
    ``connection_id`` names the current channel or session (None: none yet).
    """

    name: str
    topics: frozenset[str]

    @property
    def stats(self) -> Any: ...

    @property
    def last_frame_at(self) -> float | None: ...

    @property
    def connection_id(self) -> str | None: ...

    async def run(self) -> None:
        """Keep the connection up until cancelled; raise ``ListenerFatal`` when it cannot be."""
        ...

    async def update_topics(self, topics: frozenset[str]) -> list[SubscriptionResult]:
        """Carry exactly ``topics`` from now on; returns the topics the platform refused."""
        ...


class ConnectionLeases(Protocol):
    """Whether this replica may hold an agent's platform connection now.

    CXone gives an agent one session, and two replicas polling it make each
    other's (rotating) session ids stale: one replica at a time may listen.
    :meth:`hold` takes or renews the agent's lease; a replica refused stays
    on standby and asks again ``recheck_after`` seconds later. The daemon
    renews what is held in its lease loop, so :meth:`holds` (no I/O) says
    whether a held lease is still ours after the latest renewal.
    """

    #: Seconds between a standby replica's asks.
    recheck_after: float

    async def hold(self, agent_id: str) -> bool:
        """Take (or renew) the agent's lease; False: another replica holds it."""
        ...

    def holds(self, agent_id: str) -> bool:
        """Whether the agent's lease was ours at the latest take or renewal."""
        ...

    async def release(self, agent_id: str) -> None:
        """Give the agent's lease up (its connection is no longer wanted here)."""
        ...


class AlwaysHeld:
    """:class:`ConnectionLeases` for a process alone: every agent's connection is its own."""

    recheck_after = 5.0

    async def hold(self, agent_id: str) -> bool:
        """Always: nobody else competes."""
        return True

    def holds(self, agent_id: str) -> bool:
        """Always: nobody else competes."""
        return True

    async def release(self, agent_id: str) -> None:
        """Nothing to give up."""


#: The leases of a process with no replicas.
ALWAYS_HELD: ConnectionLeases = AlwaysHeld()


class EventSourceFactory(Protocol):
    """How topics are split over connections, and the source for each part."""

    def use_leases(self, leases: ConnectionLeases) -> None:
        """Ask ``leases`` before holding an agent's connection, in every source made from
        now on (called once, before the first source; by default every lease is held)."""
        ...

    def shard(
        self, current: Sequence[frozenset[str]], wanted: Iterable[str]
    ) -> list[frozenset[str]]:
        """The topics of each source once ``wanted`` are subscribed.

        Index ``i < len(current)`` is the existing source ``i`` (keeping its
        topics where it can: no reconnect for topics that stay); more entries
        are new sources.
        """
        ...

    def source(self, name: str, topics: frozenset[str], sink: SourceSink) -> EventSource:
        """The event source that carries ``topics``."""
        ...


@dataclass(frozen=True, slots=True)
class PlatformBundle:
    """One platform's ports, as the daemon uses them; ``aclose`` releases them all."""

    kind: str
    calls: CallControl
    agents: AgentStateReader
    codec: Codec
    sources: EventSourceFactory
    aclose: Callable[[], Awaitable[None]]


class ChannelApi(Protocol):
    """The Genesys notification channel API, which its channel event source uses."""

    async def create_channel(self) -> ChannelInfo:
        """Create a notification channel."""
        ...

    async def channel_exists(self, channel_id: str) -> bool:
        """True while the channel is valid; False once expired or evicted."""
        ...

    async def get_subscriptions(self, channel_id: str) -> list[str]:
        """The topics the channel carries now."""
        ...

    async def put_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """Replace the channel's topics with exactly ``topics``."""
        ...

    async def add_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """Add ``topics`` to what the channel carries, keeping the others."""
        ...
