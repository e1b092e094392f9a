"""Re-reading CXone agents after a gap: their state and their active contacts.

Each agent is two session-free reads (``agents/{id}/states`` and
``contacts/active?agentId=``); the answer is an :class:`CxoneAgentSnapshot`
whose :meth:`~CxoneAgentSnapshot.reread_events` are the ``AgentState`` and
``CallContactEvent`` events a live session would have carried, on the codec's
topics. Retryable failures are retried with full-jitter backoff, on the
injected clock, until the caller's deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from random import Random
from typing import Any, TypeVar

from outdial.clock import Clock
from outdial.platforms.base import RetryableError
from outdial.platforms.cxone.client import CxoneClient
from outdial.platforms.cxone.codec import AGENT_STATE, CALL_CONTACT, topic_for
from outdial.platforms.cxone.shapes import active_contact_event, agent_state_event

__all__ = ["CxoneAgentSnapshot", "CxoneAgents"]

#: Full-jitter backoff of a retried read.
READ_RETRY_BASE = 0.5
READ_RETRY_CAP = 10.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class CxoneAgentSnapshot:
    """One agent re-read: its state event and its active contacts' events."""

    user_id: str
    known: bool
    state: Mapping[str, Any] | None = None
    contacts: tuple[Mapping[str, Any], ...] = ()

    def reread_events(self) -> list[tuple[str, Mapping[str, Any]]]:
        """``(topic, body)``: the ``AgentState`` first, then each ``CallContactEvent``."""
        events: list[tuple[str, Mapping[str, Any]]] = []
        if self.state is not None:
            events.append((topic_for(self.user_id, AGENT_STATE), dict(self.state)))
        events.extend((topic_for(self.user_id, CALL_CONTACT), dict(c)) for c in self.contacts)
        return events


class CxoneAgents:
    """The :class:`~outdial.platforms.base.AgentStateReader` of CXone."""

    def __init__(self, client: CxoneClient, clock: Clock, rng: Random) -> None:
        self._client = client
        self._clock = clock
        self._rng = rng

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> list[CxoneAgentSnapshot]:
        """Every distinct agent's state, in order; unknown agents ``known=False``."""
        deadline = self._clock.monotonic() + give_up_after
        snapshots: list[CxoneAgentSnapshot] = []
        for agent in dict.fromkeys(user_ids):
            state = await self._until(partial(self._client.agent_state, agent), deadline)
            if state is None:
                snapshots.append(CxoneAgentSnapshot(agent, known=False))
                continue
            contacts = await self._until(partial(self._client.active_contacts, agent), deadline)
            snapshots.append(
                CxoneAgentSnapshot(
                    agent,
                    known=True,
                    state=agent_state_event(state),
                    contacts=tuple(active_contact_event(c) for c in contacts),
                )
            )
        return snapshots

    async def _until(self, read: Callable[[], Awaitable[_T]], deadline: float) -> _T:
        attempt = 0
        while True:
            try:
                return await read()
            except RetryableError as exc:
                ceiling = min(READ_RETRY_CAP, READ_RETRY_BASE * (2**attempt))
                attempt += 1
                delay = max(self._rng.uniform(0.0, ceiling), exc.retry_after or 0.0)
                if self._clock.monotonic() + delay >= deadline:
                    raise
                await self._clock.sleep_until(self._clock.monotonic() + delay)
