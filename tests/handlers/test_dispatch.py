"""Handlers end to end on a fake platform: dial, track the call, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from handlers_fakes import (
    AGENT,
    FakePlatform,
    Lost,
    call_event,
    callback_rule,
    clock,
    config,
    next_contact_rule,
    outdial_fields,
    presence,
)

from outdial.clock import ManualClock
from outdial.config import Config, GuardsConfig
from outdial.events import Event
from outdial.handlers import DoNotCallFileError, HandlerRegistry, Handlers, Match
from outdial.platforms.base import AgentState, AmbiguousOutcome, PlatformError
from outdial.platforms.genesys.codec import GenesysCodec
from outdial.store import ContactRow, SqliteStore


def events_named(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, object]]:
    return [outdial_fields(r) for r in caplog.records if outdial_fields(r).get("event") == name]


async def make(*rules: object, registry: HandlerRegistry | None = None) -> Handlers:
    store = SqliteStore(":memory:")
    await store.import_contacts(
        [ContactRow(AGENT, "+441212345601"), ContactRow(AGENT, "+441212345602")]
    )
    cfg = config(*(rules or (next_contact_rule(),)))  # type: ignore[arg-type]
    return Handlers(cfg, FakePlatform(), store, clock(), codec=GenesysCodec(), registry=registry)


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
async def test_a_call_event_is_one_store_operation_and_at_most_one_write() -> None:
    h = await make()
    await h.handle(presence())
    used: list[str] = []
    for name in (
        "get_call",
        "record_call_progress",
        "upsert_call",
        "get_contact",
        "record_outcome",
        "release_contact",
    ):
        method: Callable[..., Any] = getattr(h.store, name)

        def counted(
            *args: Any, _name: str = name, _m: Callable[..., Any] = method, **kw: Any
        ) -> Any:
            used.append(_name)
            return _m(*args, **kw)

        setattr(h.store, name, counted)
    advance = h.store.advance_call

    async def advance_counted(*args: Any, **kw: Any) -> Any:
        advanced = await advance(*args, **kw)
        wrote = advanced is not None and advanced.written is not None
        used.append("advance_call, written" if wrote else "advance_call")
        return advanced

    setattr(h.store, "advance_call", advance_counted)  # noqa: B010
    await h.handle(call_event("conv-1", "connected", connectedTime="t"))
    assert used == ["advance_call, written"]
    used.clear()
    await h.handle(call_event("conv-1", "connected", connectedTime="t"))
    assert used == ["advance_call"]  # no change: nothing written
    used.clear()
    await h.handle(call_event("conv-1", "disconnected", disconnectType="peer"))
    # The call's end and its contact's outcome: one operation, one write.
    assert used == ["advance_call, written"]
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts, contact.last_outcome) == ("done", 1, "answered")


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


def agent_leg_event(cid: str, state: str, **agent: str) -> Event:
    """A conversation event with only the agent leg: the customer not (yet) dialed."""
    return Event(
        topic=f"v2.users.{AGENT}.conversations.calls",
        body={
            "id": cid,
            "participants": [
                {"id": "a", "purpose": "agent", "state": state, "user": {"id": AGENT}, **agent}
            ],
        },
    )


@pytest.mark.anyio
async def test_agent_unavailable_releases_the_contact_without_an_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await make()
    # The first contact had one attempt already (busy), and is due again now; the second
    # is done, so the first is the one dialed.
    await h.store.record_outcome(1, "busy", h.clock.now() - timedelta(hours=1), h.clock.now())
    await h.store.record_outcome(2, "answered", h.clock.now(), None)
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.handle(presence())
        dialing = await h.store.get_contact(1)
        assert dialing is not None
        assert dialing.state == "dialing"
        await h.handle(agent_leg_event("conv-1", "alerting"))
        call = await h.store.get_call("conv-1")
        assert call is not None
        assert call.state == "dialing"  # the agent's station ringing is no news
        assert isinstance(h.clock, ManualClock)
        h.clock.advance(30)
        await h.handle(agent_leg_event("conv-1", "disconnected", disconnectType="timeout"))
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert (call.state, call.outcome) == ("ended", "agent_unavailable")
    contact = await h.store.get_contact(1)
    assert contact is not None
    # Back to due, no attempt counted, its outcome and due time as they were.
    assert (contact.state, contact.attempts, contact.last_outcome) == ("due", 1, "busy")
    assert contact.next_due_at == dialing.next_due_at
    [ended] = events_named(caplog, "call.ended")
    assert ended["outcome"] == "agent_unavailable"
    assert ended["disconnect_type"] == "timeout"
    assert ended["attempt_counted"] is False
    assert ended["next_due_at"] == h.clock.now().isoformat()
    assert await h.store.active_call_for_user(AGENT) is None
    [summary] = await h.store.call_summary()
    assert (summary.placed, summary.agent_unavailable, summary.failed) == (1, 1, 0)
    # The agent is free and the contact kept its place: the next trigger dials it again.
    await h.handle(presence(stamp="t2"))
    again = await h.store.get_call("conv-2")
    assert again is not None
    assert again.contact_id == 1


@pytest.mark.anyio
async def test_agent_unavailable_never_uses_up_the_last_attempt() -> None:
    h = await make()
    now = h.clock.now()
    for _ in range(2):  # two of the three attempts used
        await h.store.record_outcome(1, "no_answer", now - timedelta(hours=2), now)
    await h.store.record_outcome(2, "answered", now, None)
    for n in range(1, 4):
        await h.handle(presence(stamp=f"t{n}"))
        await h.handle(agent_leg_event(f"conv-{n}", "disconnected", disconnectType="error"))
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts) == ("due", 2)
    calls = [await h.store.get_call(f"conv-{n}") for n in range(1, 4)]
    assert [(c.contact_id, c.outcome) for c in calls if c] == [(1, "agent_unavailable")] * 3


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

    cast(Any, h.platform).get_agent_state = broken
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


# Reconciling unknown dials from the handlers


async def make_lost(*, listed: bool) -> tuple[Handlers, FakePlatform]:
    h = await make()
    platform = h.platform
    assert isinstance(platform, FakePlatform)
    platform.clock = h.clock
    platform.script.append(Lost(AmbiguousOutcome("read timeout after send")))
    if not listed:
        platform.unlisted.add("conv-1")
    return h, platform


@pytest.mark.anyio
async def test_reconcile_unknown_finds_the_call_and_tracks_it_to_its_end() -> None:
    h, platform = await make_lost(listed=False)
    await h.handle(presence())
    assert await h.reconcile_unknown() == 0  # not listed yet: still unknown
    platform.unlisted.clear()
    # Meanwhile the call ended busy, and its events were missed.
    platform.calls["conv-1"] = dict(
        call_event("conv-1", "disconnected", disconnectType="endpoint").body
    )
    assert await h.reconcile_unknown() == 1
    assert await h.reconcile_unknown() == 0
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert (call.state, call.outcome) == ("ended", "busy")
    contact = await h.store.get_contact(1)
    assert contact is not None
    assert (contact.state, contact.attempts) == ("due", 1)
    assert len(platform.requests) == 1


@pytest.mark.anyio
async def test_early_events_of_a_reconciled_call_are_applied() -> None:
    h, platform = await make_lost(listed=False)
    await h.handle(presence())
    # The call's events arrive while its dial is unknown: kept, not lost.
    await h.handle(call_event("conv-1", "alerting"))
    platform.unlisted.clear()
    platform.calls["conv-1"] = dict(call_event("conv-1", "alerting").body)
    assert await h.reconcile_unknown() == 1
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.state == "ringing"


@pytest.mark.anyio
async def test_reconcile_unknown_resends_a_dial_the_platform_never_saw() -> None:
    h = await make()
    platform = h.platform
    assert isinstance(platform, FakePlatform)
    platform.clock = h.clock
    platform.script.append(AmbiguousOutcome("connection dropped"))
    await h.handle(presence())
    assert await h.reconcile_unknown() == 0
    h.dialing_enabled = False
    assert isinstance(h.clock, ManualClock)
    h.clock.advance(3600)
    assert await h.reconcile_unknown() == 0  # draining: nothing is sent again
    h.dialing_enabled = True
    assert await h.reconcile_unknown() == 1
    assert len(platform.requests) == 2
    assert platform.placed == ["conv-1"]
    assert await h.store.get_call("conv-1") is not None


@pytest.mark.anyio
async def test_refresh_reconciles_before_it_dials_again() -> None:
    h, platform = await make_lost(listed=True)
    platform.unlisted.add("conv-1")
    await h.handle(presence())
    platform.unlisted.clear()
    platform.calls["conv-1"] = dict(call_event("conv-1", "connected").body)
    platform.agents[AGENT] = AgentState(
        AGENT, {"presenceDefinition": {"systemPresence": "Available"}, "modifiedDate": "t9"}, None
    )
    await h.refresh([AGENT])
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.state == "connected"
    # The refreshed presence found the agent on the reconciled call: no second dial.
    assert len(platform.requests) == 1


# The do-not-call file


def dnc_config(path: Path | None) -> Config:
    guards = GuardsConfig(
        default_region="GB", do_not_call_file=str(path) if path is not None else None
    )
    return config(next_contact_rule(), guards=guards)


@pytest.mark.anyio
async def test_start_loads_the_do_not_call_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text(
        "# never call these\n"
        "+44 121 234 5601\n"
        "\n"
        "0121 234 5602   # national format, read in GB\n"
        "tel:+4930123456\n"
        "+441212345601\n",  # listed twice
        encoding="utf-8",
    )
    store = SqliteStore(":memory:")
    await store.import_contacts([ContactRow(AGENT, "+441212345602")])
    h = Handlers(dnc_config(path), FakePlatform(), store, clock(), codec=GenesysCodec())
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.start()
    for number in ("+441212345601", "+441212345602", "+4930123456"):
        assert await store.is_do_not_call(number), number
    assert not await store.is_do_not_call("+441212345603")
    [loaded] = events_named(caplog, "do_not_call.loaded")
    assert (loaded["numbers"], loaded["new"]) == (3, 3)
    await h.start()  # idempotent
    # The only contact is listed: the dial is denied at dial time.
    await h.handle(presence())
    assert h.platform.requests == []  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_bad_do_not_call_lines_fail_startup_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("+441212345601\nnot a number\n# ok\n12345\n+441212345602\n", encoding="utf-8")
    store = SqliteStore(":memory:")
    h = Handlers(dnc_config(path), FakePlatform(), store, clock(), codec=GenesysCodec())
    with pytest.raises(DoNotCallFileError) as caught:
        await h.start()
    message = str(caught.value)
    assert str(path) in message
    assert "2 line(s)" in message
    assert "line 2: 'not a number'" in message
    assert "line 4: '12345'" in message
    assert [p.line for p in caught.value.problems] == [2, 4]
    # Nothing half-loaded.
    assert not await store.is_do_not_call("+441212345601")


@pytest.mark.anyio
async def test_missing_do_not_call_file_fails_startup(tmp_path: Path) -> None:
    h = Handlers(
        dnc_config(tmp_path / "nope.txt"),
        FakePlatform(),
        SqliteStore(":memory:"),
        clock(),
        codec=GenesysCodec(),
    )
    with pytest.raises(DoNotCallFileError, match="cannot read it"):
        await h.start()


@pytest.mark.anyio
async def test_start_without_a_do_not_call_file_does_nothing() -> None:
    h = Handlers(
        dnc_config(None), FakePlatform(), SqliteStore(":memory:"), clock(), codec=GenesysCodec()
    )
    await h.start()


@pytest.mark.anyio
async def test_a_reload_brings_new_guards_to_the_next_dial() -> None:
    h = await make()
    closed = GuardsConfig(calling_window=("13:00", "21:00"))  # it is noon in London
    await h.apply_config(config(next_contact_rule(), guards=closed))
    assert h.config.guards == closed
    await h.handle(presence())
    platform = h.platform
    assert isinstance(platform, FakePlatform)
    assert platform.requests == []  # the window the reload set is not open yet
    await h.apply_config(config(next_contact_rule()))
    await h.handle(presence(stamp="t2"))
    assert len(platform.requests) == 1


@pytest.mark.anyio
async def test_prepare_hands_back_the_dial_and_does_the_rest_at_once() -> None:
    """What waits on the platform (the dial) is returned to run apart; nothing else is."""
    h = await make()
    platform = cast(FakePlatform, h.platform)
    assert await h.prepare(presence(value="Away")) is None, "nothing to dial: all done here"
    rest = await h.prepare(presence(stamp="t2"))
    assert rest is not None
    assert platform.placed == [], "the dial waits for the step to run"
    await rest()
    assert platform.placed == ["conv-1"]
    # The dialed call's events are quick (tracking only): done at once.
    assert await h.prepare(call_event("conv-1", "connected", connectedTime="t")) is None
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.state == "connected"
