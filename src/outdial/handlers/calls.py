"""The call state machine: pure, fed by ``conversations.calls`` events.

A conversation event carries the whole call as it is now, and events can arrive
late or twice (a reconnect overlap, a REST re-read after a gap). So
:func:`advance` only moves forward: DIALING -> RINGING -> CONNECTED -> ENDED,
and ENDED is final. The outcome is decided once, when the call ends, from the
customer leg: ever connected means answered; otherwise the disconnect type says
why it was not.
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
    """What one conversation snapshot says about the call."""

    conversation_id: str
    state: CallState
    connected: bool = False
    disconnect_type: str | None = None


def update_from_conversation(body: CallConversation) -> CallUpdate:
    """Read the customer leg of a conversation event into a :class:`CallUpdate`."""
    customer = body.customer()
    if customer is None:
        # The customer leg is not there yet (the agent leg comes first): no progress.
        return CallUpdate(conversation_id=body.id, state=CallState.DIALING)
    state = _PARTICIPANT_STATE.get(customer.state or "", CallState.DIALING)
    connected = state is CallState.CONNECTED or customer.connected_time is not None
    return CallUpdate(
        conversation_id=body.id,
        state=state,
        connected=connected,
        disconnect_type=customer.disconnect_type,
    )


def outcome_for(connected: bool, disconnect_type: str | None) -> Outcome:
    """The outcome of an ended call: answered if it ever connected, else by disconnect type."""
    if connected:
        return Outcome.ANSWERED
    return _NOT_ANSWERED.get(disconnect_type or "", Outcome.FAILED)


def advance(call: Call, update: CallUpdate) -> Call:
    """Apply ``update`` to ``call``; never moves backwards, and ENDED is final."""
    if call.ended or update.conversation_id != call.conversation_id:
        return call
    # The final snapshot often drops connectedTime, so "was connected" also
    # comes from the state we already reached.
    connected = update.connected or call.state is CallState.CONNECTED
    if update.state is CallState.ENDED:
        return replace(
            call,
            state=CallState.ENDED,
            outcome=outcome_for(connected, update.disconnect_type),
        )
    target = update.state
    if connected and _RANK[target] < _RANK[CallState.CONNECTED]:
        target = CallState.CONNECTED
    if _RANK[target] <= _RANK[call.state]:
        return call
    return replace(call, state=target)
