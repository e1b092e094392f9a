"""The fake CXone's pure parts: session ids and queues, fault counters, tokens, agent state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from outdial.fake.cxone.agents import (
    Skill,
    agent_state_event,
    begin_acw,
    begin_contact,
    end_acw,
    new_agent,
    set_state,
)
from outdial.fake.cxone.faults import CxoneFaults
from outdial.fake.cxone.sessions import SessionBook
from outdial.fake.cxone.tokens import Grant, TokenBook, decode_jwt, encode_jwt

NOW = datetime(2026, 11, 23, 10, 0, 2, tzinfo=UTC)


def test_session_ids_rotate_and_older_ones_stay_known() -> None:
    book = SessionBook()
    session = book.open("3141592", "start", station_phone_number="+14155550100")
    first = session.current
    second = book.rotate(session)
    assert second != first
    assert book.find(second) == (session, "current")
    assert book.find(first) == (session, "stale")
    assert book.find("nope") == (None, "unknown")
    session.push([{"Type": "AgentState"}], copies=2)
    assert [e["Type"] for e in session.take()] == ["AgentState", "AgentState"]
    assert session.take() == []
    book.end(session, "platform")
    assert book.find(second) == (session, "ended")
    assert book.live("3141592") is None
    ticket = session.new_poll()
    assert session.new_poll() == ticket + 1


def test_fault_counters() -> None:
    faults = CxoneFaults()
    faults.storm(2)
    faults.lose()
    assert [faults.decide_poll() for _ in range(3)] == ["storm", "storm", "serve"]
    assert [faults.decide_dial() for _ in range(2)] == ["lose", "place"]
    faults.stall(None)
    assert faults.active
    assert faults.decide_poll() == "stall"
    assert faults.decide_poll() == "stall"
    faults.clear()
    assert not faults.active
    with pytest.raises(ValueError, match="at least 1"):
        faults.storm(0)


def test_tokens_expire_revoke_and_refresh_once() -> None:
    book = TokenBook(lifetime=10)
    issued = book.issue(Grant("app", "key"), now=100.0)
    assert book.check(issued.access_token, 109.0) == Grant("app", "key")
    assert book.check(issued.access_token, 110.0) is None
    renewed = book.refresh(issued.refresh_token, 110.0)
    assert renewed is not None
    assert book.refresh(issued.refresh_token, 110.0) is None
    assert book.revoke_all() == 2
    assert book.check(renewed.access_token, 111.0) is None


def test_jwt_round_trip_and_tampering() -> None:
    token = encode_jwt({"tenantId": "t-1", "icAgentId": "1000001"})
    assert decode_jwt(token)["tenantId"] == "t-1"
    header, payload, signature = token.split(".")
    with pytest.raises(ValueError, match="signature"):
        decode_jwt(f"{header}.{payload}.{signature[:-2]}AA")
    with pytest.raises(ValueError, match="not a JWT"):
        decode_jwt("garbage")


def test_an_agents_own_state_comes_back_after_every_contact() -> None:
    agent = set_state(new_agent("3141592", NOW), "Unavailable", NOW, "Lunch")
    on_call = begin_contact(agent, "700001", NOW, inbound=False)
    assert (on_call.current_state, on_call.busy) == ("OutboundContact", True)
    in_acw = begin_acw(on_call, NOW, 30)
    event = agent_state_event(in_acw, {})
    assert (event["CurrentState"], event["IsAcw"], event["AcwTimeout"]) == (
        "Unavailable",
        "True",
        "30",
    )
    done = end_acw(in_acw, NOW)
    assert (done.current_state, done.out_reason, done.busy) == ("Unavailable", "Lunch", False)
    assert done.history == (
        "Available",
        "Unavailable",
        "OutboundContact",
        "Unavailable",
        "Unavailable",
    )
    with pytest.raises(ValueError, match="digits"):
        new_agent("agent-1", NOW)
    with pytest.raises(ValueError, match="state must be"):
        set_state(done, "OutboundContact", NOW)
    assert not Skill.inbound(77).dials_by_hand
    assert Skill(4242).dials_by_hand
    assert Skill(4243, strategy="SmartReach").dials_by_hand
    assert not Skill(4244, strategy="Predictive").dials_by_hand
