"""Pure parts of the fake: call plans and scripts, outcome choice, request validation, scenarios."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from outdial.events import CallConversation, body_as
from outdial.fake import CallTiming, Outcome, call_script, load_scenario, plan_call
from outdial.fake.errors import ApiError, status_error
from outdial.fake.scenario import Scenario, ScenarioError, platform_from_scenario
from outdial.fake.script import (
    DEFAULT_OUTCOME_WEIGHTS,
    CallParties,
    CallStyle,
    WrapupCode,
    canonical_presence,
    foreign_call_script,
    hang_up,
    iso_ms,
    pick_outcome,
    presence_label,
    purposes_for,
    q850_cause,
    wrapup_done,
)
from outdial.fake.validation import check_topic, validate_create_call

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"
START = datetime(2026, 11, 23, 9, 15, 3, 500000, tzinfo=UTC)
PARTIES = CallParties(
    conversation_id="7f0c9d21-8e3b-4a55-b1c4-2e9f0a6d7c88",
    user_id="3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60",
    phone_number="+441212345601",
    agent_participant_id="c1f2e3d4-0000-4000-8000-00000000a001",
    customer_participant_id="c1f2e3d4-0000-4000-8000-00000000c001",
)
TIMING = CallTiming(ring=(1.0, 3.0), talk=(2.0, 6.0), wrapup=1.0, dial=0.12)


def _keys(value: Any) -> Any:
    """The key structure of a JSON value (values dropped), to compare shapes."""
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return None


def _fixture(name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads((FIXTURES / name).read_text())
    return events


def _legs(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(agent leg, customer leg) of a body, by participant id."""
    legs = {p["id"]: p for p in body["participants"]}
    return legs[PARTIES.agent_participant_id], legs[PARTIES.customer_participant_id]


def test_answered_script_has_the_fixture_shape() -> None:
    fixture = _fixture("call-answered-sequence.json")
    plan = plan_call(random.Random(1), TIMING, {}, forced=Outcome.ANSWERED)
    steps = call_script(plan, PARTIES, TIMING, START)
    assert len(steps) == len(fixture) == 3
    for step, event in zip(steps, fixture, strict=True):
        expected = _keys(event["eventBody"])
        got = _keys(step.body)
        # One extra over the fixture, on the final body: the customer leg keeps its
        # connectedTime, which tells an answered call from a busy one at a glance.
        if step.ended:
            del got["participants"][1]["connectedTime"]
        assert got == expected
        body_as(CallConversation, step.body)  # the daemon's own model accepts it
    assert [s.ended for s in steps] == [False, False, True]
    assert steps[0].delay == pytest.approx(0.12)
    assert steps[1].delay == pytest.approx(plan.ring)
    assert steps[2].delay == pytest.approx(plan.talk)
    assert steps[0].body["participants"][1]["startTime"] == "2026-11-23T09:15:03.620Z"
    # The customer hung up: "endpoint" on the customer's own leg, "peer" on the agent's,
    # and no wrap-up for a call without a queue.
    agent, customer = _legs(steps[-1].body)
    final_agent, final_customer = fixture[-1]["eventBody"]["participants"]
    assert (customer["disconnectType"], agent["disconnectType"]) == ("endpoint", "peer")
    assert (final_customer["disconnectType"], final_agent["disconnectType"]) == ("endpoint", "peer")
    assert agent["wrapupRequired"] is False
    assert agent["endTime"] == customer["endTime"]


def test_non_acd_agent_hang_up_script_matches_the_fixture() -> None:
    fixture = _fixture("call-nonacd-agent-hangs-up-sequence.json")
    plan = plan_call(random.Random(1), TIMING, {}, forced=Outcome.ANSWERED, agent_hangs_up=True)
    style = CallStyle(agent_purpose="user", far_purpose="external")
    steps = call_script(plan, PARTIES, TIMING, START, style)
    assert len(steps) == len(fixture) == 3
    for step, event in zip(steps, fixture, strict=True):
        got = _keys(step.body)
        if step.ended:
            del got["participants"][1]["connectedTime"]
        assert got == _keys(event["eventBody"])
        assert [p["purpose"] for p in step.body["participants"]] == ["user", "external"]
    agent, customer = _legs(steps[-1].body)
    expected_agent, expected_customer = fixture[-1]["eventBody"]["participants"]
    assert (agent["disconnectType"], customer["disconnectType"]) == ("client", "peer")
    assert (expected_agent["disconnectType"], expected_customer["disconnectType"]) == (
        "client",
        "peer",
    )
    assert agent["wrapupRequired"] is False
    assert (plan.hangup, plan.agent_disconnect_type, plan.disconnect_type) == (
        "agent",
        "client",
        "peer",
    )


