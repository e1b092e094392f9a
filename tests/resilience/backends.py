"""One face for the two fake platforms, so a daemon test runs against Genesys and CXone alike.

A test says what happens in platform-neutral words (an agent becomes
available, a number is answered, the event connection breaks, a dial's answer
is lost) and the :class:`Backend` does it the way the platform at hand does:

==========================  ===================================  ==================================
facade                      Genesys (:class:`FakePlatform`)      CXone (:class:`FakeCxone`)
==========================  ===================================  ==================================
agent ids                   user ids (UUIDs)                     agent ids (digits)
``available`` / ``away``    presence Available / Away            agent state Available / Unavailable
``start_foreign_call``      ``start_foreign_call`` (inbound,     ``start_foreign_contact``
                            on a queue: it has wrap-up)          (inbound; every contact has ACW)
``hold_acw`` / ``end_acw``  wrap-up of an ACD call               ``IsAcw`` until ``FinalState``
``calls``                   ``recorded.accepted_calls``          ``recorded.calls`` (placed)
``requests``                call requests (any answer)           ``dial-phone`` requests
``break_events``            every WebSocket dropped              every agent session ended (409)
``outage``                  WebSocket proxy refuses and resets   API proxy refuses and resets, and
                                                                 the sessions end (nothing queues)
``lose_next_dial_answer``   call accepted, then the REST         call placed, the connection reset
                            connection reset (proxy)             instead of the 202
``hold_next_dial_answer``   call accepted, answer held           call placed, 202 held
``fail_dials``              429 or 5xx on a share of call        the same on ``dial-phone``
                            requests
==========================  ===================================  ==================================

:func:`backend` names the platform, and the fixture ``backend`` (import
:func:`backend_fixture` into a test module) runs a test once for each;
``async with backend.start(agents, ...) as fake`` runs its fake, and
``fake.config(store_url)`` is the daemon's config pointed at it: one
next-contact-when-ready rule, permissive guards, test tempo.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import anyio
import anyio.abc
import pytest
from listener_harness import FAST, USER

from outdial.config import Config, parse_config
from outdial.fake import CallTiming, FakeCxone, FakePlatform, Outcome
from outdial.fake.pytest_plugin import FAST_TIMING

__all__ = [
    "AFTER_CALL",
    "KINDS",
    "Backend",
    "Call",
    "Fake",
    "backend",
    "backend_fixture",
    "toml_text",
]

KINDS = ("genesys", "cxone")
AFTER_CALL = 0.3
"""Seconds of rest after a call (its wrap-up included) before the agent's next dial."""

GENESYS_CALL_PATH = r"/api/v2/conversations/calls/user/"
CXONE_DIAL_PATH = r"/agent-sessions/[^/]+/dial-phone$"
GENESYS_AGENTS = [USER] + [f"9c1d2e3f-0000-4000-8000-{i:012d}" for i in range(1, 1000)]
CXONE_AGENTS = [str(3141592 + i) for i in range(1000)]
_CXONE_STATION = 14155550100
_GENESYS_QUEUE = "5f2c7a9e-1b3d-4e6f-8a0b-c1d2e3f4a5b6"


class Call(NamedTuple):
    """One call the platform placed: to whom, for which agent, how it ends, its id."""

    number: str
    agent: str
    outcome: str | None
    call_id: str


