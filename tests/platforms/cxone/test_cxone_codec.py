"""The CXone codec over the fixtures' get-next-event sequence, and the rules that hold for
any event: a call never reads as over before Disconnected, done never later than now."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outdial.domain import CallState, Outcome, PresenceSeen, WorkloadSeen
from outdial.events import Event
from outdial.platforms.base import MalformedEvent
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.codec import CxoneCodec, call_state, topic_agent, topic_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cxone"
AGENT = "3141592"
OBSERVED = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
codec = CxoneCodec()


def sequence_events() -> list[dict[str, Any]]:
    answers = json.loads((FIXTURES / "get-next-event-sequence.json").read_text())
    return [e for a in answers if a["status"] == 200 for e in a["body"]["events"]]


def as_event(body: dict[str, Any]) -> Event:
    return Event(topic=topic_for(AGENT, wire.event_type(body)), body=body)


def test_topics_name_the_agent() -> None:
    topics = codec.agent_topics(AGENT)
    assert topics == {f"cxone.users.{AGENT}.AgentState", f"cxone.users.{AGENT}.CallContactEvent"}
    assert all(topic_agent(t) == AGENT for t in topics)
    assert codec.is_calls_topic(codec.calls_topic(AGENT))
    assert not codec.is_calls_topic(f"cxone.users.{AGENT}.AgentState")
    assert not codec.is_calls_topic("v2.users.x.conversations.calls")
    assert topic_agent("cxone.users.") is None
    assert topic_agent("v2.users.a.b") is None
    assert codec.has_routing_status is False


def test_the_fixture_call_goes_dialing_connected_ended_then_done() -> None:
    calls = [
        codec.decode(as_event(e), OBSERVED).call
        for e in sequence_events()
        if e["Type"] == "CallContactEvent"
    ]
    assert [c.update.state for c in calls if c] == [
        CallState.DIALING,
        CallState.CONNECTED,
        CallState.ENDED,
        CallState.ENDED,
    ]
    dialing, active, acw, final = (c for c in calls if c)
    assert dialing.outbound
    assert dialing.number == "+15551234567"
    assert dialing.started_at == datetime(2026, 11, 23, 10, 0, 2, tzinfo=UTC)
    assert active.update.connected
    assert dialing.leg
    assert not dialing.leg.ended
    assert acw.leg
    assert acw.leg.ended
    assert acw.leg.wrapup_pending
    assert not acw.leg.done
    assert final.leg
    assert final.leg.done_at == datetime(2026, 11, 23, 10, 0, 9, tzinfo=UTC)
    assert {c.update.conversation_id for c in calls if c} == {"700001"}


def test_agent_states_say_presence_and_workload() -> None:
    states = [
        codec.decode(as_event(e), OBSERVED).observations
        for e in sequence_events()
        if e["Type"] == "AgentState"
    ]
    first = states[0]
    assert first[0] == PresenceSeen(name="OutboundContact", modified="2026-11-23T10:00:02.000Z")
    assert first[1] == WorkloadSeen(active=1, acw=0)
    assert states[1][1] == WorkloadSeen(active=0, acw=1)  # Available, in after-call work
    assert states[2][1] == WorkloadSeen(active=0, acw=0)


@pytest.mark.parametrize(
    "status",
    sorted(
        {
            "Dialing",
            "Ringing",
            "Active",
            "Holding",
            "Incoming",
            "Masking",
            "Joined",
            "NaturalCallDialing",
            "NaturalCallRinging",
            "NaturalCallAMD",
            "Whatever",
        }
    ),
)
@pytest.mark.parametrize("final", ["True", "False"])
def test_no_call_is_over_for_the_agent_before_disconnected(status: str, final: str) -> None:
    body = {**sequence_events()[1], "Status": status, "FinalState": final}
    seen = codec.decode(as_event(body), OBSERVED).call
    assert seen
    assert seen.leg
    assert not seen.leg.ended
    assert not seen.leg.done
    assert seen.update.state is not CallState.ENDED


@pytest.mark.parametrize("skew", [-60, 0, 3600])
def test_done_is_never_later_than_observed(skew: int) -> None:
    changed = OBSERVED + timedelta(seconds=skew)
    body = {
        **sequence_events()[1],
        "Status": "Disconnected",
        "FinalState": "True",
        "LastStateChangeTimeUTC": wire.format_time(changed),
    }
    seen = codec.decode(as_event(body), OBSERVED).call
    assert seen
    assert seen.leg
    assert seen.leg.done_at == min(changed, OBSERVED)


def test_unanswered_reads_only_telling_disconnect_codes() -> None:
    base = {**sequence_events()[1], "Status": "Disconnected", "FinalState": "True"}
    for code, outcome in [
        ("Busy", Outcome.BUSY),
        ("No Answer", Outcome.NO_ANSWER),
        ("17", Outcome.BUSY),
        ("Mystery", None),
        ("", None),
    ]:
        seen = codec.decode(as_event({**base, "DisconnectCode": code}), OBSERVED).call
        assert seen, code
        assert seen.update.unanswered is outcome, code
    seen = codec.decode(as_event({**base, "DisconnectCode": "17"}), OBSERVED).call
    assert seen
    assert seen.update.q850 == 17


def test_inbound_number_is_the_caller() -> None:
    body = {**sequence_events()[1], "IsInbound": "True"}
    seen = codec.decode(as_event(body), OBSERVED).call
    assert seen
    assert not seen.outbound
    assert seen.number == "+14155550100"


def test_other_types_say_nothing_and_broken_bodies_are_named() -> None:
    start = {"Type": "AgentSessionStart", "AgentId": AGENT}
    assert codec.decode(as_event(start), OBSERVED).call is None
    assert codec.decode(Event(topic="other.topic", body={}), OBSERVED).call is None
    with pytest.raises(MalformedEvent) as caught:
        codec.decode(as_event({"Type": "CallContactEvent", "Status": "Active"}), OBSERVED)
    assert caught.value.where == "ContactID"
    with pytest.raises(MalformedEvent):
        codec.decode(as_event({"Type": "AgentState"}), OBSERVED)


def test_status_mapping() -> None:
    assert call_state("CallBackDisconnected") is CallState.ENDED
    assert call_state("NaturalCallRinging") is CallState.RINGING


def test_a_state_seen_live_and_re_read_is_one_trigger() -> None:
    """The re-read bodies lack the live events' host fields; their identity does not."""
    from outdial.events import Event
    from outdial.platforms.cxone import shapes, wire
    from outdial.platforms.cxone.codec import CxoneCodec

    codec = CxoneCodec()
    live_state: dict[str, Any] = {
        "Type": "AgentState",
        "IISHost": "iis-01",
        "VCHost": "vc-01",
        "CurrentState": "Available",
        "CurrentOutReason": "",
        "StartTimeUTC": "2026-11-23T10:00:02.000Z",
        "IsAcw": "False",
        "AcwTimeout": "0",
        "NextStates": [],
    }
    reread = shapes.agent_state_event(
        wire.RestAgentState.model_validate(
            {"agentId": 3141592, "agentStateName": "Available", "startDate": "2026-11-23T10:00:02Z"}
        )
    )
    topic = "cxone.users.3141592.AgentState"

    def identity(body: Mapping[str, Any]) -> str:
        return Event(topic, body, facts=codec.identity_facts).identity

    assert identity(live_state) == identity(reread)
    assert identity(live_state) != identity({**live_state, "IsAcw": "True"})
    # The same instant written without milliseconds, and a boolean in another case.
    same = {**live_state, "StartTimeUTC": "2026-11-23T10:00:02Z", "IsAcw": "false"}
    assert identity(same) == identity(live_state)