QUEUE = "5e2c7a90-1111-4000-8000-0000000000q1"


def test_acd_call_ends_in_wrap_up_as_the_fixture() -> None:
    fixture = _fixture("call-acd-wrapup-sequence.json")
    plan = plan_call(random.Random(1), TIMING, {}, forced=Outcome.ANSWERED)
    style = CallStyle(queue_id=QUEUE)
    steps = call_script(plan, PARTIES, TIMING, START, style)
    ended = steps[-1].body
    got = _keys(ended)
    del got["participants"][1]["connectedTime"]
    assert got == _keys(fixture[0]["eventBody"])
    agent, _ = _legs(ended)
    assert agent["queue"] == {"id": QUEUE}
    assert (agent["state"], agent["wrapupRequired"], agent["wrapupPrompt"]) == (
        "disconnected",
        True,
        "mandatory",
    )
    assert agent["wrapupTimeoutMs"] == 60000
    assert agent["startAcwTime"] == agent["endTime"]
    # The queue is on the agent leg throughout an ACD call, never on the customer's.
    assert all(_legs(s.body)[0]["queue"] == {"id": QUEUE} for s in steps)
    assert all("queue" not in _legs(s.body)[1] for s in steps)

    # Wrap-up done, from the fixture's own first body: exactly the fixture's second.
    code = WrapupCode("8d2e1a00-2222-4000-8000-0000000000w1", "Sale")
    done = wrapup_done(
        fixture[0]["eventBody"],
        PARTIES,
        datetime(2026, 11, 23, 9, 17, 20, 300000, tzinfo=UTC),
        code,
    )
    assert done == fixture[1]["eventBody"]


@pytest.mark.parametrize(
    ("outcome", "agent_hangs_up", "customer_leg", "agent_leg", "cause"),
    [
        (Outcome.ANSWERED, False, "endpoint", "peer", 16),
        (Outcome.ANSWERED, True, "peer", "client", 16),
        (Outcome.BUSY, False, "endpoint", "peer", 17),
        (Outcome.BUSY, True, "endpoint", "peer", 17),  # nothing for the agent to hang up
        (Outcome.NO_ANSWER, False, "timeout", "peer", 19),
        (Outcome.NO_ANSWER, True, "peer", "client", 16),  # the agent abandons it ringing
        (Outcome.FAILED, False, "error", "peer", 41),
    ],
)
def test_disconnect_types_are_relative_to_each_leg(
    outcome: Outcome, agent_hangs_up: bool, customer_leg: str, agent_leg: str, cause: int
) -> None:
    plan = plan_call(random.Random(3), TIMING, {}, forced=outcome, agent_hangs_up=agent_hangs_up)
    style = CallStyle(disconnect_reasons=True)
    agent, customer = _legs(call_script(plan, PARTIES, TIMING, START, style)[-1].body)
    assert (customer["disconnectType"], agent["disconnectType"]) == (customer_leg, agent_leg)
    assert customer["disconnectReasons"] == [{"type": "q850", "code": cause}]
    assert "disconnectReasons" not in agent
    assert ("connectedTime" in customer) is (outcome is Outcome.ANSWERED)
    # Without the switch the calls topic carries no Q.850 causes.
    plain = call_script(plan, PARTIES, TIMING, START)[-1].body
    assert "disconnectReasons" not in _legs(plain)[1]


def test_unassigned_number_has_cause_unallocated() -> None:
    plan = plan_call(random.Random(0), TIMING, {Outcome.ANSWERED: 1}, reachable=False)
    assert (plan.disconnect_type, plan.agent_disconnect_type) == ("uncallable", "peer")
    assert q850_cause(plan) == 1


