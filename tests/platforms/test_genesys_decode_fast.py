"""The codec's hand-written agent-body readers agree with the pydantic models.

``GenesysCodec.decode`` reads presence, routing status and conversation
summary bodies by hand for speed; :func:`decode_with_models` (the models
alone) is the definition. For every body they must give the same
:class:`Decoded`, or the same :class:`MalformedEvent` (field and reason). The
same holds for the bulk re-read's ``checked_presence`` / ``checked_summary``,
which use the readers to skip the model. Fixtures and generated bodies alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from outdial.domain import Decoded
from outdial.events import ConversationSummary, Event, Presence
from outdial.platforms.base import MalformedEvent
from outdial.platforms.genesys.client import (
    _problem,
    checked_presence,
    checked_summary,
)
from outdial.platforms.genesys.codec import (
    GenesysCodec,
    _normalized_time,
    decode_with_models,
    presence_seen_fast,
    routing_seen_fast,
    workload_seen_fast,
)
from outdial.timestamps import parse_time

REPO = Path(__file__).resolve().parents[2]
# The repository's copy of the platform fixtures, and the shared ones beside the checkout.
FIXTURE_DIRS = (
    REPO / "tests" / "fixtures" / "genesys",
    REPO.parent / "shared" / "fixtures" / "genesys",
)
OBSERVED = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
TOPICS = {
    "presence": f"v2.users.{USER}.presence",
    "routing": f"v2.users.{USER}.routingStatus",
    "summary": f"v2.users.{USER}.conversationsummary",
}
CODEC = GenesysCodec()

Verdict = tuple[Decoded | None, tuple[str, str] | None]


def _verdict(decode: Callable[[Event, datetime], Decoded], event: Event) -> Verdict:
    try:
        return decode(event, OBSERVED), None
    except MalformedEvent as exc:
        return None, (exc.where, exc.reason)


def assert_agree(topic: str, body: Any) -> Decoded | None:
    """Both paths give the same result (by value and by repr: 1 is not True) or error."""
    event = Event(topic, body)
    fast, fast_error = _verdict(CODEC.decode, event)
    model, model_error = _verdict(decode_with_models, event)
    assert fast_error == model_error, body
    assert fast == model, body
    assert repr(fast) == repr(model), body
    return fast


def _reference_checked(model: type[BaseModel], body: Any, where: str) -> dict[str, Any]:
    # checked_presence / checked_summary as they were: the model alone.
    try:
        model.model_validate(body)
    except ValidationError as exc:
        raise ValueError(_problem(exc, where)) from None
    return dict(body)


def assert_checks_agree(
    check: Callable[[Any, str], dict[str, Any]], model: type[BaseModel], body: Any
) -> None:
    def outcome(run: Callable[[Any, str], dict[str, Any]]) -> tuple[str, str]:
        try:
            return "ok", repr(run(body, "u.part"))
        except ValueError as exc:
            return "error", str(exc)

    def reference(data: Any, where: str) -> dict[str, Any]:
        return _reference_checked(model, data, where)

    assert outcome(check) == outcome(reference), body


# -- fixtures ------------------------------------------------------------------------------------


def _fixture_bodies() -> list[tuple[str, Any]]:
    """(kind, body) of every presence / routing / summary body in the fixtures, events and REST."""
    found: list[tuple[str, Any]] = []
    for directory in FIXTURE_DIRS:
        for path in sorted(directory.glob("*.json")):
            data = json.loads(path.read_text())
            for item in data if isinstance(data, list) else [data]:
                if not isinstance(item, dict):
                    continue
                topic = item.get("topicName")
                if isinstance(topic, str):
                    for kind, suffix in TOPICS.items():
                        if topic.endswith("." + suffix.rsplit(".", 1)[1]) and "eventBody" in item:
                            found.append((kind, item["eventBody"]))
                if "presenceDefinition" in item:  # a REST UserPresence
                    found.append(("presence", item))
                for user in (
                    item.get("entities", []) if isinstance(item.get("entities"), list) else []
                ):
                    if not isinstance(user, dict):
                        continue
                    if "presence" in user:
                        found.append(("presence", user["presence"]))
                    if "routingStatus" in user:
                        found.append(("routing", {"routingStatus": user["routingStatus"]}))
                    if "conversationSummary" in user:
                        found.append(("summary", user["conversationSummary"]))
    return found


def test_every_fixture_body_agrees_and_takes_the_fast_path() -> None:
    bodies = _fixture_bodies()
    if not bodies:
        pytest.skip("Genesys fixtures not found")
    kinds = {kind for kind, _ in bodies}
    assert kinds == {"presence", "routing", "summary"}, kinds
    readers = {
        "presence": presence_seen_fast,
        "routing": routing_seen_fast,
        "summary": workload_seen_fast,
    }
    for kind, body in bodies:
        assert assert_agree(TOPICS[kind], body) is not None
        # The platform's own bodies are the usual shape: none is left to the model.
        assert readers[kind](body) is not None, (kind, body)
        if kind == "presence":
            assert_checks_agree(checked_presence, Presence, body)
        if kind == "summary":
            assert_checks_agree(checked_summary, ConversationSummary, body)


_DELETE: Any = object()
# Each replaces one field of a fixture body: missing, null, wrong types, what lax mode coerces.
_MUTATIONS: list[Any] = [
    _DELETE,
    None,
    3,
    -1,
    2**70,
    "3",
    " 3",
    "",
    True,
    3.0,
    3.5,
    b"x",
    [],
    {},
    {"a": 1},
]
# Each is added to one object of a fixture body: the models' field names, a non-str key.
_ADDED = [
    "system_presence",
    "presence_definition",
    "modified_date",
    "start_time",
    "routing_status",
    "user_id",
    "contact_center",
    "extra",
    1,
]


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append((*path, key))
            found.extend(_paths(value, (*path, key)))
    return found


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _mutated(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(body))
    where = _at(copy, path[:-1])
    if value is _DELETE:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return copy


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _renamed(body: Any, path: tuple[Any, ...]) -> Any:
    copy = json.loads(json.dumps(body))
    where = _at(copy, path[:-1])
    where[_snake(path[-1])] = where.pop(path[-1])
    return copy


def test_every_fixture_body_mutated_field_by_field_agrees() -> None:
    bodies = _fixture_bodies()
    if not bodies:
        pytest.skip("Genesys fixtures not found")
    checks: dict[str, tuple[Callable[[Any, str], dict[str, Any]], type[BaseModel]]] = {
        "presence": (checked_presence, Presence),
        "summary": (checked_summary, ConversationSummary),
    }
    for kind, body in bodies:
        variants = [_mutated(body, path, value) for path in _paths(body) for value in _MUTATIONS]
        objects = [(), *(p for p in _paths(body) if isinstance(_at(body, p), dict))]
        variants += [_mutated(body, (*path, name), "x") for path in objects for name in _ADDED]
        # Each field under the model's name instead of the alias (read: populate_by_name).
        variants += [_renamed(body, path) for path in _paths(body) if path[-1] != _snake(path[-1])]
        for variant in variants:
            assert_agree(TOPICS[kind], variant)
            if kind in checks:
                check, model = checks[kind]
                assert_checks_agree(check, model, variant)


# -- edge bodies ---------------------------------------------------------------------------------


class _Str(str):
    pass


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"presenceDefinition": {}},
        {"presenceDefinition": None},
        {"presenceDefinition": []},
        {"presenceDefinition": {"systemPresence": None, "id": None}, "modifiedDate": None},
        {"presenceDefinition": {"systemPresence": 3}},
        {"presenceDefinition": {"systemPresence": b"Available"}},  # lax: bytes become a str
        {"presenceDefinition": {"systemPresence": _Str("Available")}},
        {"presenceDefinition": {"id": True}},
        {"presenceDefinition": {"systemPresence": "Available", "system_presence": "Busy"}},
        {"presenceDefinition": {"system_presence": "Busy"}},
        {"presence_definition": {"systemPresence": "Busy"}},
        {"presenceDefinition": {}, "presence_definition": {"systemPresence": "Busy"}},
        {"presenceDefinition": {}, "modified_date": "2026-11-23T09:00:00.000Z"},
        {"presenceDefinition": {}, "modifiedDate": 5},
        {"presenceDefinition": {1: "x"}},
        {1: "x", "presenceDefinition": {}},
        {_Str("presenceDefinition"): {_Str("id"): "x"}},
        {"presenceDefinition": {"nested": {1: 2}}, "extra": [{3: 4}]},  # extras are not checked
        MappingProxyType({"presenceDefinition": {}}),
        {"presenceDefinition": MappingProxyType({"id": "x"})},
        {"presenceDefinition": {"systemPresence": "a\ud800"}},
    ],
)
def test_edge_presence_bodies_agree(body: Any) -> None:
    assert_agree(TOPICS["presence"], body)
    assert_checks_agree(checked_presence, Presence, body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"routingStatus": None},
        {"routingStatus": {}},
        {"routingStatus": {"status": None}},
        {"routingStatus": {"status": 1}},
        {"routingStatus": {"status": b"IDLE"}},
        {"routingStatus": {"status": "idle", "startTime": None}},
        {"routingStatus": {"status": "idle", "startTime": 3}},
        {"routingStatus": {"status": "idle", "start_time": "x"}},
        {"routing_status": {"status": "IDLE"}},
        {"routingStatus": {"status": "IDLE"}, "routing_status": {"status": "OFF_QUEUE"}},
        {"routingStatus": {"status": "IDLE", 2: 3}},
        {"routingStatus": {"status": "ß"}},  # upper() of a str: the same on both paths
    ],
)
def test_edge_routing_bodies_agree(body: Any) -> None:
    assert_agree(TOPICS["routing"], body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"userId": None},
        {"userId": 5},
        {"user_id": "u"},
        {"call": None},
        {"call": {}},
        {"call": {"contactCenter": None}},
        {"call": {"contactCenter": {"active": "3"}}},  # lax: a numeric string
        {"call": {"contactCenter": {"active": " 3 "}}},
        {"call": {"contactCenter": {"active": 3.0}}},
        {"call": {"contactCenter": {"active": 3.5}}},
        {"call": {"contactCenter": {"active": True}}},
        {"call": {"contactCenter": {"active": None}}},
        {"call": {"contactCenter": {"active": 2**80, "acw": -1}}},
        {"call": {"contact_center": {"active": 1}}},
        {"call": {"contactCenter": {"active": 1}, "contact_center": {"active": 2}}},
        {"callback": {"enterprise": {"acw": 2}}, "call": {"enterprise": {"active": 1}}},
        {"callback": {"enterprise": {"acw": 2, 1: 1}}},
        {"callback": {1: 1}},
        {"chat": {"contactCenter": {"active": "x"}}},  # another medium: an extra field
    ],
)
def test_edge_summary_bodies_agree(body: Any) -> None:
    assert_agree(TOPICS["summary"], body)
    assert_checks_agree(checked_summary, ConversationSummary, body)


# -- generated bodies ----------------------------------------------------------------------------

_MISSING: Any = object()
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)
# What lax mode coerces, what it rejects, and what is not JSON at all.
_odd = (
    _json
    | st.sampled_from(["3", " 3", "3.0", "-1", "", "true", b"3", b"x", 3.0, 2**70])
    | st.builds(_Str, st.text(max_size=3))
    | st.builds(MappingProxyType, st.dictionaries(st.text(max_size=3), _json, max_size=2))
)
_times = (
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    )
    | st.datetimes().map(lambda d: d.isoformat() + "Z")
    | st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
    | st.sampled_from(["2026-11-23T09:00:00.000+00:00", "2026-11-23T09:00:00Z", "yesterday"])
)


def _extras(names: list[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    # Extra fields, the models' field names (populate_by_name), and keys JSON never has.
    return st.dictionaries(st.sampled_from([*names, "extra", 1]), _json | _odd, max_size=2)


def _obj(fields: dict[str, st.SearchStrategy[Any]], extras: list[Any]) -> st.SearchStrategy[Any]:
    """A dict whose every field is missing, of its usual kind or odd, plus extras; or odd itself."""

    def build(values: dict[str, Any], extra: dict[Any, Any]) -> dict[Any, Any]:
        made: dict[Any, Any] = {k: v for k, v in values.items() if v is not _MISSING}
        made.update(extra)
        return made

    shaped = st.builds(
        build,
        st.fixed_dictionaries(
            {name: st.just(_MISSING) | value | value | _odd for name, value in fields.items()}
        ),
        _extras(extras),
    )
    return shaped | shaped | shaped | _odd


_texts = st.sampled_from(["Available", "Busy", "IDLE", "idle", "OFF_QUEUE"]) | st.text(max_size=4)
_presences = _obj(
    {
        "presenceDefinition": _obj(
            {"id": _texts | st.none(), "systemPresence": _texts | st.none()}, ["system_presence"]
        ),
        "modifiedDate": _times | st.none(),
    },
    ["presence_definition", "modified_date", "source"],
)
_routings = _obj(
    {
        "routingStatus": _obj(
            {"status": _texts, "startTime": _times | st.none()}, ["start_time", "status"]
        )
    },
    ["routing_status", "id"],
)
_counts = _obj({"active": st.integers(), "acw": st.integers()}, ["active"])
_media = _obj({"contactCenter": _counts, "enterprise": _counts}, ["contact_center"])
# Most generated bodies are malformed somewhere; enough examples that a few dozen per run
# are of the usual shape and go the fast way (measured: 5 to 8 % of them).
_MANY = settings(max_examples=500, deadline=None)
_summaries = _obj(
    {"userId": _texts | st.none(), "call": _media, "callback": _media}, ["user_id", "chat"]
)


@given(_presences)
@example(
    {
        "presenceDefinition": {"systemPresence": "Available"},
        "modifiedDate": "2026-13-01T00:00:00.000Z",
    }
)
@_MANY
def test_generated_presence_bodies_agree(body: Any) -> None:
    assert_agree(TOPICS["presence"], body)
    assert_checks_agree(checked_presence, Presence, body)


@given(_routings)
@_MANY
def test_generated_routing_bodies_agree(body: Any) -> None:
    assert_agree(TOPICS["routing"], body)


@given(_summaries)
@_MANY
def test_generated_summary_bodies_agree(body: Any) -> None:
    assert_agree(TOPICS["summary"], body)
    assert_checks_agree(checked_summary, ConversationSummary, body)


@given(_times | st.text(max_size=30) | st.none())
@example("2026-11-23T24:00:00.000Z")  # fromisoformat has no 24:00: left as written
@example("2026-02-29T00:00:00.000Z")
@example("2026-11-23T09:00:00.000Z")  # .000: isoformat writes no fraction
@example("２０２６-11-23T09:00:00.000Z")  # non-ASCII digits: not the platform's form
def test_normalized_time_is_what_presence_seen_stores(date: str | None) -> None:
    parsed = parse_time(date)
    assert _normalized_time(date) == (parsed.isoformat() if parsed else date)


def test_readers_leave_unusual_bodies_to_the_model() -> None:
    # Accepted by the model (lax mode, populate_by_name), but never by the readers.
    coerced: list[tuple[Callable[[Any], Any], Mapping[str, Any]]] = [
        (presence_seen_fast, {"presenceDefinition": {"systemPresence": b"Available"}}),
        (presence_seen_fast, {"presence_definition": {}}),
        (routing_seen_fast, {"routingStatus": {"status": b"IDLE"}}),
        (workload_seen_fast, {"call": {"enterprise": {"active": "3"}}}),
        (workload_seen_fast, {"call": {"enterprise": {"active": True}}}),
    ]
    for reader, body in coerced:
        assert reader(body) is None, body
