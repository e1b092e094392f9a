"""The daemon's dispatch onto the handlers: per-agent order, agents side by side.

The listener is replaced by a stream the test feeds, and ``handle`` by a
recorder that can hold one agent's event: what is left is the daemon's own
dispatcher, workers and gap refresher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest
from handlers_fakes import AGENT, FakePlatform, clock, config, next_contact_rule, presence

from outdial.app import Daemon
from outdial.config import ListenerConfig
from outdial.events import Event, Gap
from outdial.handlers.registry import HandlerRegistry
from outdial.platforms.base import AgentState
from outdial.platforms.genesys.bundle import genesys_bundle
from outdial.store import SqliteStore

pytestmark = pytest.mark.anyio

OTHER = "agent-2"  # lands on another of the 4 workers than AGENT


class StubListener:
    """What the daemon reads from a listener: ``run``, ``topics`` and the items."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Event | Gap](100)
        self.topics: set[str] = set()

    async def run(self) -> None:
        await anyio.sleep_forever()

    def __aiter__(self) -> AsyncIterator[Event | Gap]:
        return self.receive


class Recorder:
    """Records handled events as (user, stamp); holds those whose stamp is in ``hold``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.hold: set[str] = set()
        self.release = anyio.Event()
        self.changed = anyio.Event()

    async def handle(self, event: Event, match: object = None) -> None:
        stamp = str(event.body.get("modifiedDate", event.channel_id))
        if stamp in self.hold:
            await self.release.wait()
        self.seen.append((event.topic.split(".")[2], stamp))
        self.changed.set()
        self.changed = anyio.Event()

    async def until(self, item: tuple[str, str]) -> None:
        with anyio.fail_after(5):
            while item not in self.seen:
                await self.changed.wait()


@asynccontextmanager
async def running(platform: FakePlatform) -> AsyncIterator[tuple[StubListener, Recorder]]:
    store = SqliteStore(":memory:")
    try:
        recorder = Recorder()
        # A custom handler sees every presence event the daemon handles, live or re-read.
        registry = HandlerRegistry()
        registry.on("v2.users.{userId}.presence", users=[AGENT, OTHER])(recorder.handle)
        daemon = Daemon(
            config(next_contact_rule()),
            platform=genesys_bundle(platform, ListenerConfig(), clock()),  # type: ignore[arg-type]
            store=store,
            clock=clock(),
            registry=registry,
        )
        listener = StubListener()
        daemon.listener = listener  # type: ignore[assignment]
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            yield listener, recorder
            tg.cancel_scope.cancel()
    finally:
        await store.aclose()


async def test_one_agents_events_stay_in_order_while_another_agent_goes_on() -> None:
    async with running(FakePlatform()) as (listener, recorder):
        recorder.hold = {"a1"}
        for event in (presence(AGENT, stamp="a1"), presence(AGENT, stamp="a2")):
            await listener.send.send(event)
        await listener.send.send(presence(OTHER, stamp="b1"))
        # AGENT's first event is held: OTHER's is handled meanwhile, AGENT's second waits.
        await recorder.until((OTHER, "b1"))
        assert recorder.seen == [(OTHER, "b1")]
        recorder.release.set()
        await recorder.until((AGENT, "a2"))
    assert [s for u, s in recorder.seen if u == AGENT] == ["a1", "a2"]


async def test_a_gaps_bulk_read_holds_up_no_one_and_never_overrides_a_newer_live_event() -> None:
    platform = FakePlatform()
    reading = anyio.Event()
    answer = anyio.Event()

    async def slow_states(
        user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> list[AgentState]:
        reading.set()
        await answer.wait()
        body = {"presenceDefinition": {"systemPresence": "Away"}, "modifiedDate": "rest"}
        return [AgentState(user_id, body, None) for user_id in user_ids]

    platform.get_agent_states = slow_states  # type: ignore[method-assign]
    async with running(platform) as (listener, recorder):
        gap = frozenset({f"v2.users.{AGENT}.presence", f"v2.users.{OTHER}.presence"})
        await listener.send.send(Gap(gap, 0.0, 0.0, "test"))
        with anyio.fail_after(5):
            await reading.wait()
        # The REST read is in flight: neither agent's live events wait for it.
        await listener.send.send(presence(AGENT, stamp="live"))
        await recorder.until((AGENT, "live"))
        answer.set()
        # OTHER had no live event since the read began: its re-read state counts.
        await recorder.until((OTHER, "rest"))
    # AGENT's re-read began before its live event: it is older, and left out.
    assert [s for u, s in recorder.seen if u == AGENT] == ["live"]


class BurstListener:
    """Hands out its items without a checkpoint between them, as the real listener does
    with what is queued (every few dozen items it yields)."""

    def __init__(self, items: Sequence[Event]) -> None:
        self.items = list(items)
        self.topics: set[str] = set()

    async def run(self) -> None:
        await anyio.sleep_forever()

    def __aiter__(self) -> BurstListener:
        return self

    async def __anext__(self) -> Event:
        if not self.items:
            await anyio.sleep_forever()
        return self.items.pop(0)


async def test_an_agents_step_starts_before_the_dispatcher_takes_the_events_queued_behind() -> None:
    """A trigger's dial (here a custom handler, run as the agent's step) goes out at
    once, not after the dozens of other agents' events the dispatcher takes in a row."""
    store = SqliteStore(":memory:")
    taken_when_run: list[int] = []
    ran = anyio.Event()
    registry = HandlerRegistry()

    @registry.on("v2.users.{userId}.presence", users=[AGENT])
    async def step(event: Event, match: object) -> None:
        taken_when_run.append(daemon.events_handled)
        ran.set()

    daemon = Daemon(
        config(next_contact_rule()),
        platform=genesys_bundle(FakePlatform(), ListenerConfig(), clock()),  # type: ignore[arg-type]
        store=store,
        clock=clock(),
        registry=registry,
    )
    others = [presence(OTHER, value="Away", stamp=f"b{n}") for n in range(20)]
    daemon.listener = BurstListener([presence(AGENT, value="Away"), *others])  # type: ignore[assignment]
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            with anyio.fail_after(5):
                await ran.wait()
            tg.cancel_scope.cancel()
    finally:
        await store.aclose()
    assert taken_when_run == [1], "the agent's step waited for the events queued behind it"
