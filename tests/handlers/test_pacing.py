"""The pacer through the handlers: level-triggered readiness, nothing that blocks a turn loses it.

The platform here is the in-memory one of ``handlers_fakes`` and time is a
:class:`~outdial.clock.ManualClock`; the pacer's own timer task runs on it, so
a test moves time and the pacer wakes. Real sockets and the fake platform are
in ``tests/resilience/test_readiness_daemon.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from handlers_fakes import AGENT, FakePlatform, Lost, clock, config

from outdial.clock import ManualClock
from outdial.config import DialSpec, GuardsConfig, Rule
from outdial.events import Event
from outdial.handlers.dispatch import Handlers
from outdial.handlers.pacer import READY_TOPIC
from outdial.platforms.base import AgentState, AmbiguousOutcome, PlatformError
from outdial.platforms.genesys.codec import GenesysCodec
from outdial.store import ContactRow, SqliteStore

pytestmark = pytest.mark.anyio

LONDON = ["+441212345601", "+441212345602", "+441212345603"]
AFTER_CALL = 5.0


def ready_rule(users: Sequence[str] = (AGENT,)) -> Rule:
    return Rule(
        name="next-when-ready",
        topic=READY_TOPIC,
        users=list(users),
        dial=DialSpec(user="{userId}", contact="next", caller_id="+4930123456"),
    )


def presence(
    value: str = "Available", stamp: str = "2026-01-05T11:00:00.000Z", user: str = AGENT
) -> Event:
    return Event(
        topic=f"v2.users.{user}.presence",
        body={"presenceDefinition": {"systemPresence": value}, "modifiedDate": stamp},
    )


def routing(status: str = "OFF_QUEUE", user: str = AGENT) -> Event:
    return Event(
        topic=f"v2.users.{user}.routingStatus",
        body={"id": user, "routingStatus": {"status": status, "startTime": "2026-01-05T08:00:00Z"}},
    )


def summary(active: int = 0, acw: int = 0, user: str = AGENT) -> Event:
    return Event(
        topic=f"v2.users.{user}.conversationsummary",
        body={"userId": user, "call": {"enterprise": {"active": active, "acw": acw}}},
    )


def call(cid: str, agent_state: str, when: datetime, user: str = AGENT) -> Event:
    """A call of the agent (placed by anyone): only the agent's own leg matters here."""
    agent: dict[str, Any] = {
        "id": "a",
        "purpose": "user",
        "state": agent_state,
        "user": {"id": user},
    }
    if agent_state == "disconnected":
        agent |= {"endTime": when.isoformat(), "disconnectType": "peer", "wrapupRequired": False}
    external = {"id": "e", "purpose": "external", "address": "tel:+15550100", "state": agent_state}
    return Event(
        topic=f"v2.users.{user}.conversations.calls",
        body={"id": cid, "participants": [agent, external]},
    )


class Pacing:
    """Handlers with a ready rule, their pacer's timers running on a manual clock."""

    def __init__(self, handlers: Handlers, platform: FakePlatform, clock: ManualClock) -> None:
        self.handlers = handlers
        self.platform = platform
        self.clock = clock
        self.store = handlers.store

    async def send(self, *events: Event) -> None:
        for event in events:
            await self.handlers.handle(event)
        await anyio.wait_all_tasks_blocked()

    async def idle_agent(self, user: str = AGENT) -> None:
        await self.send(presence(user=user), routing(user=user), summary(user=user))

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await anyio.wait_all_tasks_blocked()

    def numbers(self) -> list[str]:
        return [r.phone_number for r in self.platform.requests]

    async def end_call(self, cid: str, user: str = AGENT) -> None:
        await self.send(call(cid, "disconnected", self.clock.now(), user=user), summary(user=user))


