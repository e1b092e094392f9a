"""The fake Genesys Cloud platform: REST (auth, channels, subscriptions, calls, agents) + WebSocket.

:class:`FakePlatform` serves the platform contract of ``DESIGN.md`` on real
loopback sockets: the API and the login host on one HTTP/1.1 port (h11 over
anyio), the notification streaming host on its own port (the ``websockets``
asyncio server). Simulated agents place seeded, deterministic calls and change
presence as real agents would, and every way the connection can break is a
control a test (or a user trying their rules) can pull.

The platform is put together from one module per concern, each a mixin over
:class:`~outdial.fake.genesys.core.GenesysCore`: :mod:`.login` (tokens, rate
limit), :mod:`.channels` and :mod:`.sockets` (notifications), :mod:`.events`
(publishing, event faults), :mod:`.users` (agents), :mod:`.calls`,
:mod:`.analytics`, :mod:`.faults`; :mod:`.api` is the API port's request
cycle and :mod:`.control` the ``/fake/...`` endpoints. This module owns the
constructor and the lifetime.

Lifetimes: every task the fake starts (the HTTP listener, one task per HTTP
connection, call play-outs, deferred socket closes) runs in the task group the
platform owns from ``__aenter__`` to ``__aexit__``. WebSocket connections are
owned by the ``websockets`` server, which is closed (and its handlers awaited)
before that task group is cancelled.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
from websockets.asyncio.server import Server, serve

from outdial.clock import Clock, SystemClock
from outdial.fake.agents import AgentState, ExpandDrops, new_agent
from outdial.fake.common.changes import Changes
from outdial.fake.common.control import CONTROL_PREFIX
from outdial.fake.common.front import StallGate
from outdial.fake.common.net import url_host
from outdial.fake.faults import EventShaper, RestFaults
from outdial.fake.genesys.analytics import AnalyticsMixin
from outdial.fake.genesys.api import GenesysApi
from outdial.fake.genesys.control import handle_control
from outdial.fake.genesys.core import sub_seed
from outdial.fake.genesys.faults import FaultsMixin
from outdial.fake.genesys.login import DEFAULT_RATE_LIMIT, LoginMixin
from outdial.fake.genesys.recorded import Recorded
from outdial.fake.proxy import FaultProxy
from outdial.fake.script import (
    DEFAULT_OUTCOME_WEIGHTS,
    DEFAULT_WRAPUP_CODE,
    PURPOSE_MODES,
    CallTiming,
    Outcome,
    WrapupCode,
)
from outdial.http import HttpServer, Request, Response
from outdial.log import emit

__all__ = ["DEFAULT_AGENTS", "FakePlatform"]

_log = logging.getLogger("outdial.fake")

DEFAULT_AGENTS: tuple[str, ...] = (
    "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60",
    "8d1f0a3e-2b7c-4e95-a6d4-5f0e1c2b3a47",
)
"""Agent user ids the fake simulates when none are given."""


class FakePlatform(FaultsMixin, AnalyticsMixin, LoginMixin):
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
        self._tokens = {}
        self._rate = {}
        self._channels = {}
        self._conversations = {}
        # Separate streams of randomness, so injecting faults never shifts call outcomes.
        self._rest_faults = RestFaults(random.Random(sub_seed(seed, "rest")))
        self._hangup_rng = random.Random(sub_seed(seed, "hangups"))
        self._expand_rng = random.Random(sub_seed(seed, "expands"))
        self._shaper = EventShaper(random.Random(sub_seed(seed, "events")))
        self._shaper_wake: anyio.Event | None = None
        self._changes = Changes()
        self._stalls = StallGate(self._notify)
        self._api = GenesysApi(self)
        self._http = HttpServer(self._serve)
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
            self._changes.reset()
            # Exit runs in reverse: close the WebSocket server, cancel the tasks, wait
            # for them, and only then close the listening socket they accept on.
            listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
            await stack.enter_async_context(listener)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
            self._bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
            self._stalls.reset()
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
            target = url_host(self._host).strip("[]")
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

    async def _serve(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            # Control endpoints: no token, no faults, nothing recorded.
            return await handle_control(self, request)
        return await self._api(request)
