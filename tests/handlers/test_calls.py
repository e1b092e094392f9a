"""The call state machine: forward only, ENDED final, outcomes from the customer leg."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.events import CallConversation
from outdial.handlers.calls import (
    Call,
    CallState,
    CallUpdate,
    Outcome,
    advance,
    outcome_for,
    update_from_conversation,
)


def conversation(state: str, **customer: Any) -> CallConversation:
    return CallConversation.model_validate(
        {
            "id": "conv",
            "participants": [
                {"id": "a", "purpose": "agent", "state": "connected"},
                {"id": "c", "purpose": "customer", "state": state, **customer},
            ],
        }
    )


def call(state: CallState = CallState.DIALING) -> Call:
    return Call("conv", "u1", "+441212345601", 7, state)


def test_answered_sequence() -> None:
    c = call()
    c = advance(c, update_from_conversation(conversation("dialing")))
    assert c.state is CallState.DIALING
    c = advance(c, update_from_conversation(conversation("alerting")))
    assert c.state is CallState.RINGING
    c = advance(c, update_from_conversation(conversation("connected", connectedTime="t")))
    assert c.state is CallState.CONNECTED
    # The final snapshot drops connectedTime and says "peer": still answered.
    c = advance(c, update_from_conversation(conversation("disconnected", disconnectType="peer")))
    assert (c.state, c.outcome) == (CallState.ENDED, Outcome.ANSWERED)


def test_late_dialing_after_connected_is_ignored() -> None:
    c = call(CallState.CONNECTED)
    assert advance(c, update_from_conversation(conversation("dialing"))) == c


def test_connected_time_alone_means_answered() -> None:
    c = advance(call(), update_from_conversation(conversation("disconnected", connectedTime="t")))
    assert c.outcome is Outcome.ANSWERED


@pytest.mark.parametrize(
    ("disconnect_type", "outcome"),
    [
        ("timeout", Outcome.NO_ANSWER),
        ("client", Outcome.NO_ANSWER),
        ("peer", Outcome.BUSY),
        ("endpoint", Outcome.BUSY),
        ("uncallable", Outcome.FAILED),
        ("error", Outcome.FAILED),
        ("transport.failure", Outcome.FAILED),
        ("system", Outcome.FAILED),
        (None, Outcome.FAILED),
    ],
)
def test_not_answered_outcomes(disconnect_type: str | None, outcome: Outcome) -> None:
    extra = {"disconnectType": disconnect_type} if disconnect_type else {}
    c = advance(
        call(CallState.RINGING), update_from_conversation(conversation("disconnected", **extra))
    )
    assert c.outcome is outcome


def test_no_customer_leg_is_no_news() -> None:
    body = CallConversation.model_validate(
        {"id": "conv", "participants": [{"id": "a", "purpose": "agent"}]}
    )
    assert update_from_conversation(body).state is CallState.DIALING
    assert (
        advance(call(CallState.RINGING), update_from_conversation(body)).state is CallState.RINGING
    )


def test_other_conversation_is_ignored() -> None:
    assert advance(call(), CallUpdate("other", CallState.ENDED)) == call()


def test_outcome_for() -> None:
    assert outcome_for(True, "timeout") is Outcome.ANSWERED


updates = st.builds(
    CallUpdate,
    conversation_id=st.just("conv"),
    state=st.sampled_from(list(CallState)),
    connected=st.booleans(),
    disconnect_type=st.sampled_from([None, "peer", "timeout", "error"]),
)
_RANK = {s: i for i, s in enumerate(CallState)}


@given(st.lists(updates, max_size=12))
def test_never_moves_backwards_and_ended_is_final(sequence: list[CallUpdate]) -> None:
    c = call()
    ended: Call | None = None
    for update in sequence:
        new = advance(c, update)
        assert _RANK[new.state] >= _RANK[c.state]
        if ended is not None:
            assert new == ended
        if new.state is CallState.ENDED:
            assert new.outcome is not None
            ended = new
        c = new