@asynccontextmanager
async def pacing(
    *rules: Rule,
    contacts: Sequence[ContactRow] | None = None,
    guards: GuardsConfig | None = None,
    script: Sequence[Exception | Lost] = (),
) -> AsyncIterator[Pacing]:
    store = SqliteStore(":memory:")
    manual = clock()
    platform = FakePlatform(list(script), clock=manual)
    cfg = config(*(rules or (ready_rule(),)), guards=guards)
    cfg = cfg.model_copy(
        update={"readiness": cfg.readiness.model_copy(update={"after_call": AFTER_CALL})}
    )
    await store.import_contacts(
        contacts if contacts is not None else [ContactRow(AGENT, n) for n in LONDON]
    )
    handlers = Handlers(cfg, platform, store, manual, codec=GenesysCodec())

    async def inline(user: str, step: Callable[[], Awaitable[None]]) -> None:
        await step()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(handlers.pacer.run, inline, handlers.pace)
            yield Pacing(handlers, platform, manual)
            tg.cancel_scope.cancel()
    finally:
        await store.aclose()


async def test_an_agent_who_stays_available_works_through_the_list() -> None:
    async with pacing() as p:
        await p.idle_agent()
        assert p.numbers() == LONDON[:1]
        for n in range(1, len(LONDON)):
            cid = p.platform.placed[-1]
            await p.send(call(cid, "connected", p.clock.now()))
            await p.end_call(cid)
            # Resting after the call: nothing yet, and no presence event is needed after it.
            await p.advance(AFTER_CALL - 0.5)
            assert len(p.platform.requests) == n
            await p.advance(0.5)
            assert p.numbers() == LONDON[: n + 1]


async def test_the_subscriptions_cover_what_readiness_reads() -> None:
    async with pacing() as p:
        topics = p.handlers.topics()
    assert {
        f"v2.users.{AGENT}.presence",
        f"v2.users.{AGENT}.routingStatus",
        f"v2.users.{AGENT}.conversationsummary",
        f"v2.users.{AGENT}.conversations.calls",
    } <= topics
    assert not any(t.startswith("outdial.") for t in topics)


async def test_a_call_outdial_did_not_place_holds_the_agent_until_it_ends() -> None:
    async with pacing() as p:
        await p.send(
            presence(), routing(), summary(active=1), call("inbound", "connected", p.clock.now())
        )
        assert p.platform.requests == []
        await p.end_call("inbound")
        await p.advance(AFTER_CALL - 0.5)
        assert p.platform.requests == []
        await p.advance(0.5)
        assert p.numbers() == LONDON[:1]


async def test_away_is_not_dialed_and_available_again_is() -> None:
    async with pacing() as p:
        await p.send(presence("AWAY"), routing(), summary())
        assert p.platform.requests == []
        await p.send(presence("AVAILABLE", stamp="2026-01-05T11:05:00.000Z"))
        assert p.numbers() == LONDON[:1]


async def test_a_window_that_opens_dials_its_contact_then() -> None:
    # 07:50 in Los Angeles; Berlin (15:50) is open.
    start = datetime(2026, 1, 5, 15, 50, tzinfo=UTC)
    la, berlin = "+12135550123", "+4930901820"
    async with pacing(contacts=[ContactRow(AGENT, la), ContactRow(AGENT, berlin)]) as p:
        p.clock.set_wall(start)
        await p.idle_agent()
        # The closed contact did not block the open one behind it.
        assert p.numbers() == [berlin]
        await p.end_call(p.platform.placed[-1])
        await p.advance(AFTER_CALL)
        assert p.numbers() == [berlin]  # LA still closed: nothing to call
        opening = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)  # 08:00 in Los Angeles
        await p.advance((opening - p.clock.now()).total_seconds() - 1)
        assert p.numbers() == [berlin]
        await p.advance(1)
        assert p.numbers() == [berlin, la]


async def test_a_retry_that_comes_due_is_dialed_then() -> None:
    async with pacing(contacts=[ContactRow(AGENT, LONDON[0])]) as p:
        await p.idle_agent()
        cid = p.platform.placed[-1]
        # Busy: never connected, the customer leg ended on its own side.
        busy = hung_up(cid, LONDON[0], answered=False, at=p.clock.now())
        await p.send(busy, summary())
        retry = p.handlers.config.guards.retry_after["busy"]
        await p.advance(retry - 1)
        assert len(p.platform.requests) == 1
        await p.advance(1)
        assert p.numbers() == [LONDON[0], LONDON[0]]


async def test_contacts_imported_while_running_are_dialed() -> None:
    async with pacing(contacts=[]) as p:
        await p.idle_agent()
        assert p.platform.requests == []
        await p.store.import_contacts([ContactRow(AGENT, LONDON[1])])
        await p.handlers.contacts_changed()
        await anyio.wait_all_tasks_blocked()
        assert p.numbers() == [LONDON[1]]


