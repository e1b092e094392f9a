"""The AgentLeaseStore contract, on every backend: one replica at a time holds an agent.

Each test runs on SQLite (a real file) and on PostgreSQL (a schema of its own),
with replicas as separate stores on one database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from outdial.store import AgentLease

from .conftest import OpenReplica

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=15)


async def test_a_free_lease_is_taken_and_renewed_by_its_owner_only(
    open_replica: OpenReplica,
) -> None:
    a, b = await open_replica(), await open_replica()
    assert await a.take_agent_leases("A", ["1", "2"], NOW, LATER) == {"1", "2"}
    # Held and not expired: the other owner gets none of them, its own agent is new.
    assert await b.take_agent_leases("B", ["1", "3"], NOW, LATER) == {"3"}
    # The holder renews.
    renewed = LATER + timedelta(seconds=15)
    assert await a.take_agent_leases("A", ["1"], NOW + timedelta(seconds=5), renewed) == {"1"}
    leases = await b.agent_leases(["1", "2", "3", "9"])
    assert leases == [
        AgentLease("1", "A", renewed),
        AgentLease("2", "A", LATER),
        AgentLease("3", "B", LATER),
    ]


async def test_an_expired_lease_or_one_of_a_gone_owner_is_taken_over(
    open_replica: OpenReplica,
) -> None:
    a, b = await open_replica(), await open_replica()
    await a.take_agent_leases("A", ["1", "2"], NOW, LATER)
    # Lapsed (its owner stopped renewing): free for the next taker.
    assert await b.take_agent_leases("B", ["1"], LATER, LATER + timedelta(seconds=15)) == {"1"}
    # Not lapsed, but its owner is known to have stopped (a dead pid on this host).
    assert await b.take_agent_leases("B", ["2"], NOW, LATER, gone=["A"]) == {"2"}
    assert {lease.owner for lease in await a.agent_leases(["1", "2"])} == {"B"}
    # The former holder does not get them back while they are held.
    assert await a.take_agent_leases("A", ["1", "2"], NOW, LATER) == set()


async def test_release_frees_only_the_owners_leases(open_replica: OpenReplica) -> None:
    a, b = await open_replica(), await open_replica()
    await a.take_agent_leases("A", ["1", "2", "3"], NOW, LATER)
    await b.take_agent_leases("B", ["4"], NOW, LATER)
    assert await a.release_agent_leases("A", ["1"]) == 1
    assert await b.take_agent_leases("B", ["1"], NOW, LATER) == {"1"}
    assert await a.release_agent_leases("A") == 2
    assert await a.release_agent_leases("A") == 0
    assert [(x.agent_id, x.owner) for x in await a.agent_leases(["1", "2", "3", "4"])] == [
        ("1", "B"),
        ("4", "B"),
    ]
    assert await a.take_agent_leases("A", [], NOW, LATER) == set()


async def test_of_concurrent_takers_of_a_free_lease_exactly_one_wins(
    open_replica: OpenReplica,
) -> None:
    replicas = [await open_replica() for _ in range(6)]
    won: dict[str, set[str]] = {}

    async def take(i: int) -> None:
        owner = f"owner-{i}"
        won[owner] = await replicas[i].take_agent_leases(owner, ["1", "2"], NOW, LATER)

    async with anyio.create_task_group() as tg:
        for i in range(len(replicas)):
            tg.start_soon(take, i)
    for agent in ("1", "2"):
        holders = [owner for owner, agents in won.items() if agent in agents]
        assert len(holders) == 1, won
        [lease] = await replicas[0].agent_leases([agent])
        assert lease.owner == holders[0]
