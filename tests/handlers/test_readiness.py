"""Readiness, the pure core: facts from the platform's own bodies in, ready or not out."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.config import ReadinessConfig
from outdial.domain import CallLeg
from outdial.events import CallConversation, ConversationSummary, Presence, body_as
from outdial.handlers import readiness
from outdial.handlers.readiness import (
    AgentFacts,
    ReadinessPolicy,
    assess,
    epoch_of,
    with_call,
    with_calls_settled,
    with_dial_closed,
    with_dial_open,
    with_routing_status,
)
from outdial.platforms.genesys.codec import call_leg_from, presence_seen, workload_seen


def with_presence(facts: AgentFacts, presence: Presence) -> AgentFacts:
    """Facts after a Genesys presence body, read by the Genesys codec."""
    return readiness.with_presence(facts, presence_seen(presence))


def with_summary(facts: AgentFacts, summary: ConversationSummary) -> AgentFacts:
    """Facts after a Genesys conversation summary, read by the Genesys codec."""
    return readiness.with_workload(facts, workload_seen(summary))


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"
AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
POLICY = ReadinessPolicy.from_config(ReadinessConfig(after_call=5.0))
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def bodies(name: str) -> list[dict[str, Any]]:
    data = load(name)
    return [item["eventBody"] for item in (data if isinstance(data, list) else [data])]


def idle_agent() -> AgentFacts:
    """The fixtures' agent: Available, off queue, on no call."""
    facts = with_presence(
        AgentFacts(AGENT), body_as(Presence, bodies("presence-available.json")[0])
    )
    facts = with_routing_status(facts, bodies("routing-status.json")[0]["routingStatus"]["status"])
    summary = bodies("conversation-summary-sequence.json")[1]
    return with_summary(facts, body_as(ConversationSummary, summary))


def leg(body: dict[str, Any], observed: datetime = NOW) -> CallLeg:
    found = call_leg_from(body_as(CallConversation, body), AGENT, observed)
    assert found is not None
    return found


def test_an_available_off_queue_agent_on_no_call_is_ready() -> None:
    verdict = assess(idle_agent(), POLICY, NOW)
    assert (verdict.ready, verdict.reason) == (True, "ready")
    assert verdict.epoch == epoch_of(idle_agent())


def test_presence_is_compared_case_insensitively_or_by_definition_id() -> None:
    upper = with_presence(
        idle_agent(),
        Presence.model_validate(
            {"presenceDefinition": {"systemPresence": "AVAILABLE"}, "modifiedDate": "x"}
        ),
    )
    assert assess(upper, POLICY, NOW).ready
    by_id = ReadinessPolicy(presences=frozenset({"6a3af858-942f-489d-9700-5f9bcdcdae9b"}))
    assert assess(idle_agent(), by_id, NOW).ready


@pytest.mark.parametrize("presence", ["Away", "AWAY", "Busy", "On Queue", "Offline"])
def test_a_presence_not_listed_is_not_ready(presence: str) -> None:
    facts = with_presence(
        idle_agent(),
        Presence.model_validate({"presenceDefinition": {"systemPresence": presence}}),
    )
    verdict = assess(facts, POLICY, NOW)
    assert not verdict.ready
    assert verdict.reason == f"presence {presence}"


def test_routing_status_must_be_listed() -> None:
    facts = with_routing_status(idle_agent(), "INTERACTING")
    assert assess(facts, POLICY, NOW).reason == "routing status INTERACTING"


def test_unknown_facts_are_not_ready() -> None:
    assert assess(AgentFacts(AGENT), POLICY, NOW).reason == "presence not known yet"
    facts = with_presence(
        AgentFacts(AGENT), body_as(Presence, bodies("presence-available.json")[0])
    )
    assert assess(facts, POLICY, NOW).reason == "routing status not known yet"
    facts = with_routing_status(facts, "OFF_QUEUE")
    assert assess(facts, POLICY, NOW).reason == "conversation summary not known yet"


def test_a_call_of_any_origin_in_the_summary_holds_the_agent() -> None:
    busy = with_summary(
        idle_agent(),
        body_as(ConversationSummary, bodies("conversation-summary-sequence.json")[0]),
    )
    assert assess(busy, POLICY, NOW).reason == "on 1 call(s) (conversation summary)"
    acw = with_summary(
        idle_agent(),
        ConversationSummary.model_validate({"call": {"contactCenter": {"active": 0, "acw": 1}}}),
    )
    assert assess(acw, POLICY, NOW).reason == "in after-call work on 1 call(s)"


def test_a_call_goes_on_until_the_agent_leg_ends_then_rest_after_call() -> None:
    dialing, connected, ended = bodies("call-answered-sequence.json")
    facts = with_call(idle_agent(), leg(dialing))
    assert assess(facts, POLICY, NOW).reason.startswith("on call 7f0c9d21")
    facts = with_call(facts, leg(connected))
    assert not assess(facts, POLICY, NOW).ready
    end = datetime(2026, 11, 23, 9, 16, 41, 10000, tzinfo=UTC)
    facts = with_call(facts, leg(ended, observed=NOW))
    assert facts.last_call == ended["id"]
    # Done at the platform's end time (earlier than when we saw it).
    assert facts.last_done_at == end
    resting = assess(facts, POLICY, end + timedelta(seconds=4))
    assert (resting.ready, resting.recheck_at) == (False, end + timedelta(seconds=5))
    after = assess(facts, POLICY, end + timedelta(seconds=5))
    assert after.ready
    # A new epoch: the agent finished a call since the last one.
    assert after.epoch != assess(idle_agent(), POLICY, NOW).epoch