async def test_a_rate_limit_delays_every_ready_agent_and_drops_none() -> None:
    agents = [f"agent-{i:02d}" for i in range(20)]
    rows = [ContactRow(a, f"+4412123456{i:02d}") for i, a in enumerate(agents)]
    async with pacing(
        ready_rule(agents), contacts=rows, guards=GuardsConfig(calls_per_second=2.0)
    ) as p:
        for agent in agents:
            await p.idle_agent(agent)
        assert len(p.platform.requests) == 2  # the burst
        for _ in range(20):
            await p.advance(0.5)
        assert sorted(r.user_id for r in p.platform.requests) == agents
        assert p.clock.now() - clock().now() <= timedelta(seconds=12)


async def test_a_refused_dial_moves_on_to_the_next_contact_in_the_same_readiness() -> None:
    refused = PlatformError("invalid", status=400, code="bad.request")
    async with pacing(script=[refused]) as p:
        await p.idle_agent()
        assert p.numbers() == LONDON[:2]
        first, second = [c for c in await p.store.contacts(AGENT)][:2]
        assert (first.last_outcome, second.state) == ("failed", "dialing")


REST_PRESENCE = {
    # GET /api/v2/users/{id}/presences/purecloud: more fields than the event body.
    "id": "PURECLOUD",
    "name": "PURECLOUD",
    "source": "PURECLOUD",
    "sourceId": "PURECLOUD",
    "presenceDefinition": {
        "systemPresence": "Available",
        "selfUri": "/api/v2/presencedefinitions/x",
    },
    "modifiedDate": "2026-01-05T11:00:00.000Z",
    "selfUri": "/api/v2/users/agent-1/presences/PURECLOUD",
}
IDLE_SUMMARY = {"userId": AGENT, "call": {"enterprise": {"active": 0, "acw": 0}}}


async def test_the_same_readiness_live_here_and_re_read_in_a_replica_places_one_call() -> None:
    async with pacing() as live:
        # A second daemon on the same store that sees the agent only over REST.
        replica_platform = FakePlatform(clock=live.clock)
        replica_platform.agents[AGENT] = AgentState(
            AGENT, REST_PRESENCE, {"status": "OFF_QUEUE", "startTime": "x"}, IDLE_SUMMARY
        )
        replica = Handlers(
            live.handlers.config,
            replica_platform,
            live.store,
            live.clock,
            codec=GenesysCodec(),
        )
        await replica.refresh([AGENT])
        assert len(replica_platform.requests) == 1
        # The same readiness arrives live here: the same epoch, so the same key, already claimed.
        await live.idle_agent()
        assert live.platform.requests == []
        assert replica.pacer.verdicts[AGENT].epoch == live.handlers.pacer.verdicts[AGENT].epoch


async def test_an_old_presence_rule_is_not_triggered_again_by_a_re_read_of_that_presence() -> None:
    presence_rule = Rule(
        name="next-on-available",
        topic="v2.users.{userId}.presence",
        users=[AGENT],
        when={"presenceDefinition.systemPresence": "Available"},
        dial=DialSpec(user="{userId}", contact="next"),
    )
    async with pacing(presence_rule) as p:
        await p.send(presence())
        assert len(p.platform.requests) == 1
        await p.end_call(p.platform.placed[-1])
        p.platform.agents[AGENT] = AgentState(AGENT, REST_PRESENCE, None, None)
        await p.handlers.refresh([AGENT])
        assert len(p.platform.requests) == 1


async def test_a_custom_handler_on_the_ready_topic_hears_each_readiness_once() -> None:
    from outdial.handlers.registry import HandlerRegistry

    heard: list[Any] = []
    registry = HandlerRegistry()

    @registry.on(READY_TOPIC, users=[AGENT])
    async def on_ready(event: Event, match: object) -> None:
        heard.append(dict(event.body))

    store = SqliteStore(":memory:")
    manual = clock()
    handlers = Handlers(
        config(),
        FakePlatform(clock=manual),
        store,
        manual,
        codec=GenesysCodec(),
        registry=registry,
    )
    try:
        assert f"v2.users.{AGENT}.presence" in handlers.topics()
        for event in (presence(), routing(), summary(), summary()):
            await handlers.handle(event)
        [body] = heard
        assert (body["userId"], body["presence"], body["routingStatus"]) == (
            AGENT,
            "Available",
            "OFF_QUEUE",
        )
        assert body["epoch"]
    finally:
        await store.aclose()


