"""Genesys notification topics read into :mod:`outdial.domain` terms. Pure.

Topics, per agent (``DESIGN.md``, "The platform contract"):

* ``v2.users.{id}.presence``: what the agent chose (:class:`PresenceSeen`);
* ``v2.users.{id}.routingStatus``: the system's routing status (:class:`RoutingSeen`);
* ``v2.users.{id}.conversationsummary``: calls and callbacks the agent is on or
  wrapping up, of any origin (:class:`WorkloadSeen`);
* ``v2.users.{id}.conversations.calls``: the whole conversation as it is now
  (:class:`CallSeen`).

Call outcomes. A participant's ``disconnectType`` is relative to the leg that
carries it: ``endpoint`` is that leg's own end hanging up, ``peer`` another
participant ending it, ``client`` the Genesys UI, ``timeout`` a dialing
timeout; then ``error``, ``uncallable``, ``transport.failure``, ``system``...
So the customer hanging up reads customer leg ``endpoint`` (agent leg
``peer``), and the agent hanging up reads agent leg ``client`` or
``endpoint`` (customer leg ``peer``). The customer leg is the one with purpose
``customer`` (ACD calls) or ``external`` (non-ACD ones); the agent leg
``agent`` or ``user``. A call that never connected is, by the customer leg:

- ``timeout``: nobody answered (no answer);
- ``endpoint``: the far end refused it or was busy (busy);
- ``peer`` or ``client``: the agent ended it while it still rang, abandoned
  (no answer: the contact did nothing wrong, and was not busy);
- anything else, or nothing: failed.

Where the leg carries Q.850 causes (``disconnectReasons``, on the
``v2.users.{id}.conversations`` topic), they are the precise answer and win:
17 user busy and 21 call rejected are busy, 18 no user responding and 19 no
answer are no answer, 1 unallocated number and 28 invalid number format are
failed; 16 normal clearing (and any other cause) leaves it to the disconnect
type. Who hung up (:attr:`CallUpdate.ended_by`) is read the same way, for logs.

Agent unavailable. A call placed on behalf of an agent rings the agent's own
station first and dials the customer only once that leg is up. When the agent
leg ends before that, the customer was never dialed: it is read off a snapshot
whose agent leg has ended while either there is no customer leg at all, or the
customer leg never connected, has no disconnect type of its own (or is
``terminated``) and the agent leg ended with ``timeout`` or ``error`` (the
station not answered, or not there).

Wrap-up. The agent's own leg is pending wrap-up while it required it
(``wrapupRequired``, or ACW started) and neither ``endAcwTime``, a ``wrapup``,
``wrapupSkipped`` nor the ``terminated`` state says it is over.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from outdial.domain import (
    AgentObservation,
    CallLeg,
    CallSeen,
    CallState,
    CallUpdate,
    Decoded,
    EndedBy,
    Outcome,
    PresenceSeen,
    RoutingSeen,
    WorkloadSeen,
)
from outdial.events import (
    CallConversation,
    CallParticipant,
    ConversationSummary,
    Event,
    Presence,
    RoutingStatus,
    body_as,
    genesys_identity_facts,
    topic_user_id,
)
from outdial.platforms.base import MalformedEvent
from outdial.timestamps import parse_time

__all__ = [
    "CALLS_SUFFIX",
    "GenesysCodec",
    "call_leg_from",
    "calls_topic",
    "decode_with_models",
    "ended_by",
    "presence_fields_fast",
    "presence_seen",
    "presence_seen_fast",
    "q850_cause",
    "routing_seen_fast",
    "unanswered_outcome",
    "update_from_conversation",
    "workload_seen",
    "workload_seen_fast",
]

CALLS_SUFFIX = ".conversations.calls"
_PRESENCE = ".presence"
_ROUTING = ".routingStatus"
_SUMMARY = ".conversationsummary"
#: The topics readiness reads, per agent.
_AGENT_SUFFIXES = (_PRESENCE, _ROUTING, _SUMMARY, CALLS_SUFFIX)

# Participant states; anything unlisted (converting, uploading, ...) tells us
# nothing about progress and maps to DIALING, which advance() treats as "no
# news" once the call has moved on.
_PARTICIPANT_STATE = {
    "dialing": CallState.DIALING,
    "contacting": CallState.DIALING,
    "alerting": CallState.RINGING,
    "offering": CallState.RINGING,
    "connected": CallState.CONNECTED,
    "parked": CallState.CONNECTED,
    "disconnected": CallState.ENDED,
    "terminated": CallState.ENDED,
}

# A never-connected call by its customer leg's own disconnect type; the rest failed.
_NOT_ANSWERED = {
    "timeout": Outcome.NO_ANSWER,  # rang out
    "endpoint": Outcome.BUSY,  # the far end refused it, or was busy
    "peer": Outcome.NO_ANSWER,  # the agent ended it while it rang: abandoned
    "client": Outcome.NO_ANSWER,  # ended from the Genesys UI while it rang: abandoned too
}

# Q.850 causes precise enough to decide a never-connected call (16, normal clearing,
# and causes not listed leave it to the disconnect type).
_Q850 = {
    1: Outcome.FAILED,  # unallocated (unassigned) number
    17: Outcome.BUSY,  # user busy
    18: Outcome.NO_ANSWER,  # no user responding
    19: Outcome.NO_ANSWER,  # no answer from user (user alerted)
    21: Outcome.BUSY,  # call rejected
    28: Outcome.FAILED,  # invalid number format
}

# A leg's own end hung up: the UI's hang-up button or the phone itself.
_HUNG_UP_HERE = {"client", "endpoint"}
_ENDED_LEG = frozenset({"disconnected", "terminated"})
_AGENT_PURPOSES = frozenset({"agent", "user"})
# How an agent leg ends when it never came up: its station rang unanswered, or the
# platform could not reach it. Anything else (client, peer) is an agent leg that
# was up and hung up, which says nothing about the agent's availability.
_AGENT_LEG_FAILED = {"timeout", "error"}


def calls_topic(user_id: str) -> str:
    """The conversations-calls topic of one agent."""
    return f"v2.users.{user_id}{CALLS_SUFFIX}"


def q850_cause(participant: CallParticipant) -> int | None:
    """The first Q.850 cause code among a leg's ``disconnectReasons``, or None."""
    for reason in participant.disconnect_reasons or ():
        kind = reason.get("type")
        code = reason.get("code")
        if not isinstance(kind, str) or kind.lower() != "q850":
            continue
        if isinstance(code, int) and not isinstance(code, bool):
            return code
        if isinstance(code, str) and code.strip().isdigit():
            return int(code)
    return None


