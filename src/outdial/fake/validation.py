"""Request validation for the fake API, as pure functions.

Each function takes the decoded request body and returns the validated value or
raises :class:`~outdial.fake.errors.ApiError` naming the offending field. The
real API rejects a bad ``CreateCallRequest`` with a generic "Invalid request
payload"; the fake names the field, the value and the reason instead, so a
user's dialing rule can be fixed before it meets the real platform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outdial.fake.errors import ApiError, FieldDetail

__all__ = [
    "MAX_TOPICS",
    "CreateCallRequest",
    "PhoneCheck",
    "TopicVerdict",
    "check_phone_number",
    "check_topic",
    "check_topic_count",
    "parse_json",
    "validate_create_call",
    "validate_topic_list",
]

MAX_TOPICS = 1000
"""At most this many topics on one channel."""

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


class CreateCallRequest(BaseModel):
    """The body of ``POST /api/v2/conversations/calls/user/{userId}``.

    Field names follow ``PureCloudPlatformClientV2.models.CreateCallRequest``;
    unknown keys are refused rather than silently ignored.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    phone_number: str | None = Field(default=None, alias="phoneNumber")
    caller_id: str | None = Field(default=None, alias="callerId")
    caller_id_name: str | None = Field(default=None, alias="callerIdName")
    call_from_queue_id: str | None = Field(default=None, alias="callFromQueueId")
    call_queue_id: str | None = Field(default=None, alias="callQueueId")
    call_user_id: str | None = Field(default=None, alias="callUserId")
    priority: int | None = None
    attributes: dict[str, str] | None = None
    language_id: str | None = Field(default=None, alias="languageId")
    routing_skills_ids: list[str] | None = Field(default=None, alias="routingSkillsIds")
    routing_skill_expression: str | None = Field(default=None, alias="routingSkillExpression")
    conversation_ids: list[str] | None = Field(default=None, alias="conversationIds")
    participants: list[dict[str, Any]] | None = None
    uui_data: str | None = Field(default=None, alias="uuiData")
    external_contact_id: str | None = Field(default=None, alias="externalContactId")
    label: str | None = None

    @property
    def is_plain_call(self) -> bool:
        """True when the request dials a number (not a queue, user or conference)."""
        return not (
            self.call_queue_id or self.call_user_id or self.conversation_ids or self.participants
        )


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """A phone number accepted for dialing; ``reachable`` is False for unassigned ranges."""

    number: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class TopicVerdict:
    """Whether a topic may be subscribed, and why not when it may not."""

    topic: str
    permitted: bool
    reason: str | None = None


def parse_json(raw: bytes) -> Any:
    """Decode a JSON request body or raise the platform's 400 naming ``body``."""
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(
            400,
            "bad.request",
            "The request body is not valid JSON: {reason}",
            {"reason": str(exc)},
            [FieldDetail("body", "invalid.json")],
        ) from None


def check_phone_number(value: str, field_name: str) -> PhoneCheck:
    """Accept an E.164 number the numbering plan allows, else raise a 400 naming the field.

    A number that is possible (right length for its country) but not assigned in
    the numbering plan, like ``+15555550100``, is accepted with
    ``reachable=False``: the real platform accepts such a dial and the call then
    fails, which is what the fake plays out (disconnectType ``uncallable``).
    """
    possible = False
    valid = False
    if _E164.match(value):
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None:
            possible = bool(phonenumbers.is_possible_number(parsed))
            valid = bool(phonenumbers.is_valid_number(parsed))
    if not possible:
        raise ApiError(
            400,
            "invalid.phone.number",
            "The phone number is invalid: {" + field_name + "}",
            {field_name: value},
            [FieldDetail(field_name, "invalid.value")],
        )
    return PhoneCheck(value, reachable=valid)


