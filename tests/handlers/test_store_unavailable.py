"""The handlers and the dialer while the store's database is away.

A dial whose claim cannot be written is never sent; the answer to a dial
already sent is written once the store takes it again; nothing the store
raises escapes ``handle`` or ``refresh``. The store is made "away" the way it
is in production: its health says so and its operations fail at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from handlers_fakes import (
    AGENT,
    FakePlatform,
    call_event,
    clock,
    config,
    make,
    next_contact_rule,
    outdial_fields,
    presence,
)

from outdial.handlers import Handlers
from outdial.platforms.genesys.codec import GenesysCodec
from outdial.store import CallRecord, ContactRow, SqliteStore, StoreUnavailable

pytestmark = pytest.mark.anyio


def away(store: SqliteStore) -> None:
    """The database went away and is not probed again during the test."""
    store.health.probe_interval = 3600.0
    store.health.failed(StoreUnavailable("connection", "refused"), time.monotonic())


def back(store: SqliteStore) -> None:
    """The next operation probes (and finds the database answering)."""
    store.health.probe_interval = 0.0


def events_named(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [outdial_fields(r) for r in caplog.records if outdial_fields(r).get("event") == name]


async def test_a_dial_whose_claim_cannot_be_written_is_not_sent() -> None:
    h = await make(None)
    away(h.store)
    with pytest.raises(StoreUnavailable):
        await h.dial(presence())
    assert h.platform.requests == []
    back(h.store)
    result = await h.dial(presence())  # the same trigger, once the store is back
    assert result.status == "placed"
    assert len(h.platform.requests) == 1


async def test_a_placed_call_is_recorded_once_the_store_takes_it_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="outdial")
    h = await make(None)
    store = h.store
    record_placed = store.record_placed
    failures = 3

    async def flaky(key: str, call: CallRecord) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            away(store)  # the database went away while the request was out
            raise StoreUnavailable("connection", "server closed the connection")
        back(store)
        await record_placed(key, call)

    store.record_placed = flaky  # type: ignore[method-assign]
    result = await h.dial(presence())
    assert result.status == "placed"
    claim = await store.get_claim(result.key or "")
    assert claim is not None
    assert claim.state == "placed"
    assert await store.get_call(result.conversation_id or "") is not None
    assert len(h.platform.requests) == 1  # written late, never sent twice
    [deferred] = events_named(caplog, "dial.write_deferred")
    assert (deferred["write"], deferred["key"]) == ("placed", result.key)
    assert len(events_named(caplog, "dial.write_done")) == 1
    assert len(h.sleeps) == 3  # backed off between tries


async def handlers() -> Handlers:
    store = SqliteStore(":memory:")
    await store.import_contacts([ContactRow(AGENT, "+441212345601")])
    return Handlers(
        config(next_contact_rule()), FakePlatform(), store, clock(), codec=GenesysCodec()
    )


@pytest.mark.parametrize(
    "run",
    [
        lambda h: h.handle(presence()),
        lambda h: h.handle(call_event("conv-x", "connected")),
        lambda h: h.refresh([AGENT]),
        lambda h: h.pace(AGENT),
    ],
    ids=["dial", "call-event", "refresh", "pace"],
)
async def test_nothing_the_store_raises_escapes_the_handlers(
    caplog: pytest.LogCaptureFixture, run: Callable[[Handlers], Awaitable[object]]
) -> None:
    caplog.set_level(logging.DEBUG, logger="outdial")
    h = await handlers()
    assert isinstance(h.store, SqliteStore)
    away(h.store)
    await run(h)
    assert h.platform.requests == []  # type: ignore[attr-defined]
    assert events_named(caplog, "handler.error") == []  # the store said it once; no noise


async def test_a_refresh_while_the_store_is_away_reads_every_agent_again_later() -> None:
    h = await handlers()
    assert isinstance(h.store, SqliteStore)
    away(h.store)
    assert await h.refresh([AGENT, "agent-2"]) == {AGENT, "agent-2"}
