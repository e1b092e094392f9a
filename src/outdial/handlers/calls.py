"""The call state machine: pure, fed by :class:`~outdial.domain.CallUpdate` values.

Call events can arrive late or twice (a reconnect overlap, a REST re-read after
a gap), so :func:`advance` only moves forward: DIALING -> RINGING -> CONNECTED
-> ENDED, and ENDED is final. The outcome is decided once, when the call ends:
answered if it ever connected; agent unavailable if the agent's own leg ended
before the customer was dialed (never seen ringing); else what the platform's
disconnect details say (``CallUpdate.unanswered``, read by each platform's
codec), failed when they say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from outdial.domain import CallState, CallUpdate, EndedBy, Outcome

__all__ = [
    "Call",
    "CallState",
    "CallUpdate",
    "EndedBy",
    "Outcome",
    "advance",
    "outcome_for",
]

#: The outcomes of a call that ended without connecting.
_UNANSWERED = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED})

_RANK = {CallState.DIALING: 0, CallState.RINGING: 1, CallState.CONNECTED: 2, CallState.ENDED: 3}


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


def outcome_for(
    connected: bool, unanswered: Outcome | None, *, agent_unavailable: bool = False
) -> Outcome:
    """The outcome of an ended call: answered if it ever connected, agent unavailable if
    the agent leg failed before the customer was dialed, else what the platform's
    disconnect details say (failed when they say nothing)."""
    if connected:
        return Outcome.ANSWERED
    if agent_unavailable:
        return Outcome.AGENT_UNAVAILABLE
    # A codec's reading of the disconnect can only be a way of not being answered: a
    # call that never connected was not answered, and only the agent's own leg (the
    # flag above, while the call was still dialing) says the customer was never dialed.
    return unanswered if unanswered in _UNANSWERED else Outcome.FAILED


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
            outcome=outcome_for(connected, update.unanswered, agent_unavailable=unavailable),
        )
    target = update.state
    if connected and _RANK[target] < _RANK[CallState.CONNECTED]:
        target = CallState.CONNECTED
    if _RANK[target] <= _RANK[call.state]:
        return call
    return replace(call, state=target)
