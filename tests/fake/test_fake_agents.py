"""The agent core of the fake: presence, routing status and conversation summary as the
platform keeps them, and the users reads built from them (pure, no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outdial.events import ConversationSummary, body_as
from outdial.fake.agents import (
    AgentState,
    CallLoad,
    CallPhase,
    ExpandDrops,
    UsersQuery,
    change_call,
    change_presence,
    new_agent,
    parse_users_query,
    presence_event_body,
    presence_rest_body,
    routing_event_body,
    routing_for,
    summary_body,
    users_page,
)
from outdial.fake.errors import ApiError

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"
USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=75, seconds=2, milliseconds=114)

ACD = CallLoad(acd=True, phase=CallPhase.ACTIVE)
ACD_ACW = CallLoad(acd=True, phase=CallPhase.ACW)
PERSONAL = CallLoad(acd=False, phase=CallPhase.ACTIVE)


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _agent(presence: str = "Available") -> AgentState:
    return new_agent(USER, T0, name="Agent One", presence=presence)


def test_a_new_agent_is_available_and_off_queue() -> None:
    agent = _agent()
    assert (agent.presence, agent.routing) == ("Available", "OFF_QUEUE")
    assert routing_event_body(agent) == _fixture("routing-status.json")["eventBody"]


@pytest.mark.parametrize(
    ("presence", "calls", "expected"),
    [
        ("Available", {}, "OFF_QUEUE"),
        ("Available", {"c1": ACD}, "OFF_QUEUE"),
        ("Busy", {"c1": PERSONAL}, "OFF_QUEUE"),
        ("On Queue", {}, "IDLE"),
        ("On Queue", {"c1": PERSONAL}, "COMMUNICATING"),
        ("On Queue", {"c1": ACD}, "INTERACTING"),
        ("On Queue", {"c1": ACD_ACW}, "INTERACTING"),  # through its wrap-up
        ("On Queue", {"c1": PERSONAL, "c2": ACD_ACW}, "INTERACTING"),
        ("ON_QUEUE", {}, "IDLE"),
    ],
)
def test_routing_status_follows_presence_and_calls(
    presence: str, calls: dict[str, CallLoad], expected: str
) -> None:
    assert routing_for(presence, calls, False) == expected


def test_a_call_never_changes_presence() -> None:
    agent = _agent()
    on_call = change_call(agent, "c1", PERSONAL, T1)
    assert on_call.state.presence == "Available"
    assert not on_call.presence
    assert on_call.summary
    assert not on_call.routing  # off queue: stays OFF_QUEUE, no event
    done = change_call(on_call.state, "c1", None, T1)
    assert done.state.presence == "Available"
    assert (done.summary, done.presence, done.routing) == (True, False, False)


def test_acd_call_on_queue_interacts_through_wrap_up_then_idles() -> None:
    agent = change_presence(_agent(), "On Queue", T0).state
    assert agent.routing == "IDLE"
    placed = change_call(agent, "c1", ACD, T1)
    assert (placed.routing, placed.state.routing) == (True, "INTERACTING")
    assert placed.state.routing_start == T1
    wrapping = change_call(placed.state, "c1", ACD_ACW, T1 + timedelta(seconds=60))
    assert (wrapping.summary, wrapping.routing) == (True, False)  # still INTERACTING
    counts = wrapping.state.counts
    assert (counts.contact_center_active, counts.contact_center_acw) == (0, 1)
    done = change_call(wrapping.state, "c1", None, T1 + timedelta(seconds=90))
    assert (done.routing, done.state.routing) == (True, "IDLE")
    assert done.state.routing_start == T1 + timedelta(seconds=90)


def test_presence_change_republishes_only_what_moved() -> None:
    agent = change_call(_agent(), "c1", PERSONAL, T0).state
    on_queue = change_presence(agent, "on queue", T1)
    assert (on_queue.presence, on_queue.routing) == (True, True)
    assert on_queue.state.presence == "On Queue"
    assert on_queue.state.routing == "COMMUNICATING"
    same = change_presence(on_queue.state, "On Queue", T1 + timedelta(seconds=1))
    assert (same.presence, same.routing, same.summary) == (False, False, False)
    again = change_presence(on_queue.state, "On Queue", T1, republish=True)
    assert (again.presence, again.routing) == (True, False)


def test_only_not_responding_may_be_set_and_only_on_queue() -> None:
    on_queue = change_presence(_agent(), "On Queue", T0).state
    stuck = change_presence(on_queue, "On Queue", T1, "NOT_RESPONDING")
    assert (stuck.routing, stuck.state.routing) == (True, "NOT_RESPONDING")
    # Setting the presence again (the agent goes back on queue) clears it.
    back = change_presence(stuck.state, "On Queue", T1)
    assert back.state.routing == "IDLE"
    assert change_presence(_agent(), "Available", T0, "OFF_QUEUE").state.routing == "OFF_QUEUE"
    with pytest.raises(ValueError, match="contradicts presence"):
        change_presence(_agent(), "Available", T0, "IDLE")
    with pytest.raises(ValueError, match="contradicts presence"):
        change_presence(_agent(), "Away", T0, "NOT_RESPONDING")
    with pytest.raises(ValueError, match="unknown routing status"):
        change_presence(on_queue, "On Queue", T0, "LUNCH")


def test_summary_counts_acd_and_non_acd_apart() -> None:
    agent = change_call(_agent(), "c1", PERSONAL, T0).state
    body = summary_body(agent)
    assert body == _fixture("conversation-summary-sequence.json")[0]["eventBody"]
    agent = change_call(agent, "c2", ACD, T0).state
    agent = change_call(agent, "c3", ACD_ACW, T0).state
    call = summary_body(agent)["call"]
    assert call == {
        "contactCenter": {"active": 1, "acw": 1},
        "enterprise": {"active": 1, "acw": 0},
    }
    summary = body_as(ConversationSummary, summary_body(agent))
    assert (summary.call.active, summary.call.acw) == (2, 1)
    done = change_call(
        change_call(change_call(agent, "c1", None, T0).state, "c2", None, T0).state, "c3", None, T0
    )
    assert (
        summary_body(done.state) == _fixture("conversation-summary-sequence.json")[1]["eventBody"]
    )


def test_presence_event_and_rest_bodies_are_the_fixtures() -> None:
    agent = change_presence(_agent("Busy"), "Available", T1).state
    assert presence_event_body(agent) == _fixture("presence-available.json")["eventBody"]
    rest = presence_rest_body(agent)
    assert rest == _fixture("user-presence-rest.json")
    assert rest != presence_event_body(agent)  # a re-read never equals the live body
    upper = presence_rest_body(agent, upper=True)
    assert upper["presenceDefinition"]["systemPresence"] == "AVAILABLE"
    on_queue = change_presence(agent, "On Queue", T1).state
    assert presence_event_body(on_queue, upper=True)["presenceDefinition"]["systemPresence"] == (
        "ON_QUEUE"
    )


def test_users_page_is_the_fixture() -> None:
    agent = change_presence(_agent("Busy"), "Available", T1).state
    query = parse_users_query(
        [("id", USER), ("expand", "presence,routingStatus,conversationSummary")]
    )
    assert users_page([agent], query) == _fixture("users-expand-rest.json")


def test_users_query_takes_repeated_and_comma_separated_ids() -> None:
    query = parse_users_query([("id", "a,b"), ("id", "c"), ("id", "a"), ("pageSize", "2")])
    assert query.ids == ("a", "b", "c")
    assert query.page_size == 2
    assert parse_users_query([]) == UsersQuery(ids=None)
    assert parse_users_query([("expand", "presence"), ("expand", "skills")]).expands == (
        "presence",
        "skills",
    )


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([("pageSize", "0")], "pageSize"),
        ([("pageSize", "501")], "pageSize"),
        ([("pageSize", "many")], "pageSize"),
        ([("pageNumber", "0")], "pageNumber"),
        ([("expand", "presense")], "expand"),
        ([("id", ",".join(f"u{i}" for i in range(101)))], "id"),
    ],
)
def test_bad_users_queries_name_the_field(pairs: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_users_query(pairs)
    assert refused.value.status == 400
    assert [d.field_name for d in refused.value.details] == [field]


def test_users_pages_skip_unknown_ids_and_keep_the_order_asked() -> None:
    agents = [new_agent(f"u{i}", T0, name=f"Agent {i}") for i in range(5)]
    query = UsersQuery(ids=("u3", "nobody", "u1", "u4"), page_size=2, page_number=1)
    first = users_page(agents, query)
    assert [e["id"] for e in first["entities"]] == ["u3", "u1"]
    assert (first["total"], first["pageCount"]) == (3, 2)
    second = users_page(agents, UsersQuery(query.ids, page_size=2, page_number=2))
    assert [e["id"] for e in second["entities"]] == ["u4"]
    everyone = users_page(agents, UsersQuery(ids=None))
    assert [e["id"] for e in everyone["entities"]] == [f"u{i}" for i in range(5)]
    assert "presence" not in everyone["entities"][0]  # no expand asked, none given


def test_dropped_expands_leave_the_entity_otherwise_whole() -> None:
    agents = [new_agent("u1", T0, name="One"), new_agent("u2", T0, name="Two")]
    query = UsersQuery(ids=("u1", "u2"), expands=("presence", "conversationSummary"))
    page = users_page(agents, query, keep=lambda user, expand: (user, expand) != ("u1", "presence"))
    one, two = page["entities"]
    assert set(one) == {"id", "name", "state", "conversationSummary", "selfUri"}
    assert set(two) == {"id", "name", "state", "presence", "conversationSummary", "selfUri"}


def test_expand_drop_rules() -> None:
    drops = ExpandDrops()
    drops.set("u1", "conversationSummary", 1.0, single=False)
    drops.set(None, "presence", 0.5, single=True)
    assert drops.rate("u1", "conversationSummary", single=False) == 1.0
    assert drops.rate("u1", "conversationSummary", single=True) == 0.0
    assert drops.rate("u2", "presence", single=True) == 0.5
    drops.set(None, "presence", 0.0, single=True)
    assert drops.rate("u2", "presence", single=False) == 0.0
    with pytest.raises(ValueError, match="expand"):
        drops.set("u1", "skills", 1.0, single=False)