async def test_an_unknown_dial_is_found_on_the_agents_own_call_events_first() -> None:
    lost = Lost(AmbiguousOutcome("place call: sent, but no answer"))
    async with pacing(script=[lost]) as p:
        p.platform.unlisted.add("conv-1")  # the platform's call history lags behind
        await p.idle_agent()
        [claim] = await p.store.open_claims(AGENT)
        assert claim.state == "unknown"
        lookups = len(p.platform.lookups)
        # The call shows up on the agent's topic, as calls placed for the agent do.
        started = p.clock.now().isoformat()
        event = Event(
            topic=f"v2.users.{AGENT}.conversations.calls",
            body={
                "id": "conv-1",
                "participants": [
                    {"id": "a", "purpose": "agent", "state": "connected", "user": {"id": AGENT}},
                    {
                        "id": "c",
                        "purpose": "customer",
                        "address": f"tel:{LONDON[0]}",
                        "state": "dialing",
                        "direction": "outbound",
                        "startTime": started,
                    },
                ],
            },
        )
        await p.send(event)
        assert await p.handlers.reconcile_unknown() == 1
        # Found without asking the history again, and never sent twice.
        assert len(p.platform.lookups) == lookups
        placed = await p.store.get_claim(claim.key)
        assert placed is not None
        assert (placed.state, placed.conversation_id) == ("placed", "conv-1")
        assert len(p.platform.requests) == 1


def callback(on_own_calls: bool = False) -> Rule:
    return Rule(
        name="callback",
        topic="v2.users.{userId}.conversations.calls",
        users=[AGENT],
        when={
            "participants.purpose": ["customer", "external"],
            "participants.disconnectType": "endpoint",
        },
        dial=DialSpec(user="{userId}", phone_number="{participants.address}"),
        on_own_calls=on_own_calls,
    )


def hung_up(cid: str, number: str, *, answered: bool = True, at: datetime | None = None) -> Event:
    """A call of the agent that the customer ended (their own leg: ``endpoint``);
    never ``answered``, it is a busy line."""
    agent: dict[str, Any] = {
        "id": "a",
        "purpose": "agent",
        "state": "disconnected",
        "user": {"id": AGENT},
        "disconnectType": "peer",
    }
    if at is not None:
        agent["endTime"] = at.isoformat()
    customer: dict[str, Any] = {
        "id": "c",
        "purpose": "customer",
        "address": f"tel:{number}",
        "state": "disconnected",
        "disconnectType": "endpoint",
    }
    if answered:
        customer["connectedTime"] = "2026-01-05T11:59:00Z"
    return Event(
        topic=f"v2.users.{AGENT}.conversations.calls",
        body={"id": cid, "participants": [agent, customer]},
    )


@pytest.mark.parametrize("on_own_calls", [False, True])
async def test_a_rule_fires_on_outdials_own_calls_only_when_it_says_so(on_own_calls: bool) -> None:
    async with pacing(callback(on_own_calls), contacts=[]) as p:
        await p.send(hung_up("inbound-1", LONDON[0]))
        assert p.numbers() == [LONDON[0]]  # a caller hung up: called back
        # The callback itself ends the same way: outdial's own call.
        await p.send(hung_up(p.platform.placed[-1], LONDON[0]))
        assert p.numbers() == [LONDON[0]] * (2 if on_own_calls else 1)


async def test_a_rate_limited_event_dial_is_offered_again_not_dropped() -> None:
    async with pacing(callback(), contacts=[], guards=GuardsConfig(calls_per_second=1.0)) as p:
        await p.send(hung_up("in-1", LONDON[0]))
        await p.end_call(p.platform.placed[-1])
        await p.send(hung_up("in-2", LONDON[1]))
        assert p.numbers() == [LONDON[0]]  # the second waits for the next token
        await p.advance(1.0)
        assert p.numbers() == [LONDON[0], LONDON[1]]