def test_who_hangs_up_takes_no_draw() -> None:
    plain, agent = random.Random(9), random.Random(9)
    first = plan_call(plain, TIMING, DEFAULT_OUTCOME_WEIGHTS)
    second = plan_call(agent, TIMING, DEFAULT_OUTCOME_WEIGHTS, agent_hangs_up=True)
    assert (first.outcome, first.ring, first.talk) == (second.outcome, second.ring, second.talk)
    assert plain.random() == agent.random()


def test_purposes_by_mode() -> None:
    assert purposes_for("auto", QUEUE) == ("agent", "customer")
    assert purposes_for("auto", None) == ("user", "external")
    assert purposes_for("agent-customer", None) == ("agent", "customer")
    assert purposes_for("user-external", QUEUE) == ("user", "external")
    with pytest.raises(ValueError, match="purposes"):
        purposes_for("both", None)


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_foreign_call_connects_and_hangs_up_per_leg(
    direction: Literal["inbound", "outbound"],
) -> None:
    style = CallStyle(agent_purpose="user", far_purpose="external", direction=direction)
    ringing, connected = foreign_call_script(PARTIES, style, START)
    order = [p["purpose"] for p in connected["participants"]]
    # The caller comes first on an inbound call, the agent on an outbound one.
    assert order == (["external", "user"] if direction == "inbound" else ["user", "external"])
    assert {p["direction"] for p in connected["participants"]} == {direction}
    agent, customer = _legs(ringing)
    if direction == "inbound":
        assert (agent["state"], customer["state"]) == ("alerting", "connected")
    else:
        assert (agent["state"], customer["state"]) == ("connected", "dialing")
    agent, customer = _legs(connected)
    assert (agent["state"], customer["state"]) == ("connected", "connected")
    assert customer["connectedTime"] == iso_ms(START)
    end = START + timedelta(seconds=30)
    by_customer = _legs(hang_up(connected, PARTIES, style, end, "customer"))
    assert [leg["disconnectType"] for leg in by_customer] == ["peer", "endpoint"]
    by_agent = _legs(hang_up(connected, PARTIES, style, end, "agent"))
    assert [leg["disconnectType"] for leg in by_agent] == ["client", "peer"]
    assert all(leg["endTime"] == iso_ms(end) for leg in by_agent)
    assert by_agent[0]["wrapupRequired"] is False
    body_as(CallConversation, connected)


def test_presence_names_in_any_case() -> None:
    assert canonical_presence("AVAILABLE") == "Available"
    assert canonical_presence("on queue") == "On Queue"
    assert canonical_presence("ON_QUEUE") == "On Queue"
    assert presence_label("On Queue", upper=True) == "ON_QUEUE"
    assert presence_label("busy") == "Busy"
    with pytest.raises(ValueError, match="unknown system presence"):
        canonical_presence("Napping")


def test_plan_consumes_the_same_draws_whether_forced_or_not() -> None:
    free = random.Random(5)
    forced = random.Random(5)
    for _ in range(3):
        plan_call(free, TIMING, {Outcome.ANSWERED: 1})
        plan_call(forced, TIMING, {Outcome.ANSWERED: 1}, forced=Outcome.BUSY)
    assert free.random() == forced.random()


def test_unreachable_number_always_fails_uncallable() -> None:
    plan = plan_call(random.Random(0), TIMING, {Outcome.ANSWERED: 1}, reachable=False)
    assert (plan.outcome, plan.disconnect_type) == (Outcome.FAILED, "uncallable")


