"""Handlers end to end on a fake platform: dial, track the call, record the outcome."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from handlers_fakes import (
    AGENT,
    FakePlatform,
    call_event,
    callback_rule,
    clock,
    config,
    next_contact_rule,
    outdial_fields,
    presence,
)

from outdial.events import Event
from outdial.handlers import HandlerRegistry, Handlers, Match
from outdial.platforms.base import AgentState, PlatformError
from outdial.store import ContactRow, SqliteStore


def events_named(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, object]]:
    return [outdial_fields(r) for r in caplog.records if outdial_fields(r).get("event") == name]


async def make(*rules: object, registry: HandlerRegistry | None = None) -> Handlers:
    store = SqliteStore(":memory:")
    await store.import_contacts(
        [ContactRow(AGENT, "+441212345601"), ContactRow(AGENT, "+441212345602")]
    )
    cfg = config(*(rules or (next_contact_rule(),)))  # type: ignore[arg-type]
    return Handlers(cfg, FakePlatform(), store, clock(), registry=registry)


def test_topics_include_call_tracking() -> None:
    import anyio

    handlers = anyio.run(make)
    assert handlers.topics() == {
        "v2.users.agent-1.presence",
        "v2.users.agent-2.presence",
        "v2.users.agent-1.conversations.calls",
        "v2.users.agent-2.conversations.calls",
    }


@pytest.mark.anyio
async def test_answered_call_finishes_the_contact(caplog: pytest.LogCaptureFixture) -> None:
    h = await make()
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.handle(presence())
        for state, extra in [
            ("dialing", {}),
            ("connected", {"connectedTime": "t"}),
            ("dialing", {}),  # late and out of order: ignored
            ("disconnected", {"disconnectType": "peer"}),
        ]:
            await h.handle(call_event("conv-1", state, **extra))
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert (call.state, call.outcome) == ("ended", "answered")
    assert call.ended_at is not None
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts) == ("done", 1)
    assert [e["state"] for e in events_named(caplog, "call.state")] == ["connected", "ended"]
    [ended] = events_named(caplog, "call.ended")
    assert ended["outcome"] == "answered"
    assert await h.store.active_call_for_user(AGENT) is None


@pytest.mark.anyio
async def test_busy_call_is_due_again_later() -> None:
    h = await make()
    await h.handle(presence())
    await h.handle(call_event("conv-1", "disconnected", disconnectType="endpoint"))
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts, contact.last_outcome) == ("due", 1, "busy")
    assert contact.next_due_at == h.clock.now() + timedelta(seconds=600)
    # The agent is free again: the next trigger dials the next contact.
    await h.handle(presence(stamp="t2"))
    call = await h.store.get_call("conv-2")
    assert call is not None
    assert call.contact_id == 2


@pytest.mark.anyio
async def test_calls_we_did_not_place_are_ignored() -> None:
    h = await make()
    await h.handle(call_event("someone-elses", "connected"))
    assert await h.store.get_call("someone-elses") is None


@pytest.mark.anyio
async def test_early_call_event_is_applied_once_the_call_is_named() -> None:
    h = await make()
    # The platform's event for conv-1 arrives before the dial's response.
    await h.handle(call_event("conv-1", "alerting"))
    await h.handle(presence())
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.state == "ringing"


@pytest.mark.anyio
async def test_bad_events_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    h = await make(next_contact_rule(), callback_rule())
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.handle(Event(f"v2.users.{AGENT}.conversations.calls", {"participants": "x"}))
        # The callback rule's template has no address to read: skipped, not raised.
        await h.handle(
            Event(
                f"v2.users.{AGENT}.conversations.calls",
                {
                    "id": "c",
                    "participants": [{"id": "p", "purpose": "customer", "disconnectType": "peer"}],
                },
            )
        )
    assert events_named(caplog, "call.malformed")
    [skip] = events_named(caplog, "dial.skipped")
    assert skip["guard"] == "template"


@pytest.mark.anyio
async def test_a_failing_rule_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    h = await make(next_contact_rule("a"), next_contact_rule("b"))

    async def boom(match: Match) -> object:
        raise RuntimeError("bug")

    h.dialer.dial = boom  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.handle(presence())
    assert [e["where"] for e in events_named(caplog, "handler.error")] == ["rule a", "rule b"]


@pytest.mark.anyio
async def test_dialing_disabled_still_tracks_calls() -> None:
    h = await make()
    await h.handle(presence())
    h.dialing_enabled = False
    await h.handle(call_event("conv-1", "disconnected", disconnectType="timeout"))
    await h.handle(presence(stamp="t2"))
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.outcome == "no_answer"
    assert await h.store.get_call("conv-2") is None


@pytest.mark.anyio
async def test_refresh_reconciles_calls_then_agents() -> None:
    h = await make()
    platform = h.platform
    assert isinstance(platform, FakePlatform)
    await h.handle(presence())  # conv-1 placed
    # During the gap the call ended; the platform forgot it.
    platform.agents[AGENT] = AgentState(
        AGENT, {"presenceDefinition": {"systemPresence": "Available"}, "modifiedDate": "t9"}, None
    )
    await h.refresh([AGENT])
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert (call.state, call.outcome) == ("ended", "failed")
    # The refreshed presence dialed the next contact, since the agent is free.
    new = await h.store.get_call("conv-2")
    assert new is not None
    assert new.contact_id == 2


@pytest.mark.anyio
async def test_refresh_feeds_the_platforms_view_of_a_call() -> None:
    h = await make()
    platform = h.platform
    assert isinstance(platform, FakePlatform)
    await h.handle(presence())
    await h.handle(call_event("conv-1", "connected"))
    platform.calls["conv-1"] = dict(
        call_event("conv-1", "disconnected", disconnectType="client").body
    )
    await h.refresh([])
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.outcome == "answered"


@pytest.mark.anyio
async def test_refresh_survives_platform_errors(caplog: pytest.LogCaptureFixture) -> None:
    h = await make()

    async def broken(user_id: str) -> AgentState:
        raise PlatformError("down", status=500)

    h.platform.get_agent_state = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.refresh([AGENT])
    assert events_named(caplog, "handler.error")


@pytest.mark.anyio
async def test_custom_handlers() -> None:
    registry = HandlerRegistry()
    seen: list[tuple[str, dict[str, str]]] = []

    @registry.on(
        "v2.users.{userId}.presence",
        when={"presenceDefinition.systemPresence": "Away"},
        users=[AGENT],
    )
    async def on_away(event: Event, match: Match) -> None:
        seen.append((event.topic, dict(match.bindings)))

    @registry.on("v2.users.{userId}.presence")  # no users: rides on the rules' topics
    async def any_presence(event: Event, match: Match) -> None:
        seen.append(("any", dict(match.bindings)))

    @registry.on("v2.users.{userId}.presence", name="broken")
    async def broken(event: Event, match: Match) -> None:
        raise RuntimeError("handler bug")

    h = await make(registry=registry)
    assert f"v2.users.{AGENT}.presence" in h.topics()
    await h.handle(presence(value="Away"))
    assert seen == [
        (f"v2.users.{AGENT}.presence", {"userId": AGENT}),
        ("any", {"userId": AGENT}),
    ]
