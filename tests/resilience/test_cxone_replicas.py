"""Two replicas on CXone: one listens to an agent, the other stands by and takes over.

An agent has one CXone session, so the replica holding the agent's lease in the
shared store polls it and the other stands by (no session, no polls, no dials
for that agent). When the holder stops, the standby replica takes the agent over
and works through the rest of the list: each contact called once. When the holder
crashes (its lease left behind, never released), the standby replica takes over
once that lease lapses.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import anyio
import anyio.abc
import pytest
from backends import backend
from daemon_harness import NUMBERS, daemon_for

from outdial.config import Config, parse_config
from outdial.fake import Outcome
from outdial.store.base import Store
from outdial.store.postgres import PostgresStore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CXONE = backend("cxone")


async def test_when_the_holder_stops_the_standby_replica_takes_the_agent_over(
    postgres_url: str, postgres_schema: str
) -> None:
    numbers = NUMBERS[:3]
    [agent] = CXONE.agent_ids(1)
    stop_holder = anyio.Event()

    async def holder(
        config: Config, store: Store, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        async with daemon_for(config, contacts=[(agent, n) for n in numbers], store=store) as a:
            await a.until("cxone.session_started")
            task_status.started()
            await a.until("call.ended")
            await stop_holder.wait()

    async with CXONE.start([agent]) as fake:
        for number in numbers:
            fake.set_outcome(number, Outcome.ANSWERED)
        config = fake.config("postgresql://unused")
        first = await PostgresStore.connect(postgres_url, schema=postgres_schema)
        second = await PostgresStore.connect(postgres_url, schema=postgres_schema)
        # Each daemon_for restores the logger's level on exit, and the holder exits first:
        # at DEBUG from the outset, the standby replica's events stay logged after that.
        logger = logging.getLogger("outdial")
        level = logger.level
        logger.setLevel(logging.DEBUG)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(holder, config, first)
                # (Both daemons log to one logger: events are told apart by what they say.)
                async with daemon_for(config, store=second) as b:
                    await b.until("cxone.standby", agent=agent)
                    await fake.wait_for_calls(1)
                    # On standby: no session of its own, so no stale session ids either.
                    sessions_on_standby = len(b.log.named("cxone.session_started"))
                    # The holder stops cleanly: it releases the lease as it goes.
                    stop_holder.set()
                    await b.until("cxone.lease_taken", agent=agent)
                    await fake.wait_for_calls(len(numbers))
                    await b.log.until(lambda: bool(b.log.named("dial.skipped", guard="contacts")))
                    [lease] = await second.agent_leases([agent])
                    owner = str(b.daemon.handlers.dialer.owner)
        finally:
            logger.setLevel(level)
            await first.aclose()
            await second.aclose()
    assert sessions_on_standby == 0
    assert lease.owner == owner
    assert sorted(fake.numbers()) == sorted(numbers)


async def test_a_crashed_holders_lease_lapses_and_the_standby_replica_dials(
    postgres_url: str, postgres_schema: str
) -> None:
    """A holder that crashed never released its lease (here: one of another host's
    process, which no pid check can clear): the standby replica waits it out, then
    takes the agent and dials."""
    [agent] = CXONE.agent_ids(1)
    number = NUMBERS[0]
    async with CXONE.start([agent]) as fake:
        fake.set_outcome(number, Outcome.ANSWERED)
        data = fake.config_data("postgresql://unused")
        data["reconcile"] = {"lease": 1.5}
        config = parse_config(data, "test", fake.env)
        store = await PostgresStore.connect(postgres_url, schema=postgres_schema)
        try:
            # The crashed holder's lease, still running for a second.
            now = datetime.now(UTC)
            crashed = "elsewhere:4242:dead"
            assert await store.take_agent_leases(
                crashed, [agent], now, now + timedelta(seconds=1.0)
            ) == {agent}
            async with daemon_for(config, contacts=[(agent, number)], store=store) as b:
                await b.until("cxone.standby", agent=agent)
                assert fake.numbers() == []
                await b.until("cxone.lease_taken", agent=agent)
                await b.until("call.ended")
                [lease] = await store.agent_leases([agent])
        finally:
            await store.aclose()
    assert fake.numbers() == [number]
    assert lease.owner == str(b.daemon.handlers.dialer.owner)
