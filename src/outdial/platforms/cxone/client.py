"""The CXone REST API as outdial uses it: sessions, long polls, dials, session-free reads.

One ``httpx.AsyncClient`` carries everything. Every request (the token and
discovery requests, each long poll, the resend after a 401) first takes a slot
from one :class:`~outdial.platforms.ratelimit.RequestBudget` of
``requests_per_minute``: CXone publishes no limit, so the daemon keeps its own
and honours the platform's 429 and 503 ``Retry-After`` on top.

Errors become :class:`~outdial.platforms.base.PlatformError` (see
:mod:`.errors`); a connection lost *after* a request was sent is
:class:`~outdial.platforms.base.AmbiguousOutcome` where resending could act
twice (``dial-phone``), and retryable everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from outdial.clock import Clock
from outdial.config import CxonePlatformConfig
from outdial.log import emit
from outdial.platforms.base import PlatformError
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.auth import CxoneAuth, TokenSource
from outdial.platforms.cxone.discovery import api_base, discover
from outdial.platforms.cxone.errors import error_from_response
from outdial.platforms.ratelimit import DEFAULT_PER, RateBudget, RequestBudget, RestStats
from outdial.platforms.transport import ABORT_ON_CLOSE, send

__all__ = ["CxoneClient", "PollResult"]

log = logging.getLogger("outdial.platform")

#: How long a 429 that names no wait holds every request back.
DEFAULT_RATE_LIMITED_WAIT = 1.0

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class PollResult:
    """One ``get-next-event`` answer: 200 (events and the next session id), 304 or 409."""

    status: int
    session_id: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def renewal(self) -> bool:
        """The batch renews the whole state after missed events (``icBranchValue: 3``)."""
        return self.headers.get(wire.BRANCH_HEADER.lower()) == wire.BRANCH_RENEWAL


def _agent_number(agent_id: str) -> int:
    try:
        return int(agent_id)
    except ValueError:
        raise PlatformError(
            f"CXone agent ids are numbers, got {agent_id!r}",
            status=400,
            code="outdial.invalid.agent",
        ) from None


class CxoneClient:
    """Authenticated CXone REST for one tenant (discovered from the issuer on first use)."""

    def __init__(
        self,
        settings: CxonePlatformConfig,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        """``transport`` replaces the network (tests); ``budget`` shares a REST budget."""
        self.settings = settings
        self._clock = clock
        self.budget = budget or RequestBudget(
            RateBudget(settings.requests_per_minute, DEFAULT_PER), clock, self._sleep
        )
        self._http = httpx.AsyncClient(
            timeout=settings.request_timeout,
            transport=transport or httpx.AsyncHTTPTransport(socket_options=ABORT_ON_CLOSE),
            headers={"User-Agent": "outdial"},
        )
        self.tokens = TokenSource(
            self._http,
            issuer=settings.issuer,
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            access_key_id=settings.access_key_id,
            access_key_secret=settings.access_key_secret.get_secret_value(),
            clock=clock,
            before_send=self.budget.acquire,
        )
        self._auth = CxoneAuth(self.tokens, before_send=self.budget.acquire)
        # A dial never waits for the budget (it is sent from an agent's turn):
        # held back, it is refused unsent and the dialer waits elsewhere.
        self._dial_auth = CxoneAuth(self.tokens, before_send=self._dial_budget)
        self._base: str | None = None
        # fast_acquire: taken by every request, free but while the base is looked up.
        self._base_lock = anyio.Lock(fast_acquire=True)
        #: Answers by status and requests that got none (metrics read them).
        self.rest_stats = RestStats()

    async def _dial_budget(self) -> None:
        await self.budget.take_or_refuse("dial phone")

    async def _sleep(self, seconds: float) -> None:
        await self._clock.sleep_until(self._clock.monotonic() + seconds)

    async def api_base(self) -> str:
        """``{api_endpoint}/InContactAPI/services/{version}``, discovered once."""
        async with self._base_lock:
            if self._base is None:
                await self.tokens.token()  # the id_token names the tenant
                tenant = self.settings.tenant_id or self.tokens.id_claims.get("tenantId")
                await self.budget.acquire()
                found = await discover(
                    self._http, self.settings.issuer, tenant if isinstance(tenant, str) else None
                )
                self._base = api_base(found.api_endpoint, self.settings.api_version)
                emit(log, "cxone.discovered", api=found.api_endpoint, area=found.area)
            return self._base

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        read_for: float | None = None,
        ambiguous_after_send: bool = False,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """Send one authenticated request; an answer of any status comes back.

        ``auth`` replaces the usual one (whose budget waits) for this request.
        """
        url = f"{await self.api_base()}{path}"
        sent = self._clock.monotonic()
        response = await send(
            self._http,
            self.rest_stats,
            method,
            url,
            what=what,
            ambiguous_after_send=ambiguous_after_send,
            json=json,
            params=dict(params) if params else None,
            auth=auth or self._auth,
            timeout=read_for if read_for is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code in (429, 503):
            error = error_from_response(response, what=what, now=self._clock.now())
            wait = error.retry_after
            if wait is not None or response.status_code == 429:
                self.budget.retry_after(DEFAULT_RATE_LIMITED_WAIT if wait is None else wait)
        emit(
            log,
            "rest.request",
            logging.DEBUG,
            method=method,
            path=path,
            status=response.status_code,
            ms=round((self._clock.monotonic() - sent) * 1000, 1),
        )
        return response

    def _error(self, response: httpx.Response, what: str) -> PlatformError:
        return error_from_response(response, what=what, now=self._clock.now())

    def _parse(self, model: type[_M], response: httpx.Response, what: str) -> _M:
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            problem = (
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                    for e in exc.errors()[:3]
                )
                if isinstance(exc, ValidationError)
                else "the body is not JSON"
            )
            raise PlatformError(
                f"{what}: unexpected answer from the platform ({problem})",
                status=response.status_code,
                code="outdial.unexpected.answer",
            ) from None

    # -- agent sessions ---------------------------------------------------------------

    async def start_session(self, agent_id: str) -> str:
        """``POST agent-sessions`` for ``agent_id`` at its station; the new session id."""
        station_id, station_phone = self.settings.station_for(agent_id)
        body = wire.StartSessionRequest(
            stationId=station_id,
            stationPhoneNumber=station_phone,
            asAgentId=_agent_number(agent_id),
        ).model_dump(by_alias=True, exclude_none=True)
        response = await self._request("POST", "/agent-sessions", what="start session", json=body)
        if response.status_code not in (200, 201, 202):
            raise self._error(response, "start session")
        return self._parse(wire.StartSessionResponse, response, "start session").session_id

    async def join_session(self, agent_id: str) -> str:
        """``POST agent-sessions/join``: the agent's own session (needs impersonation)."""
        body = wire.JoinSessionRequest(asAgentId=_agent_number(agent_id)).model_dump(by_alias=True)
        response = await self._request(
            "POST", "/agent-sessions/join", what="join session", json=body
        )
        if response.status_code not in (200, 201, 202):
            raise self._error(response, "join session")
        return self._parse(wire.StartSessionResponse, response, "join session").session_id

    async def end_session(self, session_id: str) -> None:
        """``DELETE agent-sessions/{id}``; a session already gone is fine."""
        response = await self._request(
            "DELETE", f"/agent-sessions/{session_id}", what="end session"
        )
        if response.status_code >= 400 and response.status_code not in (404, 409):
            raise self._error(response, "end session")

    async def get_next_event(self, session_id: str, wait: float) -> PollResult:
        """One long poll, answered within ``wait`` seconds: 200, 304 and 409 told apart."""
        response = await self._request(
            "GET",
            f"/agent-sessions/{session_id}/get-next-event",
            what="get next event",
            params={"timeout": str(int(wait))},
            # A backstop only: the event source's watchdog, on the injected clock, decides.
            read_for=wait + self.settings.poll_watchdog + self.settings.request_timeout,
        )
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code in (304, 409):
            return PollResult(response.status_code, headers=headers)
        if response.status_code != 200:
            raise self._error(response, "get next event")
        answer = self._parse(wire.NextEventResponse, response, "get next event")
        return PollResult(200, answer.session_id, tuple(answer.events), headers)

    async def dial_phone(
        self, session_id: str, request: wire.DialPhoneRequest
    ) -> wire.DialPhoneResponse:
        """``POST agent-sessions/{id}/dial-phone``: accepted (202) is not placed.

        A connection lost after sending is :class:`AmbiguousOutcome`; the caller
        reconciles, never resends. Never waits for the REST budget: held back,
        it raises :class:`~outdial.platforms.ratelimit.BudgetSpent`, unsent.
        """
        response = await self._request(
            "POST",
            f"/agent-sessions/{session_id}/dial-phone",
            what="dial phone",
            json=request.model_dump(by_alias=True, exclude_none=True),
            ambiguous_after_send=True,
            auth=self._dial_auth,
        )
        if response.status_code not in (200, 201, 202, 204):
            raise self._error(response, "dial phone")
        if not response.content.strip():
            return wire.DialPhoneResponse()
        try:
            body = response.json()
        except ValueError:
            return wire.DialPhoneResponse()
        if not isinstance(body, dict):
            return wire.DialPhoneResponse()
        contact = body.get("contactId", body.get("ContactId", body.get("ContactID")))
        return wire.DialPhoneResponse(contactId=str(contact) if contact not in (None, "") else None)

    # -- session-free reads ---------------------------------------------------------------

    async def active_contacts(self, agent_id: str | None = None) -> list[wire.RestActiveContact]:
        """``GET contacts/active`` (of one agent when given); none is an empty list."""
        params = {"agentId": agent_id} if agent_id else None
        response = await self._request(
            "GET", "/contacts/active", what="read active contacts", params=params
        )
        if response.status_code in (204, 404):
            return []
        if response.status_code != 200:
            raise self._error(response, "read active contacts")
        return self._parse(
            wire.ActiveContactsResponse, response, "read active contacts"
        ).active_contacts

    async def completed_contacts(
        self, since: datetime, until: datetime, agent_id: str | None = None
    ) -> list[wire.CompletedContact]:
        """``GET contacts/completed`` between ``since`` and ``until`` (of one agent)."""
        params = {"startDate": wire.format_time(since), "endDate": wire.format_time(until)}
        if agent_id:
            params["agentId"] = agent_id
        response = await self._request(
            "GET", "/contacts/completed", what="read completed contacts", params=params
        )
        if response.status_code in (204, 404):
            return []
        if response.status_code != 200:
            raise self._error(response, "read completed contacts")
        return self._parse(
            wire.CompletedContactsResponse, response, "read completed contacts"
        ).completed_contacts

    async def agent_state(self, agent_id: str) -> wire.RestAgentState | None:
        """``GET agents/{id}/states``; None when the platform does not know the agent."""
        response = await self._request("GET", f"/agents/{agent_id}/states", what="read agent state")
        if response.status_code in (204, 404):
            return None
        if response.status_code != 200:
            error = self._error(response, "read agent state")
            # The request has nothing but the id in its path: a 400 naming the id, or
            # naming nothing at all (the error body format is not published), refuses it.
            if response.status_code == 400 and (
                error.code is None or "InvalidAgentId" in f"{error.code} {response.text}"
            ):
                return None
            raise error
        states = self._parse(wire.AgentStatesResponse, response, "read agent state").agent_states
        mine = [s for s in states if str(s.agent_id) == agent_id] or states
        return mine[0] if mine else None

    async def agent_skills(self, agent_id: str) -> Sequence[Mapping[str, Any]]:
        """``GET agents/{id}/skills``: the agent's skills as the platform lists them."""
        response = await self._request(
            "GET", f"/agents/{agent_id}/skills", what="read agent skills"
        )
        if response.status_code in (204, 404):
            return []
        if response.status_code != 200:
            raise self._error(response, "read agent skills")
        try:
            body = response.json()
        except ValueError:
            body = None
        skills = (
            body.get("agentSkillAssignments", body.get("skills"))
            if isinstance(body, dict)
            else body
        )
        return [s for s in skills or [] if isinstance(s, Mapping)]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
