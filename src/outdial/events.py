"""Wire models for the notification channel: envelopes, frame kinds, typed event bodies.

A frame off the socket is parsed once into an :class:`Envelope` (pydantic, so a
malformed frame is rejected here with the reason), then classified by
:func:`classify` into what the listener acts on (:class:`Heartbeat`,
:class:`Pong`, :class:`SocketClosing`) or what the handlers receive
(:class:`Event`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CallConversation",
    "CallParticipant",
    "Envelope",
    "Event",
    "Frame",
    "Gap",
    "Heartbeat",
    "MalformedFrame",
    "Pong",
    "Presence",
    "RoutingStatus",
    "SocketClosing",
    "body_as",
    "classify",
    "parse_frame",
    "topic_user_id",
]

_BodyT = TypeVar("_BodyT", bound=BaseModel)

METADATA_TOPIC = "channel.metadata"
SOCKET_CLOSING_TOPIC = "v2.system.socket_closing"


class Envelope(BaseModel):
    """One message on the notification WebSocket, exactly as the platform sends it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    topic_name: str = Field(alias="topicName", min_length=1)
    version: str | None = None
    event_body: dict[str, Any] = Field(alias="eventBody", default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class MalformedFrame(ValueError):
    """A frame that is not a valid envelope; carries the raw text (truncated) and why."""

    def __init__(self, raw: str | bytes, reason: str) -> None:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        self.raw = text[:200]
        self.reason = reason
        super().__init__(f"malformed frame ({reason}): {self.raw!r}")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The platform's periodic ``WebSocket Heartbeat`` on ``channel.metadata``."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The platform's answer to our ``{"message": "ping"}``."""


@dataclass(frozen=True, slots=True)
class SocketClosing:
    """``v2.system.socket_closing``: about a minute left to open a new socket."""

    channel_id: str | None
    reason: str | None


@dataclass(slots=True, eq=False)
class Event:
    """A notification for the handlers: one topic, one body, where and when it arrived.

    ``identity`` is a stable digest of the topic and body: two deliveries of the
    same notification (a duplicate from the platform, or the same event on the
    old and the new channel during a rotation) have the same identity. It is the
    base of every idempotency key, so it never depends on arrival time.
    """

    topic: str
    body: Mapping[str, Any]
    version: str | None = None
    correlation_id: str | None = None
    channel_id: str = ""
    received_at: float = 0.0
    _identity: str | None = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        """Digest of topic and canonical body (computed once, on first use)."""
        if self._identity is None:
            canonical = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
            digest = hashlib.blake2b(
                f"{self.topic}\n{canonical}".encode(), digest_size=16
            ).hexdigest()
            self._identity = digest
        return self._identity


Frame = Heartbeat | Pong | SocketClosing | Event


@dataclass(frozen=True, slots=True)
class Gap:
    """An interval in which events on ``topics`` may have been missed.

    The platform keeps nothing for a disconnected client, so after a gap the
    handlers re-read over REST whatever state their rules depend on. ``start``
    and ``end`` are monotonic times; ``reason`` says what caused it (startup,
    reconnect, rotation, overflow of the handler queue).
    """

    topics: frozenset[str]
    start: float
    end: float
    reason: str


def parse_frame(raw: str | bytes, *, channel_id: str = "", received_at: float = 0.0) -> Frame:
    """Parse and classify one text frame; raise :class:`MalformedFrame` with the reason."""
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        raise MalformedFrame(raw, f"{where}: {first['msg']}") from None
    return classify(envelope, channel_id=channel_id, received_at=received_at)


def classify(envelope: Envelope, *, channel_id: str = "", received_at: float = 0.0) -> Frame:
    """Tell control frames (heartbeat, pong, closing warning) from events for the handlers."""
    topic = envelope.topic_name
    if topic == METADATA_TOPIC:
        message = envelope.event_body.get("message")
        if message == "pong":
            return Pong()
        return Heartbeat()
    if topic == SOCKET_CLOSING_TOPIC:
        body = envelope.event_body
        return SocketClosing(
            channel_id=body.get("channelId"),
            reason=body.get("systemTopicType") or body.get("message"),
        )
    correlation = envelope.metadata.get("CorrelationId")
    return Event(
        topic=topic,
        body=envelope.event_body,
        version=envelope.version,
        correlation_id=correlation if isinstance(correlation, str) else None,
        channel_id=channel_id,
        received_at=received_at,
    )


def topic_user_id(topic: str) -> str | None:
    """The user id in a ``v2.users.{id}.<suffix>`` topic, else None."""
    parts = topic.split(".", 3)
    if len(parts) >= 4 and parts[0] == "v2" and parts[1] == "users":
        return parts[2]
    return None


# Typed bodies. Handlers that care about a topic's shape validate the body into
# one of these; ``extra="allow"`` because the platform adds fields over time.


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class PresenceDefinition(_Body):
    """The presence an agent chose; ``system_presence`` is the platform-wide name."""

    id: str | None = None
    system_presence: str | None = Field(default=None, alias="systemPresence")


class Presence(_Body):
    """Body of ``v2.users.{id}.presence``."""

    presence_definition: PresenceDefinition = Field(alias="presenceDefinition")
    modified_date: str | None = Field(default=None, alias="modifiedDate")


class RoutingStatusValue(_Body):
    """The ACD routing status and since when."""

    status: str
    start_time: str | None = Field(default=None, alias="startTime")


class RoutingStatus(_Body):
    """Body of ``v2.users.{id}.routingStatus``."""

    routing_status: RoutingStatusValue = Field(alias="routingStatus")


ParticipantState = Literal[
    "alerting",
    "dialing",
    "contacting",
    "offering",
    "connected",
    "disconnected",
    "terminated",
    "converting",
    "uploading",
    "transmitting",
    "parked",
    "none",
]


class CallParticipant(_Body):
    """One leg of a call conversation."""

    id: str
    purpose: str | None = None
    address: str | None = None
    state: str | None = None
    disconnect_type: str | None = Field(default=None, alias="disconnectType")
    connected_time: str | None = Field(default=None, alias="connectedTime")
    end_time: str | None = Field(default=None, alias="endTime")
    user: dict[str, Any] | None = None


class CallConversation(_Body):
    """Body of ``v2.users.{id}.conversations.calls``: the whole conversation as it is now."""

    id: str
    participants: list[CallParticipant] = Field(default_factory=list)

    def customer(self) -> CallParticipant | None:
        """The far end of an outbound call (purpose ``customer`` or ``external``)."""
        for participant in self.participants:
            if participant.purpose in ("customer", "external"):
                return participant
        return None


def body_as(model: type[_BodyT], body: Mapping[str, Any]) -> _BodyT:
    """Validate an event body into one of the typed models above."""
    return model.model_validate(body)
