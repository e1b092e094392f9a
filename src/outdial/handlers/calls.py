"""The call state machine: pure, fed by ``conversations.calls`` events.

A conversation event carries the whole call as it is now, and events can arrive
late or twice (a reconnect overlap, a REST re-read after a gap). So
:func:`advance` only moves forward: DIALING -> RINGING -> CONNECTED -> ENDED,
and ENDED is final. The outcome is decided once, when the call ends, from the
customer leg: ever connected means answered; otherwise the disconnect type says
why it was not.

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

from outdial.events import CallConversation

__all__ = [
    "Call",
    "CallState",
    "CallUpdate",
    "Outcome",
    "advance",
    "outcome_for",
    "update_from_conversation",
]


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

# Not-answered disconnect types whose meaning is clear; the rest are failures.
_NOT_ANSWERED = {
    "timeout": Outcome.NO_ANSWER,
    "client": Outcome.NO_ANSWER,
    "peer": Outcome.BUSY,
    "endpoint": Outcome.BUSY,
}

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
    """

    conversation_id: str
    state: CallState
    connected: bool = False
    disconnect_type: str | None = None
    agent_unavailable: bool = False


def update_from_conversation(body: CallConversation) -> CallUpdate:
    """Read a conversation event into a :class:`CallUpdate`: the customer leg's progress,
    or an ended agent leg whose customer was never dialed (agent unavailable)."""
    customer = body.customer()
    agent = next((p for p in body.participants if p.purpose in _AGENT_PURPOSES), None)
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
    return CallUpdate(
        conversation_id=body.id,
        state=state,
        connected=connected,
        disconnect_type=customer.disconnect_type,
    )


def outcome_for(
    connected: bool, disconnect_type: str | None, *, agent_unavailable: bool = False
) -> Outcome:
    """The outcome of an ended call: answered if it ever connected, agent unavailable if the
    agent leg failed before the customer was dialed, else by disconnect type."""
    if connected:
        return Outcome.ANSWERED
    if agent_unavailable:
        return Outcome.AGENT_UNAVAILABLE
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
            outcome=outcome_for(connected, update.disconnect_type, agent_unavailable=unavailable),
        )
    target = update.state
    if connected and _RANK[target] < _RANK[CallState.CONNECTED]:
        target = CallState.CONNECTED
    if _RANK[target] <= _RANK[call.state]:
        return call
    return replace(call, state=target)
