"""Genesys Cloud over REST: OAuth client credentials, channels, subscriptions, calls, errors.

:class:`GenesysPlatform` implements :class:`outdial.platforms.base.Platform` with
one ``httpx.AsyncClient``. Every answer that is not a success becomes a
:class:`~outdial.platforms.base.PlatformError` carrying the platform's own fields
(``code``, ``message``, ``details`` with the field names, ``contextId``) and the
``ININ-Correlation-Id`` header, classified as retryable or not.

Every REST request (channels, subscriptions, dials, reads, analytics; not the
OAuth token request, which the platform does not count against the token)
first takes a slot from one :class:`~outdial.platforms.ratelimit.RequestBudget`,
and every answer's ``inin-ratelimit-*`` headers and a 429's ``Retry-After`` are
fed back into it, so the daemon stays inside the token's allowance as a whole.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar

import anyio
import httpx
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outdial.clock import Clock, SystemClock
from outdial.events import ConversationSummary, Presence
from outdial.log import emit
from outdial.phone import number_facts
from outdial.platforms.base import (
    AgentState,
    AmbiguousOutcome,
    AuthError,
    CallSnapshot,
    ChannelGone,
    ChannelInfo,
    DialRequest,
    FieldProblem,
    OutboundCall,
    PlacedCall,
    PlatformError,
    RetryableError,
    SubscriptionResult,
)
from outdial.platforms.genesys.codec import presence_fields_fast, workload_seen_fast
from outdial.platforms.ratelimit import (
    DEFAULT_LIMIT,
    DEFAULT_PER,
    RateBudget,
    RequestBudget,
    RestStats,
    Sleep,
)
from outdial.platforms.transport import ABORT_ON_CLOSE, send

__all__ = [
    "AnalyticsConversation",
    "AnalyticsQueryResponse",
    "CreateCallRequest",
    "GenesysPlatform",
    "RestRoutingStatus",
    "RestUser",
    "RestUserListing",
    "agent_parts",
    "analytics_query",
    "dialed_number_forms",
    "error_from_response",
    "outbound_call_from",
    "retry_after_seconds",
]

log = logging.getLogger("outdial.platform")

#: Refresh the token this long before the platform says it expires.
TOKEN_REFRESH_MARGIN = 60.0


class CreateCallRequest(BaseModel):
    """The body of ``POST /api/v2/conversations/calls/user/{userId}``.

    Field names follow the platform's CreateCallRequest model. Unknown keys are an
    error (``callee``, ``recipient`` ...), so a payload the platform would reject
    with a bare "Invalid request payload" is rejected here naming the key.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    phone_number: str = Field(alias="phoneNumber", min_length=1)
    caller_id: str | None = Field(default=None, alias="callerId")
    caller_id_name: str | None = Field(default=None, alias="callerIdName")
    call_from_queue_id: str | None = Field(default=None, alias="callFromQueueId")
    call_queue_id: str | None = Field(default=None, alias="callQueueId")
    call_user_id: str | None = Field(default=None, alias="callUserId")
    priority: int | None = None
    language_id: str | None = Field(default=None, alias="languageId")
    routing_skills_ids: list[str] | None = Field(default=None, alias="routingSkillsIds")
    conversation_ids: list[str] | None = Field(default=None, alias="conversationIds")
    participants: list[dict[str, Any]] | None = None
    uui_data: str | None = Field(default=None, alias="uuiData")
    external_contact_id: str | None = Field(default=None, alias="externalContactId")
    label: str | None = None
    attributes: dict[str, str] | None = None

    @field_validator("phone_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        # Parsed once a dial (outdial.phone): the guards have read this number already.
        facts = number_facts(value, None)
        if facts.parsed is None:
            raise ValueError(f"{value!r} is not an E.164 number (expected +<country code><number>)")
        if not value.startswith("+"):
            raise ValueError(f"{value!r} is not E.164: it must start with +")
        if not facts.valid:
            region = phonenumbers.region_code_for_number(facts.parsed) or "its country code"
            raise ValueError(f"{value!r} is not a valid number for {region}")
        return value

    @classmethod
    def from_dial(cls, dial: DialRequest) -> CreateCallRequest:
        """The platform request for a neutral :class:`DialRequest`."""
        return cls(
            phoneNumber=dial.phone_number,
            callerId=dial.caller_id,
            callerIdName=dial.caller_id_name,
            callFromQueueId=dial.queue_id,
            label=dial.label,
            attributes=dict(dial.attributes) or None,
        )

    def to_json(self) -> dict[str, Any]:
        """The wire body: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class AnalyticsSession(BaseModel):
    """One media session of a participant in a conversation detail record."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    media_type: str | None = Field(default=None, alias="mediaType")
    direction: str | None = None
    dnis: str | None = None
    ani: str | None = None


class AnalyticsParticipant(BaseModel):
    """One participant of a conversation detail record."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    participant_id: str | None = Field(default=None, alias="participantId")
    purpose: str | None = None
    user_id: str | None = Field(default=None, alias="userId")
    sessions: list[AnalyticsSession] = Field(default_factory=list)


class AnalyticsConversation(BaseModel):
    """One conversation of ``POST /api/v2/analytics/conversations/details/query``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    conversation_id: str = Field(alias="conversationId", min_length=1)
    conversation_start: datetime = Field(alias="conversationStart")
    conversation_end: datetime | None = Field(default=None, alias="conversationEnd")
    participants: list[AnalyticsParticipant] = Field(default_factory=list)


class AnalyticsQueryResponse(BaseModel):
    """The answer of a conversation detail query (``conversations`` is absent when none match)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    conversations: list[AnalyticsConversation] = Field(default_factory=list)
    total_hits: int | None = Field(default=None, alias="totalHits")


class RestRoutingStatus(BaseModel):
    """``GET /api/v2/users/{id}/routingstatus``, and the ``routingStatus`` expand of a user."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    user_id: str | None = Field(default=None, alias="userId")
    status: str = Field(min_length=1)
    start_time: str | None = Field(default=None, alias="startTime")

    def event_shape(self) -> dict[str, Any]:
        """As the ``routingStatus`` of a ``v2.users.{id}.routingStatus`` event body."""
        shape: dict[str, Any] = {"status": self.status}
        if self.start_time is not None:
            shape["startTime"] = self.start_time
        return shape


class RestUser(BaseModel):
    """One user of ``GET /api/v2/users`` (or ``/users/{id}``) with the expands outdial asks for.

    An expand the platform did not resolve is absent (expands are best effort).
    The expands are kept as the platform sent them and checked on their own
    (:func:`agent_parts`), so that a malformed one is reported by name.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1)
    presence: dict[str, Any] | None = None
    routing_status: dict[str, Any] | None = Field(default=None, alias="routingStatus")
    conversation_summary: dict[str, Any] | None = Field(default=None, alias="conversationSummary")


class RestUserListing(BaseModel):
    """The answer of ``GET /api/v2/users``: one page of users."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    entities: list[RestUser] = Field(default_factory=list)
    page_number: int | None = Field(default=None, alias="pageNumber")
    page_count: int | None = Field(default=None, alias="pageCount")


def _problem(exc: ValidationError, where: str = "") -> str:
    """The first thing pydantic found wrong, as ``path: reason``."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    path = f"{where}.{path}" if where and path else (where or path or "(body)")
    return f"{path}: {first['msg']}"


def checked_presence(body: Any, where: str = "presence") -> dict[str, Any]:
    """A UserPresence body, checked to have what a presence event needs; raises ValueError."""
    if presence_fields_fast(body) is not None:
        # The codec's hand-written checks pass only what the model accepts as is, and
        # leave the rest to it. A bulk re-read checks every agent's parts twice
        # (listing, then state); measured (CPython 3.11, AMD EPYC VM) on the fixture's
        # UserPresence 0.9 us against 2.4 us, its conversation summary 3.2 against 5.6.
        return dict(body)
    try:
        Presence.model_validate(body)
    except ValidationError as exc:
        raise ValueError(_problem(exc, where)) from None
    return dict(body)


def checked_routing_status(body: Any, where: str = "routingStatus") -> dict[str, Any]:
    """A REST routing status in the event's shape ``{"status", "startTime"}``; raises ValueError."""
    try:
        return RestRoutingStatus.model_validate(body).event_shape()
    except ValidationError as exc:
        raise ValueError(_problem(exc, where)) from None


def checked_summary(body: Any, where: str = "conversationSummary") -> dict[str, Any]:
    """A conversation summary body, checked against its model; raises ValueError."""
    if workload_seen_fast(body) is not None:
        return dict(body)  # accepted as the model would (see checked_presence)
    try:
        ConversationSummary.model_validate(body)
    except ValidationError as exc:
        raise ValueError(_problem(exc, where)) from None
    return dict(body)


def agent_parts(
    user: RestUser, where: str = "user"
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """Presence, routing status (event shape) and conversation summary of a user read with
    expands; None for each expand the platform left out. Raises ValueError naming a bad one."""
    presence = (
        None if user.presence is None else checked_presence(user.presence, f"{where}.presence")
    )
    routing = (
        None
        if user.routing_status is None
        else checked_routing_status(user.routing_status, f"{where}.routingStatus")
    )
    summary = (
        None
        if user.conversation_summary is None
        else checked_summary(user.conversation_summary, f"{where}.conversationSummary")
    )
    return presence, routing, summary


#: User ids per ``GET /api/v2/users`` request. The page size is sent as the same number:
#: the platform's default page (25) would silently cut a longer answer short.
USERS_PER_REQUEST = 100
#: The expands of a bulk agent read (each may come back missing: best effort).
AGENT_EXPANDS = "presence,routingStatus,conversationSummary"
#: Pages of one bulk read followed at most (one is the norm: page size = ids asked).
USERS_MAX_PAGES = 10
#: How long :meth:`GenesysPlatform.get_agent_states` retries by default.
AGENT_READ_TIMEOUT = 60.0
#: Full-jitter backoff of a retried read: the first retry is quick, later ones spread out.
READ_RETRY_BASE = 0.5
READ_RETRY_CAP = 10.0

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)


#: Conversations per page of a detail query (the platform allows at most 100).
ANALYTICS_PAGE_SIZE = 100
#: Pages read at most per query: an agent places far fewer calls in a reconcile window.
ANALYTICS_MAX_PAGES = 10
# Only a number in this form narrows a query by ``dnis``: anything else could miss the call.
_E164 = re.compile(r"(tel:)?\+[1-9][0-9]{6,14}")


def _iso_utc(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: analytics intervals are in UTC")
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dimension(name: str, value: str) -> dict[str, Any]:
    return {"type": "dimension", "dimension": name, "operator": "matches", "value": value}


def dialed_number_forms(phone_number: str) -> list[str]:
    """How the platform may record a dialed E.164 number as ``dnis``: ``tel:+44...`` first,
    the bare ``+44...`` too (an ``or``: a form missed here would read as "never placed")."""
    bare = phone_number.removeprefix("tel:")
    return [f"tel:{bare}", bare]


def analytics_query(
    user_id: str,
    since: datetime,
    until: datetime,
    page: int,
    phone_number: str | None = None,
) -> dict[str, Any]:
    """The detail query body for one agent's outbound voice calls that started in
    ``[since, until)``, newest first; to ``phone_number`` only, when given (E.164).

    Each segment filter must hold for some segment of a conversation: the
    agent's (``userId``), an outbound voice one, and one that dialed the number.
    They are separate filters because the agent's own session need not carry
    the dialed number (:func:`outbound_call_from` reads it where it is).
    """
    filters: list[dict[str, Any]] = [
        {"type": "and", "predicates": [_dimension("userId", user_id)]},
        {
            "type": "and",
            "predicates": [_dimension("mediaType", "voice"), _dimension("direction", "outbound")],
        },
    ]
    if phone_number:
        forms = dialed_number_forms(phone_number)
        filters.append({"type": "or", "predicates": [_dimension("dnis", f) for f in forms]})
    return {
        "interval": f"{_iso_utc(since)}/{_iso_utc(until)}",
        # Newest first: the call being reconciled is a recent one.
        "order": "desc",
        "orderBy": "conversationStart",
        "segmentFilters": filters,
        "paging": {"pageSize": ANALYTICS_PAGE_SIZE, "pageNumber": page},
    }


def _outbound_dnis(sessions: Sequence[AnalyticsSession]) -> str | None:
    for session in sessions:
        voice = (session.media_type or "").lower() == "voice"
        if voice and (session.direction or "").lower() == "outbound" and session.dnis:
            return session.dnis
    return None


def outbound_call_from(conversation: AnalyticsConversation, user_id: str) -> OutboundCall | None:
    """The agent's outbound voice call in a detail record, or None (inbound, other media).

    The dialed number is the agent's own outbound session's ``dnis``; another
    participant's outbound voice session stands in when the agent's has none.
    """
    agent_legs = [p for p in conversation.participants if p.user_id == user_id]
    others = [p for p in conversation.participants if p.user_id != user_id]
    number = None
    for participant in [*agent_legs, *others]:
        number = _outbound_dnis(participant.sessions)
        if number is not None:
            break
    if number is None:
        return None
    return OutboundCall(
        conversation_id=conversation.conversation_id,
        started_at=conversation.conversation_start.astimezone(UTC),
        phone_number=number,
        ended_at=(
            conversation.conversation_end.astimezone(UTC) if conversation.conversation_end else None
        ),
    )


def _float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return max(0.0, number) if math.isfinite(number) else None


#: How long a 429 that names no wait at all holds every request back.
DEFAULT_RATE_LIMITED_WAIT = 1.0


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The wait an answer asks for, in seconds, or None when it names none.

    ``Retry-After`` is delta-seconds or an HTTP date (RFC 9110); a date is
    measured from the answer's own ``Date`` header when it has one (the
    platform's clock against itself), else from ``now``. A 429 without
    ``Retry-After`` falls back to ``inin-ratelimit-reset``, the seconds until
    the platform's window starts over.
    """
    value = (response.headers.get("Retry-After") or "").strip()
    if value:
        seconds = _float_header(response, "Retry-After")
        if seconds is not None:
            return seconds
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            base = _response_date(response) or now or datetime.now(UTC)
            return max(0.0, (when - base).total_seconds())
    if response.status_code == 429:
        return _float_header(response, "inin-ratelimit-reset")
    return None


def _response_date(response: httpx.Response) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def error_from_response(response: httpx.Response, *, what: str) -> PlatformError:
    """Map an error answer to the right :class:`PlatformError`, keeping the platform's fields."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    details = [
        FieldProblem(
            field=str(d.get("fieldName") or d.get("field") or "?"),
            code=str(d.get("errorCode") or d.get("code") or "invalid"),
            message=str(d.get("message") or d.get("errorMessage") or ""),
        )
        for d in body.get("details") or []
        if isinstance(d, dict)
    ]
    kwargs: dict[str, Any] = {
        "status": status,
        "code": body.get("code") or body.get("error"),
        "details": details,
        "context_id": body.get("contextId"),
        "correlation_id": response.headers.get("ININ-Correlation-Id"),
        "retry_after": retry_after_seconds(response),
        "body": body,
    }
    message = str(
        body.get("message")
        or body.get("error_description")
        or f"{what} failed with HTTP {status} {response.reason_phrase}"
    )
    if status == 429 or status >= 500:
        return RetryableError(message, **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    return PlatformError(message, **kwargs)


def _parse_expires(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class GenesysPlatform:
    """Genesys Cloud REST, authenticated with OAuth client credentials."""

    def __init__(
        self,
        *,
        api_url: str,
        login_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 10.0,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        requests_per_minute: int = DEFAULT_LIMIT,
        budget: RequestBudget | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``requests_per_minute`` sizes the token's REST budget (unless a shared
        ``budget`` is given); ``sleep`` is what waiting calls (injected in tests);
        ``rng`` draws the jitter of retried reads."""
        self._api_url = api_url.rstrip("/")
        self._login_url = login_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock or SystemClock()
        self._sleep: Sleep = sleep or anyio.sleep
        self._rng = rng or random.Random()
        # False once GET /api/v2/users answered 404 (see get_agent_states).
        self._users_listing = True
        self.budget = budget or RequestBudget(
            RateBudget(requests_per_minute, DEFAULT_PER), self._clock, self._sleep
        )
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport or httpx.AsyncHTTPTransport(socket_options=ABORT_ON_CLOSE),
            headers={"User-Agent": "outdial"},
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        # fast_acquire: taken by every request, and free but while a token is
        # fetched; a trip through the loop for it was one of a dial's loop passes.
        self._token_lock = anyio.Lock(fast_acquire=True)
        #: Every authenticated request's answer, by status (read by the metrics).
        self.rest_stats = RestStats()

    # -- auth --------------------------------------------------------------

    async def _fetch_token(self) -> str:
        try:
            response = await self._http.post(
                f"{self._login_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._client_secret),
            )
        except httpx.TransportError as exc:
            raise RetryableError(
                f"token request to {self._login_url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            error = error_from_response(response, what="token request")
            if response.status_code in (400, 401, 403):
                raise AuthError(
                    f"the platform refused the client credentials ({error.message}); "
                    "check platform.client_id and platform.client_secret",
                    status=error.status,
                    code=error.code,
                    correlation_id=error.correlation_id,
                )
            raise error
        body = response.json()
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 0))
        self._token_expires_at = self._clock.monotonic() + lifetime
        emit(log, "auth.token", expires_in=lifetime)
        return self._token

    async def _valid_token(self, *, force: bool = False) -> str:
        async with self._token_lock:
            fresh = self._clock.monotonic() < self._token_expires_at - TOKEN_REFRESH_MARGIN
            if self._token is not None and fresh and not force:
                return self._token
            return await self._fetch_token()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Sequence[tuple[str, str]] | None = None,
        ambiguous_after_send: bool = False,
        wait_for_budget: bool = True,
    ) -> httpx.Response:
        """Send one authenticated request; refresh the token once on a 401.

        Each send (the one after a refresh too) waits for the REST budget
        first; with ``wait_for_budget`` False it is refused instead, unsent
        (:class:`~outdial.platforms.ratelimit.BudgetSpent`), when it would wait.
        """
        stale_token: str | None = None
        for _ in range(2):
            token = await self._valid_token(force=stale_token is not None)
            if wait_for_budget:
                await self.budget.acquire()
            else:
                await self.budget.take_or_refuse(what)
            sent = self._clock.monotonic()
            response = await send(
                self._http,
                self.rest_stats,
                method,
                f"{self._api_url}{path}",
                what=what,
                ambiguous_after_send=ambiguous_after_send,
                json=json,
                params=list(params) if params is not None else None,
                headers={"Authorization": f"Bearer {token}"},
            )
            self._account(response)
            emit(
                log,
                "rest.request",
                logging.DEBUG,
                method=method,
                path=path,
                status=response.status_code,
                ms=round((self._clock.monotonic() - sent) * 1000, 1),
                correlation_id=response.headers.get("ININ-Correlation-Id"),
            )
            if response.status_code == 401 and stale_token is None:
                stale_token = token
                continue
            return response
        return response

    def _account(self, response: httpx.Response) -> None:
        """Tell the budget what the answer says about the token's allowance."""
        count = _int_header(response, "inin-ratelimit-count")
        allowed = _int_header(response, "inin-ratelimit-allowed")
        reset = _float_header(response, "inin-ratelimit-reset")
        if count is not None and allowed is not None and reset is not None:
            self.budget.observe(count=count, allowed=allowed, reset=reset)
        if response.status_code == 429:
            wait = retry_after_seconds(response, self._clock.now())
            self.budget.retry_after(DEFAULT_RATE_LIMITED_WAIT if wait is None else wait)

    def _error(self, response: httpx.Response, what: str) -> PlatformError:
        """:func:`error_from_response`, with a 429's ``retry_after`` made dependable.

        Always set, and never shorter than what the budget now holds every
        request back for (the platform's Retry-After, its reset, or our own
        window, whichever is last; the budget's small safety margin aside,
        which :meth:`RequestBudget.acquire` adds by itself), so a caller that
        waits that long and retries is not refused again.
        """
        error = error_from_response(response, what=what)
        if response.status_code == 429:
            # The budget's own safety margin is left out: acquire() adds it anyway.
            held = max(0.0, self.budget.wait() - self.budget.budget.margin)
            error.retry_after = max(error.retry_after or 0.0, held)
        return error

    # -- channels ----------------------------------------------------------

    async def create_channel(self) -> ChannelInfo:
        """``POST /api/v2/notifications/channels``."""
        response = await self._request(
            "POST", "/api/v2/notifications/channels", what="create channel"
        )
        if response.status_code not in (200, 201):
            raise self._error(response, "create channel")
        body = response.json()
        return ChannelInfo(
            id=str(body["id"]),
            connect_uri=str(body["connectUri"]),
            expires=_parse_expires(body.get("expires")),
        )

    async def channel_exists(self, channel_id: str) -> bool:
        """``HEAD /api/v2/notifications/channels/{id}``: 200 while valid, 404 when gone."""
        response = await self._request(
            "HEAD", f"/api/v2/notifications/channels/{channel_id}", what="check channel"
        )
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise self._error(response, "check channel")
        return True

    async def get_subscriptions(self, channel_id: str) -> list[str]:
        """``GET .../subscriptions``: the topics the channel carries now."""
        response = await self._request(
            "GET",
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            what="read subscriptions",
        )
        self._raise_for_channel(response, channel_id, "read subscriptions")
        return [str(e["id"]) for e in response.json().get("entities", [])]

    async def put_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """``PUT .../subscriptions``: the channel carries exactly ``topics`` afterwards."""
        return await self._subscribe("PUT", channel_id, topics)

    async def add_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """``POST .../subscriptions``: ``topics`` are added to what the channel carries."""
        return await self._subscribe("POST", channel_id, topics)

    async def _subscribe(
        self, method: str, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        response = await self._request(
            method,
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            what="subscribe",
            json=[{"id": topic} for topic in topics],
        )
        self._raise_for_channel(response, channel_id, "subscribe")
        return [
            SubscriptionResult(
                topic=str(e["id"]),
                permitted=e.get("state", "Permitted") == "Permitted",
                reason=e.get("rejectionReason"),
            )
            for e in response.json().get("entities", [])
        ]

    def _raise_for_channel(self, response: httpx.Response, channel_id: str, what: str) -> None:
        if response.status_code == 404:
            raise ChannelGone(f"{what}: channel {channel_id} no longer exists", status=404)
        if response.status_code >= 400:
            raise self._error(response, what)

    # -- calls and agents ----------------------------------------------------

    async def place_call(self, request: DialRequest) -> PlacedCall:
        """``POST /api/v2/conversations/calls/user/{userId}`` on behalf of the agent.

        Never waits for the REST budget: a dial the budget holds back raises
        :class:`~outdial.platforms.ratelimit.BudgetSpent`, unsent, so the
        dialer can wait outside the agent's turn.
        """
        try:
            body = CreateCallRequest.from_dial(request).to_json()
        except ValidationError as exc:
            raise validation_error(exc) from None
        response = await self._request(
            "POST",
            f"/api/v2/conversations/calls/user/{request.user_id}",
            what="place call",
            json=body,
            ambiguous_after_send=True,
            wait_for_budget=False,
        )
        if response.status_code == 504:
            # A gateway timeout: the platform behind it may still have placed the call.
            error = self._error(response, "place call")
            raise AmbiguousOutcome(
                f"place call: {error.message}; the outcome must be reconciled before any retry",
                status=error.status,
                code=error.code,
                context_id=error.context_id,
                correlation_id=error.correlation_id,
                body=error.body,
            )
        if response.status_code not in (200, 201, 202):
            raise self._error(response, "place call")
        return PlacedCall(conversation_id=str(response.json()["id"]))

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        """``GET /api/v2/conversations/calls/{id}``; None when the platform does not know it."""
        response = await self._request(
            "GET", f"/api/v2/conversations/calls/{conversation_id}", what="read call"
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error(response, "read call")
        return CallSnapshot(conversation_id=conversation_id, body=response.json())

    async def get_agent_state(self, user_id: str) -> AgentState:
        """One agent's state now, to re-read after a gap (:meth:`get_agent_states` of one)."""
        [state] = await self.get_agent_states([user_id])
        return state

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = AGENT_READ_TIMEOUT
    ) -> list[AgentState]:
        """Presence, routing status and conversation summary of many agents, in few requests.

        ``GET /api/v2/users?id=..&expand=presence,routingStatus,conversationSummary``
        reads up to :data:`USERS_PER_REQUEST` agents at once. Expands are best
        effort: for an agent whose expand came back missing, only what is missing
        is read on its own (``/presences/purecloud``, ``/routingstatus``,
        ``/users/{id}?expand=conversationSummary``). An id the answer leaves out
        is one the platform does not know (``known=False``).

        Every request is retried on a retryable failure (429, 5xx, network),
        with backoff and under the REST budget, until ``give_up_after`` seconds have
        passed; then the last failure is raised. Any other error is raised at
        once. A malformed answer is a :class:`PlatformError` naming the field.
        """
        ids = list(dict.fromkeys(user_ids))
        deadline = self._clock.monotonic() + give_up_after
        users: dict[str, RestUser] = {}
        listed = self._users_listing
        for start in range(0, len(ids) if listed else 0, USERS_PER_REQUEST):
            chunk = ids[start : start + USERS_PER_REQUEST]
            page = await self._until_done(partial(self._list_users, chunk), deadline, "read agents")
            if page is None:
                # Remembered: the real platform always has the listing, so a server that
                # answered 404 once is one without it, and asking again only costs requests.
                self._users_listing = listed = False
                break
            users.update(page)
        states: list[AgentState] = []
        for user_id in ids:
            if not listed:
                states.append(await self._read_agent_alone(user_id, deadline))
            elif user_id in users:
                states.append(await self._complete(users[user_id], deadline))
            else:
                states.append(AgentState(user_id, None, None, None, known=False))
        return states

    async def _list_users(self, user_ids: Sequence[str]) -> dict[str, RestUser] | None:
        """The listed users among ``user_ids``, every page; None when there is no such listing."""
        found: dict[str, RestUser] = {}
        wanted = set(user_ids)
        for number in range(1, USERS_MAX_PAGES + 1):
            params = [("id", user_id) for user_id in user_ids]
            params += [
                ("expand", AGENT_EXPANDS),
                ("pageSize", str(USERS_PER_REQUEST)),
                ("pageNumber", str(number)),
            ]
            response = await self._request(
                "GET", "/api/v2/users", what="read agents", params=params
            )
            if response.status_code == 404 and number == 1:
                # Not the real platform (which always has the listing): a proxy or an
                # older fake without it. Reading every agent on its own still works.
                emit(log, "agents.no_bulk_read", logging.WARNING, status=404)
                return None
            if response.status_code != 200:
                raise self._error(response, "read agents")
            listing = self._parse(RestUserListing, response, "read agents")
            for index, user in enumerate(listing.entities):
                where = f"entities[{index}]"
                try:
                    agent_parts(user, where)
                except ValueError as exc:
                    raise self._malformed("read agents", str(exc), response) from None
                if user.id in wanted:
                    found[user.id] = user
            if listing.page_count is None or number >= listing.page_count:
                break
        return found

    async def _complete(self, user: RestUser, deadline: float) -> AgentState:
        """The agent's state from its listing entry; single reads for the expands it lacks."""
        presence, routing, summary = agent_parts(user)
        uid = user.id
        if presence is None:
            presence = await self._until_done(
                lambda: self._read_presence(uid), deadline, "read presence"
            )
        if routing is None:
            routing = await self._until_done(
                lambda: self._read_routing(uid), deadline, "read routing status"
            )
        if summary is None:
            summary = await self._until_done(
                lambda: self._read_summary(uid), deadline, "read conversation summary"
            )
        return AgentState(uid, presence, routing, summary)

    async def _read_agent_alone(self, user_id: str, deadline: float) -> AgentState:
        """Without the listing: presence and routing status on their own, as before the bulk
        read existed; unknown when neither read knows the user. A server without the listing
        has no ``/users/{id}`` either, so the summary is not asked for (None)."""
        presence = await self._until_done(
            lambda: self._read_presence(user_id), deadline, "read presence"
        )
        routing = await self._until_done(
            lambda: self._read_routing(user_id), deadline, "read routing status"
        )
        if presence is None and routing is None:
            return AgentState(user_id, None, None, None, known=False)
        return AgentState(user_id, presence, routing, None)

    async def _read_presence(self, user_id: str) -> dict[str, Any] | None:
        path = f"/api/v2/users/{user_id}/presences/purecloud"
        response = await self._get_optional_response(path, "read presence")
        if response is None:
            return None
        try:
            return checked_presence(self._json(response, "read presence"), "(body)")
        except ValueError as exc:
            raise self._malformed("read presence", str(exc), response) from None

    async def _read_routing(self, user_id: str) -> dict[str, Any] | None:
        path = f"/api/v2/users/{user_id}/routingstatus"
        response = await self._get_optional_response(path, "read routing status")
        if response is None:
            return None
        try:
            return checked_routing_status(self._json(response, "read routing status"), "(body)")
        except ValueError as exc:
            raise self._malformed("read routing status", str(exc), response) from None

    async def _read_summary(self, user_id: str) -> dict[str, Any] | None:
        what = "read conversation summary"
        response = await self._get_optional_response(
            f"/api/v2/users/{user_id}", what, params=[("expand", "conversationSummary")]
        )
        if response is None:
            return None
        user = self._parse(RestUser, response, what)
        if user.conversation_summary is None:
            # Best effort here too: nothing more to ask; readiness treats it as unknown.
            return None
        try:
            return checked_summary(user.conversation_summary)
        except ValueError as exc:
            raise self._malformed(what, str(exc), response) from None

    async def _until_done(
        self, read: Callable[[], Awaitable[_T]], deadline: float, what: str
    ) -> _T:
        """``read()``, again after a backoff while it fails retryably, until ``deadline``."""
        attempt = 0
        while True:
            try:
                return await read()
            except RetryableError as exc:
                ceiling = min(READ_RETRY_CAP, READ_RETRY_BASE * (2**attempt))
                attempt += 1
                # Waiting for the budget counts too: better to give up now than after.
                delay = max(self._rng.uniform(0.0, ceiling), self.budget.wait())
                if self._clock.monotonic() + delay >= deadline:
                    raise RetryableError(
                        f"{what}: still failing after {attempt} tries, giving up at the "
                        f"deadline: {exc.message}",
                        status=exc.status,
                        code=exc.code,
                        context_id=exc.context_id,
                        correlation_id=exc.correlation_id,
                        retry_after=exc.retry_after,
                        body=exc.body,
                    ) from exc
                emit(log, "platform.read_retry", what=what, attempt=attempt, delay=round(delay, 3))
                await self._sleep(delay)

    async def find_outbound_calls(
        self,
        user_id: str,
        since: datetime,
        until: datetime,
        phone_number: str | None = None,
    ) -> list[OutboundCall]:
        """``POST /api/v2/analytics/conversations/details/query`` for the agent, paged.

        Asks for outbound voice calls only, and only those to ``phone_number``
        when it is an E.164 number (the claim's); the answer comes newest first
        and is returned oldest first. A query is a read: a dropped connection
        is retryable, never ambiguous.
        """
        narrow = phone_number if phone_number and _E164.fullmatch(phone_number) else None
        calls: dict[str, OutboundCall] = {}
        seen = 0
        for page in range(1, ANALYTICS_MAX_PAGES + 1):
            response = await self._request(
                "POST",
                "/api/v2/analytics/conversations/details/query",
                what="find calls",
                json=analytics_query(user_id, since, until, page, narrow),
            )
            if response.status_code != 200:
                raise self._error(response, "find calls")
            try:
                answer = AnalyticsQueryResponse.model_validate(response.json())
            except (ValueError, ValidationError) as exc:
                raise PlatformError(
                    f"find calls: unexpected answer from the platform ({exc})",
                    status=response.status_code,
                    correlation_id=response.headers.get("ININ-Correlation-Id"),
                ) from None
            seen += len(answer.conversations)
            for conversation in answer.conversations:
                call = outbound_call_from(conversation, user_id)
                if call is not None and since <= call.started_at < until:
                    calls.setdefault(call.conversation_id, call)
            total = answer.total_hits if answer.total_hits is not None else seen
            if len(answer.conversations) < ANALYTICS_PAGE_SIZE or seen >= total:
                break
        return sorted(calls.values(), key=lambda c: (c.started_at, c.conversation_id))

    async def _get_optional_response(
        self, path: str, what: str, params: Sequence[tuple[str, str]] | None = None
    ) -> httpx.Response | None:
        """A successful GET's answer; None on a 404 (the platform does not know it)."""
        response = await self._request("GET", path, what=what, params=params)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GenesysPlatform._malformed(what, "the body is not JSON", response) from None

    @staticmethod
    def _parse(model: type[_M], response: httpx.Response, what: str) -> _M:
        body = GenesysPlatform._json(response, what)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise GenesysPlatform._malformed(what, _problem(exc), response) from None

    @staticmethod
    def _malformed(what: str, problem: str, response: httpx.Response) -> PlatformError:
        return PlatformError(
            f"{what}: unexpected answer from the platform ({problem})",
            status=response.status_code,
            code="outdial.unexpected.answer",
            correlation_id=response.headers.get("ININ-Correlation-Id"),
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()


def validation_error(exc: ValidationError) -> PlatformError:
    """Our own pre-send validation failure, in the same shape as a platform 400."""
    problems = [
        FieldProblem(
            field=".".join(str(p) for p in e["loc"]) or "(body)",
            code=e["type"],
            message=e["msg"],
        )
        for e in exc.errors()
    ]
    return PlatformError(
        "the call request would be rejected by the platform",
        status=400,
        code="outdial.invalid.request",
        details=problems,
    )