def validate_create_call(body: Any) -> tuple[CreateCallRequest, PhoneCheck | None]:
    """Validate a ``CreateCallRequest``; return it and the checked number to dial.

    Raises :class:`ApiError` (400) listing every offending field in ``details``;
    the message names the first.
    """
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "bad.request",
            "The request body must be a JSON object (a CreateCallRequest), not {kind}",
            {"kind": _json_kind(body)},
            [FieldDetail("body", "invalid.value")],
        )
    unknown = [key for key in body if key not in _CREATE_CALL_KEYS]
    if unknown:
        raise ApiError(
            400,
            "bad.request",
            "Unrecognized field {field} in CreateCallRequest; known fields: {known}",
            {"field": json.dumps(unknown[0]), "known": ", ".join(sorted(_CREATE_CALL_KEYS))},
            [FieldDetail(key, "unrecognized.field") for key in unknown],
        )
    try:
        request = CreateCallRequest.model_validate(body)
    except ValidationError as exc:
        problems = [(_location(err["loc"]), err["msg"]) for err in exc.errors()]
        raise ApiError(
            400,
            "bad.request",
            "Invalid value for {field}: {reason}",
            {"field": problems[0][0], "reason": problems[0][1]},
            [FieldDetail(name, "invalid.value") for name, _ in problems],
        ) from None
    dial: PhoneCheck | None = None
    if request.phone_number is not None:
        dial = check_phone_number(request.phone_number, "phoneNumber")
    elif request.is_plain_call:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} is required to place a call to a number",
            {"field": "phoneNumber"},
            [FieldDetail("phoneNumber", "required")],
        )
    if request.caller_id is not None:
        check_phone_number(request.caller_id, "callerId")
    return request, dial


_CREATE_CALL_KEYS = frozenset(
    (info.alias or name) for name, info in CreateCallRequest.model_fields.items()
)

_TOPIC = re.compile(r"^v2(\.[A-Za-z0-9_\-]+)+$")
_USER_TOPIC_SUFFIXES = frozenset(
    {
        "presence",
        "routingStatus",
        "activity",
        "conversations",
        "conversations.calls",
        "conversations.callbacks",
        "conversations.chats",
        "conversations.emails",
        "conversations.messages",
        "conversationsummary",
        "geolocation",
        "outofoffice",
        "station",
        "workplanbidranks",
    }
)


def check_topic(topic: str) -> TopicVerdict:
    """Permit a well-formed ``v2.`` topic; reject malformed ones and unknown user topics.

    Any user id is permitted (the real platform permits every user in the org).
    """
    if not _TOPIC.match(topic):
        return TopicVerdict(topic, False, "Invalid topic name: expected v2.<entity>.<id>.<event>")
    parts = topic.split(".", 3)
    if parts[1] == "users":
        if len(parts) < 4:
            return TopicVerdict(topic, False, "Invalid topic name: expected v2.users.<id>.<event>")
        if parts[3] not in _USER_TOPIC_SUFFIXES:
            return TopicVerdict(topic, False, f"Unknown user topic event: {parts[3]}")
    return TopicVerdict(topic, True)


def validate_topic_list(body: Any) -> list[str]:
    """The topic ids of a subscriptions body ``[{"id": topic}, ...]``, in order, deduplicated.

    Raises :class:`ApiError` (400) naming the bad element, or when the list
    alone exceeds :data:`MAX_TOPICS`.
    """
    if not isinstance(body, list):
        raise ApiError(
            400,
            "bad.request",
            "The request body must be a JSON array of {shape}, not {kind}",
            {"shape": '{"id": topic}', "kind": _json_kind(body)},
            [FieldDetail("body", "invalid.value")],
        )
    topics: dict[str, None] = {}
    for index, item in enumerate(body):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ApiError(
                400,
                "bad.request",
                "Each subscription needs a string id: {field}",
                {"field": f"[{index}].id"},
                [FieldDetail(f"[{index}].id", "required")],
            )
        topics[item["id"]] = None
    check_topic_count(len(topics))
    return list(topics)


def check_topic_count(count: int) -> None:
    """Raise the platform's 400 when a channel would carry more than :data:`MAX_TOPICS`."""
    if count > MAX_TOPICS:
        raise ApiError(
            400,
            "notification.topic.limit.exceeded",
            "A channel may subscribe at most {limit} topics; this request would make {count}",
            {"limit": str(MAX_TOPICS), "count": str(count)},
            [FieldDetail("body", "too.many.topics")],
        )


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "body"


def _json_kind(value: Any) -> str:
    if value is None:
        return "an empty body"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "an object"
