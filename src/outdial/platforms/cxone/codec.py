"""CXone agent-session events read into :mod:`outdial.domain` terms.

Every event an agent's session carries becomes an :class:`~outdial.events.Event`
on ``cxone.users.{agentId}.{Type}`` (unknown types too, on their own topic),
so a rule can name any type and readiness reads two:

* ``AgentState``: the agent's state (:class:`~outdial.domain.PresenceSeen`)
  and whether they are on a contact or in after-call work
  (:class:`~outdial.domain.WorkloadSeen`). CXone has no separate routing
  status, so :attr:`CxoneCodec.has_routing_status` is False.
* ``CallContactEvent``: one leg of a call as it is now
  (:class:`~outdial.domain.CallSeen`). A call is over for the agent only at
  ``Disconnected`` with ``FinalState=True``; ``Disconnected`` with
  ``FinalState=False`` is after-call work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from outdial.domain import (
    CallLeg,
    CallSeen,
    CallState,
    CallUpdate,
    Decoded,
    Outcome,
    PresenceSeen,
    WorkloadSeen,
)
from outdial.events import Event
from outdial.platforms.base import MalformedEvent
from outdial.platforms.cxone import wire

__all__ = [
    "AGENT_STATE",
    "CALL_CONTACT",
    "DISCONNECT_OUTCOMES",
    "TOPIC_PREFIX",
    "CxoneCodec",
    "call_state",
    "topic_agent",
    "topic_for",
    "unanswered_outcome",
]

#: Every CXone topic starts so: ``cxone.users.{agentId}.{Type}``.
TOPIC_PREFIX = "cxone.users."
AGENT_STATE = "AgentState"
CALL_CONTACT = "CallContactEvent"

_STATES: dict[str, CallState] = {
    "Dialing": CallState.DIALING,
    "NaturalCallDialing": CallState.DIALING,
    "Ringing": CallState.RINGING,
    "NaturalCallRinging": CallState.RINGING,
    "Incoming": CallState.RINGING,
    "Active": CallState.CONNECTED,
    "Holding": CallState.CONNECTED,
    "Masking": CallState.CONNECTED,
    "Joined": CallState.CONNECTED,
    # Answering-machine detection runs on an answered call.
    "NaturalCallAMD": CallState.CONNECTED,
    "Disconnected": CallState.ENDED,
    "CallBackDisconnected": CallState.ENDED,
}
_ENDED_STATUSES = frozenset(s for s, state in _STATES.items() if state is CallState.ENDED)

#: What a ``DisconnectCode`` says of a call that never connected. NICE publishes no list
#: of values, so only codes whose name (or Q.850 cause) says it outright are read;
#: anything else is None, which the call tracker counts as a failed call. Keys are
#: compared lower-cased with everything but letters and digits removed.
DISCONNECT_OUTCOMES: dict[str, Outcome] = {
    "busy": Outcome.BUSY,
    "userbusy": Outcome.BUSY,
    "noanswer": Outcome.NO_ANSWER,
    "ringnoanswer": Outcome.NO_ANSWER,
    "noresponse": Outcome.NO_ANSWER,
    "unanswered": Outcome.NO_ANSWER,
    # Q.850 causes, should the platform write them as the code.
    "17": Outcome.BUSY,
    "18": Outcome.NO_ANSWER,
    "19": Outcome.NO_ANSWER,
}
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def topic_for(agent_id: str, event_type: str) -> str:
    """The topic an event of ``event_type`` for ``agent_id`` is delivered on."""
    return f"{TOPIC_PREFIX}{agent_id}.{event_type}"


def topic_agent(topic: str) -> str | None:
    """The agent id in a ``cxone.users.{agentId}.{Type}`` topic, else None."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    agent, dot, rest = topic[len(TOPIC_PREFIX) :].partition(".")
    return agent if agent and dot and rest else None


def call_state(status: str) -> CallState:
    """The dialer's state for a ``CallContactEvent`` ``Status``.

    An unknown status is the earliest state: the call tracker never moves a call
    backwards, so reading too little is harmless where reading too much is not.
    """
    return _STATES.get(status, CallState.DIALING)


def unanswered_outcome(disconnect_code: str) -> Outcome | None:
    """The outcome a ``DisconnectCode`` names for an unanswered call (None: it tells nothing)."""
    return DISCONNECT_OUTCOMES.get(_NOT_ALNUM.sub("", disconnect_code.lower()))


def _q850(disconnect_code: str) -> int | None:
    code = disconnect_code.strip()
    return int(code) if code.isdigit() and len(code) <= 3 else None


