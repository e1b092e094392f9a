"""The call state machine: forward only, ENDED final, outcomes from the customer leg (or an
agent leg that failed before the customer was dialed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.events import CallConversation
from outdial.fake import CallTiming, call_script, plan_call
from outdial.fake import Outcome as FakeOutcome
from outdial.fake.script import CallParties
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


def snapshot(agent: dict[str, Any], customer: dict[str, Any] | None = None) -> CallConversation:
    participants = [{"id": "a", "purpose": "agent", **agent}]
    if customer is not None:
        participants.append({"id": "c", "purpose": "customer", **customer})
    return CallConversation.model_validate({"id": "conv", "participants": participants})


@pytest.mark.parametrize(("agent_available", "disconnect"), [(True, "timeout"), (False, "error")])
def test_the_fakes_agent_unavailable_script_ends_agent_unavailable(
    agent_available: bool, disconnect: str
) -> None:
    plan = plan_call(
        random.Random(0),
        CallTiming(),
        {FakeOutcome.ANSWERED: 1},
        forced=FakeOutcome.AGENT_UNAVAILABLE,
        agent_available=agent_available,
    )
    parties = CallParties("conv", "u1", "+441212345601", "a", "c")
    c = call()
    updates = []
    for step in call_script(plan, parties, CallTiming(), datetime(2026, 1, 5, tzinfo=UTC)):
        update = update_from_conversation(CallConversation.model_validate(step.body))
        updates.append(update)
        c = advance(c, update)
    # The agent alerting is no news; its leg ending with no customer leg ends the call.
    assert updates[0] == CallUpdate("conv", CallState.DIALING)
    assert updates[1] == CallUpdate(
        "conv", CallState.ENDED, disconnect_type=disconnect, agent_unavailable=True
    )
    assert (c.state, c.outcome) == (CallState.ENDED, Outcome.AGENT_UNAVAILABLE)


@pytest.mark.parametrize("customer_state", ["terminated", "disconnected"])
def test_customer_leg_listed_but_never_dialed_is_agent_unavailable(customer_state: str) -> None:
    body = snapshot(
        {"state": "disconnected", "disconnectType": "timeout"}, {"state": customer_state}
    )
    update = update_from_conversation(body)
    assert update.agent_unavailable
    assert advance(call(), update).outcome is Outcome.AGENT_UNAVAILABLE


@pytest.mark.parametrize(
    ("agent", "customer", "outcome"),
    [
        # The customer leg has a reason of its own: it was dialed.
        (
            {"state": "disconnected", "disconnectType": "timeout"},
            {"state": "disconnected", "disconnectType": "timeout"},
            Outcome.NO_ANSWER,
        ),
        # The agent hung up (client): that says nothing about the agent being unavailable.
        (
            {"state": "disconnected", "disconnectType": "client"},
            {"state": "terminated"},
            Outcome.FAILED,
        ),
        # The customer answered: answered, whatever the agent leg says.
        (
            {"state": "disconnected", "disconnectType": "error"},
            {"state": "disconnected", "connectedTime": "t"},
            Outcome.ANSWERED,
        ),
    ],
)
def test_customer_outcomes_are_not_mistaken_for_agent_unavailable(
    agent: dict[str, Any], customer: dict[str, Any], outcome: Outcome
) -> None:
    update = update_from_conversation(snapshot(agent, customer))
    assert not update.agent_unavailable
    assert advance(call(), update).outcome is outcome


def test_agent_leg_still_up_without_customer_is_no_news() -> None:
    for state in ("alerting", "contacting", "connected"):
        update = update_from_conversation(snapshot({"state": state}))
        assert update == CallUpdate("conv", CallState.DIALING)


def test_a_call_seen_ringing_at_the_customer_was_dialed() -> None:
    # A later snapshot without the customer leg cannot make a dialed call "never dialed".
    update = update_from_conversation(
        snapshot({"state": "disconnected", "disconnectType": "timeout"})
    )
    c = advance(call(CallState.RINGING), update)
    assert (c.state, c.outcome) == (CallState.ENDED, Outcome.NO_ANSWER)


def test_other_conversation_is_ignored() -> None:
    assert advance(call(), CallUpdate("other", CallState.ENDED)) == call()


def test_outcome_for() -> None:
    assert outcome_for(True, "timeout") is Outcome.ANSWERED
    assert outcome_for(False, "timeout", agent_unavailable=True) is Outcome.AGENT_UNAVAILABLE
    assert outcome_for(True, "error", agent_unavailable=True) is Outcome.ANSWERED
    assert outcome_for(False, "error") is Outcome.FAILED


updates = st.builds(
    CallUpdate,
    conversation_id=st.just("conv"),
    state=st.sampled_from(list(CallState)),
    connected=st.booleans(),
    disconnect_type=st.sampled_from([None, "peer", "timeout", "error"]),
    agent_unavailable=st.booleans(),
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
            if new.outcome is Outcome.AGENT_UNAVAILABLE and ended is None:
                # Only a call never seen past dialing: the customer was never dialed.
                assert c.state is CallState.DIALING
                assert not update.connected
            ended = new
        c = new
