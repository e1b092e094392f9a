"""Connection leases in the store: which replica listens to which agent.

:class:`StoreLeases` is the daemon's :class:`~outdial.platforms.base.ConnectionLeases`
over an :class:`~outdial.store.base.AgentLeaseStore` shared by the replicas. An
agent's lease is taken when its source asks (:meth:`StoreLeases.hold`), renewed
by the daemon's lease loop (:meth:`StoreLeases.renew`, ``lease / 3`` apart) and
released on a clean stop (:meth:`StoreLeases.release_all`), so a standby
replica takes over within one recheck. A holder that crashed is noticed by
its lease lapsing, or at once when ``gone`` says so (same host, pid gone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from outdial.clock import Clock
from outdial.log import emit
from outdial.store.base import AgentLeaseStore

__all__ = ["StoreLeases"]

log = logging.getLogger("outdial.listener")


class StoreLeases:
    """Agents' connection leases for ``owner`` (this process), ``lease`` seconds long.

    ``gone(owner)`` tells whether another owner is known to have stopped (its
    leases are free at once, before they lapse).
    """

    def __init__(
        self,
        store: AgentLeaseStore,
        owner: str,
        clock: Clock,
        lease: float,
        gone: Callable[[str], bool] = lambda owner: False,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.lease = lease
        #: A standby replica asks as often as the holder renews.
        self.recheck_after = lease / 3
        self._gone = gone
        self._held: set[str] = set()

    @property
    def held(self) -> frozenset[str]:
        """The agents whose leases were ours at the latest take or renewal."""
        return frozenset(self._held)

    async def hold(self, agent_id: str) -> bool:
        """Take or renew ``agent_id``'s lease; False while another live replica holds it."""
        taken = await self._take({agent_id})
        return agent_id in taken

    def holds(self, agent_id: str) -> bool:
        """Whether the lease was ours at the latest take or renewal (no I/O)."""
        return agent_id in self._held

    async def release(self, agent_id: str) -> None:
        """Give ``agent_id``'s lease up (its connection is no longer wanted here)."""
        self._held.discard(agent_id)
        await self.store.release_agent_leases(self.owner, [agent_id])

    async def renew(self) -> set[str]:
        """Renew every lease held; returns those lost (another replica has them now)."""
        if not self._held:
            return set()
        before = set(self._held)
        taken = await self._take(before)
        lost = before - taken
        if lost:
            emit(log, "leases.lost", logging.WARNING, agents=",".join(sorted(lost)))
        return lost

    async def release_all(self) -> int:
        """Give up every lease of this process (a clean stop); returns how many."""
        self._held.clear()
        return await self.store.release_agent_leases(self.owner)

    async def _take(self, agents: set[str]) -> set[str]:
        now = self.clock.now()
        holders = await self.store.agent_leases(agents)
        gone = {x.owner for x in holders if x.owner != self.owner and self._gone(x.owner)}
        taken = await self.store.take_agent_leases(
            self.owner, agents, now, now + timedelta(seconds=self.lease), gone=gone
        )
        self._held = (self._held - agents) | taken
        return taken