def test_a_platform_clock_ahead_of_ours_never_stretches_the_rest() -> None:
    *_, ended = bodies("call-answered-sequence.json")
    observed = datetime(2026, 11, 23, 9, 16, 0, tzinfo=UTC)  # before the body's endTime
    facts = with_call(idle_agent(), leg(ended, observed=observed))
    assert facts.last_done_at == observed


def test_mandatory_wrap_up_holds_the_agent_until_it_is_done() -> None:
    in_acw, done = bodies("call-acd-wrapup-sequence.json")
    facts = with_call(idle_agent(), leg(in_acw))
    verdict = assess(facts, POLICY, NOW)
    assert verdict.reason == f"wrapping up call {in_acw['id']}"
    facts = with_call(facts, leg(done))
    # Free at the end of ACW, not at the end of the call.
    assert facts.last_done_at == datetime(2026, 11, 23, 9, 17, 20, 300000, tzinfo=UTC)
    assert assess(facts, POLICY, NOW).ready


def test_a_call_without_a_queue_has_no_wrap_up() -> None:
    *_, ended = bodies("call-nonacd-agent-hangs-up-sequence.json")
    found = leg(ended)
    assert (found.ended, found.wrapup_pending, found.done) == (True, False, True)


def test_the_same_readiness_re_read_over_rest_has_the_same_epoch() -> None:
    live = idle_agent()
    rest = with_presence(AgentFacts(AGENT), body_as(Presence, load("user-presence-rest.json")))
    entity = load("users-expand-rest.json")["entities"][0]
    rest = with_routing_status(rest, entity["routingStatus"]["status"])
    rest = with_summary(rest, body_as(ConversationSummary, entity["conversationSummary"]))
    assert assess(rest, POLICY, NOW).epoch == assess(live, POLICY, NOW).epoch


def test_a_presence_change_is_a_new_epoch() -> None:
    later = Presence.model_validate(
        {
            "presenceDefinition": {"systemPresence": "Available"},
            "modifiedDate": "2026-11-23T09:20:00.000Z",
        }
    )
    assert epoch_of(with_presence(idle_agent(), later)) != epoch_of(idle_agent())


def test_a_late_copy_of_an_older_call_never_moves_the_epoch_back() -> None:
    old = CallLeg("old", ended=True, done_at=NOW - timedelta(minutes=5))
    new = CallLeg("new", ended=True, done_at=NOW - timedelta(minutes=1))
    facts = with_call(with_call(idle_agent(), old), new)
    again = with_call(facts, CallLeg("old", ended=True, done_at=NOW))
    assert (again.last_call, epoch_of(again)) == ("new", epoch_of(facts))
    # A finished call never comes back as going on.
    assert with_call(facts, CallLeg("old")).calls == {}


def test_an_open_dial_holds_the_agent_until_settled() -> None:
    facts = with_dial_open(idle_agent(), "key-1")
    assert assess(facts, POLICY, NOW).reason == "dial open (key-1)"
    assert assess(with_dial_closed(facts, "key-1"), POLICY, NOW).ready
    # Seeing the dial's call settles the open dial: the call speaks for itself.
    by_call = with_call(with_dial_open(idle_agent(), "conv-1"), CallLeg("conv-1"))
    assert by_call.open_dials == frozenset()


def test_calls_lost_in_a_gap_are_settled_by_an_idle_summary() -> None:
    facts = with_call(with_call(idle_agent(), CallLeg("lost")), CallLeg("kept"))
    settled = with_calls_settled(facts, NOW, keep={"kept"})
    assert set(settled.calls) == {"kept"}
    assert settled.last_call == "lost"


# Properties

leg_strategy = st.builds(
    CallLeg,
    conversation_id=st.sampled_from(["c1", "c2", "c3", "c4"]),
    ended=st.booleans(),
    wrapup_pending=st.booleans(),
    done_at=st.one_of(st.none(), st.integers(0, 600).map(lambda s: NOW - timedelta(seconds=s))),
)


@given(st.lists(leg_strategy, max_size=8), st.integers(0, 3), st.integers(0, 2))
def test_never_ready_while_anything_holds_the_agent(
    legs: list[CallLeg], active: int, dials: int
) -> None:
    facts = idle_agent()
    for item in legs:
        facts = with_call(facts, item)
    facts = replace(facts, active_calls=active)
    for n in range(dials):
        facts = with_dial_open(facts, f"key-{n}")
    verdict = assess(facts, POLICY, NOW)
    if verdict.ready:
        assert not facts.calls
        assert not facts.active_calls
        assert not facts.open_dials
        assert facts.last_done_at is None or facts.last_done_at <= NOW - timedelta(seconds=5)
    elif verdict.recheck_at is not None:
        # Only resting ends by time alone, and then the agent is ready.
        assert verdict.recheck_at > NOW
        assert assess(facts, POLICY, verdict.recheck_at).ready


@given(
    st.permutations(
        [CallLeg(f"c{i}", ended=True, done_at=NOW - timedelta(seconds=i % 3)) for i in range(6)]
    )
)
def test_the_epoch_does_not_depend_on_the_order_calls_were_seen(legs: list[CallLeg]) -> None:
    facts = idle_agent()
    for item in legs:
        facts = with_call(facts, item)
    reference = idle_agent()
    for item in sorted(legs, key=lambda leg: leg.conversation_id):
        reference = with_call(reference, item)
    assert epoch_of(facts) == epoch_of(reference)
