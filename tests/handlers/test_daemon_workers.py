"""The daemon's dispatch onto the handlers: per-agent order, agents side by side.

The listener is replaced by a stream the test feeds, and ``handle`` by a
recorder that can hold one agent's event: what is left is the daemon's own
dispatcher, workers and gap refresher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from handlers_fakes import AGENT, FakePlatform, clock, config, next_contact_rule, presence

from outdial.app import Daemon
from outdial.events import Event, Gap
from outdial.platforms.base import AgentState
from outdial.store import SqliteStore

pytestmark = pytest.mark.anyio

OTHER = "agent-2"  # lands on another of the 16 workers than AGENT


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

    async def handle(self, event: Event) -> None:
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
        daemon = Daemon(config(next_contact_rule()), platform=platform, store=store, clock=clock())
        listener = StubListener()
        recorder = Recorder()
        daemon.listener = listener  # type: ignore[assignment]
        setattr(daemon.handlers, "handle", recorder.handle)  # noqa: B010
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


async def test_a_gaps_refresh_runs_in_the_agents_turn_and_holds_up_no_one_else() -> None:
    platform = FakePlatform()
    reading = anyio.Event()
    answer = anyio.Event()

    async def slow_state(user_id: str) -> AgentState:
        reading.set()
        await answer.wait()
        body = {"presenceDefinition": {"systemPresence": "Away"}, "modifiedDate": "rest"}
        return AgentState(user_id, body, None)

    platform.get_agent_state = slow_state  # type: ignore[method-assign]
    async with running(platform) as (listener, recorder):
        await listener.send.send(Gap(frozenset({f"v2.users.{AGENT}.presence"}), 0.0, 0.0, "test"))
        with anyio.fail_after(5):
            await reading.wait()
        # The REST read is in flight: AGENT's next event waits behind it, OTHER's does not.
        await listener.send.send(presence(AGENT, stamp="live"))
        await listener.send.send(presence(OTHER, stamp="b1"))
        await recorder.until((OTHER, "b1"))
        assert (AGENT, "live") not in recorder.seen
        answer.set()
        await recorder.until((AGENT, "live"))
    assert [s for u, s in recorder.seen if u == AGENT] == ["rest", "live"]