def ended_by(customer: CallParticipant | None, agent: CallParticipant | None) -> EndedBy | None:
    """Who hung up, from both legs' disconnect types (each relative to its own leg).

    The customer: customer leg ``endpoint``. The agent: agent leg ``client`` or
    ``endpoint`` while the customer leg says another participant (``peer``) or
    nothing yet. Legs that contradict each other, or say neither, give None.
    """
    theirs = customer.disconnect_type if customer is not None else None
    ours = agent.disconnect_type if agent is not None else None
    if theirs == "endpoint" and ours not in _HUNG_UP_HERE:
        return "customer"
    if ours in _HUNG_UP_HERE and theirs in (None, "peer"):
        return "agent"
    return None


def unanswered_outcome(disconnect_type: str | None, q850: int | None) -> Outcome:
    """What a never-connected call is, by its Q.850 cause where telling, else its type."""
    if q850 is not None and q850 in _Q850:
        return _Q850[q850]
    return _NOT_ANSWERED.get(disconnect_type or "", Outcome.FAILED)


def _first_agent_leg(body: CallConversation) -> CallParticipant | None:
    return next((p for p in body.participants if p.purpose in _AGENT_PURPOSES), None)


def update_from_conversation(body: CallConversation) -> CallUpdate:
    """Read a conversation into a :class:`CallUpdate`: the customer leg's progress, or
    an ended agent leg whose customer was never dialed (agent unavailable)."""
    customer = body.customer()
    agent = _first_agent_leg(body)
    agent_ended = agent is not None and (agent.state or "") in _ENDED_LEG
    if customer is None:
        if agent is not None and agent_ended:
            # The agent leg ended and the customer was never added: never dialed.
            return CallUpdate(
                conversation_id=body.id,
                state=CallState.ENDED,
                unanswered=unanswered_outcome(agent.disconnect_type, None),
                disconnect_type=agent.disconnect_type,
                agent_unavailable=True,
            )
        # The customer leg is not there yet (the agent leg comes first): no progress.
        return CallUpdate(conversation_id=body.id, state=CallState.DIALING)
    state = _PARTICIPANT_STATE.get(customer.state or "", CallState.DIALING)
    connected = state is CallState.CONNECTED or customer.connected_time is not None
    if (
        agent is not None
        and agent_ended
        and state is CallState.ENDED
        and not connected
        and (customer.disconnect_type is None or customer.state == "terminated")
        and agent.disconnect_type in _AGENT_LEG_FAILED
    ):
        # A customer leg that was listed but never dialed: it ended with no reason of
        # its own, because the agent leg failed first.
        return CallUpdate(
            conversation_id=body.id,
            state=CallState.ENDED,
            unanswered=unanswered_outcome(agent.disconnect_type, None),
            disconnect_type=agent.disconnect_type,
            agent_unavailable=True,
        )
    ended = state is CallState.ENDED
    q850 = q850_cause(customer)
    return CallUpdate(
        conversation_id=body.id,
        state=state,
        connected=connected,
        unanswered=unanswered_outcome(customer.disconnect_type, q850) if ended else None,
        disconnect_type=customer.disconnect_type,
        q850=q850,
        ended_by=ended_by(customer, agent) if ended else None,
    )


