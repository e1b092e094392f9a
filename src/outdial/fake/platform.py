"""The fake Genesys Cloud platform: REST (auth, channels, subscriptions, calls, agents) + WebSocket.

:class:`FakePlatform` serves the platform contract of ``DESIGN.md`` on real
loopback sockets: the API and the login host on one HTTP/1.1 port (h11 over
anyio), the notification streaming host on its own port (the ``websockets``
asyncio server). Simulated agents place seeded, deterministic calls and change
presence as real agents would, and every way the connection can break is a
control a test (or a user trying their rules) can pull.

Lifetimes: every task the fake starts (the HTTP listener, one task per HTTP
connection, call play-outs, deferred socket closes) runs in the task group the
platform owns from ``__aenter__`` to ``__aexit__``. WebSocket connections are
owned by the ``websockets`` server, which is closed (and its handlers awaited)
before that task group is cancelled.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import random
import re
import secrets
import socket
import string
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl

import anyio
import anyio.abc
import anyio.lowlevel
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from outdial.clock import Clock, SystemClock
from outdial.fake.agents import (
    AgentState,
    CallLoad,
    CallPhase,
    Change,
    ExpandDrops,
    change_call,
    change_presence,
    new_agent,
    parse_expand,
    parse_users_query,
    presence_event_body,
    presence_rest_body,
    routing_event_body,
    routing_rest_body,
    summary_body,
    user_entity,
    users_page,
)
from outdial.fake.analytics import ConversationFacts, details_response, validate_details_query
from outdial.fake.control import CONTROL_PREFIX, handle_control
from outdial.fake.errors import ApiError, FieldDetail, oauth_error, status_error
from outdial.fake.faults import EventShaper, RestFaults, RestVerdict
from outdial.fake.proxy import FaultProxy
from outdial.fake.runner import FaultRun, end_fault, follow, start_fault
from outdial.fake.schedule import Fault, expand
from outdial.fake.script import (
    DEFAULT_OUTCOME_WEIGHTS,
    DEFAULT_WRAPUP_CODE,
    PURPOSE_MODES,
    CallParties,
    CallPlan,
    CallStep,
    CallStyle,
    CallTiming,
    Outcome,
    WrapupCode,
    call_script,
    conversation_body,
    foreign_call_script,
    hang_up,
    iso_ms,
    plan_call,
    purposes_for,
    wrapup_done,
)
from outdial.fake.validation import (
    check_phone_number,
    check_topic,
    check_topic_count,
    parse_json,
    validate_create_call,
    validate_topic_list,
)
from outdial.http import HttpServer, Request, Response, Router
from outdial.log import emit

__all__ = [
    "DEFAULT_AGENTS",
    "FakePlatform",
    "Recorded",
    "RecordedCall",
    "RecordedToken",
    "SubscriptionChange",
]

_log = logging.getLogger("outdial.fake")

DEFAULT_AGENTS: tuple[str, ...] = (
    "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60",
    "8d1f0a3e-2b7c-4e95-a6d4-5f0e1c2b3a47",
)
"""Agent user ids the fake simulates when none are given."""

MAX_CHANNELS = 20
"""Channels one client may hold; creating one more evicts the oldest."""

RATE_LIMIT_WINDOW = 60.0
"""Seconds in one rate-limit window (``inin-ratelimit-reset`` counts down to its end)."""

DEFAULT_RATE_LIMIT = 300
"""Requests per token per :data:`RATE_LIMIT_WINDOW` the platform allows by default."""

HEARTBEAT = json.dumps(
    {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
)
PONG = json.dumps({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})

# The system presence of an agent whose calls end agent-unavailable (no station to ring).
_OFFLINE = "Offline"

# A conversation's progress for the agent: on the call, its leg just ended (what follows
# is being published), in after-call work, or done with it.
_LIVE, _ENDING, _ACW, _DONE = "live", "ending", "acw", "done"

_CALL_ROUTE = "create_call"
_REPLACED = "Replaced by a newer connection to this channel"
_CHANNEL_PATH = re.compile(r"^/channels/([^/?#]+)$")


class RecordedToken(NamedTuple):
    """One ``POST /oauth/token``: which client asked, and whether a token was issued."""

    client_id: str | None
    granted: bool


class SubscriptionChange(NamedTuple):
    """One change to a channel's subscriptions (``PUT``, ``POST`` or ``DELETE``)."""

    channel_id: str
    method: str
    topics: tuple[str, ...]


class RecordedCall(NamedTuple):
    """One ``POST /api/v2/conversations/calls/user/{userId}``, accepted or not.

    ``payload`` is the decoded JSON body (or the raw text when it was not JSON);
    ``conversation_id`` and ``plan`` are set only when the call was accepted.
    """

    user_id: str
    payload: Any
    conversation_id: str | None
    status: int
    plan: CallPlan | None = None


@dataclass(slots=True)
class Recorded:
    """Everything the platform was asked to do, in order, for assertions."""

    token_requests: list[RecordedToken] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    subscription_changes: list[SubscriptionChange] = field(default_factory=list)
    call_requests: list[RecordedCall] = field(default_factory=list)

    @property
    def accepted_calls(self) -> list[RecordedCall]:
        """The call requests the platform accepted (HTTP 200)."""
        return [c for c in self.call_requests if c.status == 200]


@dataclass(slots=True)
class _Token:
    client_id: str
    expires_at: float


