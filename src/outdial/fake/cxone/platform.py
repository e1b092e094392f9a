"""The fake NICE CXone platform: issuer (auth, discovery), ACD API (sessions, long poll, dials).

:class:`FakeCxone` serves the contract of ``CXONE.md`` on real loopback
sockets with :mod:`outdial.http`: the issuer (``/.well-known/...``,
``/auth/token``, and the ``/fake/...`` controls) on one port, the API that
discovery names (``api_endpoint``) on another, so a client that builds API
URLs from the issuer instead of discovering them fails here as it would on
the platform. The pure parts live beside it: :mod:`.agents` (agent state),
:mod:`.calls` (how a contact plays out), :mod:`.sessions` (ids and queues),
:mod:`.faults` (poll and dial faults), :mod:`.tokens`, :mod:`.errors`.

Lifetimes: every task the fake starts (the two listeners, one task per
connection, each contact's play-out and after-call work, a held poll) runs
in the task group the fake owns from ``__aenter__`` to ``__aexit__``; the
optional :class:`~outdial.fake.proxy.FaultProxy` is entered last so it
closes first.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import anyio.abc

from outdial.clock import Clock, SystemClock
from outdial.fake.common.auth import bearer_token, client_login, same_secret
from outdial.fake.common.changes import Changes
from outdial.fake.common.control import CONTROL_PREFIX, is_control_path
from outdial.fake.common.front import StallGate
from outdial.fake.common.net import set_linger_zero, url_host
from outdial.fake.common.routes import Routes
from outdial.fake.cxone.agents import (
    DEFAULT_SKILL_ID,
    Agent,
    Skill,
    agent_state_event,
    begin_acw,
    begin_contact,
    end_acw,
    new_agent,
    rest_agent_state,
    set_state,
    skills_body,
)
from outdial.fake.cxone.api import API_PREFIX, CxoneHandler, CxonePort
from outdial.fake.cxone.calls import (
    DEFAULT_END_REASONS,
    DIAL_OUTCOMES,
    NAMED_DISCONNECT_CODES,
    Contact,
    Phase,
    contact_event,
    inbound_phases,
    outbound_phases,
    rest_active_contact,
    rest_completed_contact,
)
from outdial.fake.cxone.errors import ERROR_FORMATS, CxoneError, oauth_response
from outdial.fake.cxone.faults import CxoneFaults
from outdial.fake.cxone.recorded import (
    Recorded,
    RecordedCall,
    RecordedDial,
    RecordedDisposition,
    RecordedPoll,
    RecordedSession,
    RecordedToken,
)
from outdial.fake.cxone.sessions import AgentSession, SessionBook
from outdial.fake.cxone.tokens import Grant, TokenBook, encode_jwt
from outdial.fake.faults import RestFaults
from outdial.fake.proxy import FaultProxy
from outdial.fake.script import DEFAULT_OUTCOME_WEIGHTS, CallTiming, Outcome, plan_call
from outdial.http import HttpServer, Request, Response
from outdial.log import emit
from outdial.platforms.cxone.validation import check_phone_number, dial_problems
from outdial.platforms.cxone.wire import (
    BRANCH_HEADER,
    BRANCH_RENEWAL,
    ActiveContactsResponse,
    AgentSessionStartEvent,
    AgentStatesResponse,
    CompletedContactsResponse,
    CxoneConfiguration,
    DialPhoneRequest,
    DialPhoneResponse,
    JoinSessionRequest,
    NextEventResponse,
    OpenIdConfiguration,
    StartSessionRequest,
    StartSessionResponse,
    TokenResponse,
    format_time,
    parse_time,
)

__all__ = ["DEFAULT_CXONE_AGENTS", "MAX_POLL_TIMEOUT", "FakeCxone"]

_log = logging.getLogger("outdial.fake.cxone")

DEFAULT_CXONE_AGENTS: tuple[str, ...] = ("3141592", "2718281")
"""CXone agent ids the fake simulates when none are given."""

MAX_POLL_TIMEOUT = 60
"""The longest ``get-next-event`` ``timeout`` the platform takes, in seconds."""

_HOSTS = {"IISHost": "iis-01", "VCHost": "vc-01"}

# Set for each connection: drops it (RST) from inside a handler, for a lost answer.
_DROP: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "outdial_fake_cxone_drop", default=None
)


class FakeCxone:
    """A NICE CXone stand-in on loopback: issuer, discovery, agent sessions, long poll, dials.

    Use it as an async context manager; the URLs are known once entered::

        async with FakeCxone(agents=["3141592"], seed=0) as cxone:
            config = {"issuer": cxone.issuer_url, "client_id": cxone.client_id, ...}

    Agents are CXone agent ids (digits). Each has the manual outbound phone
    skill ``skill_id`` (4242) unless ``skills`` gives its own list (add
    :meth:`Skill.inbound <outdial.fake.cxone.agents.Skill.inbound>` skills to
    test ``InvalidSkill``). They start in ``initial_state`` (``Available``), and
    their state is theirs: only :meth:`set_agent_state` changes it; the
    platform shows ``OutboundContact``/``InboundContact`` while they are on a
    contact and after-call work after it (``IsAcw``), then their own state again.

    Dials are seeded: ``seed``, ``timing`` and ``outcome_weights`` (answered,
    busy, no answer, failed) decide each outcome as in the Genesys fake;
    :meth:`set_outcome` pins one number's. After-call work lasts
    ``timing.wrapup`` seconds (the skill's ACW timeout; the events report
    ``acw_timeout``), or until a disposition, :meth:`end_acw`, and longer while
    :meth:`hold_acw` holds the agent.

    Switches for what no public source settles (defaults in brackets):

    * ``dial_names_contact`` [False]: the 202 of ``dial-phone`` names the contact
      (``{"contactId"}``); by default its body is ``{}``.
    * ``branch_header`` [True]: a snapshot carries ``icBranchValue: 3``.
    * ``stale_snapshot`` [True]: a poll with an older session id gets a snapshot
      (AgentSessionStart, AgentState, the contacts not over); False: 409.
    * ``error_format`` [``json``]: ``json``, ``text`` or ``empty`` (see
      :mod:`outdial.fake.cxone.errors`).
    * ``disconnect_codes`` [:data:`~outdial.fake.cxone.calls.NAMED_DISCONNECT_CODES`]
      and ``end_reasons``: per outcome.
    * ``impersonation`` [True]: ``agent-sessions/join`` is allowed, else
      ``ImpersonateNotEnabled``.
    * ``login_state`` [``Available``]: the state of a LoggedOut agent whose
      session is started (a tenant's real default is often Unavailable).
    * ``poll_wait_cap`` [None]: wait at most this long on a long poll whatever
      its ``timeout`` asks (a test that wants 304s quickly).

    Faults, each also a ``/fake/faults/{kind}`` endpoint (see
    :mod:`outdial.fake.cxone.control`): :meth:`stall_polls`, :meth:`storm_304`,
    :meth:`end_session` (409 mid-call), :meth:`revoke_tokens` (401 during a
    poll), :meth:`expire_tokens`, :meth:`fail_next` / :meth:`fail_rate` (429 and
    503 with ``Retry-After`` on chosen paths), :meth:`stall_next`,
    :meth:`lose_next_dial` (a 202 whose contact never appears),
    :meth:`drop_next_dial_answer` (placed, answer lost),
    :attr:`duplicate_events`, ``api_proxy=True`` (:attr:`api_proxy`, a TCP
    :class:`~outdial.fake.proxy.FaultProxy` in front of the API); all undone by
    :meth:`clear_faults`.

    One poll per session is served: a second poll while one waits *supersedes*
    it, and the earlier one is answered 304 at once (nothing is lost: the events
    go to the newer poll); :attr:`overlapping_polls` counts such overlaps.
    """

    def __init__(
        self,
        agents: Iterable[str] = DEFAULT_CXONE_AGENTS,
        *,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_port: int = 0,
        client_id: str = "fake-cxone-client",
        client_secret: str = "fake-cxone-secret",
        access_key_id: str = "FAKEACCESSKEYID",
        access_key_secret: str = "fake-access-key-secret",
        tenant_id: str = "11eb0b2e-0000-4000-8000-00000000fa4e",
        business_unit_id: str = "4600001",
        service_agent_id: str = "1000001",
        token_lifetime: float = 3600.0,
        skill_id: int = DEFAULT_SKILL_ID,
        skills: Mapping[str, Iterable[Skill]] | None = None,
        initial_state: str = "Available",
        login_state: str = "Available",
        timing: CallTiming | None = None,
        outcome_weights: Mapping[Outcome, float] | None = None,
        acw_timeout: int = 30,
        caller_id: str = "+14155550100",
        clock: Clock | None = None,
        impersonation: bool = True,
        dial_names_contact: bool = False,
        branch_header: bool = True,
        stale_snapshot: bool = True,
        error_format: str = "json",
        disconnect_codes: Mapping[Outcome, str] | None = None,
        end_reasons: Mapping[Outcome, str] | None = None,
        poll_wait_cap: float | None = None,
        api_proxy: bool = False,
    ) -> None:
        if error_format not in ERROR_FORMATS:
            raise ValueError(f"error_format must be one of {', '.join(ERROR_FORMATS)}")
        weights = dict(outcome_weights or DEFAULT_OUTCOME_WEIGHTS)
        if weights.get(Outcome.AGENT_UNAVAILABLE, 0) > 0:
            raise ValueError("a CXone dial has no agent_unavailable outcome")
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.tenant_id = tenant_id
        self.business_unit_id = business_unit_id
        self.service_agent_id = service_agent_id
        self.skill_id = skill_id
        self.login_state = login_state
        self.timing = timing or CallTiming()
        self.outcome_weights = weights
        self.acw_timeout = acw_timeout
        self.caller_id = caller_id
        self.impersonation = impersonation
        self.dial_names_contact = dial_names_contact
        self.branch_header = branch_header
        self.stale_snapshot = stale_snapshot
        self.error_format = error_format
        self.disconnect_codes = dict(disconnect_codes or NAMED_DISCONNECT_CODES)
        self.end_reasons = dict(end_reasons or DEFAULT_END_REASONS)
        self.poll_wait_cap = poll_wait_cap
        self.duplicate_events = 1
        """How many copies of each event a session's queue gets (2: each arrives twice)."""
        self.recorded = Recorded()
        self.overlapping_polls = 0
        """Polls that arrived while another poll of the same session was in flight."""
        self.stalled_polls = 0
        """Polls held by :meth:`stall_polls` right now."""
        self.control_token = secrets.token_urlsafe(24)
        """The token the ``/fake/...`` endpoints require (``Authorization: Bearer ...``)."""
        self._host = host
        self._port = port
        self._api_port = api_port
        self._clock: Clock = clock or SystemClock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._tokens = TokenBook(token_lifetime)
        self._sessions = SessionBook()
        self._faults = CxoneFaults()
        self._rest_faults = RestFaults(random.Random(None if seed is None else f"{seed}:rest"))
        now = self._clock.now()
        self._agents: dict[str, Agent] = {}
        for agent_id in dict.fromkeys(agents):
            own = (skills or {}).get(agent_id)
            self._agents[agent_id] = new_agent(
                agent_id,
                now,
                skills=own if own is not None else self._default_skills(),
                state=initial_state,
            )
        self._contacts: dict[str, Contact] = {}
        self._next_contact = 700000
        self._forced: dict[str, Outcome] = {}
        self._dialing: set[str] = set()
        self._acw_held: set[str] = set()
        self._acw_end: set[str] = set()
        self._changes = Changes()
        self._stalls = StallGate(self._notify)
        self._issuer = CxonePort(self, self._issuer_routes(), authenticated=False)
        self._api = CxonePort(self, self._api_routes(), authenticated=True)
        self._issuer_http = HttpServer(self._serve_issuer, server_name="outdial-fake-cxone")
        self._api_http = HttpServer(self._api, server_name="outdial-fake-cxone")
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._bound_port = 0
        self._bound_api_port = 0
        self._want_proxy = api_proxy
        self._proxy: FaultProxy | None = None

    def _default_skills(self) -> tuple[Skill, ...]:
        return (Skill(self.skill_id, "Manual Outbound"),)

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._changes.reset()
            self._stalls.reset()
            issuer = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
            await stack.enter_async_context(issuer)
            api = await anyio.create_tcp_listener(local_host=self._host, local_port=self._api_port)
            await stack.enter_async_context(api)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
            self._bound_port = issuer.extra(anyio.abc.SocketAttribute.local_port)
            self._bound_api_port = api.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(issuer.serve, self._connection(self._issuer_http), tg)
            tg.start_soon(api.serve, self._connection(self._api_http), tg)
            if self._want_proxy:
                target = url_host(self._host).strip("[]")
                self._proxy = await stack.enter_async_context(
                    FaultProxy(target, self._bound_api_port, self._host, seed=self._seed)
                )
            self._stack = stack.pop_all()
        emit(_log, "fake.cxone.started", issuer_url=self.issuer_url, api_url=self.api_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._proxy = None
            emit(_log, "fake.cxone.stopped")

    def _connection(self, server: HttpServer) -> Callable[[anyio.abc.SocketStream], Any]:
        """A per-connection handler that lets a request handler drop its own connection."""

        async def serve(stream: anyio.abc.SocketStream) -> None:
            with anyio.CancelScope() as scope:

                def drop() -> None:
                    # Linger 0: the client sees a reset, not a clean close.
                    set_linger_zero(stream)
                    scope.cancel()

                token = _DROP.set(drop)
                try:
                    await server.serve_connection(stream)
                finally:
                    _DROP.reset(token)

        return serve

    @property
    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("FakeCxone is not running; use it as `async with FakeCxone()`")
        return self._tg

    # -- addresses --------------------------------------------------------------------------

    @property
    def issuer_url(self) -> str:
        """The issuer a daemon's ``[platform] issuer`` points at, ``http://127.0.0.1:PORT``."""
        return f"http://{url_host(self._host)}:{self._bound_port}"

    @property
    def api_url(self) -> str:
        """The ``api_endpoint`` discovery hands out (the proxy's with ``api_proxy``)."""
        port = self._proxy.port if self._proxy is not None else self._bound_api_port
        return f"http://{url_host(self._host)}:{port}"

    @property
    def control_url(self) -> str:
        """Base URL of the control endpoints (``/fake/...``, on the issuer port)."""
        return f"{self.issuer_url}{CONTROL_PREFIX}"

    @property
    def api_proxy(self) -> FaultProxy:
        """The :class:`FaultProxy` in front of the API (only with ``api_proxy=True``)."""
        if self._proxy is None:
            raise RuntimeError("no API proxy: create the fake with api_proxy=True")
        return self._proxy

    @property
    def agents(self) -> list[str]:
        """The simulated agents' ids."""
        return list(self._agents)

    def api_base(self, version: str = "v23.0") -> str:
        """``{api_endpoint}/InContactAPI/services/{version}``: where a client's paths start."""
        return f"{self.api_url}/InContactAPI/services/{version}"

    # -- agents -----------------------------------------------------------------------------

    def add_agent(
        self,
        agent_id: str,
        *,
        skills: Iterable[Skill] | None = None,
        state: str = "Available",
        out_reason: str = "",
    ) -> None:
        """Simulate one more agent (a no-op for one already simulated)."""
        if agent_id in self._agents:
            return
        self._agents[agent_id] = new_agent(
            agent_id,
            self._clock.now(),
            skills=skills if skills is not None else self._default_skills(),
            state=state,
            out_reason=out_reason,
        )
        self._notify()

    def agent(self, agent_id: str) -> Agent:
        """The agent as the platform keeps it now (state, ACW, contact, history)."""
        try:
            return self._agents[agent_id]
        except KeyError:
            raise KeyError(f"{agent_id!r} is not one of the fake's agents") from None

    def agent_state(self, agent_id: str) -> str:
        """The agent's ``CurrentState`` now."""
        return self.agent(agent_id).current_state

    def set_agent_state(self, agent_id: str, state: str, out_reason: str = "") -> None:
        """The agent picks ``Available``, ``Unavailable`` (with ``out_reason``) or ``LoggedOut``.

        Published as an ``AgentState`` event on the agent's session when what
        the platform reports changes (on a contact it shows once the contact is over).
        """
        self._apply(set_state(self.agent(agent_id), state, self._clock.now(), out_reason))

    def set_skills(self, agent_id: str, skills: Iterable[Skill]) -> None:
        """Replace the agent's skills (``agents/{id}/skills`` and dial checks)."""
        self._agents[agent_id] = replace(self.agent(agent_id), skills=tuple(skills))
        self._notify()

    def _apply(self, agent: Agent, *extra_first: dict[str, Any]) -> None:
        """Keep the agent's new state; publish ``extra_first`` and the ``AgentState`` if changed."""
        before = agent_state_event(self._agents[agent.agent_id], _HOSTS)
        self._agents[agent.agent_id] = agent
        after = agent_state_event(agent, _HOSTS)
        events = list(extra_first)
        if after != before:
            events.append(after)
        self._publish(agent.agent_id, events)

    # -- calls ------------------------------------------------------------------------------

    def set_outcome(self, phone_number: str, outcome: Outcome | str | None) -> None:
        """Force how dials to ``phone_number`` end (None: back to the seeded draw)."""
        if outcome is None:
            self._forced.pop(phone_number, None)
            return
        chosen = Outcome(outcome)
        if chosen not in DIAL_OUTCOMES:
            raise ValueError(f"a CXone dial has no {chosen.value} outcome")
        self._forced[phone_number] = chosen

    def contact(self, contact_id: str) -> Contact | None:
        """A contact as it is now (None: unknown)."""
        return self._contacts.get(contact_id)

    @property
    def contacts(self) -> list[Contact]:
        """Every contact the fake knows, oldest first."""
        return list(self._contacts.values())

    def hold_acw(self, agent_id: str, hold: bool = True) -> None:
        """Keep the agent in after-call work until a disposition or :meth:`end_acw`
        (``hold=False``: overdue ACW ends now, later ones on time)."""
        self.agent(agent_id)
        if hold:
            self._acw_held.add(agent_id)
        else:
            self._acw_held.discard(agent_id)
        self._notify()

    async def end_acw(self, contact_id: str) -> Contact:
        """End a contact's after-call work now; return it once ``FinalState`` is True."""
        contact = self._contacts.get(contact_id)
        if contact is None:
            raise KeyError(f"{contact_id!r} is not a contact of the fake")
        if not contact.in_acw:
            raise ValueError(f"contact {contact_id} is not in after-call work")
        self._acw_end.add(contact_id)
        self._notify()
        await self._until(lambda: self._contacts[contact_id].final)
        return self._contacts[contact_id]

    async def start_foreign_contact(
        self,
        agent_id: str,
        *,
        phone_number: str,
        inbound: bool = True,
        skill_id: int | None = None,
    ) -> str:
        """Put the agent on a call outdial did not place (inbound by default); its contact id.

        It shows on the agent's session (``Incoming`` then ``Active``, or
        ``Dialing`` then ``Active`` when dialed by hand) and in the REST reads,
        and lasts until :meth:`end_foreign_contact`.
        """
        agent = self.agent(agent_id)
        problem = check_phone_number(phone_number, "phone_number")
        if problem is not None:
            raise ValueError(problem.text)
        if agent.busy:
            raise ValueError(f"agent {agent_id} is on a contact already")
        contact_id = self._new_contact_id()
        now = self._clock.now()
        skill = skill_id if skill_id is not None else agent.skills[0].skill_id
        dnis, ani = (self.caller_id, phone_number) if inbound else (phone_number, self.caller_id)
        phases = inbound_phases() if inbound else [Phase(0.0, "Dialing"), Phase(0.0, "Active")]
        for phase in phases:
            await self._enter(contact_id, agent_id, phase, skill, dnis, ani, inbound, None, now)
        emit(_log, "fake.cxone.contact.foreign", agent_id=agent_id, contact_id=contact_id)
        return contact_id

    async def end_foreign_contact(self, contact_id: str) -> Contact:
        """Hang up a contact of :meth:`start_foreign_contact`; after-call work follows."""
        contact = self._contacts.get(contact_id)
        if contact is None or contact.outcome is not None:
            raise KeyError(f"{contact_id!r} is not a foreign contact of the fake")
        if not contact.on_call:
            raise ValueError(f"contact {contact_id} has already ended")
        phase = Phase(0.0, "Disconnected", ends_call=True)
        await self._enter(
            contact_id,
            contact.agent_id,
            phase,
            contact.skill_id,
            contact.dnis,
            contact.ani,
            contact.inbound,
            None,
            contact.started,
        )
        self._task_group.start_soon(self._after_call_work, contact_id)
        return self._contacts[contact_id]

    def _new_contact_id(self) -> str:
        self._next_contact += 1
        return str(self._next_contact)

    async def _play(
        self,
        contact_id: str,
        agent_id: str,
        request: DialPhoneRequest,
        outcome: Outcome,
        phases: list[Phase],
    ) -> None:
        """Play one placed dial out, then its after-call work."""
        started: datetime | None = None
        ani = request.caller_id or self.caller_id
        for phase in phases:
            await anyio.sleep(phase.delay)
            if started is None:
                started = self._clock.now()
                self._dialing.discard(agent_id)
                self.recorded.calls.append(
                    RecordedCall(
                        contact_id, agent_id, request.phone_number, request.skill_id, outcome.value
                    )
                )
            await self._enter(
                contact_id,
                agent_id,
                phase,
                request.skill_id,
                request.phone_number,
                ani,
                False,
                outcome,
                started,
            )
        emit(_log, "fake.cxone.call.ended", contact_id=contact_id, outcome=outcome.value)
        await self._after_call_work(contact_id)

    async def _enter(
        self,
        contact_id: str,
        agent_id: str,
        phase: Phase,
        skill_id: int,
        dnis: str,
        ani: str,
        inbound: bool,
        outcome: Outcome | None,
        started: datetime,
    ) -> None:
        """The contact enters ``phase.status``: keep it, move the agent, publish both."""
        now = self._clock.now()
        existing = self._contacts.get(contact_id)
        code = ""
        if phase.ends_call and outcome is not None:
            code = self.disconnect_codes.get(outcome, "")
        if existing is None:
            contact = Contact(
                contact_id,
                agent_id,
                skill_id,
                dnis,
                ani,
                inbound,
                started,
                now,
                status=phase.status,
                outcome=outcome,
            )
        else:
            contact = existing.moved(phase.status, now, code)
        self._contacts[contact_id] = contact
        event = contact_event(contact, _HOSTS)
        agent = self._agents[agent_id]
        if existing is None:
            # The agent's state goes first, as the platform sends it (see the fixtures).
            moved = begin_contact(agent, contact_id, now, inbound=inbound)
            self._agents[agent_id] = moved
            self._publish(agent_id, [agent_state_event(moved, _HOSTS), event])
        elif phase.ends_call:
            self._apply(begin_acw(agent, now, self.acw_timeout), event)
        else:
            self._publish(agent_id, [event])

    async def _after_call_work(self, contact_id: str) -> None:
        """ACW for ``timing.wrapup`` seconds (longer while held, shorter on a disposition),
        then the contact's ``FinalState`` True and the agent's own state again."""
        contact = self._contacts[contact_id]
        agent_id = contact.agent_id
        with anyio.move_on_after(self.timing.wrapup):
            await self._until(lambda: contact_id in self._acw_end)
        await self._until(lambda: contact_id in self._acw_end or agent_id not in self._acw_held)
        self._acw_end.discard(contact_id)
        now = self._clock.now()
        done = self._contacts[contact_id].finished(now)
        self._contacts[contact_id] = done
        self._apply(end_acw(self._agents[agent_id], now), contact_event(done, _HOSTS))
        emit(_log, "fake.cxone.contact.final", contact_id=contact_id)

    # -- sessions and events ----------------------------------------------------------------

    def _publish(self, agent_id: str, events: list[dict[str, Any]]) -> None:
        """Queue events on the agent's session (a platform without one keeps nothing)."""
        session = self._sessions.live(agent_id)
        if session is not None and events:
            session.push(events, self.duplicate_events)
        self._notify()

    def _snapshot(self, session: AgentSession) -> list[dict[str, Any]]:
        """AgentSessionStart, the agent's state and every contact not over: the state now."""
        agent = self._agents[session.agent_id]
        start = AgentSessionStartEvent.model_validate(
            {
                "Type": "AgentSessionStart",
                "AgentId": agent.agent_id,
                # The platform's own session id, not the API's rotating one.
                "SessionId": f"as{session.prefix[1:]}",
                "StationId": session.station_id,
                "StationPhoneNumber": session.station_phone_number,
                **_HOSTS,
            }
        ).model_dump(by_alias=True)
        contacts = [
            contact_event(c, _HOSTS)
            for c in self._contacts.values()
            if c.agent_id == agent.agent_id and not c.final
        ]
        return [start, agent_state_event(agent, _HOSTS), *contacts]

    def session_ids(self, agent_id: str) -> list[str]:
        """Every id the agent's current session handed out, oldest first (empty: none)."""
        session = self._sessions.live(agent_id)
        return [] if session is None else list(session.issued)

    def current_session_id(self, agent_id: str) -> str | None:
        """The id the agent's session's next poll must use (None: no session)."""
        session = self._sessions.live(agent_id)
        return None if session is None else session.current

    def polls_waiting(self, agent_id: str) -> int:
        """Polls of the agent's session waiting for events right now (stalled ones included)."""
        session = self._sessions.live(agent_id)
        return 0 if session is None else session.polls_in_flight

    def pending_events(self, agent_id: str) -> list[dict[str, Any]]:
        """The events queued for the agent's next poll (a copy)."""
        session = self._sessions.live(agent_id)
        return [] if session is None else [dict(e) for e in session.queue]

    def publish_event(self, agent_id: str, event: Mapping[str, Any]) -> None:
        """Queue any event (an ``UpdateSkills``, an unknown ``Type``...) on the agent's session."""
        self.agent(agent_id)
        self._publish(agent_id, [dict(event)])

    # -- faults -----------------------------------------------------------------------------

    def stall_polls(self, count: int | None = None) -> None:
        """Never answer the next ``count`` polls (None: every poll) until :meth:`clear_faults`
        or :meth:`release_stalls`: a poll that outlives the client's watchdog."""
        self._faults.stall(count)
        self._notify()

    def release_stalls(self) -> None:
        """Answer every held poll now (304) and stop holding new ones."""
        if self._faults.stall_polls is None:
            self._faults.stall_polls = 0
        self._stalls.release()
        self._rest_faults.clear()
        self._notify()

    def storm_304(self, count: int) -> None:
        """Answer the next ``count`` polls 304 at once, even with events queued."""
        self._faults.storm(count)

    def end_session(self, agent_id: str) -> bool:
        """The platform ends the agent's session (a poll gets 409, even in flight); False if
        there was none. The agent's state and contacts go on."""
        session = self._sessions.live(agent_id)
        if session is None:
            return False
        self._sessions.end(session, "platform")
        self.recorded.sessions.append(
            RecordedSession("ended_by_platform", agent_id, session.current, 409)
        )
        self._notify()
        return True

    def revoke_tokens(self) -> int:
        """Revoke every access token now (a poll in flight gets 401); how many were live."""
        count = self._tokens.revoke_all()
        self._notify()
        return count

    def expire_tokens(self) -> None:
        """Make every access token expire now (refresh tokens still work)."""
        self._tokens.expire_all(self._clock.monotonic())
        self._notify()

    def lose_next_dial(self, count: int = 1) -> None:
        """Answer the next ``count`` dials 202 and never place them (no contact appears)."""
        self._faults.lose(count)

    def drop_next_dial_answer(self, count: int = 1) -> None:
        """Place the next ``count`` dials but drop the connection instead of answering 202."""
        self._faults.drop(count)

    def fail_next(
        self,
        path_regex: str,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests matching ``path_regex`` with ``status``.

        429 and 503 carry ``Retry-After`` (``retry_after`` seconds, 1 by default).
        Matching is :func:`re.search` on the path (no query), on both ports.
        """
        self._rest_faults.fail_next(path_regex, status, count, retry_after, method)

    def fail_rate(
        self, status: int, rate: float, path_regex: str | None = None, *, method: str | None = None
    ) -> None:
        """Answer a seeded share ``rate`` of matching requests with ``status`` (429 or 5xx)."""
        self._rest_faults.fail_rate(status, rate, path_regex, method)

    def stall_next(
        self,
        path_regex: str,
        seconds: float,
        method: str | None = None,
        count: int = 1,
        after_effect: bool = True,
    ) -> None:
        """Hold the answer to the next matching requests (see
        :meth:`outdial.fake.faults.RestFaults.stall_next`); :meth:`release_stalls` ends it."""
        self._rest_faults.stall_next(path_regex, seconds, method, count, after_effect)

    def clear_faults(self) -> None:
        """Back to a healthy platform: no poll, dial, REST or TCP fault in force."""
        self._faults.clear()
        self.duplicate_events = 1
        self.release_stalls()
        if self._proxy is not None:
            self._proxy.clear()

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked on every change; TimeoutError after
        ``timeout`` seconds."""
        await self._changes.wait_for(predicate, timeout)

    async def wait_for_calls(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> list[RecordedCall]:
        """Wait until ``n`` calls were placed (their contact appeared)."""
        await self.wait_for(lambda: len(self.recorded.calls) >= n, timeout)
        return self.recorded.calls

    async def _until(self, predicate: Callable[[], bool]) -> None:
        await self._changes.until(predicate)

    def notify_changed(self) -> None:
        """Wake every waiter to re-check (after a change made outside the fake)."""
        self._notify()

    def _notify(self) -> None:
        self._changes.notify()

    # -- dispatch ---------------------------------------------------------------------------

    async def _serve_issuer(self, request: Request) -> Response:
        if is_control_path(request.path):
            from outdial.fake.cxone.control import handle_control

            return await handle_control(self, request)
        return await self._issuer(request)

    def _authenticate(self, request: Request) -> str:
        token = bearer_token(request)
        if token is None:
            raise CxoneError(401, "Unauthorized", "no bearer token")
        if self._tokens.check(token, self._clock.monotonic()) is None:
            raise CxoneError(401, "Unauthorized", "the token is expired, revoked or unknown")
        return token

    # -- routes -----------------------------------------------------------------------------

    def _issuer_routes(self) -> Routes[CxoneHandler]:
        routes: Routes[CxoneHandler] = Routes()
        routes.add("GET", "/.well-known/openid-configuration", self._h_openid)
        routes.add("GET", "/.well-known/cxone-configuration", self._h_cxone_configuration)
        routes.add("POST", "/auth/token", self._h_token)
        return routes

    def _api_routes(self) -> Routes[CxoneHandler]:
        routes: Routes[CxoneHandler] = Routes()
        sessions = f"{API_PREFIX}/agent-sessions"
        routes.add("POST", sessions, self._h_start_session)
        routes.add("POST", f"{sessions}/join", self._h_join_session)
        routes.add("DELETE", f"{sessions}/{{session_id}}", self._h_end_session)
        routes.add("GET", f"{sessions}/{{session_id}}/get-next-event", self._h_poll)
        routes.add("POST", f"{sessions}/{{session_id}}/dial-phone", self._h_dial)
        disposition = f"{API_PREFIX}/interactions/{{contact_id}}/disposition"
        routes.add("POST", disposition, self._h_disposition)
        routes.add("GET", f"{API_PREFIX}/contacts/active", self._h_active_contacts)
        routes.add("GET", f"{API_PREFIX}/contacts/completed", self._h_completed_contacts)
        routes.add("GET", f"{API_PREFIX}/agents/states", self._h_agent_states)
        routes.add("GET", f"{API_PREFIX}/agents/{{agent_id}}/states", self._h_agent_state)
        routes.add("GET", f"{API_PREFIX}/agents/{{agent_id}}/skills", self._h_agent_skills)
        return routes

    # -- issuer -----------------------------------------------------------------------------

    async def _h_openid(self, request: Request, token: str) -> Response:
        body = OpenIdConfiguration.model_validate(
            {
                "issuer": self.issuer_url,
                "token_endpoint": f"{self.issuer_url}/auth/token",
                "authorization_endpoint": f"{self.issuer_url}/auth/authorize",
                "grant_types_supported": ["password", "refresh_token", "authorization_code"],
                "id_token_signing_alg_values_supported": ["HS256"],
            }
        )
        return Response.json(200, body.model_dump(by_alias=True))

    async def _h_cxone_configuration(self, request: Request, token: str) -> Response:
        tenant = request.query.get("tenantId", "")
        if not tenant:
            raise CxoneError(400, "InvalidParameter", "tenantId is required")
        if tenant != self.tenant_id:
            raise CxoneError(404, "TenantNotFound", f"no tenant {tenant}")
        body = CxoneConfiguration.model_validate(
            {
                "private": False,
                "tenantId": self.tenant_id,
                "area": "na1",
                "cluster": "C32",
                "domain": "niceincontact.com",
                "acdDomain": "nice-incontact.com",
                "uhDomain": "nice-incontact.com",
                "api_endpoint": self.api_url,
                "auth_endpoint": self.issuer_url,
                "ui_endpoint": self.issuer_url,
            }
        )
        return Response.json(200, body.model_dump(by_alias=True, exclude_none=True))

    async def _h_token(self, request: Request, token: str) -> Response:
        login = client_login(request)
        form, client_id = login.form, login.client_id
        grant_type = form.get("grant_type", "")
        username = form.get("username")

        def refuse(status: int, error: str, why: str) -> Response:
            self.recorded.token_requests.append(
                RecordedToken(grant_type, client_id, username, False)
            )
            self._notify()
            return oauth_response(status, error, why)

        if client_id != self.client_id or not same_secret(login.secret, self.client_secret):
            return refuse(401, "invalid_client", "unknown client or wrong secret")
        now = self._clock.monotonic()
        if grant_type == "password":
            if username != self.access_key_id or not same_secret(
                form.get("password"), self.access_key_secret
            ):
                return refuse(400, "invalid_grant", "unknown access key or wrong secret")
            issued = self._tokens.issue(Grant(client_id, username), now)
        elif grant_type == "refresh_token":
            found = self._tokens.refresh(form.get("refresh_token", ""), now)
            if found is None:
                return refuse(400, "invalid_grant", "unknown or used refresh token")
            issued = found
        else:
            return refuse(400, "unsupported_grant_type", f"grant type {grant_type!r}")
        self.recorded.token_requests.append(
            RecordedToken(grant_type, client_id, username or self.access_key_id, True)
        )
        self._notify()
        issued_at = int(self._clock.now().timestamp())
        id_token = encode_jwt(
            {
                "iss": self.issuer_url,
                "sub": f"user:{self.service_agent_id}",
                "aud": self.client_id,
                "iat": issued_at,
                "exp": issued_at + issued.expires_in,
                "tenantId": self.tenant_id,
                "icAgentId": self.service_agent_id,
                "icBUId": self.business_unit_id,
                "icClusterId": "C32",
                "name": "outdial service",
            }
        )
        body = TokenResponse(
            access_token=issued.access_token,
            token_type="Bearer",
            expires_in=issued.expires_in,
            refresh_token=issued.refresh_token,
            id_token=id_token,
        )
        return Response.json(200, body.model_dump(by_alias=True))

    # -- sessions -----------------------------------------------------------------------------

    async def _h_start_session(self, request: Request, token: str) -> Response:
        agent_id: str | None = None
        try:
            body = _json_object(request.body)
            try:
                start = StartSessionRequest.model_validate(body)
            except ValueError as exc:
                raise CxoneError(400, "InvalidRequest", str(exc)) from None
            agent_id = str(start.as_agent_id) if start.as_agent_id else self.service_agent_id
            agent = self._agents.get(agent_id)
            if agent is None:
                raise CxoneError(400, "InvalidAgentId", f"no agent {agent_id}")
            station = (start.station_id or "").strip()
            phone = (start.station_phone_number or "").strip()
            if not station and not phone:
                raise CxoneError(
                    400, "InvalidPhoneNumberOrStation", "give stationId or stationPhoneNumber"
                )
            if phone and check_phone_number(phone, "stationPhoneNumber") is not None:
                raise CxoneError(400, "InvalidPhoneNumberOrStation", f"{phone} is not a number")
            if self._sessions.live(agent_id) is not None:
                raise CxoneError(400, "SessionInProgress", f"agent {agent_id} has a session")
            for other in self._sessions.live_sessions:
                if phone and other.station_phone_number == phone:
                    raise CxoneError(400, "PhoneNumberInUse", f"{phone} is in use")
                if station and other.station_id == station:
                    raise CxoneError(400, "StationIDInUse", f"station {station} is in use")
        except CxoneError as error:
            self.recorded.sessions.append(
                RecordedSession("start", agent_id, None, error.status, error.code)
            )
            raise
        if agent.state == "LoggedOut":
            # Starting a session logs the agent in (into the tenant's login state).
            self._agents[agent_id] = set_state(agent, self.login_state, self._clock.now())
        session = self._open_session(agent_id, "start", phone, station)
        return self._session_answer(session, "start")

    async def _h_join_session(self, request: Request, token: str) -> Response:
        agent_id: str | None = None
        try:
            body = _json_object(request.body)
            try:
                join = JoinSessionRequest.model_validate(body)
            except ValueError as exc:
                raise CxoneError(400, "InvalidRequest", str(exc)) from None
            agent_id = str(join.as_agent_id)
            if not self.impersonation:
                raise CxoneError(400, "ImpersonateNotEnabled", "impersonation is not enabled")
            agent = self._agents.get(agent_id)
            if agent is None:
                raise CxoneError(400, "InvalidAgentId", f"no agent {agent_id}")
            if agent.state == "LoggedOut":
                raise CxoneError(400, "AgentNotLoggedIn", f"agent {agent_id} has no session")
        except CxoneError as error:
            self.recorded.sessions.append(
                RecordedSession("join", agent_id, None, error.status, error.code)
            )
            raise
        # Joining shares the agent's session when there is one (its queue, its ids).
        session = self._sessions.live(agent_id) or self._open_session(agent_id, "join", "", "")
        return self._session_answer(session, "join")

    def _open_session(
        self, agent_id: str, mode: Literal["start", "join"], phone: str, station: str
    ) -> AgentSession:
        session = self._sessions.open(
            agent_id, mode, station_phone_number=phone, station_id=station
        )
        # The first batch says who and where the agent is, as a snapshot does.
        session.push(self._snapshot(session))
        return session

    def _session_answer(self, session: AgentSession, action: str) -> Response:
        self.recorded.sessions.append(
            RecordedSession(action, session.agent_id, session.current, 200)
        )
        self._notify()
        emit(_log, "fake.cxone.session", action=action, agent_id=session.agent_id)
        body = StartSessionResponse.model_validate({"sessionId": session.current})
        return Response.json(200, body.model_dump(by_alias=True))

    async def _h_end_session(self, request: Request, token: str, session_id: str) -> Response:
        session, kind = self._sessions.find(session_id)
        if session is None or kind == "ended":
            status, code = (409, "SessionEnded") if session else (404, "InvalidSessionId")
            self.recorded.sessions.append(
                RecordedSession("end", session.agent_id if session else None, session_id, status)
            )
            raise CxoneError(status, code, f"no session {session_id}")
        self._sessions.end(session, "client")
        if session.mode == "start":
            # The session was the agent's login: ending it logs the agent out.
            agent = self._agents[session.agent_id]
            self._agents[session.agent_id] = set_state(agent, "LoggedOut", self._clock.now())
        self.recorded.sessions.append(RecordedSession("end", session.agent_id, session_id, 202))
        self._notify()
        return Response.empty(202)

    def _session(self, session_id: str) -> AgentSession:
        """The live session an id (current or older) belongs to; 404 or 409 otherwise."""
        session, kind = self._sessions.find(session_id)
        if session is None:
            raise CxoneError(404, "InvalidSessionId", f"no session {session_id}")
        if kind == "ended":
            raise CxoneError(409, "SessionEnded", f"session {session_id} has ended")
        return session

    # -- the long poll ----------------------------------------------------------------------

    async def _h_poll(self, request: Request, token: str, session_id: str) -> Response:
        session, kind = self._sessions.find(session_id)
        timeout = request.query.get("timeout", "0")
        record = RecordedPoll(
            session.agent_id if session else None,
            session_id,
            kind,
            int(timeout) if timeout.isdigit() else None,
            0,
        )
        try:
            response = await self._poll(session, kind, timeout, token)
        except CxoneError as error:
            self.recorded.polls.append(record._replace(status=error.status))
            self._notify()
            raise
        answer = _answer_of(response)
        self.recorded.polls.append(
            record._replace(
                status=response.status,
                next_session_id=answer.session_id if answer else None,
                events=tuple(str(e.get("Type", "")) for e in answer.events) if answer else (),
                renewal=any(
                    k == BRANCH_HEADER and v == BRANCH_RENEWAL for k, v in response.headers
                ),
            )
        )
        self._notify()
        return response

    async def _poll(
        self, session: AgentSession | None, kind: str, timeout_text: str, token: str
    ) -> Response:
        if not timeout_text.isdigit() or not 0 <= int(timeout_text) <= MAX_POLL_TIMEOUT:
            raise CxoneError(
                400, "InvalidTimeout", f"timeout must be 0 to {MAX_POLL_TIMEOUT} seconds"
            )
        if session is None:
            raise CxoneError(404, "InvalidSessionId", "no such session")
        if kind == "ended":
            raise CxoneError(409, "SessionEnded", "the session has ended")
        if kind == "stale":
            if not self.stale_snapshot:
                raise CxoneError(409, "SessionEnded", "the session id is no longer valid")
            # The client missed a batch: renew its whole picture of the agent.
            session.take()
            session.new_poll()  # a poll waiting on the newer id is superseded
            events = self._snapshot(session)
            headers = [(BRANCH_HEADER, BRANCH_RENEWAL)] if self.branch_header else []
            return self._batch(session, events, headers)
        verdict = self._faults.decide_poll()
        ticket = session.new_poll()
        if session.polls_in_flight:
            self.overlapping_polls += 1
        session.polls_in_flight += 1
        self._notify()
        try:
            if verdict == "stall":
                return await self._stalled_poll()
            if verdict == "storm":
                return Response.empty(304)
            wait = float(timeout_text)
            if self.poll_wait_cap is not None:
                wait = min(wait, self.poll_wait_cap)
            why = "timeout"
            with anyio.move_on_after(wait):
                why = await self._wait_for_events(session, ticket, token)
        finally:
            session.polls_in_flight -= 1
        if why == "ended":
            raise CxoneError(409, "SessionEnded", "the session has ended")
        if why == "revoked":
            raise CxoneError(401, "Unauthorized", "the token was revoked")
        if why == "events":
            return self._batch(session, session.take(), [])
        return Response.empty(304)

    async def _wait_for_events(self, session: AgentSession, ticket: int, token: str) -> str:
        while True:
            if session.ended:
                return "ended"
            if self._tokens.check(token, self._clock.monotonic()) is None:
                return "revoked"
            if session.poll_ticket != ticket:
                return "superseded"
            if session.queue:
                return "events"
            await self._changes.wait()

    async def _stalled_poll(self) -> Response:
        self.stalled_polls += 1
        self._notify()
        try:
            await self._stalls.wait()
        finally:
            self.stalled_polls -= 1
            self._notify()
        return Response.empty(304)

    def _batch(
        self, session: AgentSession, events: list[dict[str, Any]], headers: list[tuple[str, str]]
    ) -> Response:
        new_id = self._sessions.rotate(session)
        body = NextEventResponse.model_validate({"sessionId": new_id, "events": events})
        return Response.json(200, body.model_dump(by_alias=True), headers)

    # -- dialing ----------------------------------------------------------------------------

    async def _h_dial(self, request: Request, token: str, session_id: str) -> Response:
        payload: Any = None
        agent_id: str | None = None
        try:
            session = self._session(session_id)
            agent_id = session.agent_id
            payload = _decoded(request.body)
            problems = dial_problems(payload)
            if problems:
                raise CxoneError(
                    400,
                    "InvalidRequest",
                    "; ".join(p.text for p in problems),
                    problems=[p.text for p in problems],
                )
            dial = DialPhoneRequest.model_validate(payload)
            agent = self._agents[agent_id]
            skill = agent.skill(dial.skill_id)
            if skill is None or not skill.dials_by_hand:
                raise CxoneError(
                    400,
                    "InvalidSkill",
                    f"skill {dial.skill_id} is not a manual outbound phone skill of agent "
                    f"{agent_id}",
                )
            if agent.busy or agent.state == "LoggedOut" or agent_id in self._dialing:
                raise CxoneError(
                    400,
                    "InvalidState",
                    f"agent {agent_id} is {agent.current_state}"
                    + (" in after-call work" if agent.acw else ""),
                )
        except CxoneError as error:
            self.recorded.dials.append(
                RecordedDial(agent_id, session_id, payload, error.status, error.code)
            )
            self._notify()
            raise
        return await self._accept_dial(session, dial, payload)

    async def _accept_dial(
        self, session: AgentSession, dial: DialPhoneRequest, payload: Any
    ) -> Response:
        agent_id = session.agent_id
        verdict = self._faults.decide_dial()
        contact_id = self._new_contact_id()
        forced = self._forced.get(dial.phone_number)
        # A number the test pinned plays out as pinned, even one the numbering plan
        # leaves unassigned (such as the fixtures' +1555 numbers): otherwise it fails.
        reachable = forced is not None or _reachable(dial.phone_number)
        # Three draws every time (see plan_call), lost dial or not, so replays line up.
        plan = plan_call(
            self._rng,
            self.timing,
            self.outcome_weights,
            forced=forced,
            reachable=reachable,
        )
        outcome = plan.outcome
        if verdict != "lose":
            self._dialing.add(agent_id)
            phases = outbound_phases(plan, self.timing)
            self._task_group.start_soon(self._play, contact_id, agent_id, dial, outcome, phases)
        self.recorded.dials.append(
            RecordedDial(
                agent_id, session.current, payload, 202, None, contact_id, outcome.value, verdict
            )
        )
        self._notify()
        emit(
            _log,
            "fake.cxone.dial",
            agent_id=agent_id,
            contact_id=contact_id,
            outcome=outcome.value,
            verdict=verdict,
        )
        if verdict == "drop":
            drop = _DROP.get()
            if drop is not None:
                drop()
                await anyio.sleep_forever()
        named = DialPhoneResponse(contactId=contact_id) if self.dial_names_contact else None
        return Response.json(202, named.model_dump(by_alias=True) if named else {})

    async def _h_disposition(self, request: Request, token: str, contact_id: str) -> Response:
        payload = _decoded(request.body)
        contact = self._contacts.get(contact_id)
        try:
            if contact is None:
                raise CxoneError(400, "InvalidContactId", f"no contact {contact_id}")
            if not contact.in_acw:
                raise CxoneError(400, "InvalidState", f"contact {contact_id} is not in ACW")
        except CxoneError as error:
            self.recorded.dispositions.append(
                RecordedDisposition(contact_id, payload, error.status)
            )
            raise
        self._acw_end.add(contact_id)
        self.recorded.dispositions.append(RecordedDisposition(contact_id, payload, 202))
        self._notify()
        await self._until(lambda: self._contacts[contact_id].final)
        return Response.empty(202)

    # -- session-free reads -----------------------------------------------------------------

    def _agent_filter(self, request: Request) -> str | None:
        agent_id = request.query.get("agentId")
        if agent_id is not None and agent_id not in self._agents:
            raise CxoneError(400, "InvalidAgentId", f"no agent {agent_id}")
        return agent_id

    async def _h_active_contacts(self, request: Request, token: str) -> Response:
        agent_id = self._agent_filter(request)
        active = [
            rest_active_contact(c)
            for c in self._contacts.values()
            if c.on_call and (agent_id is None or c.agent_id == agent_id)
        ]
        body = ActiveContactsResponse.model_validate(
            {"lastPollTime": format_time(self._clock.now()), "activeContacts": active}
        )
        return Response.json(200, body.model_dump(by_alias=True))

    async def _h_completed_contacts(self, request: Request, token: str) -> Response:
        agent_id = self._agent_filter(request)
        start = _query_time(request, "startDate")
        end = _query_time(request, "endDate")
        done = [
            rest_completed_contact(c, self.end_reasons)
            for c in self._contacts.values()
            if not c.on_call
            and (agent_id is None or c.agent_id == agent_id)
            and (start is None or c.started >= start)
            and (end is None or c.started <= end)
        ]
        body = CompletedContactsResponse.model_validate({"completedContacts": done})
        return Response.json(200, body.model_dump(by_alias=True))

    async def _h_agent_state(self, request: Request, token: str, agent_id: str) -> Response:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise CxoneError(400, "InvalidAgentId", f"no agent {agent_id}")
        body = AgentStatesResponse.model_validate(
            {
                "lastPollTime": format_time(self._clock.now()),
                "agentStates": [rest_agent_state(agent)],
            }
        )
        return Response.json(200, body.model_dump(by_alias=True))

    async def _h_agent_states(self, request: Request, token: str) -> Response:
        since = _query_time(request, "updatedSince")
        states = [
            rest_agent_state(a)
            for a in self._agents.values()
            if since is None or (a.updated is not None and a.updated > since)
        ]
        body = AgentStatesResponse.model_validate(
            {"lastPollTime": format_time(self._clock.now()), "agentStates": states}
        )
        return Response.json(200, body.model_dump(by_alias=True))

    async def _h_agent_skills(self, request: Request, token: str, agent_id: str) -> Response:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise CxoneError(400, "InvalidAgentId", f"no agent {agent_id}")
        return Response.json(200, skills_body(agent, self._clock.now()))


def _decoded(raw: bytes) -> Any:
    """A JSON body, or its text when it is not JSON (the validator then names ``body``)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _json_object(raw: bytes) -> dict[str, Any]:
    body = _decoded(raw)
    if not isinstance(body, dict):
        raise CxoneError(400, "InvalidRequest", "the body must be a JSON object")
    return body


def _answer_of(response: Response) -> NextEventResponse | None:
    if response.status != 200:
        return None
    return NextEventResponse.model_validate_json(response.body)


def _reachable(number: str) -> bool:
    import phonenumbers

    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False


def _query_time(request: Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None or not text.strip():
        return None
    when = parse_time(text)
    if when is None:
        raise CxoneError(400, "InvalidParameter", f"{name} must be an ISO-8601 time")
    return when