def _agent_leg(conversation: CallConversation, user_id: str) -> CallParticipant | None:
    legs = [p for p in conversation.participants if p.user_id == user_id]
    if not legs:
        legs = [p for p in conversation.participants if p.purpose in _AGENT_PURPOSES]
    if not legs:
        return None
    # A transfer or a consult can give the agent several legs: an active one wins.
    for leg in legs:
        if (leg.state or "") not in _ENDED_LEG:
            return leg
    return legs[-1]


def call_leg_from(
    conversation: CallConversation, user_id: str, observed: datetime
) -> CallLeg | None:
    """What a conversation says of the agent's own leg; None if it has none.

    The time the agent was done is the platform's (end of the leg, or of its
    ACW), but never later than ``observed``: a platform clock ahead of ours
    must not stretch ``after_call``.
    """
    leg = _agent_leg(conversation, user_id)
    if leg is None:
        return None
    state = leg.state or ""
    if state not in _ENDED_LEG:
        return CallLeg(conversation.id)
    required = bool(leg.wrapup_required) or leg.start_acw_time is not None
    finished = (
        leg.end_acw_time is not None
        or leg.wrapup is not None
        or bool(leg.wrapup_skipped)
        or state == "terminated"
    )
    if required and not finished:
        return CallLeg(conversation.id, ended=True, wrapup_pending=True)
    times = [t for t in (parse_time(leg.end_time), parse_time(leg.end_acw_time)) if t]
    done_at = min(max(times), observed) if times else observed
    return CallLeg(conversation.id, ended=True, done_at=done_at)


def presence_seen(presence: Presence) -> PresenceSeen:
    """A presence event (or a presence re-read over REST: same fields) as a domain fact."""
    definition = presence.presence_definition
    modified = parse_time(presence.modified_date)
    return PresenceSeen(
        name=definition.system_presence,
        definition_id=definition.id,
        # Normalized, so a re-read that writes the same instant differently agrees.
        modified=modified.isoformat() if modified else presence.modified_date,
    )


def workload_seen(summary: ConversationSummary) -> WorkloadSeen:
    """A conversation summary as a domain fact: calls and callbacks, active and in ACW."""
    return WorkloadSeen(
        active=summary.call.active + summary.callback.active,
        acw=summary.call.acw + summary.callback.acw,
    )


def _call_seen(conversation: CallConversation, user_id: str | None, observed: datetime) -> CallSeen:
    customer = conversation.customer()
    leg = call_leg_from(conversation, user_id, observed) if user_id is not None else None
    direction = (customer.direction or "outbound") if customer is not None else "outbound"
    return CallSeen(
        update=update_from_conversation(conversation),
        leg=leg,
        number=customer.address if customer is not None else None,
        outbound=direction.lower() == "outbound",
        started_at=parse_time(customer.start_time) if customer is not None else None,
    )


