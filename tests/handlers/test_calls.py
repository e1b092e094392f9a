"""The call state machine: forward only, ENDED final, outcomes from the customer leg (or an
agent leg that failed before the customer was dialed), read as the platform defines them."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.events import CallConversation
from outdial.fake import CallTiming, call_script, plan_call
from outdial.fake import Outcome as FakeOutcome
from outdial.fake.script import CallParties
from outdial.handlers.calls import Call, CallState, CallUpdate, Outcome, advance, outcome_for
from outdial.platforms.genesys.codec import (
    q850_cause,
    unanswered_outcome,
    update_from_conversation,
)


def genesys_outcome(
    connected: bool,
    disconnect_type: str | None,
    *,
    agent_unavailable: bool = False,
    q850: int | None = None,
) -> Outcome:
    """The state machine's outcome for a call ended as Genesys describes it."""
    unanswered = unanswered_outcome(disconnect_type, q850)
    return outcome_for(connected, unanswered, agent_unavailable=agent_unavailable)


# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"


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
    # The final snapshot drops connectedTime: still answered.
    c = advance(
        c, update_from_conversation(conversation("disconnected", disconnectType="endpoint"))
    )
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
        # The agent ended a call still ringing (abandoned): not the contact being busy.
        ("peer", Outcome.NO_ANSWER),
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
        "conv",
        CallState.ENDED,
        unanswered=unanswered_outcome(disconnect, None),
        disconnect_type=disconnect,
        agent_unavailable=True,
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
    assert genesys_outcome(True, "timeout") is Outcome.ANSWERED
    assert genesys_outcome(False, "timeout", agent_unavailable=True) is Outcome.AGENT_UNAVAILABLE
    assert genesys_outcome(True, "error", agent_unavailable=True) is Outcome.ANSWERED
    assert genesys_outcome(False, "error") is Outcome.FAILED
    assert outcome_for(False, None) is Outcome.FAILED


updates = st.builds(
    CallUpdate,
    conversation_id=st.just("conv"),
    state=st.sampled_from(list(CallState)),
    connected=st.booleans(),
    unanswered=st.sampled_from([None, *Outcome]),
    disconnect_type=st.sampled_from([None, "peer", "endpoint", "client", "timeout", "error"]),
    agent_unavailable=st.booleans(),
    q850=st.sampled_from([None, 1, 16, 17, 18, 19, 21, 28, 34]),
    ended_by=st.sampled_from([None, "customer", "agent"]),
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


# Outcomes as the platform defines them: both purpose pairs, disconnect types relative to
# their own leg, Q.850 causes where present.

PAIRS = [("agent", "customer"), ("user", "external")]


def legs(
    pair: tuple[str, str], agent: dict[str, Any], customer: dict[str, Any]
) -> CallConversation:
    agent_purpose, customer_purpose = pair
    return CallConversation.model_validate(
        {
            "id": "conv",
            "participants": [
                {"id": "a", "purpose": agent_purpose, "user": {"id": "u1"}, **agent},
                {
                    "id": "c",
                    "purpose": customer_purpose,
                    "address": "tel:+441212345601",
                    **customer,
                },
            ],
        }
    )


def ended(disconnect: str | None = None, **extra: Any) -> dict[str, Any]:
    leg: dict[str, Any] = {"state": "disconnected", **extra}
    if disconnect is not None:
        leg["disconnectType"] = disconnect
    return leg


def q850(code: int | str) -> dict[str, Any]:
    return {"disconnectReasons": [{"type": "q850", "code": code}]}


CONNECTED = {"connectedTime": "2026-11-23T09:15:09.870Z"}

OUTCOMES = [
    # (name, agent leg, customer leg, outcome, who hung up)
    (
        "customer hung up",
        ended("peer"),
        ended("endpoint", **CONNECTED),
        Outcome.ANSWERED,
        "customer",
    ),
    ("agent hung up (UI)", ended("client"), ended("peer", **CONNECTED), Outcome.ANSWERED, "agent"),
    (
        "agent hung up (phone)",
        ended("endpoint"),
        ended("peer", **CONNECTED),
        Outcome.ANSWERED,
        "agent",
    ),
    ("rang out", ended("peer"), ended("timeout"), Outcome.NO_ANSWER, None),
    ("far end busy or refused", ended("peer"), ended("endpoint"), Outcome.BUSY, "customer"),
    ("agent abandoned it ringing", ended("client"), ended("peer"), Outcome.NO_ANSWER, "agent"),
    ("ended from the UI", ended("peer"), ended("client"), Outcome.NO_ANSWER, None),
    ("error", ended("peer"), ended("error"), Outcome.FAILED, None),
    ("uncallable", ended("peer"), ended("uncallable"), Outcome.FAILED, None),
    ("transport failure", ended("peer"), ended("transport.failure"), Outcome.FAILED, None),
    ("system", ended("peer"), ended("system"), Outcome.FAILED, None),
    ("unheard-of type", ended("peer"), ended("spam"), Outcome.FAILED, None),
    ("no reason at all", ended("peer"), ended(), Outcome.FAILED, None),
    # Q.850 causes, where the event carries them, are the precise answer.
    ("17 user busy", ended("peer"), ended("timeout", **q850(17)), Outcome.BUSY, None),
    ("21 call rejected", ended("peer"), ended("error", **q850(21)), Outcome.BUSY, None),
    (
        "18 no user responding",
        ended("peer"),
        ended("endpoint", **q850(18)),
        Outcome.NO_ANSWER,
        "customer",
    ),
    ("19 no answer", ended("peer"), ended("endpoint", **q850("19")), Outcome.NO_ANSWER, "customer"),
    (
        "1 unallocated number",
        ended("peer"),
        ended("endpoint", **q850(1)),
        Outcome.FAILED,
        "customer",
    ),
    ("28 invalid number format", ended("peer"), ended("timeout", **q850(28)), Outcome.FAILED, None),
    (
        "16 normal clearing, connected",
        ended("peer"),
        ended("endpoint", **CONNECTED, **q850(16)),
        Outcome.ANSWERED,
        "customer",
    ),
    (
        "16 normal clearing, abandoned",
        ended("client"),
        ended("peer", **q850(16)),
        Outcome.NO_ANSWER,
        "agent",
    ),
    (
        "34 no circuit: the type decides",
        ended("peer"),
        ended("error", **q850(34)),
        Outcome.FAILED,
        None,
    ),
    (
        "a connected call is answered, whatever the cause",
        ended("client"),
        ended("peer", **CONNECTED, **q850(17)),
        Outcome.ANSWERED,
        "agent",
    ),
]


@pytest.mark.parametrize("pair", PAIRS, ids=["/".join(p) for p in PAIRS])
@pytest.mark.parametrize(
    ("agent", "customer", "outcome", "by"),
    [case[1:] for case in OUTCOMES],
    ids=[case[0] for case in OUTCOMES],
)
def test_outcome_and_who_hung_up(
    pair: tuple[str, str],
    agent: dict[str, Any],
    customer: dict[str, Any],
    outcome: Outcome,
    by: str | None,
) -> None:
    update = update_from_conversation(legs(pair, agent, customer))
    assert update.state is CallState.ENDED
    assert update.ended_by == by
    assert not update.agent_unavailable
    assert advance(call(CallState.RINGING), update).outcome is outcome


def test_who_hung_up_is_said_only_once_the_call_ended() -> None:
    # The agent leg ended first; the customer leg still up: not ended yet, nobody to name.
    update = update_from_conversation(
        legs(PAIRS[0], ended("client"), {"state": "connected", **CONNECTED})
    )
    assert (update.state, update.ended_by) == (CallState.CONNECTED, None)


def test_q850_cause() -> None:
    body = legs(
        PAIRS[0],
        ended("peer"),
        ended(
            "endpoint",
            disconnectReasons=[{"type": "sip", "code": 486}, {"type": "Q850", "code": 17}],
        ),
    )
    customer = body.customer()
    assert customer is not None
    assert q850_cause(customer) == 17
    assert update_from_conversation(body).q850 == 17
    assert q850_cause(body.participants[0]) is None


def _fixture_bodies(name: str) -> list[CallConversation]:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"shared Genesys fixture {path} not found")
    return [CallConversation.model_validate(e["eventBody"]) for e in json.loads(path.read_text())]


