"""A small in-memory Platform for the handler tests: records dials, scripts failures."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from outdial.clock import Clock, ManualClock
from outdial.config import Config, DialSpec, GuardsConfig, Rule
from outdial.events import Event
from outdial.handlers.dialer import Dialer, DialResult, RetryPolicy
from outdial.handlers.reconcile import ReconcilePolicy
from outdial.handlers.rules import Match, RuleIndex
from outdial.platforms.base import (
    AgentState,
    CallSnapshot,
    ChannelInfo,
    DialRequest,
    OutboundCall,
    PlacedCall,
    PlatformError,
    SubscriptionResult,
)
from outdial.store import ContactRow, SqliteStore

AGENT = "agent-1"
LONDON = "+441212345601"


@dataclass(frozen=True)
class Lost:
    """A script entry: the platform places the call, then the answer is lost with ``error``."""

    error: Exception


class FakePlatform:
    """Answers place_call from a script: an exception to raise, else a new conversation id.

    A :class:`Lost` entry places the call and then raises its error (the
    answer never came back). Every placed call is listed by
    ``find_outbound_calls`` unless its id is in ``unlisted`` (the platform's
    history lagging); ``find_script`` holds errors for the next lookups.
    """

    def __init__(
        self, script: Sequence[PlatformError | Exception | Lost] = (), clock: Clock | None = None
    ) -> None:
        self.script: list[PlatformError | Exception | Lost] = list(script)
        self.clock = clock
        self.requests: list[DialRequest] = []
        self.placed: list[str] = []
        self.history: list[tuple[str, OutboundCall]] = []
        self.unlisted: set[str] = set()
        self.find_script: list[Exception] = []
        self.lookups: list[tuple[str, datetime, datetime]] = []
        self.lookup_numbers: list[str | None] = []
        self.calls: dict[str, Mapping[str, Any]] = {}
        self.agents: dict[str, AgentState] = {}

    def _now(self) -> datetime:
        return self.clock.now() if self.clock else datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    async def place_call(self, request: DialRequest) -> PlacedCall:
        self.requests.append(request)
        entry = self.script.pop(0) if self.script else None
        if isinstance(entry, Exception):
            raise entry
        cid = f"conv-{len(self.placed) + 1}"
        self.placed.append(cid)
        call = OutboundCall(cid, self._now(), f"tel:{request.phone_number}")
        self.history.append((request.user_id, call))
        if isinstance(entry, Lost):
            raise entry.error
        return PlacedCall(cid)

    async def find_outbound_calls(
        self,
        user_id: str,
        since: datetime,
        until: datetime,
        phone_number: str | None = None,
    ) -> list[OutboundCall]:
        # Not narrowed by number: the platform need not, and the dialer must check it.
        self.lookups.append((user_id, since, until))
        self.lookup_numbers.append(phone_number)
        if self.find_script:
            raise self.find_script.pop(0)
        return [
            call
            for user, call in self.history
            if user == user_id
            and since <= call.started_at < until
            and call.conversation_id not in self.unlisted
        ]

    async def add_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        return [SubscriptionResult(t, True) for t in topics]

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        body = self.calls.get(conversation_id)
        return CallSnapshot(conversation_id, body) if body is not None else None

    async def get_agent_state(self, user_id: str) -> AgentState:
        return self.agents.get(user_id, AgentState(user_id, None, None))

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> list[AgentState]:
        return [await self.get_agent_state(u) for u in dict.fromkeys(user_ids)]

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


class Harness:
    """A Dialer on an in-memory store and the scripted platform; sleeping only moves the clock."""

    def __init__(
        self,
        store: SqliteStore,
        platform: FakePlatform,
        guards: GuardsConfig,
        policy: ReconcilePolicy | None = None,
    ) -> None:
        self.store = store
        self.platform = platform
        self.clock: ManualClock = clock()
        platform.clock = self.clock
        self.sleeps: list[float] = []
        self.dialer = Dialer(
            platform,
            store,
            guards,
            self.clock,
            retry=RetryPolicy(attempts=3, base=0.001, cap=0.002),
            rng=random.Random(7),
            sleep=self.sleep,
            reconcile_policy=policy,
        )
        self.index = RuleIndex.compile([next_contact_rule(), callback_rule()])

    async def sleep(self, seconds: float) -> None:
        # Time moves, nothing waits.
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def match(self, event: Event) -> Match:
        [m] = self.index.match(event)
        return m

    async def dial(self, event: Event) -> DialResult:
        return await self.dialer.dial(self.match(event))


async def make(
    tmp_path: object,
    *script: Exception | Lost,
    guards: GuardsConfig | None = None,
    contacts: int = 2,
    policy: ReconcilePolicy | None = None,
) -> Harness:
    store = SqliteStore(":memory:")
    await store.import_contacts(
        [ContactRow(AGENT, f"+4412123456{i:02d}", name=f"c{i}") for i in range(1, contacts + 1)]
    )
    return Harness(store, FakePlatform(script), guards or GuardsConfig(), policy)


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