class GenesysCodec:
    """The :class:`~outdial.platforms.base.Codec` of Genesys Cloud's notification topics."""

    has_routing_status = True

    def agent_topics(self, user_id: str) -> frozenset[str]:
        """Presence, routing status, conversation summary and calls of one agent."""
        return frozenset(f"v2.users.{user_id}{suffix}" for suffix in _AGENT_SUFFIXES)

    def calls_topic(self, user_id: str) -> str:
        """``v2.users.{id}.conversations.calls``."""
        return calls_topic(user_id)

    def is_calls_topic(self, topic: str) -> bool:
        """True for ``v2.users.{id}.conversations.calls``."""
        return topic.startswith("v2.users.") and topic.endswith(CALLS_SUFFIX)

    def identity_facts(self, topic: str, body: Mapping[str, Any]) -> Any:
        """Presence by name and ``modifiedDate``, routing by status and start, calls by legs."""
        return genesys_identity_facts(topic, body)

    def decode(self, event: Event, observed: datetime) -> Decoded:
        """What a Genesys event says; raises MalformedEvent naming the first bad field.

        Presence, routing status and conversation summary bodies of the usual
        shape are read by hand (:func:`presence_seen_fast` and its siblings);
        anything else goes through the models (:func:`decode_with_models`), which
        decide every body the hand-written checks leave to them.
        """
        topic = event.topic
        seen: AgentObservation | None = None
        if topic.endswith(_PRESENCE):
            seen = presence_seen_fast(event.body)
        elif topic.endswith(_ROUTING):
            seen = routing_seen_fast(event.body)
        elif topic.endswith(_SUMMARY):
            seen = workload_seen_fast(event.body)
        if seen is not None:
            return Decoded(observations=(seen,))
        return decode_with_models(event, observed)


def decode_with_models(event: Event, observed: datetime) -> Decoded:
    """:meth:`GenesysCodec.decode` through the pydantic models alone: the reference.

    The fast path must agree with it on every body (the same fact, or the same
    :class:`MalformedEvent`); tests and ``bench/decode.py`` call it directly.
    """
    topic = event.topic
    try:
        if topic.startswith("v2.users.") and topic.endswith(CALLS_SUFFIX):
            conversation = body_as(CallConversation, event.body)
            return Decoded(call=_call_seen(conversation, topic_user_id(topic), observed))
        seen: AgentObservation
        if topic.endswith(_PRESENCE):
            seen = presence_seen(body_as(Presence, event.body))
        elif topic.endswith(_ROUTING):
            seen = RoutingSeen(body_as(RoutingStatus, event.body).routing_status.status.upper())
        elif topic.endswith(_SUMMARY):
            seen = workload_seen(body_as(ConversationSummary, event.body))
        else:
            return Decoded()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise MalformedEvent(where, first["msg"]) from None
    return Decoded(observations=(seen,))


# Why the agent bodies are read by hand: presence events are 99 % of the traffic
# (10,000 agents, 7,000 events/s), and validating each body with its model was
# ~10 % of the event loop's CPU. Measured with bench/decode.py (CPython 3.11 /
# pydantic 2.14, AMD EPYC VM, medians of 15 runs of 20,000 events), a whole
# ``decode`` takes, hand-written against the models: presence 3.0 us against
# 5.1 (0.59), routing status 1.6 against 2.9 (0.57), conversation summary 4.6
# against 7.7 (0.60). Of a presence's 5.1 us only ~1.8 were ``model_validate``;
# ~1 us more was ``isoformat`` of ``modifiedDate`` (see _normalized_time).
#
# The rule that keeps both paths identical: the hand-written reader only ever
# *accepts*. It returns a fact for a body whose every field the model reads is
# of the exact type the model takes as is (a ``str``, ``None`` where the field
# is optional, an ``int`` for counts, a plain ``dict`` for nested objects, all
# keys ``str``), and None for anything else: a missing required field, a
# ``bool`` or ``"3"`` or ``3.0`` for a count (lax mode coerces those), ``bytes``
# for a string, a ``str`` subclass, a non-dict mapping, or any of the model's
# field names instead of the wire aliases (``populate_by_name`` reads the name
# when the alias is absent; beside the alias it is an extra field). None means
# "ask the model", which then accepts, coerces or rejects exactly as before,
# with its own error. Extra fields are ignored by both (``extra="allow"`` keeps
# them, nothing reads them).
# tests/platforms/test_genesys_decode_fast.py holds the two paths to that.


