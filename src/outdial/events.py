"""Wire models for the notification channel: envelopes, frame kinds, typed event bodies.

A frame off the socket is parsed once and checked against :class:`Envelope`
(the pydantic model of the wire format, so a malformed frame is rejected here
with the reason), then classified into what the listener acts on
(:class:`Heartbeat`, :class:`Pong`, :class:`SocketClosing`) or what the
handlers receive (:class:`Event`). :func:`parse_frame`, on the hot path, checks
the envelope's structure by hand with the same verdicts and reasons as the
model; :func:`parse_envelope` goes through the model itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

__all__ = [
    "CallConversation",
    "CallParticipant",
    "ConversationSummary",
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
    "parse_envelope",
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
    #: What identifies the body's state (the platform codec's ``identity_facts``);
    #: None: the Genesys notification topics' facts, else the whole body.
    facts: Callable[[str, Mapping[str, Any]], Any] | None = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        """Digest of topic and canonical body (computed once, on first use).

        For the agent topics that are also re-read over REST, whose REST bodies
        carry more fields than the events (a UserPresence has ``id``, ``name``,
        ``selfUri``...), the identity covers only the facts both share, so a
        re-read of the same state is the same trigger as the live event.
        """
        if self._identity is None:
            canonical = json.dumps(
                (self.facts or genesys_identity_facts)(self.topic, self.body),
                sort_keys=True,
                separators=(",", ":"),
            )
            digest = hashlib.blake2b(
                f"{self.topic}\n{canonical}".encode(), digest_size=16
            ).hexdigest()
            self._identity = digest
        return self._identity


def genesys_identity_facts(topic: str, body: Mapping[str, Any]) -> Any:
    """What identifies one state of a Genesys agent topic, live or re-read; else the whole body.

    The frames of :func:`parse_frame` (Genesys notifications) use it; other
    platforms' events carry their codec's own (:attr:`Event.facts`).
    """
    if topic.endswith(".presence"):
        definition = body.get("presenceDefinition")
        if isinstance(definition, Mapping):
            presence = definition.get("systemPresence")
            return {
                "presence": presence.lower() if isinstance(presence, str) else definition.get("id"),
                "modifiedDate": body.get("modifiedDate"),
            }
    elif topic.endswith(".routingStatus"):
        status = body.get("routingStatus")
        if isinstance(status, Mapping):
            return {"status": status.get("status"), "startTime": status.get("startTime")}
    elif topic.endswith(".conversations.calls"):
        participants = body.get("participants")
        if isinstance(participants, list):
            legs = sorted(
                (
                    [str(p.get(k)) for k in ("id", "purpose", "state", "disconnectType")]
                    for p in participants
                    if isinstance(p, Mapping)
                ),
            )
            return {"id": body.get("id"), "legs": legs}
    return body


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


def parse_envelope(raw: str | bytes) -> Envelope:
    """Validate one text frame with the :class:`Envelope` model; raise :class:`MalformedFrame`.

    The reference for :func:`parse_frame`, which must accept and reject exactly
    the same frames, with the same reasons.
    """
    try:
        return Envelope.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        raise MalformedFrame(raw, f"{where}: {first['msg']}") from None


# Why the hot path checks the envelope by hand: every frame off every socket
# goes through here. Measured on CPython 3.11 / pydantic 2.14 (AMD EPYC VM),
# ``Envelope.model_validate_json`` takes 5.1 us for a 351-byte presence frame
# and 9.3 us for a 697-byte call frame; ``pydantic_core.from_json`` plus the
# structural checks below take 1.7 and 3.7 us. The checks are the model's, one
# by one and in its field order, with its error messages, so both accept and
# reject the same frames for the same reason (tests/test_events.py holds them
# to that, fixtures and generated frames alike). Frames that use the model's
# field names instead of the wire aliases (``topic_name``, ``event_body``,
# accepted because of ``populate_by_name``) are left to the model itself.
_FIELD_NAMES = ("topic_name", "event_body")
_NOT_OBJECT = "Input should be an object"
_NOT_STRING = "Input should be a valid string"
_ABSENT: Any = object()


def parse_frame(raw: str | bytes, *, channel_id: str = "", received_at: float = 0.0) -> Frame:
    """Parse and classify one text frame; raise :class:`MalformedFrame` with the reason."""
    try:
        data = from_json(raw)
    except ValueError as exc:
        raise MalformedFrame(raw, f"frame: Invalid JSON: {exc}") from None
    except TypeError:  # a str that is not valid unicode (lone surrogates)
        raise MalformedFrame(
            raw,
            "frame: Input should be a valid string, unable to parse raw data as a unicode string",
        ) from None
    if type(data) is not dict:
        raise MalformedFrame(raw, f"frame: {_NOT_OBJECT}")
    if _FIELD_NAMES[0] in data or _FIELD_NAMES[1] in data:
        return classify(parse_envelope(raw), channel_id=channel_id, received_at=received_at)
    topic = data.get("topicName")
    if type(topic) is not str:
        reason = "Field required" if topic is None and "topicName" not in data else _NOT_STRING
        raise MalformedFrame(raw, f"topicName: {reason}")
    if not topic:
        raise MalformedFrame(raw, "topicName: String should have at least 1 character")
    version = data.get("version")
    if version is not None and type(version) is not str:
        raise MalformedFrame(raw, f"version: {_NOT_STRING}")
    body = data.get("eventBody", _ABSENT)
    if body is _ABSENT:
        body = {}
    elif type(body) is not dict:
        raise MalformedFrame(raw, f"eventBody: {_NOT_OBJECT}")
    metadata = data.get("metadata", _ABSENT)
    if metadata is _ABSENT:
        metadata = {}
    elif type(metadata) is not dict:
        raise MalformedFrame(raw, f"metadata: {_NOT_OBJECT}")
    return _classify(topic, version, body, metadata, channel_id, received_at)


def classify(envelope: Envelope, *, channel_id: str = "", received_at: float = 0.0) -> Frame:
    """Tell control frames (heartbeat, pong, closing warning) from events for the handlers."""
    return _classify(
        envelope.topic_name,
        envelope.version,
        envelope.event_body,
        envelope.metadata,
        channel_id,
        received_at,
    )


def _classify(
    topic: str,
    version: str | None,
    body: dict[str, Any],
    metadata: dict[str, Any],
    channel_id: str,
    received_at: float,
) -> Frame:
    if topic == METADATA_TOPIC:
        message = body.get("message")
        if message == "pong":
            return Pong()
        return Heartbeat()
    if topic == SOCKET_CLOSING_TOPIC:
        return SocketClosing(
            channel_id=body.get("channelId"),
            reason=body.get("systemTopicType") or body.get("message"),
        )
    correlation = metadata.get("CorrelationId")
    return Event(
        topic,
        body,
        version,
        correlation if isinstance(correlation, str) else None,
        channel_id,
        received_at,
    )


def topic_user_id(topic: str) -> str | None:
    """The agent a topic is about: ``<namespace>.users.<id>.<what>``, else None.

    Every platform names its agents' topics this way (Genesys
    ``v2.users.{id}.presence``, CXone ``cxone.users.{id}.AgentState``, outdial's
    own ``outdial.users.{id}.ready``), so the listener, the workers and the
    handlers find the agent without knowing the platform.
    """
    parts = topic.split(".", 3)
    if len(parts) >= 4 and parts[1] == "users" and parts[0] and parts[2]:
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
    start_time: str | None = Field(default=None, alias="startTime")
    direction: str | None = None
    user: dict[str, Any] | None = None
    queue: dict[str, Any] | None = None
    # Wrap-up (after-call work): a queue setting, so only calls placed from a queue have it.
    wrapup_required: bool | None = Field(default=None, alias="wrapupRequired")
    wrapup_prompt: str | None = Field(default=None, alias="wrapupPrompt")
    wrapup_timeout_ms: int | None = Field(default=None, alias="wrapupTimeoutMs")
    wrapup_skipped: bool | None = Field(default=None, alias="wrapupSkipped")
    wrapup: dict[str, Any] | None = None
    start_acw_time: str | None = Field(default=None, alias="startAcwTime")
    end_acw_time: str | None = Field(default=None, alias="endAcwTime")
    # Q.850 causes, where the topic carries them (``v2.users.{id}.conversations``).
    disconnect_reasons: list[dict[str, Any]] | None = Field(default=None, alias="disconnectReasons")

    @property
    def user_id(self) -> str | None:
        """The user on this leg (agent legs only)."""
        uid = (self.user or {}).get("id")
        return uid if isinstance(uid, str) else None


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


class MediaCounts(_Body):
    """How many conversations of one kind a user is on (``active``) or wrapping up (``acw``)."""

    active: int = 0
    acw: int = 0


class MediaSummary(_Body):
    """One medium's counts, split into ACD (``contactCenter``) and non-ACD (``enterprise``)."""

    contact_center: MediaCounts = Field(default_factory=MediaCounts, alias="contactCenter")
    enterprise: MediaCounts = Field(default_factory=MediaCounts)

    @property
    def active(self) -> int:
        """Active conversations of this medium, ACD or not."""
        return self.contact_center.active + self.enterprise.active

    @property
    def acw(self) -> int:
        """Conversations of this medium in after-call work, ACD or not."""
        return self.contact_center.acw + self.enterprise.acw


class ConversationSummary(_Body):
    """Body of ``v2.users.{id}.conversationsummary`` (and the ``conversationSummary`` expand).

    Counts every conversation of the user, whoever placed it: inbound, manual,
    another application's, outdial's own.
    """

    user_id: str | None = Field(default=None, alias="userId")
    call: MediaSummary = Field(default_factory=MediaSummary)
    callback: MediaSummary = Field(default_factory=MediaSummary)


def body_as(model: type[_BodyT], body: Mapping[str, Any]) -> _BodyT:
    """Validate an event body into one of the typed models above."""
    return model.model_validate(body)
