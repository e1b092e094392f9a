"""The call state machine: pure, fed by ``conversations.calls`` events.

A conversation event carries the whole call as it is now, and events can arrive
late or twice (a reconnect overlap, a REST re-read after a gap). So
:func:`advance` only moves forward: DIALING -> RINGING -> CONNECTED -> ENDED,
and ENDED is final. The outcome is decided once, when the call ends.

Outcomes, as the platform defines them. A participant's ``disconnectType`` is
relative to the leg that carries it: ``endpoint`` is that leg's own end
hanging up, ``peer`` another participant ending it, ``client`` the Genesys UI,
``timeout`` a dialing timeout; then ``error``, ``uncallable``,
``transport.failure``, ``system``... So the customer hanging up reads customer
leg ``endpoint`` (agent leg ``peer``), and the agent hanging up reads agent leg
``client`` or ``endpoint`` (customer leg ``peer``). The customer leg is the one
with purpose ``customer`` (ACD calls) or ``external`` (non-ACD ones); the agent
leg ``agent`` or ``user``. An ended call that ever connected was answered.
One that never did, by the customer leg:

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
leg ends before that, the customer was never dialed and the outcome is
AGENT_UNAVAILABLE (not the contact's fault: no attempt is counted). It is read
off a snapshot whose agent leg has ended while either there is no customer leg
at all, or the customer leg never connected, has no disconnect type of its own
(or is ``terminated``) and the agent leg ended with ``timeout`` or ``error``
(the station not answered, or not there). A call already seen ringing at the
customer was dialed, so it keeps the customer leg's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from outdial.events import CallConversation, CallParticipant

__all__ = [
    "Call",
    "CallState",
    "CallUpdate",
    "EndedBy",
    "Outcome",
    "advance",
    "ended_by",
    "outcome_for",
    "q850_cause",
    "update_from_conversation",
]

#: Who hung up an ended call, when its legs say so.
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


_RANK = {CallState.DIALING: 0, CallState.RINGING: 1, CallState.CONNECTED: 2, CallState.ENDED: 3}

# Platform participant states; anything unlisted (converting, uploading, ...)
# tells us nothing about progress and maps to DIALING, which advance() treats
# as "no news" once the call has moved on.
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

_ENDED_LEG = {"disconnected", "terminated"}
_AGENT_PURPOSES = {"agent", "user"}
# How an agent leg ends when it never came up: its station rang unanswered, or the
# platform could not reach it. Anything else (client, peer) is an agent leg that
# was up and hung up, which says nothing about the agent's availability.
_AGENT_LEG_FAILED = {"timeout", "error"}


@dataclass(frozen=True, slots=True)
class Call:
    """A call outdial placed, as the state machine sees it."""

    conversation_id: str
    user_id: str
    phone_number: str
    contact_id: int | None = None
    state: CallState = CallState.DIALING
    outcome: Outcome | None = None

    @property
    def ended(self) -> bool:
        """True once the call reached ENDED (final)."""
        return self.state is CallState.ENDED


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """What one conversation snapshot says about the call.

    ``disconnect_type`` is the customer leg's, or the agent leg's when
    ``agent_unavailable`` (the agent leg ended before the customer was dialed).
    ``q850`` is the customer leg's Q.850 cause where the event carries one;
    ``ended_by`` says who hung up, once the call ended and its legs tell.
    """

    conversation_id: str
    state: CallState
    connected: bool = False
    disconnect_type: str | None = None
    agent_unavailable: bool = False
    q850: int | None = None
    ended_by: EndedBy | None = None


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


def update_from_conversation(body: CallConversation) -> CallUpdate:
    """Read a conversation event into a :class:`CallUpdate`: the customer leg's progress,
    or an ended agent leg whose customer was never dialed (agent unavailable)."""
    customer = body.customer()
    agent = _agent_leg(body)
    agent_ended = agent is not None and (agent.state or "") in _ENDED_LEG
    if customer is None:
        if agent is not None and agent_ended:
            # The agent leg ended and the customer was never added: never dialed.
            return CallUpdate(
                conversation_id=body.id,
                state=CallState.ENDED,
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
            disconnect_type=agent.disconnect_type,
            agent_unavailable=True,
        )
    ended = state is CallState.ENDED
    return CallUpdate(
        conversation_id=body.id,
        state=state,
        connected=connected,
        disconnect_type=customer.disconnect_type,
        q850=q850_cause(customer),
        ended_by=ended_by(customer, agent) if ended else None,
    )


def _agent_leg(body: CallConversation) -> CallParticipant | None:
    return next((p for p in body.participants if p.purpose in _AGENT_PURPOSES), None)


def outcome_for(
    connected: bool,
    disconnect_type: str | None,
    *,
    agent_unavailable: bool = False,
    q850: int | None = None,
) -> Outcome:
    """The outcome of an ended call: answered if it ever connected, agent unavailable if the
    agent leg failed before the customer was dialed, else by the customer leg's Q.850 cause
    where it is a telling one, else by its disconnect type (see the module docs)."""
    if connected:
        return Outcome.ANSWERED
    if agent_unavailable:
        return Outcome.AGENT_UNAVAILABLE
    if q850 is not None and q850 in _Q850:
        return _Q850[q850]
    return _NOT_ANSWERED.get(disconnect_type or "", Outcome.FAILED)


def advance(call: Call, update: CallUpdate) -> Call:
    """Apply ``update`` to ``call``; never moves backwards, and ENDED is final."""
    if call.ended or update.conversation_id != call.conversation_id:
        return call
    # The final snapshot often drops connectedTime, so "was connected" also
    # comes from the state we already reached.
    connected = update.connected or call.state is CallState.CONNECTED
    if update.state is CallState.ENDED:
        # Seen ringing (or connected) at the customer: dialed after all, whatever the
        # last snapshot says about the agent leg.
        unavailable = update.agent_unavailable and call.state is CallState.DIALING
        return replace(
            call,
            state=CallState.ENDED,
            outcome=outcome_for(
                connected,
                update.disconnect_type,
                agent_unavailable=unavailable,
                q850=update.q850,
            ),
        )
    target = update.state
    if connected and _RANK[target] < _RANK[CallState.CONNECTED]:
        target = CallState.CONNECTED
    if _RANK[target] <= _RANK[call.state]:
        return call
    return replace(call, state=target)
