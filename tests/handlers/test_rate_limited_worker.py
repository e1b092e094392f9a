"""A rate-limited dial never blocks other agents: a 429 is waited out off the worker.

The daemon's own dispatcher, workers and pacer, with the listener replaced by
a stream the test feeds; time is a :class:`~outdial.clock.ManualClock`, so a
Retry-After passes only when the test moves the clock. Agent A's dials are
answered 429 while B, whose events the same worker handles, is dialed at once.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from handlers_fakes import FakePlatform, clock, config, presence
from test_daemon_workers import StubListener

from outdial.app import Daemon
from outdial.clock import ManualClock
from outdial.config import DialSpec, ListenerConfig, Rule
from outdial.platforms.base import DialRequest, PlacedCall, RetryableError
from outdial.platforms.genesys.bundle import genesys_bundle
from outdial.store import ContactRow, SqliteStore

pytestmark = pytest.mark.anyio

A = "agent-1"
B = "agent-35"  # crc32 puts it on A's worker (of the default 16)
RETRY_AFTER = 10.0


class StormPlatform(FakePlatform):
    """Answers 429 (``Retry-After: 10``) to every dial for the agents in ``storm``."""

    def __init__(self) -> None:
        super().__init__()
        self.storm: set[str] = set()
        self.refused: list[str] = []
        self.changed = anyio.Event()

    async def place_call(self, request: DialRequest) -> PlacedCall:
        self.changed.set()
        self.changed = anyio.Event()
        if request.user_id in self.storm:
            self.requests.append(request)
            self.refused.append(request.user_id)
            raise RetryableError("rate limited", status=429, retry_after=RETRY_AFTER)
        return await super().place_call(request)

    def dialed(self, user: str) -> int:
        """Calls placed for ``user``."""
        return sum(1 for u, _ in self.history if u == user)


@dataclass
class Run:
    platform: StormPlatform
    listener: StubListener
    clock: ManualClock
    daemon: Daemon
    store: SqliteStore

    async def until(self, predicate: Callable[[], bool]) -> None:
        # Real time bounds the test only; the manual clock never moves meanwhile.
        with anyio.fail_after(5):
            while not predicate():
                changed = self.platform.changed
                with anyio.move_on_after(0.01):  # the store answers from a thread
                    await changed.wait()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await anyio.wait_all_tasks_blocked()


@asynccontextmanager
async def running() -> AsyncIterator[Run]:
    assert zlib.crc32(A.encode()) % 16 == zlib.crc32(B.encode()) % 16
    store = SqliteStore(":memory:")
    await store.import_contacts([ContactRow(A, "+441212345601"), ContactRow(B, "+441212345602")])
    rule = Rule(
        name="next-contact",
        topic="v2.users.{userId}.presence",
        users=[A, B],
        when={"presenceDefinition.systemPresence": "Available"},
        dial=DialSpec(user="{userId}", contact="next", caller_id="+4930123456"),
    )
    platform = StormPlatform()
    manual = clock()
    platform.clock = manual
    try:
        daemon = Daemon(
            config(rule),
            platform=genesys_bundle(platform, ListenerConfig(), manual),  # type: ignore[arg-type]
            store=store,
            clock=manual,
        )
        listener = StubListener()
        daemon.listener = listener  # type: ignore[assignment]
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            yield Run(platform, listener, manual, daemon, store)
            tg.cancel_scope.cancel()
    finally:
        await store.aclose()


async def test_a_429_storm_for_one_agent_delays_no_other_agent_of_its_worker() -> None:
    async with running() as run:
        platform = run.platform
        platform.storm = {A}
        await run.listener.send.send(presence(A, stamp="a1"))
        await run.until(lambda: platform.refused == [A])
        # A's dial waits out its Retry-After; the worker goes on with B at once.
        await run.listener.send.send(presence(B, stamp="b1"))
        await run.until(lambda: platform.dialed(B) == 1)
        assert platform.dialed(A) == 0
        [claim] = [c for c in await run.store.open_claims() if c.user_id == A]
        assert claim.state == "claimed"  # kept in flight: A is busy, and not reconciled as lost
        assert not run.daemon.handlers.dialer.needs_reconciling(claim, run.clock.now())
        assert await run.daemon.handlers.reconcile_unknown() == 0

        # The Retry-After is over: sent again under the same claim, refused once more.
        await run.advance(RETRY_AFTER)
        await run.until(lambda: platform.refused == [A, A])
        assert platform.dialed(A) == 0

        platform.storm.clear()
        await run.advance(RETRY_AFTER - 1)
        assert platform.dialed(A) == 0  # not before the platform said
        await run.advance(1)
        await run.until(lambda: platform.dialed(A) == 1)
        with anyio.fail_after(5):  # its answer is written right after
            while (placed := await run.store.get_claim(claim.key)) and placed.state != "placed":
                await anyio.wait_all_tasks_blocked()

        # Nothing left to send: no second call however long it runs.
        await run.advance(600)
        await run.daemon.handlers.reconcile_unknown()
        await run.advance(600)
        assert platform.dialed(A) == 1
        assert len([r for r in platform.requests if r.user_id == A]) == 3
        assert platform.dialed(B) == 1