@pytest.mark.parametrize(
    ("agent_available", "forced", "disconnect"),
    [(True, Outcome.AGENT_UNAVAILABLE, "timeout"), (False, None, "error")],
)
def test_agent_unavailable_script_never_dials_the_customer(
    agent_available: bool, forced: Outcome | None, disconnect: str
) -> None:
    fixture = json.loads((FIXTURES / "call-answered-sequence.json").read_text())
    fixture_agent = _keys(fixture[0]["eventBody"]["participants"][0])
    plan = plan_call(
        random.Random(1),
        TIMING,
        {Outcome.ANSWERED: 1},
        forced=forced,
        agent_available=agent_available,
    )
    assert (plan.outcome, plan.disconnect_type) == (Outcome.AGENT_UNAVAILABLE, disconnect)
    steps = call_script(plan, PARTIES, TIMING, START)
    assert [s.ended for s in steps] == [False, True]
    for step in steps:
        body = step.body
        # The fixture's conversation shape, with the agent as the only participant.
        assert set(body) == set(fixture[0]["eventBody"])
        [leg] = body["participants"]
        assert leg["purpose"] == "agent"
        assert leg["user"] == {"id": PARTIES.user_id}
        got = _keys(leg)
        if step.ended:
            del got["endTime"], got["disconnectType"], got["wrapupRequired"]
            # Never on the call: nothing to wrap up.
            assert leg["wrapupRequired"] is False
        assert got == fixture_agent
        assert body_as(CallConversation, body).customer() is None
    alerting, ended = (s.body["participants"][0] for s in steps)
    assert alerting["state"] == "alerting"
    assert (ended["state"], ended["disconnectType"]) == ("disconnected", disconnect)
    # A station that rings out takes the ring time; a missing one is reported sooner.
    ring = plan.ring if disconnect == "timeout" else plan.ring / 2
    assert steps[0].delay == pytest.approx(0.12)
    assert steps[1].delay == pytest.approx(ring)
    assert ended["endTime"] == iso_ms(START + timedelta(seconds=0.12 + ring))


def test_agent_comes_before_the_number() -> None:
    # Offline beats a forced outcome and an unreachable number: the customer is never dialed.
    offline = plan_call(
        random.Random(0),
        TIMING,
        {},
        forced=Outcome.ANSWERED,
        reachable=False,
        agent_available=False,
    )
    assert (offline.outcome, offline.disconnect_type) == (Outcome.AGENT_UNAVAILABLE, "error")
    forced = plan_call(
        random.Random(0), TIMING, {}, forced=Outcome.AGENT_UNAVAILABLE, reachable=False
    )
    assert (forced.outcome, forced.disconnect_type) == (Outcome.AGENT_UNAVAILABLE, "timeout")


def test_agent_unavailable_takes_the_same_three_draws() -> None:
    plain, offline, forced = random.Random(5), random.Random(5), random.Random(5)
    for _ in range(3):
        a = plan_call(plain, TIMING, DEFAULT_OUTCOME_WEIGHTS)
        b = plan_call(offline, TIMING, DEFAULT_OUTCOME_WEIGHTS, agent_available=False)
        c = plan_call(forced, TIMING, DEFAULT_OUTCOME_WEIGHTS, forced=Outcome.AGENT_UNAVAILABLE)
        assert a.ring == b.ring == c.ring
        assert a.talk == b.talk == c.talk
    assert plain.random() == offline.random() == forced.random()


def test_default_weights_never_draw_agent_unavailable_and_replay_unchanged() -> None:
    assert DEFAULT_OUTCOME_WEIGHTS[Outcome.AGENT_UNAVAILABLE] == 0
    # The weights as they were before agent-unavailable existed: the same plans.
    before: dict[Outcome, float] = {
        o: w for o, w in DEFAULT_OUTCOME_WEIGHTS.items() if o is not Outcome.AGENT_UNAVAILABLE
    }
    now_rng, before_rng = random.Random(11), random.Random(11)
    plans = [plan_call(now_rng, TIMING, DEFAULT_OUTCOME_WEIGHTS) for _ in range(500)]
    assert plans == [plan_call(before_rng, TIMING, before) for _ in range(500)]
    assert Outcome.AGENT_UNAVAILABLE not in {p.outcome for p in plans}
    assert {p.outcome for p in plans} == set(before)


def test_pick_outcome_draws_agent_unavailable_by_weight() -> None:
    weights = {Outcome.ANSWERED: 1.0, Outcome.AGENT_UNAVAILABLE: 1.0}
    assert pick_outcome(weights, 0.49) is Outcome.ANSWERED
    assert pick_outcome(weights, 0.5) is Outcome.AGENT_UNAVAILABLE
    plan = plan_call(random.Random(0), TIMING, {Outcome.AGENT_UNAVAILABLE: 1.0})
    assert (plan.outcome, plan.disconnect_type) == (Outcome.AGENT_UNAVAILABLE, "timeout")


