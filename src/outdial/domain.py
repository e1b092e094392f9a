"""What handlers, pacer and store speak, whatever the platform: agents, calls, dials.

Platform adapters (:mod:`outdial.platforms`) translate their wire into these
values and back; nothing here knows a topic name, a participant body or an
agent session. The handlers' pure cores (readiness, the call state machine,
the guards) are written against this module only.

* What an event says of an **agent**: :class:`PresenceSeen` (what the agent
  chose, and since when), :class:`RoutingSeen` (the platform's routing status,
  where it has one), :class:`WorkloadSeen` (how many calls the agent is on or
  wrapping up, of any origin).
* What an event says of a **call**: :class:`CallSeen`, with the call's progress
  (:class:`CallUpdate`, fed to :func:`outdial.handlers.calls.advance`), the
  agent's own leg (:class:`CallLeg`, for readiness) and the customer's side
  (the number and direction, to recognise a dial of ours before its answer).
* **Dials**: :class:`DialRequest` out, :class:`PlacedCall` back, and
  :class:`OutboundCall` as a platform's history lists a call (to reconcile a
  dial whose answer never came).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

__all__ = [
    "AgentObservation",
    "CallLeg",
    "CallSeen",
    "CallState",
    "CallUpdate",
    "Decoded",
    "DialRequest",
    "EndedBy",
    "OutboundCall",
    "Outcome",
    "PlacedCall",
    "PresenceSeen",
    "RoutingSeen",
    "WorkloadSeen",
]

#: Who hung up an ended call, when the platform says so.
EndedBy = Literal["customer", "agent"]


class CallState(StrEnum):
    """Where a call is, from the dialer's point of view (values are what the store keeps)."""

    DIALING = "dialing"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


class Outcome(StrEnum):
    """How an ended call went (values are what the store keeps)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    AGENT_UNAVAILABLE = "agent_unavailable"


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """What one event (or re-read) says about a call's progress.

    ``unanswered`` is the outcome should the call end without ever having
    connected, as the platform's disconnect details tell it (None: they tell
    nothing, which is a failed call). ``agent_unavailable``: the agent's own
    leg ended before the customer was dialed (no attempt is counted).
    ``disconnect_type``, ``q850`` and ``ended_by`` are the platform's details,
    for logs only.
    """

    conversation_id: str
    state: CallState
    connected: bool = False
    unanswered: Outcome | None = None
    agent_unavailable: bool = False
    disconnect_type: str | None = None
    q850: int | None = None
    ended_by: EndedBy | None = None


@dataclass(frozen=True, slots=True)
class CallLeg:
    """One of the agent's calls, as the agent's own leg tells it.

    ``done_at`` is when the agent was free of the call (its leg ended and its
    wrap-up, if any, finished); None while the call or its wrap-up goes on.
    """

    conversation_id: str
    ended: bool = False
    wrapup_pending: bool = False
    done_at: datetime | None = None

    @property
    def done(self) -> bool:
        """True once the agent is free of this call."""
        return self.done_at is not None


@dataclass(frozen=True, slots=True)
class PresenceSeen:
    """The agent's presence (what the agent chose): its name, its id, since when.

    ``modified`` is the platform's own timestamp of the choice, normalized (ISO
    8601), so that the same presence seen live and re-read is the same fact.
    """

    name: str | None
    definition_id: str | None = None
    modified: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingSeen:
    """The platform's routing status of the agent (``IDLE``, ``OFF_QUEUE``, ...)."""

    status: str


@dataclass(frozen=True, slots=True)
class WorkloadSeen:
    """How many calls the agent is on (``active``) and wrapping up (``acw``), any origin."""

    active: int
    acw: int


#: What an event says of an agent's readiness inputs.
AgentObservation = PresenceSeen | RoutingSeen | WorkloadSeen


@dataclass(frozen=True, slots=True)
class CallSeen:
    """What one call event says: progress, the agent's leg, and the customer's side.

    ``leg`` is None when the event says nothing of the agent's own leg.
    ``number`` is the customer's number as the platform writes it, ``outbound``
    whether the agent called out, ``started_at`` the platform's start time.
    """

    update: CallUpdate
    leg: CallLeg | None = None
    number: str | None = None
    outbound: bool = True
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """Everything one event says, in domain terms (nothing: an event no rule reads)."""

    observations: tuple[AgentObservation, ...] = ()
    call: CallSeen | None = None


@dataclass(frozen=True, slots=True)
class DialRequest:
    """A platform-neutral outbound call on behalf of an agent."""

    user_id: str
    phone_number: str
    caller_id: str | None = None
    caller_id_name: str | None = None
    queue_id: str | None = None
    label: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """The platform accepted a dial; ``conversation_id`` names the call from now on."""

    conversation_id: str


@dataclass(frozen=True, slots=True)
class OutboundCall:
    """An outbound call an agent made, as the platform's history lists it.

    What reconciling an ambiguous dial needs: which call (``conversation_id``),
    when it started (on the platform's clock), and the number it dialed exactly
    as the platform reports it (``tel:+44...``; the dialer normalizes it).
    ``ended_at`` is None while the call is still going.
    """

    conversation_id: str
    started_at: datetime
    phone_number: str | None
    ended_at: datetime | None = None
