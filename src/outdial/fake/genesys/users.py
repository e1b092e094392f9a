"""Agents of the fake Genesys platform as the users API shows them: presence, routing
status, conversation summary (their events), the users reads and dropped expands.
"""

from __future__ import annotations

import random
from typing import Any

from outdial.fake.agents import (
    AgentState,
    Change,
    ExpandDrops,
    change_presence,
    new_agent,
    parse_expand,
    parse_users_query,
    presence_event_body,
    presence_rest_body,
    routing_event_body,
    routing_rest_body,
    summary_body,
    user_entity,
    users_page,
)
from outdial.fake.common.routes import Routes
from outdial.fake.genesys.core import Endpoint, not_found
from outdial.fake.genesys.events import EventsMixin
from outdial.http import Request, Response

__all__ = ["UsersMixin"]


class UsersMixin(EventsMixin):
    """The simulated agents' state, its changes and events, and the users reads."""

    presence_case: str
    _agents: dict[str, AgentState]
    _expand_drops: ExpandDrops
    _expand_rng: random.Random

    def _user_routes(self, routes: Routes[Endpoint]) -> None:
        routes.add("GET", "/api/v2/users", Endpoint(self._h_get_users))
        routes.add("GET", "/api/v2/users/{user_id}", Endpoint(self._h_get_user))
        routes.add(
            "GET", "/api/v2/users/{user_id}/presences/purecloud", Endpoint(self._h_get_presence)
        )
        routes.add(
            "GET", "/api/v2/users/{user_id}/routingstatus", Endpoint(self._h_get_routing_status)
        )

    @property
    def agents(self) -> list[str]:
        """The simulated agents' user ids."""
        return list(self._agents)

    def agent_presence(self, user_id: str) -> str:
        """The agent's current ``systemPresence`` (``Available``, ``On Queue``, ...), by the
        fake's name for it whatever ``presence_case`` the wire uses."""
        return self._agent(user_id).presence

    def agent_routing_status(self, user_id: str) -> str:
        """The agent's current routing status (``OFF_QUEUE``, ``IDLE``, ``INTERACTING``, ...)."""
        return self._agent(user_id).routing

    def conversation_summary(self, user_id: str) -> dict[str, Any]:
        """The agent's conversation summary now, as ``v2.users.{id}.conversationsummary``
        carries it."""
        return summary_body(self._agent(user_id))

    async def set_presence(
        self, user_id: str, system_presence: str, routing_status: str | None = None
    ) -> None:
        """Change an agent's presence (any case: ``Available``, ``AVAILABLE``) and publish
        what changed: the presence and, when it moves, the routing status.

        The platform sets routing itself (``OFF_QUEUE`` unless On Queue, then by the
        agent's calls), so ``routing_status`` may only be ``NOT_RESPONDING`` for an
        agent On Queue (it lasts until the presence is set again) or what the
        platform would report anyway; anything else raises :class:`ValueError`.
        Every call placed for an ``Offline`` agent ends agent-unavailable (the
        customer is never dialed) until the agent's presence changes again.
        """
        agent = self._agent(user_id)
        change = change_presence(agent, system_presence, self._clock.now(), routing_status)
        await self._apply(change)

    def add_agent(
        self,
        user_id: str,
        presence: str = "Available",
        routing_status: str | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Simulate one more agent (a no-op for one already simulated); no event is published.

        ``routing_status`` is as for :meth:`set_presence`; ``name`` (default ``Agent N``)
        is what the users API answers.
        """
        state = new_agent(
            user_id,
            self._clock.now(),
            name=name or f"Agent {len(self._agents) + 1}",
            presence=presence,
            routing_status=routing_status,
        )
        if user_id not in self._agents:
            self._agents[user_id] = state
            self._notify()

    async def publish_presence(
        self, user_id: str, system_presence: str, routing_status: str | None = None
    ) -> int:
        """Set an agent's presence and publish ``v2.users.{id}.presence`` even when unchanged.

        :meth:`set_presence` publishes only changes, as the platform does; this
        is the helper for a test that wants "an Available event now" (the user
        chose it again: a new ``modifiedDate``). A routing status event follows
        only when it changes. Returns how many sockets got the presence event.
        """
        agent = self._agent(user_id)
        change = change_presence(
            agent, system_presence, self._clock.now(), routing_status, republish=True
        )
        return await self._apply(change)

    def drop_expand(
        self, user_id: str | None, expand: str, rate: float = 1.0, *, single: bool = False
    ) -> None:
        """Leave ``expand`` (``presence``, ``routingStatus`` or ``conversationSummary``) out
        of ``GET /api/v2/users`` answers for ``user_id`` (None: every agent), as the
        platform may (expands are best effort).

        ``rate`` below 1 leaves it out of a seeded share of the reads; 0 removes the
        rule. With ``single`` the single-user read ``GET /api/v2/users/{id}`` drops it
        too; the dedicated reads (``presences/purecloud``, ``routingstatus``) never do.
        :meth:`clear_faults` removes every rule.
        """
        if user_id is not None:
            self._agent(user_id)
        self._expand_drops.set(user_id, expand, rate, single)

    @property
    def _upper(self) -> bool:
        return self.presence_case == "upper"

    async def _h_get_presence(self, request: Request, user_id: str) -> Response:
        agent = self._require_agent(user_id)
        return Response.json(200, presence_rest_body(agent, upper=self._upper))

    async def _h_get_routing_status(self, request: Request, user_id: str) -> Response:
        return Response.json(200, routing_rest_body(self._require_agent(user_id)))

    async def _h_get_users(self, request: Request) -> Response:
        query = parse_users_query(request.query_pairs)
        page = users_page(
            list(self._agents.values()),
            query,
            upper=self._upper,
            keep=lambda user_id, expand: not self._expand_dropped(user_id, expand, single=False),
        )
        return Response.json(200, page)

    async def _h_get_user(self, request: Request, user_id: str) -> Response:
        agent = self._require_agent(user_id)
        entity = user_entity(
            agent,
            parse_expand(request.query_pairs),
            upper=self._upper,
            keep=lambda expand: not self._expand_dropped(user_id, expand, single=True),
        )
        return Response.json(200, entity)

    def _expand_dropped(self, user_id: str, expand: str, *, single: bool) -> bool:
        rate = self._expand_drops.rate(user_id, expand, single=single)
        if rate <= 0:
            return False
        return rate >= 1 or self._expand_rng.random() < rate

    def _agent(self, user_id: str) -> AgentState:
        try:
            return self._agents[user_id]
        except KeyError:
            raise KeyError(f"{user_id!r} is not one of the fake's agents") from None

    def _require_agent(self, user_id: str) -> AgentState:
        agent = self._agents.get(user_id)
        if agent is None:
            raise not_found("User", "userId", user_id)
        return agent

    async def _apply(self, change: Change) -> int:
        """Keep the agent's new state and publish what changed in it: presence, routing
        status, conversation summary, in that order. Returns how many sockets got the
        presence event (0 when there was none)."""
        state = change.state
        self._agents[state.user_id] = state
        self._notify()
        prefix = f"v2.users.{state.user_id}"
        delivered = 0
        if change.presence:
            body = presence_event_body(state, upper=self._upper)
            delivered = await self.publish(f"{prefix}.presence", body)
        if change.routing:
            await self.publish(f"{prefix}.routingStatus", routing_event_body(state))
        if change.summary:
            await self.publish(f"{prefix}.conversationsummary", summary_body(state))
        return delivered