@pytest.mark.parametrize(
    ("name", "by"),
    [
        ("call-answered-sequence.json", "customer"),
        ("call-nonacd-agent-hangs-up-sequence.json", "agent"),
    ],
)
def test_the_fixture_sequences(name: str, by: str) -> None:
    bodies = _fixture_bodies(name)
    c = Call(bodies[0].id, "u1", "+441212345601")
    states = []
    updates = []
    for body in bodies:
        update = update_from_conversation(body)
        updates.append(update)
        c = advance(c, update)
        states.append(c.state)
    assert states == [CallState.DIALING, CallState.CONNECTED, CallState.ENDED]
    assert c.outcome is Outcome.ANSWERED
    assert updates[-1].ended_by == by
    assert [u.ended_by for u in updates[:-1]] == [None, None]


def test_the_wrapup_fixture_after_the_call_was_seen_connected() -> None:
    bodies = _fixture_bodies("call-acd-wrapup-sequence.json")
    c = Call(bodies[0].id, "u1", "+441212345601", state=CallState.CONNECTED)
    for body in bodies:
        update = update_from_conversation(body)
        assert update.ended_by == "customer"
        c = advance(c, update)
    assert (c.state, c.outcome) == (CallState.ENDED, Outcome.ANSWERED)


@given(
    connected=st.booleans(),
    disconnect=st.sampled_from([None, "peer", "endpoint", "client", "timeout", "error", "x"]),
    cause=st.one_of(st.none(), st.integers(0, 127)),
    unavailable=st.booleans(),
)
def test_outcome_for_precedence(
    connected: bool, disconnect: str | None, cause: int | None, unavailable: bool
) -> None:
    """Connected wins, then agent unavailable, then a telling Q.850 cause, then the type;
    and an abandoned ring (peer) is never busy without a cause that says so."""
    outcome = genesys_outcome(connected, disconnect, agent_unavailable=unavailable, q850=cause)
    if connected:
        assert outcome is Outcome.ANSWERED
    elif unavailable:
        assert outcome is Outcome.AGENT_UNAVAILABLE
    elif cause in (17, 21):
        assert outcome is Outcome.BUSY
    elif cause in (18, 19):
        assert outcome is Outcome.NO_ANSWER
    elif cause in (1, 28):
        assert outcome is Outcome.FAILED
    elif disconnect == "peer":
        assert outcome is Outcome.NO_ANSWER
    assert outcome is not Outcome.AGENT_UNAVAILABLE or unavailable


def test_a_codec_cannot_make_a_call_seen_ringing_agent_unavailable() -> None:
    """Only the agent-leg flag, while still dialing, says the customer was never dialed."""
    ringing = call(CallState.RINGING)
    update = CallUpdate("conv", CallState.ENDED, unanswered=Outcome.AGENT_UNAVAILABLE)
    assert advance(ringing, update).outcome is Outcome.FAILED
    assert advance(ringing, replace(update, unanswered=Outcome.BUSY)).outcome is Outcome.BUSY
