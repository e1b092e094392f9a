"""Rule compilation and matching: topics, when patterns, same-element semantics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.config import DialSpec, Rule
from outdial.events import Event, parse_frame
from outdial.handlers.rules import PatternIndex, RuleError, RuleIndex, TopicPattern, WhenPattern

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"


def rule(name: str = "r", topic: str = "v2.users.{userId}.presence", **kw: Any) -> Rule:
    kw.setdefault("users", ["u1", "u2"])
    kw.setdefault("dial", DialSpec(user="{userId}", contact="next"))
    return Rule(name=name, topic=topic, **kw)


def presence(user: str, value: str) -> Event:
    return Event(
        topic=f"v2.users.{user}.presence",
        body={"presenceDefinition": {"systemPresence": value}},
    )


def fixture_events(name: str) -> list[Event]:
    if not (FIXTURES / name).is_file():
        pytest.skip(f"Genesys fixture {name} not found in {FIXTURES}")
    data = json.loads((FIXTURES / name).read_text())
    frames = [
        parse_frame(json.dumps(item)) for item in (data if isinstance(data, list) else [data])
    ]
    return [f for f in frames if isinstance(f, Event)]


def test_topics_fill_user_ids() -> None:
    index = RuleIndex.compile(
        [rule(), rule("b", "v2.users.{userId}.routingStatus", users=["u3"]), rule("c", "v2.x")]
    )
    assert index.topics() == {
        "v2.users.u1.presence",
        "v2.users.u2.presence",
        "v2.users.u3.routingStatus",
        "v2.x",
    }


def test_match_binds_user_and_checks_when() -> None:
    index = RuleIndex.compile([rule(when={"presenceDefinition.systemPresence": "Available"})])
    [m] = index.match(presence("u2", "Available"))
    assert m.name == "r"
    assert m.bindings == {"userId": "u2"}
    assert index.match(presence("u2", "Away")) == []
    assert index.match(presence("u9", "Available")) == []  # not a listed user


def test_fixture_presence_matches() -> None:
    [event] = fixture_events("presence-available.json")
    user = event.topic.split(".")[2]
    index = RuleIndex.compile(
        [rule(users=[user], when={"presenceDefinition.systemPresence": ["Available", "On Queue"]})]
    )
    [m] = index.match(event)
    assert m.render_dial().user_id == user


def test_same_element_through_a_list() -> None:
    index = RuleIndex.compile(
        [
            rule(
                "callback",
                "v2.users.{userId}.conversations.calls",
                when={"participants.purpose": "customer", "participants.disconnectType": "peer"},
                dial=DialSpec(user="{userId}", phone_number="{participants.address}"),
            )
        ]
    )
    base = {"id": "c"}
    # agent disconnected by peer, customer by timeout: no single element has both.
    split = {
        **base,
        "participants": [
            {"purpose": "agent", "disconnectType": "peer", "address": "agent-addr"},
            {"purpose": "customer", "disconnectType": "timeout", "address": "+1"},
        ],
    }
    assert index.match(Event("v2.users.u1.conversations.calls", split)) == []
    good = {
        **base,
        "participants": [
            {"purpose": "agent", "disconnectType": "peer", "address": "agent-addr"},
            {"purpose": "customer", "disconnectType": "peer", "address": "tel:+441212345601"},
        ],
    }
    [m] = index.match(Event("v2.users.u1.conversations.calls", good))
    # The template reads from the element that matched, not the first one.
    assert m.render_dial().phone_number == "tel:+441212345601"


def test_fixture_call_sequence_matches_only_the_customer_hang_up() -> None:
    events = fixture_events("call-answered-sequence.json")
    user = events[0].topic.split(".")[2]
    index = RuleIndex.compile(
        [
            rule(
                "callback",
                "v2.users.{userId}.conversations.calls",
                users=[user],
                # The customer hung up: the customer leg's own end (``endpoint``).
                when={
                    "participants.purpose": "customer",
                    "participants.disconnectType": "endpoint",
                },
                dial=DialSpec(user="{userId}", phone_number="{participants.address}"),
            )
        ]
    )
    hits = [len(index.match(e)) for e in events]
    assert hits == [0, 0, 1]


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ({"prefix": "Avail"}, "Available", True),
        ({"prefix": "Avail"}, "Away", False),
        ({"suffix": "able"}, "Available", True),
        ({"equals-ignore-case": "available"}, "AVAILABLE", True),
        ({"anything-but": "Away"}, "Available", True),
        ({"anything-but": ["Away", "Busy"]}, "Busy", False),
        ({"anything-but": {"prefix": "A"}}, "Busy", True),
        ({"anything-but": {"prefix": "A"}}, "Away", False),
        ({"numeric": [">", 0, "<=", 5]}, 5, True),
        ({"numeric": [">", 0, "<=", 5]}, 0, False),
        ({"numeric": ["=", 3]}, 3.0, True),
        ({"numeric": [">", 0]}, "7", False),  # strings are not numbers
        ({"numeric": [">", 0]}, True, False),  # nor are booleans
        ({"exists": True}, "x", True),
        ({"exists": False}, "x", False),
        (1, True, False),  # equality is type-aware
        (True, True, True),
        ("1", 1, False),
        (None, None, True),
        ([{"prefix": "B"}, "Away"], "Away", True),
    ],
)
def test_operators(pattern: Any, value: Any, expected: bool) -> None:
    when = WhenPattern.compile({"a.b": pattern})
    assert (when.match({"a": {"b": value}}) is not None) is expected


def test_missing_fields() -> None:
    assert WhenPattern.compile({"a.b": {"exists": False}}).match({"a": {}}) is not None
    assert WhenPattern.compile({"a.b": {"exists": False}}).match({}) is not None
    assert WhenPattern.compile({"a.b": {"exists": True}}).match({"a": 1}) is None
    # A missing field is not "anything but X".
    assert WhenPattern.compile({"a": {"anything-but": "x"}}).match({}) is None
    # Empty lists hold nothing to match.
    assert WhenPattern.compile({"a": "x"}).match({"a": []}) is None
    assert WhenPattern.compile({"a": {"exists": False}}).match({"a": []}) is not None


def test_leaf_lists_match_any_element() -> None:
    when = WhenPattern.compile({"tags": "vip"})
    assert when.match({"tags": ["new", "vip"]}) == {"tags": "vip"}
    assert when.match({"tags": ["new"]}) is None


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"a": {"prefx": "x"}}, "unknown operator 'prefx'"),
        ({"a": {"numeric": [">"]}}, "numeric wants"),
        ({"a": {"numeric": ["~", 1]}}, "numeric operator '~'"),
        ({"a": {"numeric": [">", "1"]}}, "not a number"),
        ({"a": {"numeric": ["=", 1, "<", 2]}}, "stands alone"),
        ({"a": {"exists": "yes"}}, "exists wants true or false"),
        ({"a": {"prefix": 3}}, "prefix wants a string"),
        ({"a": {"prefix": "x", "suffix": "y"}}, "exactly one key"),
        ({"a": []}, "empty list"),
        ({"a..b": 1}, "bad key"),
        ({"a": {"anything-but": {"numeric": [">", 1]}}}, "anything-but takes"),
    ],
)
def test_bad_patterns_are_rule_errors(when: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=message) as info:
        RuleIndex.compile([rule("bad", when=when)])
    assert info.value.rule == "bad"
    assert info.value.location.startswith("when.")


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("v2.users.{userId}x.presence", "a placeholder is a whole segment"),
        ("v2.queues.{queueId}.conversations", "placeholder {queueId} cannot be filled"),
        ("v2..x", "empty segment"),
        ("v2.{userId}.{userId}", "used twice"),
    ],
)
def test_bad_topics(topic: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as info:
        RuleIndex.compile([rule("bad", topic, users=["u1"])])
    assert info.value.location == "topic"


def test_bad_dial_template_is_a_rule_error() -> None:
    with pytest.raises(RuleError, match="unclosed") as info:
        RuleIndex.compile([rule(dial=DialSpec(user="{userId", contact="next"))])
    assert info.value.location == "dial.user"


def test_wildcards_for_custom_handlers() -> None:
    index: PatternIndex[str] = PatternIndex(wildcards=True)
    index.add("any-queue", "v2.routing.queues.{queueId}.users", [], {}, "h")
    [(payload, m)] = index.match(Event("v2.routing.queues.q7.users", {}))
    assert payload == "h"
    assert m.bindings == {"queueId": "q7"}
    assert index.match(Event("v2.routing.queues.q7.other", {})) == []
    assert index.topics() == set()


def test_topic_pattern_match() -> None:
    pattern = TopicPattern.parse("v2.users.{userId}.presence")
    assert pattern.match("v2.users.abc.presence") == {"userId": "abc"}
    assert pattern.match("v2.users.abc.def.presence") is None
    assert pattern.fill({"userId": "z"}) == "v2.users.z.presence"


# Property tests

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.5, -1.5]),
    st.sampled_from(["Available", "Away", "Busy", "", "available"]),
)


@given(value=scalars, options=st.lists(scalars, min_size=1, max_size=4))
def test_any_of_is_or_of_equalities(value: Any, options: list[Any]) -> None:
    body = {"k": value}
    any_of = WhenPattern.compile({"k": options}).match(body) is not None
    each = [WhenPattern.compile({"k": o}).match(body) is not None for o in options]
    assert any_of == any(each)


@given(value=scalars, other=scalars)
def test_anything_but_negates_equality(value: Any, other: Any) -> None:
    body = {"k": value}
    equal = WhenPattern.compile({"k": other}).match(body) is not None
    but = WhenPattern.compile({"k": {"anything-but": other}}).match(body) is not None
    assert but == (not equal)


users = st.sampled_from(["u1", "u2", "u3", "u4"])
suffixes = st.sampled_from(["presence", "routingStatus", "conversations.calls"])
states = st.sampled_from(["Available", "Away", "Busy"])


@given(
    specs=st.lists(
        st.tuples(suffixes, st.lists(users, min_size=1, max_size=3, unique=True), states),
        min_size=1,
        max_size=12,
    ),
    events=st.lists(st.tuples(users, suffixes, states), min_size=1, max_size=10),
)
def test_index_agrees_with_brute_force(
    specs: list[tuple[str, list[str], str]], events: list[tuple[str, str, str]]
) -> None:
    rules = [
        rule(f"r{i}", f"v2.users.{{userId}}.{suffix}", users=us, when={"s": state})
        for i, (suffix, us, state) in enumerate(specs)
    ]
    index = RuleIndex.compile(rules)
    for user, suffix, state in events:
        event = Event(f"v2.users.{user}.{suffix}", {"s": state})
        scan = []
        for r in rules:
            bindings = TopicPattern.parse(r.topic).match(event.topic)
            if bindings is None or bindings["userId"] not in r.users:
                continue
            if WhenPattern.compile(r.when).match(event.body) is not None:
                scan.append(r.name)
        assert [m.name for m in index.match(event)] == scan
