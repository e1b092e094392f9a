"""parse_frame's hand-written envelope checks agree with the Envelope model.

The hot path (:func:`parse_frame`) checks the envelope by hand for speed; the
model (:func:`parse_envelope`) is the documented definition of the wire format.
They must accept and reject the same frames, for the same reason, and produce
the same frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from outdial.events import (
    Event,
    Frame,
    Heartbeat,
    MalformedFrame,
    Pong,
    SocketClosing,
    classify,
    parse_envelope,
    parse_frame,
)

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "genesys"


def _verdicts(raw: str | bytes) -> tuple[Frame | None, str | None, Frame | None, str | None]:
    fast: Frame | None = None
    slow: Frame | None = None
    fast_reason = slow_reason = None
    try:
        fast = parse_frame(raw, channel_id="c", received_at=1.5)
    except MalformedFrame as exc:
        fast_reason = exc.reason
    try:
        slow = classify(parse_envelope(raw), channel_id="c", received_at=1.5)
    except MalformedFrame as exc:
        slow_reason = exc.reason
    return fast, fast_reason, slow, slow_reason


def _same(a: Frame | None, b: Frame | None) -> bool:
    # repr, not ==: a body may hold NaN, which equals nothing, itself included.
    if isinstance(a, Event) and isinstance(b, Event):
        return repr(a) == repr(b) and type(a.body) is type(b.body)
    return a == b


def assert_agree(raw: str | bytes) -> None:
    fast, fast_reason, slow, slow_reason = _verdicts(raw)
    assert (fast is None) == (slow is None), (raw, fast_reason, slow_reason)
    if slow_reason is not None and not slow_reason.startswith("frame: Invalid JSON"):
        assert fast_reason == slow_reason, raw
    elif slow_reason is not None:
        assert fast_reason is not None, raw
        assert fast_reason.startswith("frame: Invalid JSON"), raw
    assert _same(fast, slow), raw


def _fixture_frames() -> list[str]:
    frames: list[str] = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        for item in data if isinstance(data, list) else [data]:
            frames.append(json.dumps(item))
    return frames


def test_fixtures_agree() -> None:
    frames = _fixture_frames()
    if not frames:
        pytest.skip(f"Genesys fixtures not found in {FIXTURES}")
    for raw in frames:
        assert_agree(raw)
        assert_agree(raw.encode())


def test_fixture_kinds() -> None:
    if not (FIXTURES / "heartbeat.json").is_file():
        pytest.skip(f"Genesys fixtures not found in {FIXTURES}")
    read = (FIXTURES / "{}.json").as_posix().format
    assert isinstance(parse_frame(Path(read("heartbeat")).read_text()), Heartbeat)
    assert isinstance(parse_frame(Path(read("pong")).read_text()), Pong)
    assert isinstance(parse_frame(Path(read("socket-closing")).read_text()), SocketClosing)
    event = parse_frame(Path(read("presence-available")).read_text(), channel_id="c")
    assert isinstance(event, Event)
    assert event.channel_id == "c"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "frame: Invalid JSON: EOF while parsing a value at line 1 column 0"),
        ("{", "frame: Invalid JSON: EOF while parsing an object at line 1 column 1"),
        ('{"topicName":"a"} x', "frame: Invalid JSON: trailing characters at line 1 column 19"),
        (b"\xff", "frame: Invalid JSON: expected value at line 1 column 1"),
        ("[]", "frame: Input should be an object"),
        ("{}", "topicName: Field required"),
        ('{"topicName": null}', "topicName: Input should be a valid string"),
        ('{"topicName": 1}', "topicName: Input should be a valid string"),
        ('{"topicName": ""}', "topicName: String should have at least 1 character"),
        ('{"topicName": "a", "version": 2}', "version: Input should be a valid string"),
        ('{"topicName": "a", "eventBody": null}', "eventBody: Input should be an object"),
        ('{"topicName": "a", "eventBody": []}', "eventBody: Input should be an object"),
        ('{"topicName": "a", "metadata": "x"}', "metadata: Input should be an object"),
        (
            '{"topicName": "a", "topicName": ""}',
            "topicName: String should have at least 1 character",
        ),
    ],
)
def test_rejections_name_where_and_what(raw: str | bytes, reason: str) -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(raw)
    assert caught.value.reason == reason
    assert_agree(raw)


@pytest.mark.parametrize(
    "raw",
    [
        '{"topicName": "a"}',
        '{"topicName": "a", "version": null}',
        '{"topicName": "a", "version": "2", "eventBody": {}, "metadata": {"CorrelationId": 5}}',
        '{"topicName": "a", "eventBody": {"x": NaN, "y": 1e400}}',
        '{"topicName": "a", "extra": [1, 2]}',
        '{"topic_name": "a"}',  # the model's field name, accepted by populate_by_name
        '{"topicName": "a", "event_body": {"x": 1}}',
        '{"topicName": "a", "topic_name": ""}',
        '{"topicName": "channel.metadata", "eventBody": {"message": "pong"}}',
        '{"topicName": "v2.system.socket_closing", "eventBody": {"channelId": "c"}}',
        '{"topicName": "a\\ud800"}',
    ],
)
def test_edge_frames_agree(raw: str) -> None:
    assert_agree(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["topicName", "version", "eventBody", "metadata", "topic_name", "event_body", "other"]
)
_values = (
    _json
    | st.sampled_from(["", "channel.metadata", "v2.system.socket_closing", "v2.users.u.presence"])
    | st.dictionaries(st.sampled_from(["message", "CorrelationId", "channelId"]), _json, max_size=2)
)


@given(st.dictionaries(_keys, _values, max_size=5) | _json)
@example({"topicName": "v2.users.u.presence", "eventBody": {"a": [1]}, "metadata": {}})
def test_generated_frames_agree(data: Any) -> None:
    raw = json.dumps(data)
    assert_agree(raw)
    assert_agree(raw.encode())


@given(st.text(max_size=40) | st.binary(max_size=40))
def test_arbitrary_text_agrees(raw: str | bytes) -> None:
    assert_agree(raw)


def test_every_platform_names_its_agent_in_the_topic_the_same_way() -> None:
    from outdial.events import topic_user_id

    assert topic_user_id("v2.users.3b6a.presence") == "3b6a"
    assert topic_user_id("cxone.users.3141592.CallContactEvent") == "3141592"
    assert topic_user_id("outdial.users.u1.ready") == "u1"
    assert topic_user_id("v2.routing.queues.q1.conversations") is None
    assert topic_user_id("v2.users.u1") is None