@dataclass(slots=True, eq=False)
class _Socket:
    """One WebSocket connection on a channel."""

    ws: ServerConnection
    channel_id: str

    async def send(self, text: str) -> bool:
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame: the peer sees a reset."""
        transport = self.ws.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 makes the kernel send RST instead of FIN.
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


@dataclass(slots=True, eq=False)
class _Channel:
    id: str
    client_id: str
    expires_at: float
    expires_wall: datetime
    topics: dict[str, None] = field(default_factory=dict)
    socket: _Socket | None = None


@dataclass(slots=True, eq=False)
class _Conversation:
    """One call the fake knows: placed through the API (``plan`` set) or foreign (None)."""

    parties: CallParties
    style: CallStyle
    body: dict[str, Any]
    started: datetime
    plan: CallPlan | None = None
    caller_id: str | None = None
    # False for an agent-unavailable call: the agent never got on it, so it counts in no
    # summary, changes no routing status and has no wrap-up.
    engaged: bool = True
    phase: str = _LIVE
    # Set by FakePlatform.end_acw: the after-call work ends now, with this code.
    acw_end: WrapupCode | None = None

    @property
    def foreign(self) -> bool:
        return self.plan is None

    def facts(self) -> ConversationFacts:
        """What analytics says about the call, read off its legs by participant id (so any
        pair of purposes reads the same); with no customer leg (agent unavailable) the
        agent leg says whether and how the call ended."""
        legs = {p["id"]: p for p in self.body["participants"]}
        agent = legs[self.parties.agent_participant_id]
        far = legs.get(self.parties.customer_participant_id)
        source = far if far is not None else agent
        ended = source.get("state") in ("disconnected", "terminated")
        connected = far.get("connectedTime") if far is not None else None
        return ConversationFacts(
            conversation_id=self.parties.conversation_id,
            user_id=self.parties.user_id,
            phone_number=self.parties.phone_number,
            start=self.started,
            agent_participant_id=self.parties.agent_participant_id,
            customer_participant_id=self.parties.customer_participant_id,
            caller_id=self.caller_id,
            connected=datetime.fromisoformat(connected) if connected else None,
            end=datetime.fromisoformat(source["endTime"]) if ended else None,
            disconnect_type=source.get("disconnectType") if ended else None,
        )


class FakePlatform:
    """A Genesys Cloud stand-in on loopback: REST API, login host and notification WebSocket.

    Use it as an async context manager; the URLs are known once entered::

        async with FakePlatform(agents=["user-1"], seed=0) as platform:
            client = MyClient(platform.api_url, platform.login_url,
                              platform.client_id, platform.client_secret)

    ``seed`` makes the outcome and timing of every call reproducible: the same
    seed and the same sequence of call requests give the same outcomes and
    durations. ``clock`` (monotonic for token and channel expiry, wall for
    timestamps) defaults to the system clock; pass a
    :class:`~outdial.clock.ManualClock` to expire tokens and channels without
    waiting. ``rate_limit`` is how many API requests one token may make per
    minute (default 300, as the platform); beyond it a 429 with ``Retry-After``.
    Every API answer carries the ``inin-ratelimit-*`` headers; ``None`` or 0 stops
    refusing (the headers stay). Not counted: the login host (``POST
    /oauth/token``, which has no token yet and answers without those headers),
    requests refused 401, and the control endpoints (``/fake/...``).

    Agents behave as on the platform (see :mod:`outdial.fake.agents`): they start
    ``Available`` and ``OFF_QUEUE``; presence changes only through
    :meth:`set_presence`, :meth:`publish_presence` or the control endpoint, never
    because of a call; routing status and ``v2.users.{id}.conversationsummary``
    follow the agent's calls (placed through the API or started with
    :meth:`start_foreign_call`), with an event only on a change. A call placed with
    ``callFromQueueId`` is an ACD call: after its agent leg ends the agent is in
    after-call work for ``timing.wrapup`` seconds (or until :meth:`end_acw` while
    :meth:`hold_acw` holds it). Switches for what no public source settles:

    * ``purposes``: ``"auto"`` (default: ``agent``/``customer`` with a queue,
      ``user``/``external`` without), ``"agent-customer"`` or ``"user-external"``.
    * ``presence_case``: ``"title"`` (``Available``, ``On Queue``) or ``"upper"``
      (``AVAILABLE``, ``ON_QUEUE``) in presence events and REST bodies.
    * ``disconnect_reasons``: add ``disconnectReasons: [{"type": "q850", "code"}]``
      to ended customer legs (off: the calls topic may not carry them).
    * ``agent_hangup_rate``: the seeded share of answered and no-answer calls the
      agent ends (an answered call hung up, a ringing one abandoned); the draws
      come from their own stream, so outcomes and timings do not move.
      :meth:`set_hangup` pins it per number.
    * ``wrapup_prompt``, ``wrapup_timeout_ms``, ``wrapup_code``: the queue's
      wrap-up settings and the code agents pick.

    Situations a dialer must respect, on demand: :meth:`start_foreign_call` and
    :meth:`end_foreign_call` (a call outdial did not place), :meth:`hold_acw` and
    :meth:`end_acw` (wrap-up that lasts), :meth:`drop_expand` (a bulk re-read
    missing an expand), :meth:`set_hangup` (the agent hangs up).

    ``ws_proxy=True`` puts a :class:`~outdial.fake.proxy.FaultProxy` between
    clients and the streaming host: the ``connectUri`` of every channel points
    at it, and :attr:`ws_proxy` breaks those connections at the TCP level
    (half-open, reset, latency, ...). ``rest_proxy=True`` does the same for the
    REST API (:attr:`api_url` points at :attr:`rest_proxy`).

    Faults, on demand: REST (:meth:`fail_next`, :meth:`fail_rate`,
    :meth:`stall_next`, :meth:`slow_rest`), protocol (:meth:`send_socket_closing`,
    :meth:`expire_channel`, :meth:`evict_oldest`, :meth:`kick_socket`,
    :meth:`drop_sockets`, :meth:`send_malformed`, :meth:`send_oversized`,
    :meth:`publish_unknown_topic`, :attr:`duplicate_events`,
    :meth:`reorder_events`, :meth:`delay_events`, :attr:`heartbeats_enabled`,
    :attr:`answer_pings`), TCP (the proxies); on a schedule with
    :meth:`run_schedule`; over HTTP under :attr:`control_url`; all undone by
    :meth:`clear_faults`. The event and REST faults draw from their own
    seeded random streams, so injecting them never changes call outcomes.
    """

    heartbeats_enabled: bool
    """When False, no socket receives heartbeats (a silent but open connection)."""
    answer_pings: bool
    """When False, ``{"message": "ping"}`` gets no pong."""
    pings_received: int
    """How many ``{"message": "ping"}`` frames arrived, over all sockets."""

    def __init__(
        self,
        agents: Iterable[str] = DEFAULT_AGENTS,
        *,
        seed: int | None = None,
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        heartbeat_interval: float = 30.0,
        token_lifetime: float = 86399.0,
        channel_lifetime: float = 86400.0,
        timing: CallTiming | None = None,
        outcome_weights: Mapping[Outcome, float] | None = None,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        clock: Clock | None = None,
        ws_proxy: bool = False,
        rest_proxy: bool = False,
        purposes: str = "auto",
        presence_case: str = "title",
        disconnect_reasons: bool = False,
        agent_hangup_rate: float = 0.0,
        wrapup_prompt: str = "mandatory",
        wrapup_timeout_ms: int = 60000,
        wrapup_code: WrapupCode = DEFAULT_WRAPUP_CODE,
    ) -> None:
        if purposes not in PURPOSE_MODES:
            raise ValueError(f"purposes must be one of {', '.join(PURPOSE_MODES)}")
        if presence_case not in ("title", "upper"):
            raise ValueError("presence_case must be 'title' or 'upper'")
        if not 0 <= agent_hangup_rate <= 1:
            raise ValueError("agent_hangup_rate must be between 0 and 1")
        self.client_id = client_id
        self.client_secret = client_secret
        self.heartbeat_interval = heartbeat_interval
        self.token_lifetime = token_lifetime
        self.channel_lifetime = channel_lifetime
        self.timing = timing or CallTiming()
        self.outcome_weights = dict(outcome_weights or DEFAULT_OUTCOME_WEIGHTS)
        self.heartbeats_enabled = True
        self.answer_pings = True
        self.pings_received = 0
        self.recorded = Recorded()
        self.rate_limit = rate_limit or None
        self.purposes = purposes
        self.presence_case = presence_case
        self.disconnect_reasons = disconnect_reasons
        self.agent_hangup_rate = agent_hangup_rate
        self.wrapup_prompt = wrapup_prompt
        self.wrapup_timeout_ms = wrapup_timeout_ms
        self.wrapup_code = wrapup_code
        self._host = host
        self._port = port
        self._ws_port = ws_port
        self._clock: Clock = clock or SystemClock()
        self._rng = random.Random(seed)
        now = self._clock.now()
        self._agents: dict[str, AgentState] = {}
        for user in dict.fromkeys(agents):
            self._agents[user] = new_agent(user, now, name=f"Agent {len(self._agents) + 1}")
        self._forced: dict[str, Outcome] = {}
        self._hangups: dict[str, str] = {}
        self._acw_held: set[str] = set()
        self._expand_drops = ExpandDrops()
        self._tokens: dict[str, _Token] = {}
        self._rate: dict[str, tuple[float, int]] = {}
        self._channels: dict[str, _Channel] = {}
        self._conversations: dict[str, _Conversation] = {}
        # Separate streams of randomness, so injecting faults never shifts call outcomes.
        self._rest_faults = RestFaults(random.Random(_sub_seed(seed, "rest")))
        self._hangup_rng = random.Random(_sub_seed(seed, "hangups"))
        self._expand_rng = random.Random(_sub_seed(seed, "expands"))
        self._shaper = EventShaper(random.Random(_sub_seed(seed, "events")))
        self._shaper_wake: anyio.Event | None = None
        self._stall_release: anyio.Event | None = None
        self.stalled_requests = 0
        self._router = _routes()
        self._http = HttpServer(self._dispatch)
        self._changed = anyio.Event()
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._ws_server: Server | None = None
        self._bound_port = 0
        self._bound_ws_port = 0
        self._want_ws_proxy = ws_proxy
        self._want_rest_proxy = rest_proxy
        self._ws_proxy: FaultProxy | None = None
        self._rest_proxy: FaultProxy | None = None
        self._seed = seed

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._changed = anyio.Event()
            # Exit runs in reverse: close the WebSocket server, cancel the tasks, wait
            # for them, and only then close the listening socket they accept on.
            listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
            await stack.enter_async_context(listener)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
            self._bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
            self._stall_release = anyio.Event()
            self._shaper_wake = anyio.Event()
            tg.start_soon(listener.serve, self._http.serve_connection, tg)
            tg.start_soon(self._outbox)
            ws_server = await serve(
                self._ws_handler,
                self._host,
                self._ws_port,
                process_request=self._ws_process_request,
                ping_interval=None,  # liveness is the platform's app-level heartbeat/ping
                close_timeout=2.0,
            )
            self._ws_server = ws_server
            stack.push_async_callback(self._close_ws_server, ws_server)
            self._bound_ws_port = ws_server.sockets[0].getsockname()[1]
            # Entered last, so closed first: proxied connections go before the servers.
            target = _url_host(self._host).strip("[]")
            if self._want_ws_proxy:
                self._ws_proxy = await stack.enter_async_context(
                    FaultProxy(target, self._bound_ws_port, self._host, seed=self._seed)
                )
            if self._want_rest_proxy:
                self._rest_proxy = await stack.enter_async_context(
                    FaultProxy(target, self._bound_port, self._host, seed=self._seed)
                )
            self._stack = stack.pop_all()
        emit(_log, "fake.started", api_url=self.api_url, ws_url=self.ws_url)
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
            self._ws_server = None
            self._ws_proxy = self._rest_proxy = None
            emit(_log, "fake.stopped")

    @staticmethod
    async def _close_ws_server(server: Server) -> None:
        server.close(close_connections=True)
        with anyio.CancelScope(shield=True):
            await server.wait_closed()

    # -- addresses --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Base URL of the REST API, ``http://127.0.0.1:PORT`` (the proxy's with ``rest_proxy``)."""
        port = self._rest_proxy.port if self._rest_proxy is not None else self._bound_port
        return f"http://{_url_host(self._host)}:{port}"

    @property
    def login_url(self) -> str:
        """Base URL of the login host (the same server as the API)."""
        return self.api_url

    @property
    def ws_url(self) -> str:
        """Base URL of the notification streaming host, ``ws://127.0.0.1:WSPORT``."""
        return f"ws://{_url_host(self._host)}:{self._bound_ws_port}"

    @property
    def control_url(self) -> str:
        """Base URL of the control endpoints (``/fake/...``), never through a proxy."""
        return f"http://{_url_host(self._host)}:{self._bound_port}{CONTROL_PREFIX}"

    @property
    def connect_url(self) -> str:
        """Base of the ``connectUri`` channels hand out: the proxy's with ``ws_proxy``, else
        :attr:`ws_url`."""
        if self._ws_proxy is not None:
            return f"ws://{_url_host(self._host)}:{self._ws_proxy.port}"
        return self.ws_url

    @property
    def ws_proxy(self) -> FaultProxy:
        """The :class:`~outdial.fake.proxy.FaultProxy` every channel's ``connectUri`` goes through.

        Only with ``FakePlatform(ws_proxy=True)``: freeze it for a half-open
        socket, reset it for a connection reset, and so on.
        """
        if self._ws_proxy is None:
            raise RuntimeError("no WebSocket proxy: create the platform with ws_proxy=True")
        return self._ws_proxy

    @property
    def proxies(self) -> dict[str, FaultProxy]:
        """The running fault proxies by name (``"ws"``, ``"rest"``); empty without any."""
        named = {"ws": self._ws_proxy, "rest": self._rest_proxy}
        return {name: proxy for name, proxy in named.items() if proxy is not None}

    @property
    def rest_proxy(self) -> FaultProxy:
        """The :class:`~outdial.fake.proxy.FaultProxy` in front of the REST API and login host.

        Only with ``FakePlatform(rest_proxy=True)``; :attr:`api_url` then points at it.
        """
        if self._rest_proxy is None:
            raise RuntimeError("no REST proxy: create the platform with rest_proxy=True")
        return self._rest_proxy

    @property
    def port(self) -> int:
        """The port the API server itself listens on (known once entered)."""
        return self._bound_port

    @property
    def ws_port(self) -> int:
        """The port the streaming host listens on (known once entered)."""
        return self._bound_ws_port

    @property
    def agents(self) -> list[str]:
        """The simulated agents' user ids."""
        return list(self._agents)

    # -- controls ---------------------------------------------------------------------------

    def set_outcome(self, phone_number: str, outcome: Outcome | None) -> None:
        """Force how calls to ``phone_number`` end (None returns it to the seeded draw).

        An ``Offline`` agent's call still ends ``AGENT_UNAVAILABLE`` whatever is forced.
        """
        if outcome is None:
            self._forced.pop(phone_number, None)
        else:
            self._forced[phone_number] = Outcome(outcome)

    def fail_next(
        self,
        path_regex: str,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose path matches ``path_regex`` with ``status``.

        The answer carries the platform's error body for that status; a 429
        carries ``Retry-After`` (``retry_after`` seconds, 1 when not given).
        Matching uses :func:`re.search` on the path without the query string,
        and only requests with ``method`` when one is given.
        """
        self._rest_faults.fail_next(path_regex, status, count, retry_after, method)

    def stall_next(
        self,
        path_regex: str,
        seconds: float,
        method: str | None = None,
        count: int = 1,
        after_effect: bool = True,
    ) -> None:
        """Hold the answer to the next ``count`` matching requests for ``seconds``.

        With ``after_effect`` (the default) the request is handled first: a
        call is accepted, recorded and played out, but its answer comes
        ``seconds`` later, so a client with a shorter timeout sees a timeout
        *after* the platform accepted the call. Without it, the request waits
        before it is handled (nothing happens until then). :meth:`release_stalls`
        ends every current hold early; :attr:`stalled_requests` counts them.
        """
        self._rest_faults.stall_next(path_regex, seconds, method, count, after_effect)

    def release_stalls(self) -> None:
        """End every current :meth:`stall_next` hold now (the held answers go out)."""
        if self._stall_release is not None:
            self._stall_release.set()
            self._stall_release = anyio.Event()

    def slow_rest(self, seconds: float) -> None:
        """Hold every REST answer ``seconds`` after handling the request (0: no delay)."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._rest_faults.slow = seconds

    def fail_rate(
        self,
        status: int,
        rate: float,
        path_regex: str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer a seeded-random fraction ``rate`` of matching requests with ``status``.

        ``status`` is 429 (with ``Retry-After: 1``), 500, 502, 503 or 504.
        ``path_regex`` None matches every request, the token endpoint included.
        Calling again with the same ``path_regex`` and ``method`` replaces the
        rule; ``rate`` 0 removes it. The draws come from their own seeded
        stream: the same seed and the same requests fail the same requests, and
        call outcomes do not change because of it.
        """
        self._rest_faults.fail_rate(status, rate, path_regex, method)

    def clear_rest_faults(self) -> None:
        """Remove every REST fault (fail_next, stall_next, slow_rest, fail_rate)."""
        self._rest_faults.clear()
        self.release_stalls()

    def clear_faults(self) -> None:
        """Back to a healthy platform: no REST, protocol or TCP faults in force.

        Heartbeats and pongs resume, events are no longer duplicated, reordered
        or delayed (held ones still go out), stalls are released, every expand
        is answered again (:meth:`drop_expand`) and the proxies (if any) forward
        transparently again.
        """
        self.clear_rest_faults()
        self._expand_drops.rules.clear()
        self.heartbeats_enabled = True
        self.answer_pings = True
        self.duplicate_events = 1
        self.reorder_events(1)
        self.delay_events(0.0)
        for proxy in (self._ws_proxy, self._rest_proxy):
            if proxy is not None:
                proxy.clear()

    def agent_presence(self, user_id: str) -> str:
        """The agent's current ``systemPresence`` (``Available``, ``On Queue``, ...), by the
        fake's name for it whatever ``presence_case`` the wire uses."""
        return self._agent(user_id).presence

    def agent_routing_status(self, user_id: str) -> str:
        """The agent's current routing status (``OFF_QUEUE``, ``IDLE``, ``INTERACTING``, ...)."""
        return self._agent(user_id).routing

    def conversation_summary(self, user_id: str) -> dict[str, Any]:
        """The agent's conversation summary now, as ``v2.users.{id}.conversationsummary``
        carries it."""
        return summary_body(self._agent(user_id))

    async def set_presence(
        self, user_id: str, system_presence: str, routing_status: str | None = None
    ) -> None:
        """Change an agent's presence (any case: ``Available``, ``AVAILABLE``) and publish
        what changed: the presence and, when it moves, the routing status.

        The platform sets routing itself (``OFF_QUEUE`` unless On Queue, then by the
        agent's calls), so ``routing_status`` may only be ``NOT_RESPONDING`` for an
        agent On Queue (it lasts until the presence is set again) or what the
        platform would report anyway; anything else raises :class:`ValueError`.
        Every call placed for an ``Offline`` agent ends agent-unavailable (the
        customer is never dialed) until the agent's presence changes again.
        """
        agent = self._agent(user_id)
        change = change_presence(agent, system_presence, self._clock.now(), routing_status)
        await self._apply(change)

    def add_agent(
        self,
        user_id: str,
        presence: str = "Available",
        routing_status: str | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Simulate one more agent (a no-op for one already simulated); no event is published.

        ``routing_status`` is as for :meth:`set_presence`; ``name`` (default ``Agent N``)
        is what the users API answers.
        """
        state = new_agent(
            user_id,
            self._clock.now(),
            name=name or f"Agent {len(self._agents) + 1}",
            presence=presence,
            routing_status=routing_status,
        )
        if user_id not in self._agents:
            self._agents[user_id] = state
            self._notify()

    async def publish_presence(
        self, user_id: str, system_presence: str, routing_status: str | None = None
    ) -> int:
        """Set an agent's presence and publish ``v2.users.{id}.presence`` even when unchanged.

        :meth:`set_presence` publishes only changes, as the platform does; this
        is the helper for a test that wants "an Available event now" (the user
        chose it again: a new ``modifiedDate``). A routing status event follows
        only when it changes. Returns how many sockets got the presence event.
        """
        agent = self._agent(user_id)
        change = change_presence(
            agent, system_presence, self._clock.now(), routing_status, republish=True
        )
        return await self._apply(change)

    def set_hangup(self, phone_number: str, by: str | None) -> None:
        """Who ends answered calls to ``phone_number``: ``"customer"`` (customer leg
        ``endpoint``, agent leg ``peer``) or ``"agent"`` (agent leg ``client``, customer
        leg ``peer``; a call that is not answered the agent then abandons while it
        rings). None returns the number to the seeded ``agent_hangup_rate``."""
        if by is None:
            self._hangups.pop(phone_number, None)
        elif by in ("customer", "agent"):
            self._hangups[phone_number] = by
        else:
            raise ValueError(f"by must be 'customer', 'agent' or None, not {by!r}")

    def hold_acw(self, user_id: str, hold: bool = True) -> None:
        """Keep an agent in after-call work until :meth:`end_acw` ends it (``hold=False``
        lets the agent's overdue wrap-ups finish now, and later ones on time)."""
        self._agent(user_id)
        if hold:
            self._acw_held.add(user_id)
        else:
            self._acw_held.discard(user_id)
        self._notify()

    async def end_acw(self, conversation_id: str, code: WrapupCode | None = None) -> dict[str, Any]:
        """End a call's after-call work now, with ``code`` (default :attr:`wrapup_code`);
        return the final body once published (agent leg ``terminated``, ``wrapup``).

        Raises :class:`KeyError` for an unknown conversation and :class:`ValueError`
        for one that is not in after-call work.
        """
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise KeyError(f"{conversation_id!r} is not a conversation of the fake")
        if conversation.phase != _ACW:
            raise ValueError(f"conversation {conversation_id} is not in after-call work")
        conversation.acw_end = code or self.wrapup_code
        self._notify()
        await self._until(lambda: conversation.phase == _DONE)
        return conversation.body

    def drop_expand(
        self, user_id: str | None, expand: str, rate: float = 1.0, *, single: bool = False
    ) -> None:
        """Leave ``expand`` (``presence``, ``routingStatus`` or ``conversationSummary``) out
        of ``GET /api/v2/users`` answers for ``user_id`` (None: every agent), as the
        platform may (expands are best effort).

        ``rate`` below 1 leaves it out of a seeded share of the reads; 0 removes the
        rule. With ``single`` the single-user read ``GET /api/v2/users/{id}`` drops it
        too; the dedicated reads (``presences/purecloud``, ``routingstatus``) never do.
        :meth:`clear_faults` removes every rule.
        """
        if user_id is not None:
            self._agent(user_id)
        self._expand_drops.set(user_id, expand, rate, single)

    async def start_foreign_call(
        self,
        user_id: str,
        *,
        phone_number: str,
        direction: str = "inbound",
        queue_id: str | None = None,
    ) -> str:
        """Put an agent on a call outdial did not place; return its conversation id.

        ``direction`` ``"inbound"`` (the customer called in; the agent's station
        alerts, then the agent answers) or ``"outbound"`` (the agent dialed by hand;
        the customer answers). With ``queue_id`` it is an ACD call. Its events
        (``conversations.calls``, the summary, routing status changes), the REST
        reads and analytics all show it as any other call. It lasts until
        :meth:`end_foreign_call`.
        """
        agent = self._agent(user_id)
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
        try:
            check_phone_number(phone_number, "phoneNumber")
        except ApiError as error:
            raise ValueError(error.message) from None
        parties = _new_parties(user_id, phone_number)
        now = self._clock.now()
        style = self._call_style(queue_id, direction)
        bodies = foreign_call_script(parties, style, now)
        conversation = _Conversation(parties, style, bodies[0], now)
        self._conversations[parties.conversation_id] = conversation
        load = CallLoad(style.acd, CallPhase.ACTIVE)
        await self._apply(change_call(agent, parties.conversation_id, load, now))
        for body in bodies:
            conversation.body = body
            self._notify()
            await self.publish(f"v2.users.{user_id}.conversations.calls", body)
        emit(
            _log,
            "fake.call.foreign",
            user_id=user_id,
            conversation_id=parties.conversation_id,
            direction=direction,
        )
        return parties.conversation_id

    async def end_foreign_call(
        self, conversation_id: str, *, by: str = "customer"
    ) -> dict[str, Any]:
        """Hang up a call started with :meth:`start_foreign_call`; return its ended body.

        ``by`` ``"customer"`` (customer leg ``endpoint``, agent leg ``peer``) or
        ``"agent"`` (agent leg ``client``, customer leg ``peer``). An ACD call's
        after-call work follows as for any other. Raises :class:`KeyError` for a
        conversation that is not a foreign call and :class:`ValueError` for one
        that has already ended.
        """
        conversation = self._conversations.get(conversation_id)
        if conversation is None or not conversation.foreign:
            raise KeyError(f"{conversation_id!r} is not a foreign call of the fake")
        if by not in ("customer", "agent"):
            raise ValueError(f"by must be 'customer' or 'agent', not {by!r}")
        if conversation.phase != _LIVE:
            raise ValueError(f"foreign call {conversation_id} has already ended")
        conversation.phase = _ENDING
        parties = conversation.parties
        conversation.body = hang_up(
            conversation.body,
            parties,
            conversation.style,
            self._clock.now(),
            "customer" if by == "customer" else "agent",
        )
        self._notify()
        await self.publish(f"v2.users.{parties.user_id}.conversations.calls", conversation.body)
        await self._after_call(conversation)
        return conversation.body

    async def publish_call_event(
        self,
        user_id: str,
        phone_number: str,
        state: str = "disconnected",
        disconnect_type: str | None = "peer",
        *,
        answered: bool = True,
        conversation_id: str | None = None,
    ) -> dict[str, Any]:
        """Publish one ``v2.users.{id}.conversations.calls`` event for a made-up call; return
        its body.

        The customer leg (purposes ``agent``/``customer``) is in ``state``
        (``dialing``, ``alerting``, ``connected``, ``disconnected``); a disconnected
        one carries ``disconnect_type`` (``peer``: the agent hung up; ``endpoint``:
        the customer did) and, when ``answered``, a ``connectedTime``; the agent leg
        then ends with the disconnect type that goes with it. The call is not
        placed: nothing is recorded and no agent state changes (for a call that
        does count, see :meth:`start_foreign_call`).
        """
        now = self._clock.now()
        parties = _new_parties(user_id, phone_number, conversation_id)
        customer: dict[str, Any] = {"state": state}
        if state == "connected" or (state == "disconnected" and answered):
            customer["connectedTime"] = iso_ms(now)
        end: float | None = None
        if state == "disconnected":
            end = 0.0
            customer["endTime"] = iso_ms(now)
            if disconnect_type is not None:
                customer["disconnectType"] = disconnect_type
        body = conversation_body(parties, now, 0.0, customer, end)
        await self.publish(f"v2.users.{user_id}.conversations.calls", body)
        return body

    async def wait_for_subscription(
        self,
        topic: str,
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> None:
        """Wait until a connected socket's channel subscribes ``topic`` (so a published event
        reaches the client); :class:`TimeoutError` after ``timeout`` seconds."""

        def subscribed() -> bool:
            return any(
                c.socket is not None and topic in c.topics for c in list(self._channels.values())
            )

        await self.wait_for(subscribed, timeout)

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation body as it is now (as ``GET .../calls/{id}`` returns it)."""
        conv = self._conversations.get(conversation_id)
        return None if conv is None else conv.body

    def channel_topics(self, channel_id: str) -> list[str]:
        """The topics a live channel subscribes (empty when the channel is gone)."""
        channel = self._live_channel(channel_id)
        return [] if channel is None else list(channel.topics)

    @property
    def live_channels(self) -> list[str]:
        """Ids of the channels that exist now, oldest first."""
        return [c.id for c in list(self._channels.values()) if self._live_channel(c.id)]

    @property
    def connected_channels(self) -> list[str]:
        """Ids of the channels that have a WebSocket connected now."""
        return [c.id for c in self._channels.values() if c.socket is not None]

    async def publish(self, topic: str, body: Mapping[str, Any]) -> int:
        """Send an event to every socket whose channel subscribes ``topic``; return how many.

        A socket that is closing or gone simply misses the event: the real
        platform has no durability either. With :attr:`duplicate_events`,
        :meth:`reorder_events` or :meth:`delay_events` in force the event goes
        through those faults first; the count is then of the copies sent right
        away (0 for an event held back, which goes out later on its own).
        """
        envelope = {
            "topicName": topic,
            "version": "2",
            "eventBody": dict(body),
            "metadata": {"CorrelationId": str(uuid.uuid4())},
        }
        self._shaper.push(topic, json.dumps(envelope), anyio.current_time())
        delivered = 0
        for release in self._shaper.due(anyio.current_time()):
            delivered += await self._deliver(release.topic, release.text)
        if self._shaper.pending and self._shaper_wake is not None:
            self._shaper_wake.set()
        return delivered

    async def _deliver(self, topic: str, text: str) -> int:
        delivered = 0
        for channel in list(self._channels.values()):
            sock = channel.socket
            if sock is None or topic not in channel.topics:
                continue
            if self._live_channel(channel.id) is None:
                continue
            if await sock.send(text):
                delivered += 1
        return delivered

    async def _outbox(self) -> None:
        """Send the events the shaper held back (reordered or delayed) when they are due."""
        while True:
            wake = self._shaper_wake = anyio.Event()
            for release in self._shaper.due(anyio.current_time()):
                await self._deliver(release.topic, release.text)
            at = self._shaper.next_at()
            if at is None:
                await wake.wait()
            else:
                with anyio.move_on_after(max(0.0, at - anyio.current_time())):
                    await wake.wait()

    # -- protocol faults --------------------------------------------------------------------

    @property
    def duplicate_events(self) -> int:
        """How many times each published event is sent (1: once; the copies share the
        correlation id, as a redelivery would)."""
        return self._shaper.duplicates

    @duplicate_events.setter
    def duplicate_events(self, copies: int) -> None:
        if copies < 1:
            raise ValueError("duplicate_events must be at least 1")
        self._shaper.duplicates = copies

    def reorder_events(self, window: int, flush_after: float = 0.2) -> None:
        """Shuffle published events within groups of ``window`` (seeded); 1 turns it off.

        Events wait until ``window`` of them are pending, then go out in a
        shuffled order; a partial group goes out ``flush_after`` seconds after
        its first event.
        """
        if window < 1 or flush_after < 0:
            raise ValueError("window must be at least 1 and flush_after not negative")
        self._shaper.reorder_window = window
        self._shaper.reorder_flush = flush_after
        self._wake_outbox()

    def delay_events(self, seconds: float) -> None:
        """Send every published event ``seconds`` late (0: at once); order is kept."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._shaper.delay = seconds
        self._wake_outbox()

    @property
    def events_pending(self) -> int:
        """Published event copies held back by reordering or delay, not sent yet."""
        return self._shaper.pending

    @property
    def events_dropped(self) -> int:
        """Event copies dropped because too many were held back at once (see
        :class:`~outdial.fake.faults.EventShaper`)."""
        return self._shaper.dropped

    def _wake_outbox(self) -> None:
        if self._shaper_wake is not None:
            self._shaper_wake.set()

    async def send_malformed(self, text: str | None = None) -> int:
        """Send a frame that is not valid JSON (``text``, or a truncated envelope) to every
        socket; return how many got it."""
        frame = text if text is not None else '{"topicName": "v2.users.'
        return await self._send_raw(frame)

    async def send_oversized(self, nbytes: int) -> int:
        """Send a valid ``channel.metadata`` frame padded to ``nbytes`` bytes to every socket.

        A client with a smaller frame limit (``max_size`` in ``websockets``)
        closes the connection with 1009; return how many sockets it was sent to.
        """
        head = '{"topicName":"channel.metadata","eventBody":{"message":"oversized","padding":"'
        tail = '"}}'
        padding = max(0, nbytes - len(head) - len(tail))
        return await self._send_raw(head + "x" * padding + tail)

    async def publish_unknown_topic(
        self, topic: str = "v2.fake.unknown.topic", body: Mapping[str, Any] | None = None
    ) -> int:
        """Send an event on a topic no client subscribed to every socket (as a platform
        change or a stray event would); return how many got it."""
        envelope = {
            "topicName": topic,
            "version": "2",
            "eventBody": dict(body or {"unexpected": True}),
            "metadata": {"CorrelationId": str(uuid.uuid4())},
        }
        return await self._send_raw(json.dumps(envelope))

    async def _send_raw(self, text: str) -> int:
        delivered = 0
        for channel in list(self._channels.values()):
            if channel.socket is not None and await channel.socket.send(text):
                delivered += 1
        return delivered

    def evict_oldest(self) -> str | None:
        """Evict the oldest live channel, as creating a 21st one would; return its id."""
        live = self.live_channels
        if not live:
            return None
        self._remove_channel(self._channels[live[0]], "channel evicted: too many channels")
        return live[0]

    def kick_socket(self, channel_id: str) -> bool:
        """Close a channel's socket as a second socket on the channel would; False if none.

        The channel stays valid, so the client can reconnect to it.
        """
        channel = self._channels.get(channel_id)
        sock = channel.socket if channel is not None else None
        if channel is None or sock is None:
            return False
        channel.socket = None
        self._task_group.start_soon(sock.close, 1000, _REPLACED)
        self._notify()
        return True

    async def drop_sockets(self) -> None:
        """Reset every WebSocket connection abruptly (no close frame), as a network failure does."""
        for channel in list(self._channels.values()):
            if channel.socket is not None:
                channel.socket.abort()
        await anyio.lowlevel.checkpoint()

    async def send_socket_closing(
        self, channel_id: str | None = None, *, close_after: float | None = None
    ) -> None:
        """Send ``v2.system.socket_closing`` to every socket (or one channel's).

        With ``close_after``, also close those sockets that many seconds later,
        as the real platform does about a minute after its warning.
        """
        for channel in list(self._channels.values()):
            sock = channel.socket
            if sock is None or (channel_id is not None and channel.id != channel_id):
                continue
            body = {
                "channelId": channel.id,
                "systemTopicType": "socket_closing",
                "organizationId": _ORG_ID,
                "message": "Socket closing",
            }
            await sock.send(
                json.dumps({"topicName": "v2.system.socket_closing", "eventBody": body})
            )
            if close_after is not None:
                self._task_group.start_soon(self._close_later, sock, close_after)

    def expire_channel(self, channel_id: str) -> None:
        """End a channel now: HEAD answers 404, its socket is closed, reconnecting is refused."""
        channel = self._channels.get(channel_id)
        if channel is not None:
            self._remove_channel(channel, "channel expired")

    # -- fault schedules ----------------------------------------------------------------------

    def run_schedule(self, faults: Iterable[Fault]) -> FaultRun:
        """Play a fault schedule in the platform's task group; return its :class:`FaultRun`.

        Times are seconds from now. A fault with a ``duration`` is undone when
        it ends. Raises :class:`RuntimeError` at once when a fault needs a TCP
        proxy the platform was not created with (``ws_proxy``/``rest_proxy``).
        """
        listed = list(faults)
        self._check_proxies(listed)
        run = FaultRun(expand(listed))
        self._task_group.start_soon(follow, self, run)
        emit(_log, "fake.schedule.started", faults=len(listed))
        return run

    async def apply_fault(self, fault: Fault) -> None:
        """Make one fault happen now (its ``at`` is ignored); undo it after its ``duration``."""
        self._check_proxies([fault])
        await start_fault(self, fault)
        self._notify()
        if fault.duration is not None:
            self._task_group.start_soon(self._end_fault_later, fault, fault.duration)

    async def _end_fault_later(self, fault: Fault, delay: float) -> None:
        await anyio.sleep(delay)
        await end_fault(self, fault)
        self._notify()

    def _check_proxies(self, faults: Sequence[Fault]) -> None:
        for fault in faults:
            if fault.proxy_name == "ws" and self._ws_proxy is None:
                raise RuntimeError(f"a {fault.kind!r} fault needs FakePlatform(ws_proxy=True)")
            if fault.proxy_name == "rest" and self._rest_proxy is None:
                raise RuntimeError(f"a {fault.kind!r} fault needs FakePlatform(rest_proxy=True)")

    async def wait_for_calls(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> list[RecordedCall]:
        """Wait until ``n`` calls were accepted; raise :class:`TimeoutError` after ``timeout``."""
        await self.wait_for(lambda: len(self.recorded.accepted_calls) >= n, timeout)
        return self.recorded.accepted_calls

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked after every change the platform makes.

        Changes are: tokens, channels, subscriptions, sockets connecting or
        disconnecting, calls accepted or moving on, agent presence, pings,
        stalled requests, faults applied by a schedule or ``apply_fault``. Raises
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    def notify_changed(self) -> None:
        """Wake every :meth:`wait_for` to re-check its predicate (after a change made
        outside the platform's own bookkeeping, such as a fault being applied)."""
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    @property
    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("FakePlatform is not running; use it as `async with FakePlatform()`")
        return self._tg

    # -- REST dispatch ----------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            # Control endpoints: no token, no faults, nothing recorded.
            return await handle_control(self, request)
        correlation = str(uuid.uuid4())
        headers: list[tuple[str, str]] = [("ININ-Correlation-Id", correlation)]
        match = self._router.resolve(request.method, request.path)
        name = match.route.name if not isinstance(match, int) else ""
        verdict = self._rest_faults.decide(request.method, request.path)
        await self._hold(verdict.hold_before, verdict)
        try:
            if isinstance(match, int):
                raise status_error(match)
            if verdict.status is not None:
                raise status_error(verdict.status, retry_after=verdict.retry_after)
            if name == "token":
                response = await self._token(request)
            else:
                token = self._authenticate(request)
                counted, retry_after = self._rate_count(token)
                headers.extend(counted)
                if retry_after is not None:
                    raise status_error(429, retry_after=retry_after)
                handler = getattr(self, f"_h_{name}")
                response = await handler(request, **match.params)
        except ApiError as error:
            response = self._error_response(error, correlation, headers)
        except Exception as exc:  # a bug here must still answer in the platform's shape
            emit(_log, "fake.http.handler_error", logging.ERROR, path=request.path, error=exc)
            response = self._error_response(status_error(500), correlation, headers)
        response.headers.extend(headers)
        if name == _CALL_ROUTE and not isinstance(match, int):
            self._record_call(match.params["user_id"], request, response)
        emit(
            _log,
            "fake.http.request",
            logging.DEBUG,
            method=request.method,
            path=request.path,
            status=response.status,
            correlation_id=correlation,
        )
        await self._hold(verdict.hold_after, verdict)
        return response

    async def _hold(self, seconds: float, verdict: RestVerdict) -> None:
        if seconds <= 0:
            return
        if not verdict.stalled or self._stall_release is None:
            await anyio.sleep(seconds)
            return
        self.stalled_requests += 1
        self._notify()
        try:
            with anyio.move_on_after(seconds):
                await self._stall_release.wait()
        finally:
            self.stalled_requests -= 1
            self._notify()

    @staticmethod
    def _error_response(
        error: ApiError, correlation: str, headers: list[tuple[str, str]]
    ) -> Response:
        if error.retry_after is not None:
            headers.append(("Retry-After", _seconds_header(error.retry_after)))
        return Response.json(error.status, error.body(correlation))

    def _authenticate(self, request: Request) -> str:
        auth = request.header("authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
        token = self._tokens.get(value.strip())
        if token is None or self._clock.monotonic() >= token.expires_at:
            raise status_error(401)
        return value.strip()

    def _rate_count(self, token: str) -> tuple[list[tuple[str, str]], float | None]:
        """Count one request against ``token``'s window: the ``inin-ratelimit-*`` headers,
        and the ``Retry-After`` seconds when it is over the limit (None when it may go)."""
        now = self._clock.monotonic()
        start, count = self._rate.get(token, (now, 0))
        if now - start >= RATE_LIMIT_WINDOW:
            start, count = now, 0
        count += 1
        self._rate[token] = (start, count)
        reset = max(0.0, RATE_LIMIT_WINDOW - (now - start))
        allowed = self.rate_limit if self.rate_limit is not None else DEFAULT_RATE_LIMIT
        headers = [
            ("inin-ratelimit-count", str(count)),
            ("inin-ratelimit-allowed", str(allowed)),
            ("inin-ratelimit-reset", str(int(reset))),
        ]
        if self.rate_limit is not None and count > self.rate_limit:
            return headers, float(max(1, math.ceil(reset)))
        return headers, None

    def _record_call(self, user_id: str, request: Request, response: Response) -> None:
        try:
            payload: Any = json.loads(request.body) if request.body.strip() else None
        except ValueError:
            payload = request.body.decode("utf-8", "replace")
        conversation_id: str | None = None
        plan: CallPlan | None = None
        if response.status == 200:
            conversation_id = json.loads(response.body)["id"]
            plan = self._conversations[conversation_id].plan
        self.recorded.call_requests.append(
            RecordedCall(user_id, payload, conversation_id, response.status, plan)
        )
        self._notify()

    # -- login --------------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        client_id, secret = _basic_credentials(request.header("authorization"))
        if client_id is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if form.get("grant_type") != "client_credentials":
            self.recorded.token_requests.append(RecordedToken(client_id, False))
            return Response.json(
                400, oauth_error("unsupported_grant_type", "grant type is not supported")
            )
        if client_id != self.client_id or not secrets.compare_digest(
            (secret or "").encode(), self.client_secret.encode()
        ):
            self.recorded.token_requests.append(RecordedToken(client_id, False))
            return Response.json(401, oauth_error("invalid_client", "client not found"))
        value = secrets.token_urlsafe(48)
        self._tokens[value] = _Token(client_id, self._clock.monotonic() + self.token_lifetime)
        self.recorded.token_requests.append(RecordedToken(client_id, True))
        self._notify()
        emit(_log, "fake.token.issued", client_id=client_id)
        return Response.json(
            200,
            {
                "access_token": value,
                "token_type": "bearer",
                "expires_in": int(self.token_lifetime),
            },
        )

    # -- channels and subscriptions -----------------------------------------------------------

    async def _h_create_channel(self, request: Request) -> Response:
        client = self.client_id
        mine = [c for c in self._channels.values() if c.client_id == client]
        while len(mine) >= MAX_CHANNELS:
            self._remove_channel(mine.pop(0), "channel evicted: too many channels")
        channel_id = "streaming-0-" + "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(26)
        )
        channel = _Channel(
            channel_id,
            client,
            self._clock.monotonic() + self.channel_lifetime,
            self._clock.now() + timedelta(seconds=self.channel_lifetime),
        )
        self._channels[channel_id] = channel
        self.recorded.channels.append(channel_id)
        self._notify()
        emit(_log, "fake.channel.created", channel_id=channel_id)
        return Response.json(200, self._channel_json(channel))

    async def _h_list_channels(self, request: Request) -> Response:
        live = [c for c in list(self._channels.values()) if self._live_channel(c.id)]
        return Response.json(200, {"entities": [self._channel_json(c) for c in live]})

    async def _h_head_channel(self, request: Request, channel_id: str) -> Response:
        if self._live_channel(channel_id) is None:
            return Response.empty(404)
        return Response.empty(200)

    async def _h_get_subscriptions(self, request: Request, channel_id: str) -> Response:
        channel = self._require_channel(channel_id)
        return Response.json(200, _entities(channel.topics, []))

    async def _h_put_subscriptions(self, request: Request, channel_id: str) -> Response:
        return self._change_subscriptions(request, channel_id, replace=True)

    async def _h_post_subscriptions(self, request: Request, channel_id: str) -> Response:
        return self._change_subscriptions(request, channel_id, replace=False)

    async def _h_delete_subscriptions(self, request: Request, channel_id: str) -> Response:
        channel = self._require_channel(channel_id)
        channel.topics.clear()
        self.recorded.subscription_changes.append(SubscriptionChange(channel.id, "DELETE", ()))
        self._notify()
        return Response.json(200, {"entities": []})

    def _change_subscriptions(
        self, request: Request, channel_id: str, *, replace: bool
    ) -> Response:
        channel = self._require_channel(channel_id)
        topics = validate_topic_list(parse_json(request.body))
        verdicts = [check_topic(t) for t in topics]
        permitted = [v.topic for v in verdicts if v.permitted]
        merged = (
            dict.fromkeys(permitted) if replace else {**channel.topics, **dict.fromkeys(permitted)}
        )
        check_topic_count(len(merged))
        channel.topics = merged
        method = "PUT" if replace else "POST"
        self.recorded.subscription_changes.append(
            SubscriptionChange(channel.id, method, tuple(topics))
        )
        self._notify()
        rejected = [(v.topic, v.reason or "rejected") for v in verdicts if not v.permitted]
        return Response.json(200, _entities(channel.topics, rejected))

    def _channel_json(self, channel: _Channel) -> dict[str, str]:
        return {
            "id": channel.id,
            "connectUri": f"{self.connect_url}/channels/{channel.id}",
            "expires": iso_ms(channel.expires_wall),
        }

    def _live_channel(self, channel_id: str) -> _Channel | None:
        channel = self._channels.get(channel_id)
        if channel is not None and self._clock.monotonic() >= channel.expires_at:
            self._remove_channel(channel, "channel expired")
            return None
        return channel

    def _require_channel(self, channel_id: str) -> _Channel:
        channel = self._live_channel(channel_id)
        if channel is None:
            raise _not_found("Channel", "channelId", channel_id)
        return channel

    def _remove_channel(self, channel: _Channel, reason: str) -> None:
        self._channels.pop(channel.id, None)
        sock, channel.socket = channel.socket, None
        if sock is not None and self._tg is not None:
            self._tg.start_soon(sock.close, 1000, reason)
        self._notify()
        emit(_log, "fake.channel.removed", channel_id=channel.id, reason=reason)

    # -- calls --------------------------------------------------------------------------------

    async def _h_create_call(self, request: Request, user_id: str) -> Response:
        agent = self._require_agent(user_id)
        call, dial = validate_create_call(parse_json(request.body))
        if dial is None:
            raise ApiError(
                400,
                "not.supported",
                "The fake platform places calls to a phone number only; {field} is not simulated",
                {"field": "callQueueId/callUserId/conversationIds/participants"},
                [FieldDetail("phoneNumber", "required")],
            )
        # Drawn for every call from its own stream, so it never shifts outcomes or timings.
        drawn = self._hangup_rng.random() < self.agent_hangup_rate
        pinned = self._hangups.get(dial.number)
        plan = plan_call(
            self._rng,
            self.timing,
            self.outcome_weights,
            forced=self._forced.get(dial.number),
            reachable=dial.reachable,
            # An Offline agent has no station for the platform to ring (see script.py).
            agent_available=agent.presence != _OFFLINE,
            agent_hangs_up=drawn if pinned is None else pinned == "agent",
        )
        parties = _new_parties(user_id, dial.number)
        style = self._call_style(call.call_from_queue_id, "outbound")
        started = self._clock.now()
        steps = call_script(plan, parties, self.timing, started, style)
        conversation = _Conversation(
            parties,
            style,
            steps[0].body,
            started,
            plan,
            call.caller_id,
            engaged=plan.outcome is not Outcome.AGENT_UNAVAILABLE,
        )
        self._conversations[parties.conversation_id] = conversation
        # The agent is on the call from the moment the platform accepts it, so a REST
        # re-read right after the POST already counts it; the call events follow. Not so
        # when the agent's own leg never comes up: the agent never gets on that call.
        if conversation.engaged:
            load = CallLoad(style.acd, CallPhase.ACTIVE)
            await self._apply(change_call(agent, parties.conversation_id, load, started))
        self._task_group.start_soon(self._play_call, conversation, steps)
        emit(
            _log,
            "fake.call.placed",
            user_id=user_id,
            conversation_id=parties.conversation_id,
            outcome=plan.outcome.value,
            label=call.label,
        )
        conversation_id = parties.conversation_id
        return Response.json(
            200,
            {"id": conversation_id, "selfUri": f"/api/v2/conversations/calls/{conversation_id}"},
        )

    def _call_style(self, queue_id: str | None, direction: str) -> CallStyle:
        agent_purpose, far_purpose = purposes_for(self.purposes, queue_id)
        return CallStyle(
            agent_purpose=agent_purpose,
            far_purpose=far_purpose,
            direction="inbound" if direction == "inbound" else "outbound",
            queue_id=queue_id,
            wrapup_prompt=self.wrapup_prompt,
            wrapup_timeout_ms=self.wrapup_timeout_ms,
            disconnect_reasons=self.disconnect_reasons,
        )

    async def _play_call(self, conversation: _Conversation, steps: Sequence[CallStep]) -> None:
        topic = f"v2.users.{conversation.parties.user_id}.conversations.calls"
        for step in steps:
            await anyio.sleep(step.delay)
            conversation.body = step.body
            self._notify()
            await self.publish(topic, step.body)
        emit(
            _log,
            "fake.call.ended",
            conversation_id=conversation.parties.conversation_id,
            outcome=conversation.plan.outcome.value if conversation.plan else None,
        )
        conversation.phase = _ENDING
        await self._after_call(conversation)

    async def _after_call(self, conversation: _Conversation) -> None:
        """The agent leg has ended: an ACD call goes into after-call work, any other is over
        for the agent."""
        if not conversation.engaged:
            conversation.phase = _DONE
            self._notify()
            return
        parties = conversation.parties
        agent = self._agents[parties.user_id]
        now = self._clock.now()
        if conversation.style.acd:
            conversation.phase = _ACW
            load = CallLoad(True, CallPhase.ACW)
            await self._apply(change_call(agent, parties.conversation_id, load, now))
            self._task_group.start_soon(self._after_call_work, conversation)
        else:
            conversation.phase = _DONE
            await self._apply(change_call(agent, parties.conversation_id, None, now))

    async def _after_call_work(self, conversation: _Conversation) -> None:
        """Wrap up for ``timing.wrapup`` seconds (longer while :meth:`hold_acw` holds the
        agent, shorter when :meth:`end_acw` ends it), then publish the terminated leg."""
        parties = conversation.parties
        began = anyio.current_time()
        with anyio.move_on_after(self.timing.wrapup):
            await self._until(lambda: conversation.acw_end is not None)
        await self._until(
            lambda: conversation.acw_end is not None or parties.user_id not in self._acw_held
        )
        agent_leg = next(
            p for p in conversation.body["participants"] if p["id"] == parties.agent_participant_id
        )
        # On the call's own timeline (its bodies carry planned times, not the clock's).
        started = datetime.fromisoformat(agent_leg.get("startAcwTime") or agent_leg["endTime"])
        end = started + timedelta(seconds=anyio.current_time() - began)
        code = conversation.acw_end or self.wrapup_code
        conversation.body = wrapup_done(conversation.body, parties, end, code)
        self._notify()
        await self.publish(f"v2.users.{parties.user_id}.conversations.calls", conversation.body)
        agent = self._agents[parties.user_id]
        await self._apply(change_call(agent, parties.conversation_id, None, self._clock.now()))
        conversation.phase = _DONE
        self._notify()
        emit(_log, "fake.call.wrapped_up", conversation_id=parties.conversation_id)

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def _h_get_call(self, request: Request, conversation_id: str) -> Response:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise _not_found("Conversation", "conversationId", conversation_id)
        return Response.json(200, conversation.body)

    async def _h_analytics_query(self, request: Request) -> Response:
        query = validate_details_query(parse_json(request.body))
        facts = [c.facts() for c in self._conversations.values()]
        return Response.json(200, details_response(facts, query))

    # -- agents -------------------------------------------------------------------------------

    @property
    def _upper(self) -> bool:
        return self.presence_case == "upper"

    async def _h_get_presence(self, request: Request, user_id: str) -> Response:
        agent = self._require_agent(user_id)
        return Response.json(200, presence_rest_body(agent, upper=self._upper))

    async def _h_get_routing_status(self, request: Request, user_id: str) -> Response:
        return Response.json(200, routing_rest_body(self._require_agent(user_id)))

    async def _h_get_users(self, request: Request) -> Response:
        query = parse_users_query(request.query_pairs)
        page = users_page(
            list(self._agents.values()),
            query,
            upper=self._upper,
            keep=lambda user_id, expand: not self._expand_dropped(user_id, expand, single=False),
        )
        return Response.json(200, page)

    async def _h_get_user(self, request: Request, user_id: str) -> Response:
        agent = self._require_agent(user_id)
        entity = user_entity(
            agent,
            parse_expand(request.query_pairs),
            upper=self._upper,
            keep=lambda expand: not self._expand_dropped(user_id, expand, single=True),
        )
        return Response.json(200, entity)

    def _expand_dropped(self, user_id: str, expand: str, *, single: bool) -> bool:
        rate = self._expand_drops.rate(user_id, expand, single=single)
        if rate <= 0:
            return False
        return rate >= 1 or self._expand_rng.random() < rate

    def _agent(self, user_id: str) -> AgentState:
        try:
            return self._agents[user_id]
        except KeyError:
            raise KeyError(f"{user_id!r} is not one of the fake's agents") from None

    def _require_agent(self, user_id: str) -> AgentState:
        agent = self._agents.get(user_id)
        if agent is None:
            raise _not_found("User", "userId", user_id)
        return agent

    async def _apply(self, change: Change) -> int:
        """Keep the agent's new state and publish what changed in it: presence, routing
        status, conversation summary, in that order. Returns how many sockets got the
        presence event (0 when there was none)."""
        state = change.state
        self._agents[state.user_id] = state
        self._notify()
        prefix = f"v2.users.{state.user_id}"
        delivered = 0
        if change.presence:
            body = presence_event_body(state, upper=self._upper)
            delivered = await self.publish(f"{prefix}.presence", body)
        if change.routing:
            await self.publish(f"{prefix}.routingStatus", routing_event_body(state))
        if change.summary:
            await self.publish(f"{prefix}.conversationsummary", summary_body(state))
        return delivered

    # -- WebSocket ----------------------------------------------------------------------------

    def _ws_process_request(
        self, connection: ServerConnection, request: WsRequest
    ) -> WsResponse | None:
        found = _CHANNEL_PATH.match(request.path.split("?", 1)[0])
        if found is None or self._live_channel(found.group(1)) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Channel not found\n")
        return None

    async def _ws_handler(self, ws: ServerConnection) -> None:
        found = _CHANNEL_PATH.match(ws.request.path.split("?", 1)[0]) if ws.request else None
        channel = self._live_channel(found.group(1)) if found else None
        if channel is None:
            await ws.close(1008, "Channel not found")
            return
        sock = _Socket(ws, channel.id)
        previous, channel.socket = channel.socket, sock
        if previous is not None:
            # One socket per channel: the newcomer wins, the old one is told why.
            self._task_group.start_soon(previous.close, 1000, _REPLACED)
        self._notify()
        emit(_log, "fake.socket.connected", channel_id=channel.id)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats, sock)
                try:
                    async for message in ws:
                        await self._on_client_message(sock, message)
                except ConnectionClosed:
                    pass
                tg.cancel_scope.cancel()
        finally:
            if channel.socket is sock:
                channel.socket = None
            self._notify()
            emit(_log, "fake.socket.closed", channel_id=channel.id, code=ws.close_code)

    async def _heartbeats(self, sock: _Socket) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            if self._live_channel(sock.channel_id) is None:
                return
            if self.heartbeats_enabled and not await sock.send(HEARTBEAT):
                return

    async def _on_client_message(self, sock: _Socket, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("message") == "ping":
            self.pings_received += 1
            self._notify()
            if self.answer_pings:
                await sock.send(PONG)

    async def _close_later(self, sock: _Socket, delay: float) -> None:
        await anyio.sleep(delay)
        await sock.close(1000, "Socket closing")


_ORG_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def _routes() -> Router:
    router = Router()
    router.add("POST", "/oauth/token", "token")
    router.add("POST", "/api/v2/notifications/channels", "create_channel")
    router.add("GET", "/api/v2/notifications/channels", "list_channels")
    router.add("HEAD", "/api/v2/notifications/channels/{channel_id}", "head_channel")
    subscriptions = "/api/v2/notifications/channels/{channel_id}/subscriptions"
    for method in ("GET", "PUT", "POST", "DELETE"):
        router.add(method, subscriptions, f"{method.lower()}_subscriptions")
    router.add("POST", "/api/v2/conversations/calls/user/{user_id}", _CALL_ROUTE)
    router.add("GET", "/api/v2/conversations/calls/{conversation_id}", "get_call")
    router.add("POST", "/api/v2/analytics/conversations/details/query", "analytics_query")
    router.add("GET", "/api/v2/users", "get_users")
    router.add("GET", "/api/v2/users/{user_id}", "get_user")
    router.add("GET", "/api/v2/users/{user_id}/presences/purecloud", "get_presence")
    router.add("GET", "/api/v2/users/{user_id}/routingstatus", "get_routing_status")
    return router


def _entities(topics: Iterable[str], rejected: Sequence[tuple[str, str]]) -> dict[str, Any]:
    entities: list[dict[str, str]] = [{"id": t, "state": "Permitted"} for t in topics]
    entities += [{"id": t, "state": "Rejected", "rejectionReason": why} for t, why in rejected]
    return {"entities": entities}


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def _new_parties(
    user_id: str, phone_number: str, conversation_id: str | None = None
) -> CallParties:
    return CallParties(
        conversation_id=conversation_id or str(uuid.uuid4()),
        user_id=user_id,
        phone_number=phone_number,
        agent_participant_id=str(uuid.uuid4()),
        customer_participant_id=str(uuid.uuid4()),
    )


def _sub_seed(seed: int | None, purpose: str) -> str | None:
    """A seed for one purpose's RNG, derived from the platform's seed (None stays random)."""
    return None if seed is None else f"{seed}:{purpose}"


def _seconds_header(value: float) -> str:
    return str(max(0, int(value + 0.999)))


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _not_found(what: str, field: str, value: str) -> ApiError:
    """The platform's 404 for an unknown ``what`` (Channel, User, ...), naming the field."""
    return ApiError(
        404,
        "not.found",
        f"{what} {{{field}}} not found",
        {field: value},
        [FieldDetail(field, "not.found")],
    )
