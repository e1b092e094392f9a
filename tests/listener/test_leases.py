"""Connection leases over the store: take, renew, lose, release; gone owners' leases are free."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from outdial.app import owner_gone_here
from outdial.clock import ManualClock
from outdial.handlers.reconcile import ClaimOwner
from outdial.listener.leases import StoreLeases
from outdial.store import SqliteStore

pytestmark = pytest.mark.anyio


async def test_one_holder_at_a_time_renewed_lost_and_released(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SqliteStore(tmp_path / "outdial.db")
    try:
        a = StoreLeases(store, "a", clock, lease=15.0)
        b = StoreLeases(store, "b", clock, lease=15.0)
        assert a.recheck_after == 5.0
        assert await a.hold("1")
        assert not await b.hold("1")
        assert a.holds("1")
        assert not b.holds("1")
        clock.advance(10.0)
        assert await a.renew() == set()  # renewed: still a's 15 s from now
        clock.advance(10.0)
        assert not await b.hold("1")
        # a stalls past its lease: b takes the agent, and a's next renewal says so.
        clock.advance(20.0)
        assert await b.hold("1")
        assert await a.renew() == {"1"}
        assert not a.holds("1")
        assert await b.release_all() == 1
        assert await a.hold("1")
        await a.release("1")
        assert not a.holds("1")
        assert await store.agent_leases(["1"]) == []
    finally:
        await store.aclose()


async def test_a_gone_owners_lease_is_free_before_it_lapses(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SqliteStore(tmp_path / "outdial.db")
    try:
        dead = StoreLeases(store, "dead", clock, lease=15.0)
        assert await dead.hold("1")
        alive = StoreLeases(store, "new", clock, lease=15.0, gone=lambda owner: owner == "dead")
        assert await alive.hold("1")
        [lease] = await store.agent_leases(["1"])
        assert (lease.owner, lease.until) == ("new", clock.now() + timedelta(seconds=15))
    finally:
        await store.aclose()


def test_only_a_pid_gone_on_this_host_is_a_gone_owner() -> None:
    me = ClaimOwner("here", os.getpid(), "n1")
    # Another daemon in this very process: alive, whatever its nonce.
    assert not owner_gone_here(str(ClaimOwner("here", os.getpid(), "n2")), me)
    assert not owner_gone_here(str(me), me)
    # Another host: only its lease lapsing can tell.
    assert not owner_gone_here(str(ClaimOwner("there", 2**22 + 7, "n")), me)
    assert not owner_gone_here("not an owner", me)
    # A pid that runs no process here.
    assert owner_gone_here(str(ClaimOwner("here", 2**22 + 7, "n")), me)