def test_pick_outcome_follows_weights_in_enum_order() -> None:
    weights = {Outcome.FAILED: 1.0, Outcome.ANSWERED: 1.0}
    assert pick_outcome(weights, 0.0) is Outcome.ANSWERED
    assert pick_outcome(weights, 0.49) is Outcome.ANSWERED
    assert pick_outcome(weights, 0.5) is Outcome.FAILED
    assert pick_outcome(weights, 0.999) is Outcome.FAILED
    with pytest.raises(ValueError, match="positive sum"):
        pick_outcome({Outcome.BUSY: 0.0}, 0.5)


def test_timing_is_validated() -> None:
    with pytest.raises(ValueError, match="ring"):
        CallTiming(ring=(3.0, 1.0))
    with pytest.raises(ValueError, match="wrapup"):
        CallTiming(wrapup=-1)


def test_fixture_request_is_accepted() -> None:
    body = json.loads((FIXTURES / "create-call-request.json").read_text())
    request, dial = validate_create_call(body)
    assert request.label == "personal"
    assert request.attributes == {"contactId": "ext-17"}
    assert dial is not None
    assert dial.reachable


def test_unknown_keys_are_all_named() -> None:
    with pytest.raises(ApiError) as refused:
        validate_create_call({"phoneNumber": "+441212345601", "callee": 1, "to": 2})
    assert [d.field_name for d in refused.value.details] == ["callee", "to"]
    assert '"callee"' in refused.value.message


def test_queue_call_needs_no_phone_number() -> None:
    request, dial = validate_create_call({"callQueueId": "q-1"})
    assert dial is None
    assert not request.is_plain_call


def test_topic_checks() -> None:
    assert check_topic("v2.users.abc.presence").permitted
    assert check_topic("v2.routing.queues.q1.conversations").permitted
    assert not check_topic("v2.users.abc").permitted
    assert not check_topic("v2.users.abc.bogus").permitted
    assert not check_topic("users.abc.presence").permitted


def test_status_error_body_shape() -> None:
    error = status_error(429, retry_after=2)
    body = error.body("ctx")
    assert body["status"] == 429
    assert body["contextId"] == "ctx"
    assert body["message"] == "Rate limit exceeded the maximum. Retry the request in [2] seconds"
    assert body["messageParams"] == {"retryAfter": "2"}


def test_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        "heartbeat_interval = 5.0\n[timing]\nring = [0.5, 1.0]\n[weights]\nbusy = 1.0\n"
        '[outcomes]\n"+441212345601" = "no_answer"\n'
    )
    scenario = load_scenario(path)
    assert scenario.call_timing().ring == (0.5, 1.0)
    assert scenario.weights == {Outcome.BUSY: 1.0}
    assert scenario.outcomes == {"+441212345601": Outcome.NO_ANSWER}
    path.write_text(
        "[weights]\nanswered = 1.0\nagent_unavailable = 0.5\n"
        '[outcomes]\n"+441212345602" = "agent_unavailable"\n'
    )
    scenario = load_scenario(path)
    assert scenario.weights == {Outcome.ANSWERED: 1.0, Outcome.AGENT_UNAVAILABLE: 0.5}
    assert scenario.outcomes == {"+441212345602": Outcome.AGENT_UNAVAILABLE}
    path.write_text('[outcomes]\n"+441212345601" = "maybe"\n')
    with pytest.raises(ScenarioError, match=r"outcomes\.\+441212345601"):
        load_scenario(path)
    path.write_text("[timing]\nring = [2.0, 1.0]\n")
    with pytest.raises(ScenarioError, match="ring"):
        load_scenario(path)


def test_scenario_platform_switches(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        'rate_limit = 0\npurposes = "agent-customer"\npresence_case = "upper"\n'
        "disconnect_reasons = true\nagent_hangup_rate = 0.25\n"
        '[hangups]\n"+441212345601" = "agent"\n'
    )
    platform = platform_from_scenario(load_scenario(path))
    assert platform.rate_limit is None  # 0: never refuse
    assert (platform.purposes, platform.presence_case) == ("agent-customer", "upper")
    assert platform.disconnect_reasons is True
    assert platform.agent_hangup_rate == 0.25
    defaults = platform_from_scenario(Scenario())
    assert defaults.rate_limit == 300
    path.write_text('[hangups]\n"+441212345601" = "dog"\n')
    with pytest.raises(ScenarioError, match=r"hangups\.\+441212345601"):
        load_scenario(path)