class Fake(Protocol):
    """A running fake platform, in the words the daemon tests use."""

    kind: str
    platform: Any
    """The fake itself (:class:`FakePlatform` or :class:`FakeCxone`) for what only it has."""

    @property
    def agents(self) -> list[str]:
        """The agents the fake simulates."""
        ...

    # -- the daemon's config ----------------------------------------------------------------

    def config_data(
        self,
        store_url: str,
        users: Iterable[str] | None = None,
        *,
        after_call: float = AFTER_CALL,
        calling_window: Sequence[str] = ("00:00", "23:59"),
        calls_per_second: float = 100.0,
        acw: bool = False,
    ) -> dict[str, Any]:
        """The config as a TOML mapping, secrets as ``${VARS}`` (see :attr:`env`).

        One next-contact-when-ready rule for ``users`` (default: every agent);
        with ``acw`` the calls it places have after-call work (CXone: always).
        """
        ...

    @property
    def env(self) -> dict[str, str]:
        """The secrets :meth:`config_data` names, for ``${VARS}`` (or a process's environment)."""
        ...

    def config(self, store_url: str, users: Iterable[str] | None = None, **options: Any) -> Config:
        """:meth:`config_data` parsed, the secrets filled in."""
        ...

    # -- agents ------------------------------------------------------------------------------

    async def available(self, agent: str) -> None:
        """The agent makes themselves available (published if it changes)."""
        ...

    async def away(self, agent: str) -> None:
        """The agent makes themselves unavailable for calls."""
        ...

    def away_reason(self) -> str:
        """The daemon's ``agent.not_ready`` reason for an agent who is :meth:`away`."""
        ...

    async def start_foreign_call(self, agent: str, number: str) -> str:
        """An inbound call outdial did not place, with wrap-up after it; its id."""
        ...

    async def end_foreign_call(self, call_id: str) -> None:
        """The caller hangs up; the agent's wrap-up follows."""
        ...

    def hold_acw(self, agent: str, hold: bool = True) -> None:
        """Keep the agent in after-call work until :meth:`end_acw`."""
        ...

    def in_acw(self, agent: str) -> bool:
        """Whether the agent is in after-call work now."""
        ...

    async def end_acw(self, call_id: str) -> None:
        """End ``call_id``'s after-call work; return once the platform says it is over."""
        ...

    def call_over(self, call_id: str) -> bool:
        """Whether the call has ended for its agent (after-call work included)."""
        ...

    # -- calls -------------------------------------------------------------------------------

    def set_outcome(self, number: str, outcome: Outcome) -> None:
        """Every call to ``number`` ends ``outcome``."""
        ...

    def calls(self) -> list[Call]:
        """The calls the platform placed, in order (from the fake's recordings)."""
        ...

    def numbers(self) -> list[str]:
        """The numbers of :meth:`calls`, in order."""
        ...

    @property
    def requests(self) -> int:
        """Dial requests the platform got, whatever it answered."""
        ...

    async def wait_for_calls(self, n: int, timeout: float = 10.0) -> list[Call]:  # noqa: ASYNC109
        """Wait until ``n`` calls were placed."""
        ...

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds, re-checked on each change in the fake."""
        ...

    # -- faults ------------------------------------------------------------------------------

    def duplicate_events(self, copies: int) -> None:
        """Every event from now on arrives ``copies`` times."""
        ...

    async def break_events(self) -> None:
        """Break the event connection once (the daemon reconnects and has a gap)."""
        ...

    def outage(self) -> AbstractAsyncContextManager[None]:
        """Cut the daemon off from events for the block: what changes meanwhile reaches nobody.

        Needs ``start(..., proxy=True)``. The block starts once the daemon is cut
        off; on leaving it the daemon may connect again.
        """
        ...

    async def connected(self) -> None:
        """Wait until the daemon has an event connection for every agent."""
        ...

    async def quiet_rounds(self, n: int) -> None:
        """Wait until the daemon's event connection went round ``n`` more times with
        nothing to carry (Genesys: ``n`` pings; CXone: ``n`` polls answered 304).

        Time passing, as the wire shows it: the window a "nothing happens" check
        needs, proven to have been spent with the daemon alive and listening.
        """
        ...

    def lose_next_dial_answer(self) -> None:
        """The next dial is placed, but its answer never reaches the client."""
        ...

    def hold_next_dial_answer(self, seconds: float) -> None:
        """The next dial is placed, its answer held back ``seconds`` (or to :meth:`release`)."""
        ...

    def fail_dials(self, rate: float, status: int = 503) -> None:
        """Refuse a seeded share ``rate`` of dial requests with ``status`` (nothing placed;
        429 and 503 carry ``Retry-After: 1``)."""
        ...

    def release(self) -> None:
        """Let every held answer go now."""
        ...


class Backend(Protocol):
    """Which fake platform a test runs against, and how to start it."""

    @property
    def kind(self) -> str:
        """``genesys`` or ``cxone``."""
        ...

    def agent_ids(self, n: int) -> list[str]:
        """``n`` agent ids in this platform's shape."""
        ...

    def start(
        self,
        agents: Iterable[str],
        *,
        timing: CallTiming = FAST_TIMING,
        seed: int = 3,
        available: bool = True,
        proxy: bool = False,
        **options: Any,
    ) -> AbstractAsyncContextManager[Fake]:
        """Run the fake for ``agents`` (all available, or all away) for the block.

        ``proxy`` puts a TCP fault proxy in front of what :meth:`Fake.outage` and
        (Genesys) :meth:`Fake.lose_next_dial_answer` need; ``options`` go to the fake.
        """
        ...


