"""An in-memory CXone behind ``httpx.MockTransport``, for the client, source and call tests.

Small on purpose (the full fake lives in ``outdial.fake.cxone``): tokens and
discovery, agent sessions whose id changes on every 200, long polls that wait
for pushed events (no real sleeping: a poll waits until a test pushes
something or cancels it), ``dial-phone``, and the session-free reads. Any
request can be answered differently by an ``override``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from outdial.config import CxonePlatformConfig

ISSUER = "https://issuer.test"
API = "https://api-na1.test"
BASE = f"{API}/InContactAPI/services/v23.0"
TENANT = "tenant-1"
CLIENT_SECRET = "client-secret-xyz"
KEY_SECRET = "key-secret-xyz"

#: Pushed instead of events: answer the waiting poll 304 / 409.
NOT_MODIFIED = "304"
GONE = "409"

Override = Callable[[httpx.Request], "httpx.Response | None"]


def settings(**changes: Any) -> CxonePlatformConfig:
    base: dict[str, Any] = {
        "kind": "cxone",
        "issuer": ISSUER,
        "client_id": "app",
        "client_secret": CLIENT_SECRET,
        "access_key_id": "key-id",
        "access_key_secret": KEY_SECRET,
        "skill_id": 4242,
        "station_phone_number": "+14155550100",
        "poll_timeout": 30,
        "poll_watchdog": 20,
        "contact_wait": 15,
    }
    return CxonePlatformConfig.model_validate({**base, **changes})


def id_token(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@dataclass
class Session:
    agent: str
    ids: list[str]
    queue: list[Any] = field(default_factory=list)
    wake: anyio.Event = field(default_factory=anyio.Event)
    ended: bool = False
    joined: bool = False


class MockCxone:
    """The platform's side; tests read ``requests`` and steer with the attributes."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.overrides: list[Override] = []
        self.expires_in = 3600
        self.tokens_issued: list[str] = []
        self.refresh_refused = False
        self.revoked: set[str] = set()
        self.sessions: dict[str, Session] = {}
        self.active: dict[str, list[dict[str, Any]]] = {}
        self.completed: list[dict[str, Any]] = []
        self.agent_states: dict[str, dict[str, Any]] = {}
        self.dials: list[dict[str, Any]] = []
        #: What dial-phone does besides answering 202 (e.g. push the contact's event).
        self.on_dial: Callable[[str, dict[str, Any]], None] | None = None
        self.dial_body: dict[str, Any] | None = None
        self.polls_in_flight = 0
        self._next = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- steering ------------------------------------------------------------------

    def push(self, agent: str, *items: Any) -> None:
        """Queue events (or NOT_MODIFIED / GONE) for the agent's live session."""
        for session in self.sessions.values():
            if session.agent == agent and not session.ended:
                session.queue.extend(items)
                session.wake.set()

    def session_of(self, agent: str) -> Session | None:
        live = [s for s in self.sessions.values() if s.agent == agent and not s.ended]
        return live[-1] if live else None

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method is None or r.method == method]

    # -- answering -------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}{self._next}"

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for override in self.overrides:
            answer = override(request)
            if answer is not None:
                return answer
        url = request.url
        if url.host == "issuer.test":
            return self._issuer(request)
        path = url.path.removeprefix("/InContactAPI/services/v23.0")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens_issued or token in self.revoked:
            return httpx.Response(401, json={"error": "invalid_token"})
        parts = path.strip("/").split("/")
        if path == "/agent-sessions" and request.method == "POST":
            return self._start(request, joined=False)
        if path == "/agent-sessions/join":
            return self._start(request, joined=True)
        if parts[0] == "agent-sessions" and request.method == "DELETE":
            session, _ = self._find(parts[1])
            if session is None:
                return httpx.Response(404)
            session.ended = True
            session.wake.set()
            return httpx.Response(202)
        if parts[0] == "agent-sessions" and parts[-1] == "get-next-event":
            return await self._poll(parts[1])
        if parts[0] == "agent-sessions" and parts[-1] == "dial-phone":
            body = json.loads(request.content)
            session, _ = self._find(parts[1])
            if session is None or session.ended:
                return httpx.Response(409)
            self.dials.append(body)
            if self.on_dial is not None:
                self.on_dial(session.agent, body)
            return (
                httpx.Response(202, json=self.dial_body) if self.dial_body else httpx.Response(202)
            )
        if path == "/contacts/active":
            agent = url.params.get("agentId")
            contacts = [c for a, cs in self.active.items() if agent in (None, a) for c in cs]
            return (
                httpx.Response(200, json={"activeContacts": contacts})
                if contacts
                else (httpx.Response(204))
            )
        if path == "/contacts/completed":
            agent = url.params.get("agentId")
            done = [c for c in self.completed if agent in (None, str(c.get("agentId")))]
            return httpx.Response(200, json={"completedContacts": done})
        if parts[0] == "agents" and parts[-1] == "states":
            state = self.agent_states.get(parts[1])
            if state is None:
                return httpx.Response(404, text="InvalidAgentId")
            return httpx.Response(200, json={"agentStates": [state]})
        return httpx.Response(404, text="no such route")

    def _issuer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/cxone-configuration":
            if request.url.params.get("tenantId") != TENANT:
                return httpx.Response(404)
            return httpx.Response(200, json={"api_endpoint": API, "area": "na1"})
        if request.url.path == "/auth/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            basic = base64.b64encode(f"app:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("Authorization") != f"Basic {basic}":
                return httpx.Response(401, json={"error": "invalid_client"})
            if form.get("grant_type") == "refresh_token" and self.refresh_refused:
                return httpx.Response(400, json={"error": "invalid_grant"})
            if form.get("grant_type") == "password" and (
                form.get("username") != "key-id" or form.get("password") != KEY_SECRET
            ):
                return httpx.Response(400, json={"error": "invalid_grant"})
            token = self._id("tok-")
            self.tokens_issued.append(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "refresh_token": self._id("rt-"),
                    "id_token": id_token({"tenantId": TENANT, "sub": "x"}),
                },
            )
        return httpx.Response(404)

    def _start(self, request: httpx.Request, *, joined: bool) -> httpx.Response:
        body = json.loads(request.content)
        agent = str(body["asAgentId"])
        if self.session_of(agent) is not None and not joined:
            return httpx.Response(400, text="SessionInProgress")
        sid = self._id("s-")
        self.sessions[sid] = Session(agent, [sid], joined=joined)
        return httpx.Response(202, json={"sessionId": sid})

    def _find(self, sid: str) -> tuple[Session | None, bool]:
        for session in self.sessions.values():
            if sid in session.ids:
                return session, sid == session.ids[-1]
        return None, False

    async def _poll(self, sid: str) -> httpx.Response:
        session, current = self._find(sid)
        if session is None or session.ended:
            return httpx.Response(409)
        if not current:
            # A stale id: the state as it is now, opening with AgentSessionStart.
            new = self._id("s-")
            session.ids.append(new)
            state = self.agent_states.get(session.agent, {})
            snapshot = [
                {"Type": "AgentSessionStart", "AgentId": session.agent},
                {"Type": "AgentState", "CurrentState": state.get("agentStateName", "Available")},
            ]
            return httpx.Response(200, json={"sessionId": new, "events": snapshot})
        self.polls_in_flight += 1
        try:
            while not session.queue and not session.ended:
                session.wake = anyio.Event()
                await session.wake.wait()
        finally:
            self.polls_in_flight -= 1
        if session.ended:
            return httpx.Response(409)
        first = session.queue[0]
        if first == NOT_MODIFIED:
            session.queue.pop(0)
            return httpx.Response(304)
        if first == GONE:
            session.queue.pop(0)
            session.ended = True
            return httpx.Response(409)
        events: list[Any] = []
        headers: dict[str, str] = {}
        while session.queue and isinstance(session.queue[0], dict):
            item = session.queue.pop(0)
            if item.get("_branch"):
                headers["icBranchValue"] = item["_branch"]
                continue
            events.append(item)
        new = self._id("s-")
        session.ids.append(new)
        return httpx.Response(200, json={"sessionId": new, "events": events}, headers=headers)
