"""``POST /api/v2/analytics/conversations/details/query``: the subset the daemon reconciles with.

Pure functions: :func:`validate_details_query` turns a request body into a
:class:`DetailsQuery` or raises the platform's 400 naming the field;
:func:`details_response` answers it from :class:`ConversationFacts`, which
:func:`facts_from_body` reads off a conversation body as the fake publishes it.

Supported request (everything else is refused with a 400 naming the key)::

    {"interval": "2026-01-05T00:00:00.000Z/2026-01-06T00:00:00.000Z",   # required
     "order": "asc" | "desc",                                           # default asc
     "orderBy": "conversationStart",
     "segmentFilters": [{"type": "and" | "or",
                         "predicates": [{"type": "dimension", "dimension": "userId",
                                         "operator": "matches", "value": "<uid>"}]}],
     "paging": {"pageSize": 1..100, "pageNumber": 1..}}

Dimensions (:data:`DIMENSIONS`): ``userId`` and ``purpose`` of a participant;
``mediaType`` (``voice``), ``direction`` (``outbound``), ``dnis`` (the dialed
number as the platform records it, ``tel:+44...``) and ``ani`` of its
sessions; ``conversationId``. Any other dimension is refused with a 400
naming the predicate, as the platform refuses a dimension it does not know.

A conversation is listed when it started inside the interval (start
inclusive, end exclusive) and every segment filter holds; a filter holds when
one participant's session satisfies all (``and``) or any (``or``) of its
predicates. ``order`` sorts by ``conversationStart`` before paging, so
``desc`` pages run newest first. Answer::

    {"totalHits": N, "conversations": [
        {"conversationId", "conversationStart", "conversationEnd" (once ended),
         "originatingDirection": "outbound",
         "participants": [
            {"participantId", "purpose": "agent" (or "user"), "userId",
             "sessions": [{"sessionId", "mediaType": "voice", "direction": "outbound",
                           "dnis": "tel:+44...", "ani": "tel:<callerId>", "segments": [...]}]},
            {"participantId", "purpose": "customer" (or "external"), "sessions": [...]}]}]}

``conversations`` is always present here (the real API leaves it out when
nothing matched; a client should accept both). As in the real answer
(``AnalyticsConversationWithoutAttributes``), participant attributes are not
included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.script import iso_ms

__all__ = [
    "DIMENSIONS",
    "MAX_PAGE_SIZE",
    "ConversationFacts",
    "DetailsQuery",
    "Predicate",
    "SegmentFilter",
    "details_response",
    "facts_from_body",
    "validate_details_query",
]

MAX_PAGE_SIZE = 100
"""Largest ``paging.pageSize`` the API allows."""

DEFAULT_PAGE_SIZE = 25
"""``paging.pageSize`` when not given."""

DIMENSIONS = frozenset(
    {"userId", "conversationId", "mediaType", "direction", "dnis", "ani", "purpose"}
)
"""Predicate dimensions the fake can filter on."""

_TOP_KEYS = frozenset({"interval", "order", "orderBy", "segmentFilters", "paging"})
_FILTER_KEYS = frozenset({"type", "predicates"})
_PREDICATE_KEYS = frozenset({"type", "dimension", "operator", "value"})
_PAGING_KEYS = frozenset({"pageSize", "pageNumber"})
_NO_ANI = "tel:+10000000000"
"""The ``ani`` of a call placed without a ``callerId`` (the org's default caller id)."""


@dataclass(frozen=True, slots=True)
class Predicate:
    """``dimension`` ``operator`` ``value``; ``exists`` / ``notExists`` ignore the value."""

    dimension: str
    value: str | None
    operator: Literal["matches", "exists", "notExists"] = "matches"


@dataclass(frozen=True, slots=True)
class SegmentFilter:
    """Predicates combined with ``and`` or ``or`` over one participant's session."""

    type: Literal["and", "or"]
    predicates: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class DetailsQuery:
    """A validated conversation details query."""

    start: datetime
    end: datetime
    order: Literal["asc", "desc"] = "asc"
    filters: tuple[SegmentFilter, ...] = ()
    page_size: int = DEFAULT_PAGE_SIZE
    page_number: int = 1


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """What the analytics answer says about one placed call."""

    conversation_id: str
    user_id: str
    phone_number: str
    start: datetime
    agent_participant_id: str
    customer_participant_id: str
    caller_id: str | None = None
    connected: datetime | None = None
    end: datetime | None = None
    disconnect_type: str | None = None
    #: The legs' purposes as the conversation has them (non-ACD calls: user/external).
    agent_purpose: str = "agent"
    customer_purpose: str = "customer"


def _bad(field_name: str, reason: str, code: str = "invalid.value") -> ApiError:
    return ApiError(
        400,
        "bad.request",
        "Invalid value for {field}: {reason}",
        {"field": field_name, "reason": reason},
        [FieldDetail(field_name, code)],
    )


def _unknown_keys(value: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for key in value:
        if key not in known:
            name = f"{where}.{key}" if where else key
            raise ApiError(
                400,
                "bad.request",
                "Unrecognized field {field}; the fake's details query knows: {known}",
                {"field": name, "known": ", ".join(sorted(known))},
                [FieldDetail(name, "unrecognized.field")],
            )


def _parse_time(text: str, field_name: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(field_name, f"{text!r} is not an ISO-8601 date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_interval(value: Any) -> tuple[datetime, datetime]:
    """``"<ISO start>/<ISO end>"`` as two UTC datetimes, or a 400 naming ``interval``."""
    if value is None:
        raise _bad("interval", "an interval is required", "required")
    if not isinstance(value, str):
        raise _bad("interval", "must be a string '<start>/<end>'")
    start_text, sep, end_text = value.partition("/")
    if not sep or not start_text or not end_text or "/" in end_text:
        raise _bad("interval", f"{value!r} is not '<ISO start>/<ISO end>'")
    start = _parse_time(start_text, "interval")
    end = _parse_time(end_text, "interval")
    if end <= start:
        raise _bad("interval", "the end must be after the start")
    return start, end


def _predicate(raw: Any, where: str) -> Predicate:
    if not isinstance(raw, dict):
        raise _bad(where, "a predicate must be an object")
    _unknown_keys(raw, _PREDICATE_KEYS, where)
    if raw.get("type", "dimension") != "dimension":
        raise _bad(f"{where}.type", "only 'dimension' predicates are supported")
    dimension = raw.get("dimension")
    if dimension is None:
        raise _bad(f"{where}.dimension", "a dimension is required", "required")
    if dimension not in DIMENSIONS:
        raise _bad(f"{where}.dimension", f"one of {sorted(DIMENSIONS)} (got {dimension!r})")
    operator = raw.get("operator", "matches")
    if operator not in ("matches", "exists", "notExists"):
        raise _bad(f"{where}.operator", "one of matches, exists, notExists")
    value = raw.get("value")
    if operator == "matches" and not isinstance(value, str):
        raise _bad(f"{where}.value", "a string value is required to match", "required")
    return Predicate(dimension, value if isinstance(value, str) else None, operator)


def _segment_filters(raw: Any) -> tuple[SegmentFilter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad("segmentFilters", "must be an array")
    filters = []
    for i, item in enumerate(raw):
        where = f"segmentFilters[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "a filter must be an object")
        _unknown_keys(item, _FILTER_KEYS, where)
        kind = item.get("type")
        if kind not in ("and", "or"):
            raise _bad(f"{where}.type", "'and' or 'or' is required", "required")
        predicates = item.get("predicates")
        if not isinstance(predicates, list) or not predicates:
            raise _bad(f"{where}.predicates", "a non-empty array is required", "required")
        parsed = tuple(_predicate(p, f"{where}.predicates[{j}]") for j, p in enumerate(predicates))
        filters.append(SegmentFilter(kind, parsed))
    return tuple(filters)


def _paging(raw: Any) -> tuple[int, int]:
    if raw is None:
        return DEFAULT_PAGE_SIZE, 1
    if not isinstance(raw, dict):
        raise _bad("paging", "must be an object")
    _unknown_keys(raw, _PAGING_KEYS, "paging")
    size = raw.get("pageSize", DEFAULT_PAGE_SIZE)
    number = raw.get("pageNumber", 1)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise _bad("paging.pageSize", f"an integer from 1 to {MAX_PAGE_SIZE}")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise _bad("paging.pageNumber", "an integer from 1")
    return size, number


def validate_details_query(body: Any) -> DetailsQuery:
    """Validate a details query body; raise the platform's 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise _bad("body", "the query must be a JSON object")
    _unknown_keys(body, _TOP_KEYS, "")
    start, end = parse_interval(body.get("interval"))
    order = body.get("order", "asc")
    if order not in ("asc", "desc"):
        raise _bad("order", "'asc' or 'desc'")
    if body.get("orderBy", "conversationStart") != "conversationStart":
        raise _bad("orderBy", "only 'conversationStart' is supported")
    filters = _segment_filters(body.get("segmentFilters"))
    size, number = _paging(body.get("paging"))
    return DetailsQuery(start, end, order, filters, size, number)


def _parse_wire_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def facts_from_body(
    body: Mapping[str, Any],
    start: datetime,
    caller_id: str | None = None,
) -> ConversationFacts:
    """The facts of a call from its current conversation body (as ``GET .../calls/{id}``)."""
    participants = body["participants"]
    # ACD calls have agent/customer legs, non-ACD ones user/external: either pair.
    agent = next(p for p in participants if p.get("purpose") in ("agent", "user"))
    customer = next(p for p in participants if p.get("purpose") in ("customer", "external"))
    address = str(customer.get("address", ""))
    ended = customer.get("state") in ("disconnected", "terminated")
    return ConversationFacts(
        conversation_id=str(body["id"]),
        user_id=str(agent["user"]["id"]),
        phone_number=address.removeprefix("tel:"),
        start=start,
        agent_participant_id=str(agent["id"]),
        customer_participant_id=str(customer["id"]),
        caller_id=caller_id,
        connected=_parse_wire_time(customer.get("connectedTime")),
        end=_parse_wire_time(customer.get("endTime")) if ended else None,
        disconnect_type=customer.get("disconnectType") if ended else None,
        agent_purpose=str(agent.get("purpose")),
        customer_purpose=str(customer.get("purpose")),
    )


def _segments(facts: ConversationFacts, *, agent: bool) -> list[dict[str, Any]]:
    def segment(kind: str, begin: datetime, end: datetime | None) -> dict[str, Any]:
        out: dict[str, Any] = {"segmentStart": iso_ms(begin), "segmentType": kind}
        if end is not None:
            out["segmentEnd"] = iso_ms(end)
        return out

    if agent:
        segments = [segment("interact", facts.start, facts.end)]
        disconnect = "client"
    else:
        segments = [segment("dialing", facts.start, facts.connected or facts.end)]
        if facts.connected is not None:
            segments.append(segment("interact", facts.connected, facts.end))
        disconnect = facts.disconnect_type or "peer"
    if facts.end is not None:
        segments[-1]["disconnectType"] = disconnect
    return segments


def _session(facts: ConversationFacts, participant_id: str, *, agent: bool) -> dict[str, Any]:
    return {
        "sessionId": f"{participant_id}-session",
        "mediaType": "voice",
        "direction": "outbound",
        "dnis": f"tel:{facts.phone_number}",
        "ani": f"tel:{facts.caller_id}" if facts.caller_id else _NO_ANI,
        "segments": _segments(facts, agent=agent),
    }


def conversation_json(facts: ConversationFacts) -> dict[str, Any]:
    """One ``conversations[]`` entry of the answer."""
    agent: dict[str, Any] = {
        "participantId": facts.agent_participant_id,
        "purpose": facts.agent_purpose,
        "userId": facts.user_id,
        "sessions": [_session(facts, facts.agent_participant_id, agent=True)],
    }
    customer: dict[str, Any] = {
        "participantId": facts.customer_participant_id,
        "purpose": facts.customer_purpose,
        "sessions": [_session(facts, facts.customer_participant_id, agent=False)],
    }
    out: dict[str, Any] = {
        "conversationId": facts.conversation_id,
        "conversationStart": iso_ms(facts.start),
        "originatingDirection": "outbound",
        "participants": [agent, customer],
    }
    if facts.end is not None:
        out["conversationEnd"] = iso_ms(facts.end)
    return out


def _values(participant: Mapping[str, Any], dimension: str) -> list[str]:
    if dimension in ("userId", "purpose"):
        value = participant.get(dimension)
        return [value] if isinstance(value, str) else []
    return [s[dimension] for s in participant["sessions"] if isinstance(s.get(dimension), str)]


def _holds(predicate: Predicate, conversation: Mapping[str, Any], participant: Any) -> bool:
    if predicate.dimension == "conversationId":
        values = [conversation["conversationId"]]
    else:
        values = _values(participant, predicate.dimension)
    if predicate.operator == "exists":
        return bool(values)
    if predicate.operator == "notExists":
        return not values
    return predicate.value in values


def _passes(conversation: Mapping[str, Any], filters: Sequence[SegmentFilter]) -> bool:
    for segment_filter in filters:
        combine = all if segment_filter.type == "and" else any
        if not any(
            combine(_holds(p, conversation, participant) for p in segment_filter.predicates)
            for participant in conversation["participants"]
        ):
            return False
    return True


def details_response(facts: Iterable[ConversationFacts], query: DetailsQuery) -> dict[str, Any]:
    """The answer to ``query`` over the calls ``facts``: one page and ``totalHits``."""
    inside = sorted(
        (f for f in facts if query.start <= f.start < query.end),
        key=lambda f: (f.start, f.conversation_id),
        reverse=query.order == "desc",
    )
    matching = [c for c in map(conversation_json, inside) if _passes(c, query.filters)]
    first = (query.page_number - 1) * query.page_size
    return {
        "conversations": matching[first : first + query.page_size],
        "totalHits": len(matching),
    }