# -- shared ---------------------------------------------------------------------------------


def _rule(users: Iterable[str], acw: bool = False, queue: str | None = None) -> dict[str, Any]:
    dial: dict[str, Any] = {"user": "{userId}", "contact": "next"}
    if acw and queue is not None:
        dial["call_from_queue_id"] = queue
    return {
        "name": "next-contact-when-ready",
        "topic": "outdial.users.{userId}.ready",
        "users": list(users),
        "dial": dial,
    }


def _common(
    store_url: str,
    calling_window: Sequence[str],
    calls_per_second: float,
    after_call: float,
) -> dict[str, Any]:
    return {
        "listener": FAST.model_dump(),
        "store": {"url": store_url},
        "guards": {
            "calling_window": list(calling_window),
            "default_region": "GB",
            "calls_per_second": calls_per_second,
        },
        "readiness": {"after_call": after_call},
    }


async def _until(fake: Any, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    await fake.wait_for(predicate, timeout=timeout)


# -- Genesys --------------------------------------------------------------------------------


@dataclass
class GenesysFake:
    """:class:`Fake` on the Genesys :class:`FakePlatform`."""

    platform: FakePlatform
    tg: anyio.abc.TaskGroup
    kind: str = "genesys"

    @property
    def agents(self) -> list[str]:
        return self.platform.agents

    def config_data(
        self,
        store_url: str,
        users: Iterable[str] | None = None,
        *,
        after_call: float = AFTER_CALL,
        calling_window: Sequence[str] = ("00:00", "23:59"),
        calls_per_second: float = 100.0,
        acw: bool = False,
    ) -> dict[str, Any]:
        users = list(self.agents if users is None else users)
        return {
            "platform": {
                "kind": "genesys",
                "api_url": self.platform.api_url,
                "login_url": self.platform.login_url,
                "client_id": self.platform.client_id,
                "client_secret": "${FAKE_CLIENT_SECRET}",
            },
            **_common(store_url, calling_window, calls_per_second, after_call),
            "rules": [_rule(users, acw, _GENESYS_QUEUE)],
        }

    @property
    def env(self) -> dict[str, str]:
        return {"FAKE_CLIENT_SECRET": self.platform.client_secret}

    def config(self, store_url: str, users: Iterable[str] | None = None, **options: Any) -> Config:
        return parse_config(self.config_data(store_url, users, **options), "test", self.env)

    async def available(self, agent: str) -> None:
        await self.platform.set_presence(agent, "Available")

    async def away(self, agent: str) -> None:
        await self.platform.set_presence(agent, "Away")

    def away_reason(self) -> str:
        return "presence Away"

    async def start_foreign_call(self, agent: str, number: str) -> str:
        return await self.platform.start_foreign_call(
            agent, phone_number=number, direction="inbound", queue_id=_GENESYS_QUEUE
        )

    async def end_foreign_call(self, call_id: str) -> None:
        await self.platform.end_foreign_call(call_id, by="customer")

    def hold_acw(self, agent: str, hold: bool = True) -> None:
        self.platform.hold_acw(agent, hold)

    def in_acw(self, agent: str) -> bool:
        summary = self.platform.conversation_summary(agent)
        return int(summary["call"]["contactCenter"]["acw"]) > 0

    async def end_acw(self, call_id: str) -> None:
        await self.platform.end_acw(call_id)

    def call_over(self, call_id: str) -> bool:
        body = self.platform.conversation(call_id) or {}
        legs = body.get("participants", [])
        return bool(legs) and all(p.get("state") == "terminated" or p.get("endTime") for p in legs)

    def set_outcome(self, number: str, outcome: Outcome) -> None:
        self.platform.set_outcome(number, outcome)

    def calls(self) -> list[Call]:
        return [
            Call(
                str(c.payload["phoneNumber"]),
                c.user_id,
                c.plan.outcome.value if c.plan else None,
                c.conversation_id or "",
            )
            for c in self.platform.recorded.accepted_calls
        ]

    def numbers(self) -> list[str]:
        return [c.number for c in self.calls()]

    @property
    def requests(self) -> int:
        return len(self.platform.recorded.call_requests)

    async def wait_for_calls(self, n: int, timeout: float = 10.0) -> list[Call]:  # noqa: ASYNC109
        await self.platform.wait_for_calls(n, timeout=timeout)
        return self.calls()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await _until(self.platform, predicate, timeout)

    def duplicate_events(self, copies: int) -> None:
        self.platform.duplicate_events = copies

    async def break_events(self) -> None:
        await self.platform.drop_sockets()

    @asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        proxy = self.platform.ws_proxy
        proxy.refuse(True)
        proxy.reset()
        await self.wait_for(lambda: not self.platform.connected_channels)
        try:
            yield
        finally:
            proxy.refuse(False)

    async def connected(self) -> None:
        topics = [f"v2.users.{a}.conversations.calls" for a in self.agents]
        for topic in topics:
            await self.platform.wait_for_subscription(topic, timeout=10.0)

    async def quiet_rounds(self, n: int) -> None:
        target = self.platform.pings_received + n
        await self.wait_for(lambda: self.platform.pings_received >= target)

    def lose_next_dial_answer(self) -> None:
        accepted = len(self.platform.recorded.accepted_calls)
        self.platform.stall_next(GENESYS_CALL_PATH, 30.0, method="POST")

        async def reset_once_accepted() -> None:
            await self.platform.wait_for(
                lambda: len(self.platform.recorded.accepted_calls) > accepted, timeout=30.0
            )
            self.platform.rest_proxy.reset()

        self.tg.start_soon(reset_once_accepted)

    def hold_next_dial_answer(self, seconds: float) -> None:
        self.platform.stall_next(GENESYS_CALL_PATH, seconds, method="POST")

    def fail_dials(self, rate: float, status: int = 503) -> None:
        self.platform.fail_rate(status, rate, GENESYS_CALL_PATH, method="POST")

    def release(self) -> None:
        self.platform.release_stalls()


@dataclass(frozen=True)
class GenesysBackend:
    """:class:`Backend` for the Genesys fake."""

    kind: str = "genesys"

    def agent_ids(self, n: int) -> list[str]:
        return GENESYS_AGENTS[:n]

    @asynccontextmanager
    async def start(
        self,
        agents: Iterable[str],
        *,
        timing: CallTiming = FAST_TIMING,
        seed: int = 3,
        available: bool = True,
        proxy: bool = False,
        **options: Any,
    ) -> AsyncIterator[Fake]:
        agents = list(agents)
        fake = FakePlatform(
            agents, timing=timing, seed=seed, ws_proxy=proxy, rest_proxy=proxy, **options
        )
        async with fake, anyio.create_task_group() as tg:
            if not available:
                for agent in agents:
                    await fake.set_presence(agent, "Away")
            yield GenesysFake(fake, tg)
            fake.release_stalls()
            tg.cancel_scope.cancel()


# -- CXone ----------------------------------------------------------------------------------


@dataclass
class CxoneFake:
    """:class:`Fake` on :class:`FakeCxone`."""

    platform: FakeCxone
    tg: anyio.abc.TaskGroup
    proxied: bool
    kind: str = "cxone"

    @property
    def agents(self) -> list[str]:
        return self.platform.agents

    def config_data(
        self,
        store_url: str,
        users: Iterable[str] | None = None,
        *,
        after_call: float = AFTER_CALL,
        calling_window: Sequence[str] = ("00:00", "23:59"),
        calls_per_second: float = 100.0,
        acw: bool = False,
    ) -> dict[str, Any]:
        users = list(self.agents if users is None else users)
        cxone = self.platform
        stations = {
            agent: {"station_phone_number": f"+{_CXONE_STATION + n + 1}"}
            for n, agent in enumerate(users)
        }
        return {
            "platform": {
                "kind": "cxone",
                "issuer": cxone.issuer_url,
                "client_id": cxone.client_id,
                "client_secret": "${FAKE_CLIENT_SECRET}",
                "access_key_id": cxone.access_key_id,
                "access_key_secret": "${FAKE_ACCESS_KEY_SECRET}",
                "skill_id": cxone.skill_id,
                "request_timeout": 2.0,
                # Test tempo: a quiet poll comes back within a second, a dead one is given
                # up a second after that, a dial's contact is waited for two.
                "poll_timeout": 1.0,
                "poll_watchdog": 1.0,
                "contact_wait": 2.0,
                "agents": stations,
            },
            **_common(store_url, calling_window, calls_per_second, after_call),
            "rules": [_rule(users)],
        }

    @property
    def env(self) -> dict[str, str]:
        return {
            "FAKE_CLIENT_SECRET": self.platform.client_secret,
            "FAKE_ACCESS_KEY_SECRET": self.platform.access_key_secret,
        }

    def config(self, store_url: str, users: Iterable[str] | None = None, **options: Any) -> Config:
        return parse_config(self.config_data(store_url, users, **options), "test", self.env)

    async def available(self, agent: str) -> None:
        self.platform.set_agent_state(agent, "Available")

    async def away(self, agent: str) -> None:
        self.platform.set_agent_state(agent, "Unavailable", "Break")

    def away_reason(self) -> str:
        return "presence Unavailable"

    async def start_foreign_call(self, agent: str, number: str) -> str:
        return await self.platform.start_foreign_contact(agent, phone_number=number)

    async def end_foreign_call(self, call_id: str) -> None:
        await self.platform.end_foreign_contact(call_id)

    def hold_acw(self, agent: str, hold: bool = True) -> None:
        self.platform.hold_acw(agent, hold)

    def in_acw(self, agent: str) -> bool:
        return any(c.agent_id == agent and c.in_acw for c in self.platform.contacts)

    async def end_acw(self, call_id: str) -> None:
        await self.platform.end_acw(call_id)

    def call_over(self, call_id: str) -> bool:
        contact = self.platform.contact(call_id)
        return contact is not None and contact.final

    def set_outcome(self, number: str, outcome: Outcome) -> None:
        self.platform.set_outcome(number, outcome)

    def calls(self) -> list[Call]:
        return [
            Call(c.phone_number, c.agent_id, c.outcome, c.contact_id)
            for c in self.platform.recorded.calls
        ]

    def numbers(self) -> list[str]:
        return [c.number for c in self.calls()]

    @property
    def requests(self) -> int:
        # ``recorded.dials``: each dial-phone that reached the platform (a dropped answer
        # included); those a REST fault refused first (429, 5xx) are only in ``requests``.
        dial = re.compile(CXONE_DIAL_PATH)
        recorded = self.platform.recorded
        refused = sum(
            1
            for r in recorded.requests
            if r.method == "POST" and dial.search(r.path) and (r.status == 429 or r.status >= 500)
        )
        return len(recorded.dials) + refused

    async def wait_for_calls(self, n: int, timeout: float = 10.0) -> list[Call]:  # noqa: ASYNC109
        await self.platform.wait_for_calls(n, timeout=timeout)
        return self.calls()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await _until(self.platform, predicate, timeout)

    def duplicate_events(self, copies: int) -> None:
        self.platform.duplicate_events = copies

    async def break_events(self) -> None:
        for agent in self.agents:
            self.platform.end_session(agent)

    @asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        proxy = self.platform.api_proxy
        proxy.refuse(True)
        proxy.reset()
        # The platform ends the sessions too: what happens now is queued for nobody.
        await self.break_events()
        await self.wait_for(lambda: all(self.platform.polls_waiting(a) == 0 for a in self.agents))
        try:
            yield
        finally:
            proxy.refuse(False)

    async def connected(self) -> None:
        def polling() -> bool:
            return all(self.platform.polls_waiting(a) > 0 for a in self.agents)

        await self.wait_for(polling)

    async def quiet_rounds(self, n: int) -> None:
        polls = self.platform.recorded.polls

        def quiet() -> int:
            return sum(1 for p in polls if p.status == 304)

        target = quiet() + n
        await self.wait_for(lambda: quiet() >= target)

    def lose_next_dial_answer(self) -> None:
        self.platform.drop_next_dial_answer()

    def hold_next_dial_answer(self, seconds: float) -> None:
        self.platform.stall_next(CXONE_DIAL_PATH, seconds, method="POST")

    def fail_dials(self, rate: float, status: int = 503) -> None:
        self.platform.fail_rate(status, rate, CXONE_DIAL_PATH, method="POST")

    def release(self) -> None:
        self.platform.release_stalls()


@dataclass(frozen=True)
class CxoneBackend:
    """:class:`Backend` for the CXone fake."""

    kind: str = "cxone"

    def agent_ids(self, n: int) -> list[str]:
        return CXONE_AGENTS[:n]

    @asynccontextmanager
    async def start(
        self,
        agents: Iterable[str],
        *,
        timing: CallTiming = FAST_TIMING,
        seed: int = 3,
        available: bool = True,
        proxy: bool = False,
        **options: Any,
    ) -> AsyncIterator[Fake]:
        fake = FakeCxone(
            list(agents),
            timing=timing,
            seed=seed,
            api_proxy=proxy,
            initial_state="Available" if available else "Unavailable",
            **options,
        )
        async with fake, anyio.create_task_group() as tg:
            yield CxoneFake(fake, tg, proxy)
            fake.release_stalls()
            tg.cancel_scope.cancel()


def backend(kind: str) -> Backend:
    """The :class:`Backend` of ``kind`` (``genesys`` or ``cxone``)."""
    if kind == "genesys":
        return GenesysBackend()
    if kind == "cxone":
        return CxoneBackend()
    raise ValueError(f"no fake platform {kind!r}; want one of {', '.join(KINDS)}")


@pytest.fixture(name="backend", params=KINDS)
def backend_fixture(request: pytest.FixtureRequest) -> Backend:
    """The fake platform a test runs against, once ``genesys`` and once ``cxone``.

    A fixture here, not in a ``conftest.py``: mypy sees one module per name.
    """
    return backend(str(request.param))


# -- a config for another process -----------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_text(data: Mapping[str, Any]) -> str:
    """``data`` (a config mapping: tables, arrays of tables, scalars, lists) as TOML."""
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(lines: list[str], path: list[str], data: Mapping[str, Any]) -> None:
    nested = {k: v for k, v in data.items() if isinstance(v, Mapping) or _is_tables(v)}
    for key, value in data.items():
        if key not in nested:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested.items():
        inner = [*path, _key(key)]
        if isinstance(value, Mapping):
            lines.extend(["", f"[{'.'.join(inner)}]"])
            _table(lines, inner, value)
        else:
            for item in value:
                lines.extend(["", f"[[{'.'.join(inner)}]]"])
                _table(lines, inner, item)