def _normalized_time(value: str) -> str | None:
    parsed = wire.parse_time(value)
    return wire.format_time(parsed) if parsed is not None else None


def _problem(exc: ValidationError) -> MalformedEvent:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(body)"
    return MalformedEvent(where, first["msg"])


class CxoneCodec:
    """The :class:`~outdial.platforms.base.Codec` of CXone agent-session events."""

    #: CXone has agent states only; readiness must not wait for a routing status.
    has_routing_status = False

    def agent_topics(self, user_id: str) -> frozenset[str]:
        """``AgentState`` and ``CallContactEvent`` of the agent: all readiness reads."""
        return frozenset({topic_for(user_id, AGENT_STATE), topic_for(user_id, CALL_CONTACT)})

    def calls_topic(self, user_id: str) -> str:
        """``cxone.users.{id}.CallContactEvent``."""
        return topic_for(user_id, CALL_CONTACT)

    def is_calls_topic(self, topic: str) -> bool:
        """True for an agent's ``CallContactEvent`` topic."""
        return topic_agent(topic) is not None and topic.endswith(f".{CALL_CONTACT}")

    def identity_facts(self, topic: str, body: Mapping[str, Any]) -> Any:
        """What identifies a state, live or re-read: a REST re-read lacks fields the live
        event carries (``IISHost``, ``VCHost``, ...), so only the facts both share count."""
        if topic.endswith(f".{AGENT_STATE}"):
            since = wire.parse_time(body.get("StartTimeUTC"))
            return {
                "CurrentState": body.get("CurrentState"),
                # The same instant however it is written (a REST date, an event's time).
                "StartTimeUTC": wire.format_time(since) if since else body.get("StartTimeUTC"),
                "IsAcw": wire.is_true(body.get("IsAcw")),
            }
        if topic.endswith(f".{CALL_CONTACT}"):
            return {k: body.get(k) for k in ("ContactID", "Status", "FinalState")}
        return body

    def decode(self, event: Event, observed: datetime) -> Decoded:
        """What an ``AgentState`` or ``CallContactEvent`` says; nothing for any other type."""
        if topic_agent(event.topic) is None:
            return Decoded()
        kind = event.topic.rsplit(".", 1)[1]
        if kind == AGENT_STATE:
            return self._agent_state(event.body)
        if kind == CALL_CONTACT:
            return Decoded(call=self.call_seen(event.body, observed))
        return Decoded()

    @staticmethod
    def _agent_state(body: Mapping[str, Any]) -> Decoded:
        try:
            state = wire.AgentStateEvent.model_validate(body)
        except ValidationError as exc:
            raise _problem(exc) from None
        presence = PresenceSeen(
            name=state.current_state, modified=_normalized_time(state.start_time_utc)
        )
        workload = WorkloadSeen(
            active=1 if state.current_state in wire.ACTIVE_AGENT_STATES else 0,
            acw=1 if state.in_acw else 0,
        )
        return Decoded(observations=(presence, workload))

    @staticmethod
    def call_seen(body: Mapping[str, Any], observed: datetime) -> CallSeen:
        """One ``CallContactEvent`` body as a :class:`CallSeen`; raises :class:`MalformedEvent`."""
        try:
            contact = wire.CallContactEvent.model_validate(body)
        except ValidationError as exc:
            raise _problem(exc) from None
        if not contact.contact_id.strip():
            raise MalformedEvent("ContactID", "String should have at least 1 character")
        state = call_state(contact.status)
        code = contact.disconnect_code.strip()
        update = CallUpdate(
            conversation_id=contact.contact_id,
            state=state,
            connected=state is CallState.CONNECTED,
            unanswered=unanswered_outcome(code) if code else None,
            disconnect_type=code or None,
            q850=_q850(code),
        )
        return CallSeen(
            update=update,
            leg=_leg(contact, observed),
            number=(contact.ani if contact.inbound else contact.dnis) or None,
            outbound=not contact.inbound,
            started_at=wire.parse_time(contact.start_time_utc),
        )


def _leg(contact: wire.CallContactEvent, observed: datetime) -> CallLeg:
    """The agent's side: over at ``Disconnected``, free once ``FinalState`` is True."""
    if contact.status not in _ENDED_STATUSES:
        return CallLeg(contact.contact_id)
    if not contact.final:
        return CallLeg(contact.contact_id, ended=True, wrapup_pending=True)
    changed = wire.parse_time(contact.last_state_change_time_utc)
    # Never later than now: a platform clock ahead of ours must not hold the agent back.
    done_at = observed if changed is None or changed > observed else changed
    return CallLeg(contact.contact_id, ended=True, done_at=done_at)
