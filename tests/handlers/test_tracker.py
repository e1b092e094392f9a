"""The call tracker's early-events buffer, and the router wiring it to the dialer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from handlers_fakes import (
    AGENT,
    LONDON,
    FakePlatform,
    Lost,
    call_event,
    clock,
    config,
    next_contact_rule,
    outdial_fields,
    presence,
)

from outdial.domain import CallSeen, CallState, CallUpdate
from outdial.handlers import Handlers
from outdial.handlers.tracker import EarlyCall, EarlyCalls
from outdial.platforms.base import AmbiguousOutcome
from outdial.platforms.genesys.codec import GenesysCodec
from outdial.store import ContactRow, SqliteStore

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def seen(cid: str, *, number: str | None = LONDON, outbound: bool = True) -> CallSeen:
    return CallSeen(CallUpdate(cid, CallState.RINGING), number=number, outbound=outbound)


def test_early_calls_keep_the_newest_calls_only() -> None:
    early = EarlyCalls(size=2)
    for i in range(3):
        early.keep(EarlyCall(AGENT, seen(f"conv-{i}"), T0 + timedelta(seconds=i)))
    assert early.pop("conv-0") is None  # the oldest went first
    kept = early.pop("conv-2")
    assert kept is not None
    assert kept.seen_at == T0 + timedelta(seconds=2)
    assert early.pop("conv-2") is None  # taken once


def test_early_calls_a_call_seen_again_is_the_newest() -> None:
    early = EarlyCalls(size=2)
    early.keep(EarlyCall(AGENT, seen("conv-0"), T0))
    early.keep(EarlyCall(AGENT, seen("conv-1"), T0))
    early.keep(EarlyCall(AGENT, seen("conv-0"), T0 + timedelta(seconds=5)))
    early.keep(EarlyCall(AGENT, seen("conv-2"), T0))
    assert early.pop("conv-1") is None
    assert early.pop("conv-0") is not None


def test_recent_calls_are_the_agents_outbound_calls_with_a_number() -> None:
    early = EarlyCalls()
    started = T0 - timedelta(seconds=3)
    early.keep(EarlyCall(AGENT, seen("mine"), T0))
    early.keep(
        EarlyCall(
            AGENT,
            CallSeen(CallUpdate("dated", CallState.RINGING), number=LONDON, started_at=started),
            T0,
        )
    )
    early.keep(EarlyCall("agent-2", seen("theirs"), T0))
    early.keep(EarlyCall(AGENT, seen("inbound", outbound=False), T0))
    early.keep(EarlyCall(AGENT, seen("no-number", number=None), T0))
    calls = {c.conversation_id: c.started_at for c in early.recent_calls(AGENT)}
    assert calls == {"mine": T0, "dated": started}


@pytest.mark.anyio
async def test_the_dialer_looks_for_an_unknown_dial_on_the_agents_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Wired at construction: the call is found on its events, the history never read."""
    store = SqliteStore(":memory:")
    await store.import_contacts([ContactRow(AGENT, LONDON)])
    platform = FakePlatform()
    h = Handlers(config(next_contact_rule()), platform, store, clock(), codec=GenesysCodec())
    platform.clock = h.clock
    platform.script.append(Lost(AmbiguousOutcome("read timeout after send")))
    platform.unlisted.add("conv-1")  # the platform's history lags
    await h.handle(presence())
    assert await h.store.get_call("conv-1") is None
    assert len(platform.lookups) == 1  # looked for at once, not listed yet
    platform.calls["conv-1"] = dict(call_event("conv-1", "alerting").body)
    with caplog.at_level(logging.INFO, logger="outdial"):
        await h.handle(call_event("conv-1", "alerting"))
        assert await h.reconcile_unknown() == 1
    placed = [outdial_fields(r) for r in caplog.records if outdial_fields(r).get("reconciled")]
    assert [p.get("found_in") for p in placed] == ["events"]
    call = await h.store.get_call("conv-1")
    assert call is not None
    assert call.state == "ringing"
    assert len(platform.requests) == 1
    assert len(platform.lookups) == 1  # found on the events: the history was not asked again
