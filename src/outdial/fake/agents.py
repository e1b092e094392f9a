"""Agent state as the platform keeps it: presence, routing status and conversation summary.

Pure functions: an :class:`AgentState` and what happened in, a :class:`Change`
(the new state and which of its topics changed) out. The shell in
:mod:`outdial.fake.platform` stores the state and publishes the topics the
change names, with the bodies built here; the REST reads (single and bulk)
answer from the same state, so events and re-reads always agree.

The rules, as the platform applies them (``DESIGN.md``, "The platform contract"):

* **Presence** is what the user chose. Only the user (here: the fake's
  controls) changes it; a call never does.
* **Routing status** is the system's. ``OFF_QUEUE`` whenever presence is not
  ``On Queue``; On Queue it is ``INTERACTING`` while any ACD call (one with a
  queue) is active or in after-call work, else ``COMMUNICATING`` while a
  non-ACD call is active, else ``IDLE``. ``NOT_RESPONDING`` (the agent let an
  ACD offer ring out) is set explicitly and lasts until the presence is set
  again. An event goes out only when the status changes.
* **Conversation summary** counts every call of the agent, whoever placed it:
  ``call.contactCenter`` for ACD calls, ``call.enterprise`` for the others,
  ``active`` while the agent is on the call and ``acw`` while wrapping it up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.script import (
    ON_QUEUE,
    canonical_presence,
    iso_ms,
    presence_body,
    presence_definition_id,
    presence_label,
    routing_status_body,
)

__all__ = [
    "EXPANDS",
    "KNOWN_EXPANDS",
    "MAX_USER_IDS",
    "ROUTING_STATUSES",
    "USERS_DEFAULT_PAGE_SIZE",
    "USERS_MAX_PAGE_SIZE",
    "AgentState",
    "CallLoad",
    "CallPhase",
    "Change",
    "ExpandDrops",
    "SummaryCounts",
    "UsersQuery",
    "change_call",
    "change_presence",
    "new_agent",
    "parse_expand",
    "parse_users_query",
    "presence_event_body",
    "presence_rest_body",
    "routing_event_body",
    "routing_for",
    "routing_rest_body",
    "summary_body",
    "user_entity",
    "users_page",
]

ROUTING_STATUSES = ("OFF_QUEUE", "IDLE", "INTERACTING", "COMMUNICATING", "NOT_RESPONDING")
"""The routing statuses the platform reports."""

_MEDIA = ("call", "callback", "email", "message", "chat", "socialExpression", "video")


class CallPhase(StrEnum):
    """Where the agent is in one call: on it, or wrapping it up."""

    ACTIVE = "active"
    ACW = "acw"


@dataclass(frozen=True, slots=True)
class CallLoad:
    """One call of the agent as the summary counts it: ACD or not, active or in ACW."""

    acd: bool
    phase: CallPhase


@dataclass(frozen=True, slots=True)
class SummaryCounts:
    """The ``call`` counts of a conversation summary."""

    contact_center_active: int = 0
    contact_center_acw: int = 0
    enterprise_active: int = 0
    enterprise_acw: int = 0


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent: presence (by its canonical name, see
    :func:`~outdial.fake.script.canonical_presence`), routing status, and the calls the
    agent is on or wrapping up, by conversation id. Never mutated: see :class:`Change`."""

    user_id: str
    name: str
    presence: str
    presence_modified: datetime
    routing: str
    routing_start: datetime
    calls: Mapping[str, CallLoad] = field(default_factory=dict)
    not_responding: bool = False

    @property
    def counts(self) -> SummaryCounts:
        """The summary's call counts, from :attr:`calls`."""

        def count(acd: bool, phase: CallPhase) -> int:
            return sum(1 for c in self.calls.values() if c.acd is acd and c.phase is phase)

        return SummaryCounts(
            count(True, CallPhase.ACTIVE),
            count(True, CallPhase.ACW),
            count(False, CallPhase.ACTIVE),
            count(False, CallPhase.ACW),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """The agent after something happened, and which of its topics now have news."""

    state: AgentState
    presence: bool = False
    routing: bool = False
    summary: bool = False


def routing_for(presence: str, calls: Mapping[str, CallLoad], not_responding: bool) -> str:
    """The routing status the platform reports for this presence and these calls."""
    if canonical_presence(presence) != ON_QUEUE:
        return "OFF_QUEUE"
    if not_responding:
        return "NOT_RESPONDING"
    if any(c.acd for c in calls.values()):
        return "INTERACTING"
    if any(c.phase is CallPhase.ACTIVE for c in calls.values()):
        return "COMMUNICATING"
    return "IDLE"


def new_agent(
    user_id: str,
    now: datetime,
    *,
    name: str,
    presence: str = "Available",
    routing_status: str | None = None,
) -> AgentState:
    """An agent with no calls; ``routing_status`` as for :func:`change_presence`."""
    presence = canonical_presence(presence)
    not_responding = _requested_routing(presence, {}, routing_status)
    routing = routing_for(presence, {}, not_responding)
    return AgentState(user_id, name, presence, now, routing, now, {}, not_responding)


def change_presence(
    state: AgentState,
    presence: str,
    now: datetime,
    routing_status: str | None = None,
    *,
    republish: bool = False,
) -> Change:
    """The agent after choosing ``presence`` (any case).

    ``routing_status`` may only be what the platform would set anyway, or
    ``NOT_RESPONDING`` for an agent On Queue; anything else raises
    :class:`ValueError`, because the platform never reports it (an agent who is
    not On Queue is ``OFF_QUEUE``, whatever a test would like). ``republish``
    makes it news even when nothing changed, with a new ``modifiedDate`` (the
    user chose the same presence again).
    """
    presence = canonical_presence(presence)
    not_responding = _requested_routing(presence, state.calls, routing_status)
    presence_news = republish or presence != state.presence
    new = replace(state, not_responding=not_responding)
    if presence_news:
        new = replace(new, presence=presence, presence_modified=now)
    return _rerouted(new, now, presence=presence_news)


def change_call(
    state: AgentState, conversation_id: str, load: CallLoad | None, now: datetime
) -> Change:
    """The agent after one call started, moved to ACW (``load``) or ended (``None``)."""
    calls = dict(state.calls)
    if load is None:
        calls.pop(conversation_id, None)
    else:
        calls[conversation_id] = load
    new = replace(state, calls=calls)
    change = _rerouted(new, now)
    return replace(change, summary=new.counts != state.counts)


def _rerouted(state: AgentState, now: datetime, *, presence: bool = False) -> Change:
    routing = routing_for(state.presence, state.calls, state.not_responding)
    if routing == state.routing:
        return Change(state, presence=presence)
    return Change(replace(state, routing=routing, routing_start=now), presence, routing=True)


def _requested_routing(
    presence: str, calls: Mapping[str, CallLoad], routing_status: str | None
) -> bool:
    """Whether a requested routing status makes the agent NOT_RESPONDING; refuse the ones
    the platform would never report for this presence and these calls."""
    if routing_status is None:
        return False
    if routing_status not in ROUTING_STATUSES:
        raise ValueError(
            f"unknown routing status {routing_status!r}; one of {', '.join(ROUTING_STATUSES)}"
        )
    if routing_status == "NOT_RESPONDING" and presence == ON_QUEUE:
        return True
    derived = routing_for(presence, calls, False)
    if routing_status != derived:
        raise ValueError(
            f"routing status {routing_status} contradicts presence {presence!r}: the platform"
            f" sets routing itself and reports {derived} now (OFF_QUEUE unless On Queue;"
            " IDLE, COMMUNICATING or INTERACTING On Queue by the agent's calls); only"
            " NOT_RESPONDING may be set, and only On Queue"
        )
    return False


# -- bodies ----------------------------------------------------------------------------------


def presence_event_body(state: AgentState, *, upper: bool = False) -> dict[str, Any]:
    """The body of ``v2.users.{id}.presence``."""
    return presence_body(state.presence, state.presence_modified, upper=upper)


def presence_rest_body(state: AgentState, *, upper: bool = False) -> dict[str, Any]:
    """``GET /api/v2/users/{id}/presences/purecloud``: a UserPresence, which has more
    fields than the event (``id``, ``name``, ``sourceId``, ``selfUri``,
    ``presenceDefinition.selfUri``), so a re-read never equals the live body."""
    definition = presence_definition_id(state.presence)
    return {
        "id": "PURECLOUD",
        "name": "PURECLOUD",
        "source": "PURECLOUD",
        "sourceId": "PURECLOUD",
        "primary": True,
        "presenceDefinition": {
            "id": definition,
            "systemPresence": presence_label(state.presence, upper=upper),
            "selfUri": f"/api/v2/presencedefinitions/{definition}",
        },
        "message": "",
        "modifiedDate": iso_ms(state.presence_modified),
        "selfUri": f"/api/v2/users/{state.user_id}/presences/PURECLOUD",
    }


def routing_event_body(state: AgentState) -> dict[str, Any]:
    """The body of ``v2.users.{id}.routingStatus``."""
    return routing_status_body(state.user_id, state.routing, state.routing_start)


def routing_rest_body(state: AgentState) -> dict[str, Any]:
    """``GET /api/v2/users/{id}/routingstatus`` (and the ``routingStatus`` expand)."""
    return {
        "userId": state.user_id,
        "status": state.routing,
        "startTime": iso_ms(state.routing_start),
    }


def summary_body(state: AgentState) -> dict[str, Any]:
    """The body of ``v2.users.{id}.conversationsummary`` (and the ``conversationSummary``
    expand): every medium, only calls ever non-zero in the fake."""
    counts = state.counts

    def medium(cc: tuple[int, int], ent: tuple[int, int]) -> dict[str, Any]:
        return {
            "contactCenter": {"active": cc[0], "acw": cc[1]},
            "enterprise": {"active": ent[0], "acw": ent[1]},
        }

    body: dict[str, Any] = {"userId": state.user_id}
    for name in _MEDIA:
        body[name] = medium((0, 0), (0, 0))
    body["call"] = medium(
        (counts.contact_center_active, counts.contact_center_acw),
        (counts.enterprise_active, counts.enterprise_acw),
    )
    return body


# -- users reads -----------------------------------------------------------------------------

EXPANDS = ("presence", "routingStatus", "conversationSummary")
"""The expands the fake fills in."""

KNOWN_EXPANDS = frozenset(
    {
        *EXPANDS,
        "integrationPresence",
        "outOfOffice",
        "geolocation",
        "station",
        "authorization",
        "lasttokenissued",
        "authorization.unusedRoles",
        "team",
        "workPlanBidRanks",
        "externalContactsSettings",
        "groups",
        "customAttributes",
        "profileSkills",
        "certifications",
        "locations",
        "skills",
        "languages",
        "languagePreference",
        "employerInfo",
        "biography",
        "dateLastLogin",
        "dateWelcomeSent",
    }
)
"""Every expand the users API lists as valid (the SDK's enum); the ones outside
:data:`EXPANDS` are accepted and, best effort, left out."""

USERS_DEFAULT_PAGE_SIZE = 25
"""``pageSize`` of ``GET /api/v2/users`` when not given (the SDK's documented default)."""
USERS_MAX_PAGE_SIZE = 500
"""Largest ``pageSize`` the fake allows (the platform's documented users page limit)."""
MAX_USER_IDS = 100
"""Most ``id`` values one bulk read may name."""


@dataclass(frozen=True, slots=True)
class UsersQuery:
    """A validated ``GET /api/v2/users`` query: ``ids`` None lists every user."""

    ids: tuple[str, ...] | None
    expands: tuple[str, ...] = ()
    page_size: int = USERS_DEFAULT_PAGE_SIZE
    page_number: int = 1


def _values(pairs: Sequence[tuple[str, str]], key: str) -> list[str]:
    """Every value of a repeatable parameter: ``id=a&id=b`` and ``id=a,b`` (the SDK's
    style) alike."""
    return [v.strip() for k, raw in pairs if k == key for v in raw.split(",") if v.strip()]


def _bad(field_name: str, reason: str) -> ApiError:
    return ApiError(
        400,
        "bad.request",
        "Invalid value for {field}: {reason}",
        {"field": field_name, "reason": reason},
        [FieldDetail(field_name, "invalid.value")],
    )


def parse_expand(pairs: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The ``expand`` values of a query, deduplicated; a 400 naming ``expand`` for a value the
    users API does not know (a typo is refused, not silently ignored)."""
    expands = tuple(dict.fromkeys(_values(pairs, "expand")))
    for value in expands:
        if value not in KNOWN_EXPANDS:
            raise _bad("expand", f"{value!r} is not an expand of users; one of {sorted(EXPANDS)}")
    return expands


def _positive(pairs: Sequence[tuple[str, str]], key: str, default: int, high: int | None) -> int:
    raw = [v for k, v in pairs if k == key]
    if not raw:
        return default
    try:
        value = int(raw[-1])
    except ValueError:
        value = 0
    if value < 1 or (high is not None and value > high):
        limit = f"from 1 to {high}" if high is not None else "from 1"
        raise _bad(key, f"an integer {limit}, not {raw[-1]!r}")
    return value


def parse_users_query(pairs: Sequence[tuple[str, str]]) -> UsersQuery:
    """Validate the query of ``GET /api/v2/users`` (parameters the fake does not use, such as
    ``sortOrder`` or ``state``, are ignored)."""
    ids = tuple(dict.fromkeys(_values(pairs, "id")))
    if len(ids) > MAX_USER_IDS:
        raise _bad("id", f"at most {MAX_USER_IDS} ids, not {len(ids)}")
    return UsersQuery(
        ids=ids or None,
        expands=parse_expand(pairs),
        page_size=_positive(pairs, "pageSize", USERS_DEFAULT_PAGE_SIZE, USERS_MAX_PAGE_SIZE),
        page_number=_positive(pairs, "pageNumber", 1, None),
    )


def user_entity(
    state: AgentState,
    expands: Collection[str],
    *,
    upper: bool = False,
    keep: Callable[[str], bool] = lambda expand: True,
) -> dict[str, Any]:
    """One ``User`` as the users API answers it, with the expands asked for that the fake
    fills in and ``keep`` lets through (expands are best effort on the platform)."""
    entity: dict[str, Any] = {"id": state.user_id, "name": state.name, "state": "active"}
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "presence": lambda: presence_rest_body(state, upper=upper),
        "routingStatus": lambda: routing_rest_body(state),
        "conversationSummary": lambda: summary_body(state),
    }
    for expand in EXPANDS:
        if expand in expands and keep(expand):
            entity[expand] = builders[expand]()
    entity["selfUri"] = f"/api/v2/users/{state.user_id}"
    return entity


def users_page(
    agents: Sequence[AgentState],
    query: UsersQuery,
    *,
    upper: bool = False,
    keep: Callable[[str, str], bool] = lambda user_id, expand: True,
) -> dict[str, Any]:
    """The answer to ``query``: the named users that exist (unknown ids are simply absent),
    in the order asked, one page of them."""
    by_id = {a.user_id: a for a in agents}
    found = list(agents) if query.ids is None else [by_id[i] for i in query.ids if i in by_id]
    first = (query.page_number - 1) * query.page_size
    page = found[first : first + query.page_size]

    def entity(agent: AgentState) -> dict[str, Any]:
        def keep_for(expand: str) -> bool:
            return keep(agent.user_id, expand)

        return user_entity(agent, query.expands, upper=upper, keep=keep_for)

    return {
        "entities": [entity(a) for a in page],
        "pageSize": query.page_size,
        "pageNumber": query.page_number,
        "total": len(found),
        "pageCount": math.ceil(len(found) / query.page_size),
    }


@dataclass(slots=True)
class ExpandDrops:
    """Which expands reads leave out for which users (the platform resolves expands best
    effort), so a client's fallback to the single reads can be tested.

    A rule is ``(user_id or None for everyone, expand) -> (rate, single)``: the expand is
    left out with probability ``rate`` (the caller draws), from the bulk read always
    and from ``GET /api/v2/users/{id}`` too when ``single``.
    """

    rules: dict[tuple[str | None, str], tuple[float, bool]] = field(default_factory=dict)

    def set(self, user_id: str | None, expand: str, rate: float, single: bool) -> None:
        """Add or replace a rule; ``rate`` 0 removes it."""
        if expand not in EXPANDS:
            raise ValueError(f"expand must be one of {', '.join(EXPANDS)}, not {expand!r}")
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if rate == 0:
            self.rules.pop((user_id, expand), None)
        else:
            self.rules[(user_id, expand)] = (rate, single)

    def rate(self, user_id: str, expand: str, *, single: bool) -> float:
        """The chance that ``expand`` is left out for ``user_id`` in this kind of read."""
        rule = self.rules.get((user_id, expand)) or self.rules.get((None, expand))
        if rule is None or (single and not rule[1]):
            return 0.0
        return rule[0]