def _str_keys(data: dict[Any, Any]) -> bool:
    # The models reject a non-str key ("Keys should be strings"); JSON never has one,
    # and str.join checks every key at C speed.
    try:
        "".join(data)
    except TypeError:
        return False
    return True


def presence_fields_fast(body: Any) -> tuple[str | None, str | None, str | None] | None:
    """System presence, definition id and ``modifiedDate`` of a presence body of the usual
    shape, which the :class:`Presence` model would accept as is; None for any other body.
    """
    if type(body) is not dict or "presence_definition" in body or "modified_date" in body:
        return None
    definition = body.get("presenceDefinition")
    if type(definition) is not dict or "system_presence" in definition:
        return None
    name = definition.get("systemPresence")
    definition_id = definition.get("id")
    date = body.get("modifiedDate")
    if (
        (name is not None and type(name) is not str)
        or (definition_id is not None and type(definition_id) is not str)
        or (date is not None and type(date) is not str)
        or not _str_keys(body)
        or not _str_keys(definition)
    ):
        return None
    return name, definition_id, date


def presence_seen_fast(body: Any) -> PresenceSeen | None:
    """A ``v2.users.{id}.presence`` body of the usual shape as :func:`presence_seen` reads it.

    None when the body is anything else: then the :class:`Presence` model decides.
    """
    fields = presence_fields_fast(body)
    if fields is None:
        return None
    name, definition_id, date = fields
    return PresenceSeen(name=name, definition_id=definition_id, modified=_normalized_time(date))


# The platform writes its times as ``2026-11-23T09:16:41.010Z``. For that form
# ``parse_time(t).isoformat()`` (what presence_seen stores) is the same digits with
# the fraction in microseconds (none when it is .000) and ``+00:00``: built as a
# string here, because ``isoformat`` alone cost ~1 us, a third of a fast presence
# decode. ``parse_time`` still decides whether the time is a real one (no month 13,
# no 24:00), and any other form goes the way presence_seen takes.
_PLATFORM_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


def _normalized_time(date: str | None) -> str | None:
    if date is not None and _PLATFORM_TIME.fullmatch(date) and parse_time(date) is not None:
        return date[:19] + "+00:00" if date.endswith(".000Z") else date[:23] + "000+00:00"
    modified = parse_time(date)
    return modified.isoformat() if modified else date


def routing_seen_fast(body: Any) -> RoutingSeen | None:
    """A ``v2.users.{id}.routingStatus`` body of the usual shape as a :class:`RoutingSeen`.

    None when the body is anything else: then the :class:`RoutingStatus` model decides.
    """
    if type(body) is not dict or "routing_status" in body:
        return None
    value = body.get("routingStatus")
    if type(value) is not dict or "start_time" in value:
        return None
    status = value.get("status")
    start = value.get("startTime")
    if (
        type(status) is not str
        or (start is not None and type(start) is not str)
        or not _str_keys(body)
        or not _str_keys(value)
    ):
        return None
    return RoutingSeen(status.upper())


_MEDIA = ("call", "callback")
_PARTS = ("contactCenter", "enterprise")
_ABSENT: Any = object()


def workload_seen_fast(body: Any) -> WorkloadSeen | None:
    """A ``v2.users.{id}.conversationsummary`` body of the usual shape as :func:`workload_seen`
    reads it (absent media and counts are 0, as the model's defaults).

    None when the body is anything else: then the :class:`ConversationSummary` model decides.
    """
    if type(body) is not dict or "user_id" in body:
        return None
    user_id = body.get("userId")
    if (user_id is not None and type(user_id) is not str) or not _str_keys(body):
        return None
    active = acw = 0
    for medium in _MEDIA:
        summary = body.get(medium, _ABSENT)
        if summary is _ABSENT:
            continue
        if type(summary) is not dict or "contact_center" in summary or not _str_keys(summary):
            return None
        for part in _PARTS:
            counts = summary.get(part, _ABSENT)
            if counts is _ABSENT:
                continue
            if type(counts) is not dict:
                return None
            on = counts.get("active", 0)
            after = counts.get("acw", 0)
            if type(on) is not int or type(after) is not int or not _str_keys(counts):
                return None
            active += on
            acw += after
    return WorkloadSeen(active=active, acw=acw)
