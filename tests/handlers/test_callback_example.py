"""``examples/callback.toml``: its rule calls back when the customer hangs up, never when the
agent does, on ACD (agent/customer) and non-ACD (user/external) calls alike."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from outdial.config import load_config
from outdial.events import Event
from outdial.handlers.rules import RuleIndex

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "callback.toml"
# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"
ENV = {"GENESYS_CLIENT_ID": "client", "GENESYS_CLIENT_SECRET": "secret"}


def last_event(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"shared Genesys fixture {path} not found")
    event: dict[str, Any] = json.loads(path.read_text())[-1]
    return event


def as_event(envelope: dict[str, Any]) -> Event:
    return Event(envelope["topicName"], envelope["eventBody"])


@pytest.fixture
def index() -> RuleIndex:
    return RuleIndex.compile(load_config(EXAMPLE, env=ENV).rules)


def test_the_customer_hanging_up_is_called_back(index: RuleIndex) -> None:
    # Customer leg "endpoint", agent leg "peer".
    [match] = index.match(as_event(last_event("call-answered-sequence.json")))
    dial = match.render_dial()
    assert dial.phone_number == "tel:+441212345601"
    assert dial.user_id == "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"


def test_the_agent_hanging_up_is_not(index: RuleIndex) -> None:
    # Agent (user) leg "client", external leg "peer".
    assert index.match(as_event(last_event("call-nonacd-agent-hangs-up-sequence.json"))) == []


def test_an_external_leg_hanging_up_is_called_back(index: RuleIndex) -> None:
    envelope = copy.deepcopy(last_event("call-nonacd-agent-hangs-up-sequence.json"))
    user, external = envelope["eventBody"]["participants"]
    assert (user["purpose"], external["purpose"]) == ("user", "external")
    user["disconnectType"], external["disconnectType"] = "peer", "endpoint"
    [match] = index.match(as_event(envelope))
    assert match.render_dial().phone_number == external["address"]


def test_the_agent_hanging_up_from_the_phone_is_not(index: RuleIndex) -> None:
    # The agent leg's own end ("endpoint") does not count: the keys must hold for one
    # participant, and that one is not the customer.
    envelope = copy.deepcopy(last_event("call-answered-sequence.json"))
    agent, customer = envelope["eventBody"]["participants"]
    agent["disconnectType"], customer["disconnectType"] = "endpoint", "peer"
    assert index.match(as_event(envelope)) == []


def test_nothing_before_the_end_matches(index: RuleIndex) -> None:
    path = FIXTURES / "call-answered-sequence.json"
    if not path.is_file():
        pytest.skip(f"shared Genesys fixture {path} not found")
    events = [as_event(e) for e in json.loads(path.read_text())]
    assert [len(index.match(e)) for e in events] == [0, 0, 1]
