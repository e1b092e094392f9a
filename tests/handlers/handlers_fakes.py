"""A small in-memory Platform for the handler tests: records dials, scripts failures."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from outdial.clock import ManualClock
from outdial.config import Config, DialSpec, GuardsConfig, Rule
from outdial.events import Event
from outdial.platforms.base import (
    AgentState,
    CallSnapshot,
    ChannelInfo,
    DialRequest,
    PlacedCall,
    PlatformError,
    SubscriptionResult,
)

AGENT = "agent-1"
LONDON = "+441212345601"


class FakePlatform:
    """Answers place_call from a script: an exception to raise, else a new conversation id."""

    def __init__(self, script: Sequence[PlatformError | Exception] = ()) -> None:
        self.script: list[PlatformError | Exception] = list(script)
        self.requests: list[DialRequest] = []
        self.placed: list[str] = []
        self.calls: dict[str, Mapping[str, Any]] = {}
        self.agents: dict[str, AgentState] = {}

    async def place_call(self, request: DialRequest) -> PlacedCall:
        self.requests.append(request)
        if self.script:
            raise self.script.pop(0)
        cid = f"conv-{len(self.placed) + 1}"
        self.placed.append(cid)
        return PlacedCall(cid)

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        body = self.calls.get(conversation_id)
        return CallSnapshot(conversation_id, body) if body is not None else None

    async def get_agent_state(self, user_id: str) -> AgentState:
        return self.agents.get(user_id, AgentState(user_id, None, None))

    async def create_channel(self) -> ChannelInfo:
        return ChannelInfo("ch", "wss://x", None)

    async def channel_exists(self, channel_id: str) -> bool:
        return True

    async def get_subscriptions(self, channel_id: str) -> list[str]:
        return []

    async def put_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        return [SubscriptionResult(t, True) for t in topics]

    async def aclose(self) -> None:
        return None


def clock() -> ManualClock:
    # Monday noon UTC: inside the calling window in London.
    return ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))


def next_contact_rule(name: str = "next-contact") -> Rule:
    return Rule(
        name=name,
        topic="v2.users.{userId}.presence",
        users=[AGENT, "agent-2"],
        when={"presenceDefinition.systemPresence": "Available"},
        dial=DialSpec(user="{userId}", contact="next", caller_id="+4930123456"),
    )


def callback_rule() -> Rule:
    return Rule(
        name="callback",
        topic="v2.users.{userId}.conversations.calls",
        users=[AGENT],
        when={"participants.purpose": "customer", "participants.disconnectType": "peer"},
        dial=DialSpec(user="{userId}", phone_number="{participants.address}"),
    )


def config(*rules: Rule, guards: GuardsConfig | None = None) -> Config:
    return Config.model_validate(
        {
            "platform": {
                "api_url": "http://fake",
                "login_url": "http://fake",
                "client_id": "id",
                "client_secret": "secret",
            },
            "guards": (guards or GuardsConfig()).model_dump(),
            "rules": [r.model_dump() for r in rules],
        }
    )


def presence(user: str = AGENT, value: str = "Available", stamp: str = "t1") -> Event:
    return Event(
        topic=f"v2.users.{user}.presence",
        body={"presenceDefinition": {"systemPresence": value}, "modifiedDate": stamp},
    )


def call_event(
    cid: str, state: str, user: str = AGENT, address: str = LONDON, **customer: Any
) -> Event:
    return Event(
        topic=f"v2.users.{user}.conversations.calls",
        body={
            "id": cid,
            "participants": [
                {"id": "a", "purpose": "agent", "state": "connected", "user": {"id": user}},
                {
                    "id": "c",
                    "purpose": "customer",
                    "address": f"tel:{address}",
                    "state": state,
                    **customer,
                },
            ],
        },
    )


def outdial_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields ``log.emit`` attached to a record (empty for other records)."""
    fields = getattr(record, "outdial", None)
    return dict(fields) if isinstance(fields, dict) else {}
