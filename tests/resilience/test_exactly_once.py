"""Exactly one call per trigger, with the real daemon against the real fake platform.

The pieces are the production ones: :class:`~outdial.app.Daemon` (listener and
handlers), the :class:`~outdial.handlers.Dialer`, a SQLite file store and the
Genesys REST client, all talking to :class:`~outdial.fake.FakePlatform` over
loopback sockets. Triggers are published by the fake on the agent's presence
topic, as the platform would. The fake then breaks what the real world
breaks: the event comes twice (or three times), the REST connection drops
while the call is being placed, the platform answers 503 first, the answer
to an accepted call never arrives in time, and a request never reaches the
platform at all. Each time the platform must have accepted exactly one call.

Nothing here sleeps to wait for a deadline: tests wait for conditions (the
fake's ``wait_for``, log events), and the reconcile delay is passed by moving
the daemon's wall clock forward.

The tests at the end run on both platforms (the ``backend`` fixture): every
event arriving several times, the event connection broken while a dial is in
flight, a dial's answer lost after the platform placed the call, and a working
day of duplicates and refused dials. The others stay Genesys-only: they drive
the Genesys REST client itself (its per-request timeout against a stalled or
crawling answer, the REST proxy, Retry-After on its budget, the conversation
history's lag and ``settle``), and the presence-topic rule whose event
identity they test is a Genesys topic. CXone's own dial faults (a 202 whose
contact never appears, the long poll's) are the CXone backend's tests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from backends import Backend, backend_fixture  # noqa: F401 (the backend fixture)
from daemon_harness import NUMBERS as NUMBERS_BOTH
from daemon_harness import daemon_for, sqlite
from listener_harness import LogWatch, daemon_config

from outdial.app import Daemon
from outdial.clock import SystemClock
from outdial.config import HISTORY_LAG_FLOOR
from outdial.fake import CallTiming, FakePlatform, Outcome
from outdial.handlers.dialer import Dialer, RetryPolicy
from outdial.handlers.reconcile import ReconcilePolicy
from outdial.platforms.genesys import GenesysPlatform
from outdial.platforms.genesys.bundle import genesys_bundle
from outdial.store import SqliteStore, open_store
from outdial.store.base import ContactRow, Store

pytestmark = pytest.mark.anyio

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{AGENT}.presence"
CALLS = f"v2.users.{AGENT}.conversations.calls"
NUMBER = "+441212345601"
CALL_PATH = r"/api/v2/conversations/calls/user/"

#: Calls long enough that none ends while a test looks at its dial.
LONG = CallTiming(ring=(30.0, 30.0), talk=(30.0, 30.0), wrapup=30.0, dial=0.01)
#: Calls that end quickly, for tests that follow a call to its end.
QUICK = CallTiming(ring=(0.05, 0.05), talk=(0.05, 0.05), wrapup=0.05, dial=0.01)

#: Seconds any condition may take before the test fails (never reached when all is well).
WAIT = 10.0


async def blink(seconds: float) -> None:
    """The dialer's sleep in these tests: back-off and Retry-After waits pass in a blink."""
    await anyio.sleep(min(seconds, 0.01))


def available(stamp: str = "2026-11-23T09:15:02.114Z") -> dict[str, Any]:
    """A presence-available body, as in ``tests/fixtures/genesys/presence-available.json``."""
    return {
        "source": "PURECLOUD",
        "presenceDefinition": {
            "id": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
            "systemPresence": "Available",
        },
        "primary": True,
        "message": "",
        "modifiedDate": stamp,
    }


class ShiftedClock(SystemClock):
    """The system clock, with a wall time a test can move forward (monotonic stays real)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """System wall time plus the offset."""
        return super().now() + self.offset

    def advance_wall(self, seconds: float) -> None:
        """Move the wall clock forward."""
        self.offset += timedelta(seconds=seconds)


class SkippingClock(SystemClock):
    """The REST client's clock: its waits (the rate budget's) skip ahead instead of passing."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def monotonic(self) -> float:
        """System monotonic time plus every wait skipped so far."""
        return super().monotonic() + self.skipped

    async def sleep(self, seconds: float) -> None:
        """Skip ``seconds`` ahead at once."""
        self.skipped += seconds
        await anyio.lowlevel.checkpoint()


@dataclass
class Run:
    """A running daemon and what the test needs around it."""

    platform: FakePlatform
    daemon: Daemon
    store: Store
    clock: ShiftedClock
    log: LogWatch
    tg: anyio.abc.TaskGroup
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        """Call requests the platform received (accepted or not)."""
        return len(self.platform.recorded.call_requests)

    @property
    def accepted(self) -> int:
        """Calls the platform accepted: what the callee feels."""
        return len(self.platform.recorded.accepted_calls)

    async def dials_settled(self, n: int) -> None:
        """Wait until ``n`` dials ended as placed, skipped or failed."""
        await self.log.until(
            lambda: (
                sum(len(self.log.named(x)) for x in ("dial.placed", "dial.skipped"))
                + len(self.log.named("dial.failed"))
                >= n
            )
        )


@asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    timing: CallTiming = LONG,
    client_timeout: float = 5.0,
    contacts: int = 1,
    rest_proxy: bool = False,
    settle: float = 60.0,
    ready: bool = False,
) -> AsyncIterator[Run]:
    """The daemon running against a fresh fake, subscribed, its startup refresh done.

    The agent starts Busy, so the startup refresh dials nobody: every call in a
    test comes from a trigger the test published. With ``ready`` the rule is
    on the ready topic: once Available, the agent works through the list.
    """
    watch = LogWatch(WAIT)
    root = logging.getLogger("outdial")
    root.addHandler(watch)
    level = root.level
    root.setLevel(logging.DEBUG)
    clock = ShiftedClock()
    try:
        async with FakePlatform([AGENT], seed=3, timing=timing, rest_proxy=rest_proxy) as fake:
            await fake.set_presence(AGENT, "Busy")
            fake.set_outcome(NUMBER, Outcome.ANSWERED)
            config = daemon_config(
                fake, tmp_path / "outdial.db", [AGENT], caller_id="+4930123456", ready=ready
            )
            store = SqliteStore(tmp_path / "outdial.db")
            await store.import_contacts(
                [ContactRow(AGENT, f"+4412123456{i:02d}") for i in range(1, contacts + 1)]
            )
            # The client's own clock, so that skipping a Retry-After moves nobody else's time.
            client_clock = SkippingClock()
            client = GenesysPlatform(
                api_url=fake.api_url,
                login_url=fake.login_url,
                client_id=fake.client_id,
                client_secret=fake.client_secret,
                timeout=client_timeout,
                clock=client_clock,
                sleep=client_clock.sleep,
            )
            daemon = Daemon(
                config,
                platform=genesys_bundle(client, config.listener, clock),
                store=store,
                clock=clock,
            )
            # Production dialer, test tempo: retries back off in milliseconds.
            daemon.handlers.dialer = Dialer(
                client,
                store,
                config.guards,
                clock,
                retry=RetryPolicy(attempts=4, base=0.01, cap=0.05),
                sleep=blink,
                reconcile_policy=ReconcilePolicy(settle=settle),
            )
            try:
                async with anyio.create_task_group() as tg:
                    await daemon.handlers.start()
                    await tg.start(daemon.run)
                    await fake.wait_for(
                        lambda: any(
                            PRESENCE in fake.channel_topics(c) for c in fake.connected_channels
                        ),
                        timeout=WAIT,
                    )
                    await watch.until(lambda: daemon.gaps_handled >= 1)
                    yield Run(fake, daemon, store, clock, watch, tg)
                    fake.release_stalls()
                    tg.cancel_scope.cancel()
            finally:
                await client.aclose()
                await store.aclose()
    finally:
        root.removeHandler(watch)
        root.setLevel(level)


async def wait_for_daemon(run: Run, predicate: Callable[[], bool]) -> None:
    """Wait for a condition on the daemon's counters (re-checked on each log event)."""
    await run.log.until(predicate)


# Duplicate deliveries


@pytest.mark.parametrize("copies", [2, 3])
async def test_same_event_delivered_several_times_places_one_call(
    tmp_path: Path, copies: int
) -> None:
    async with running(tmp_path) as run:
        run.platform.duplicate_events = copies  # every published event goes out `copies` times
        assert await run.platform.publish(PRESENCE, available()) == copies
        await run.platform.wait_for_calls(1, timeout=WAIT)
        await run.log.until(
            lambda: len(run.log.named("dial.skipped", guard="idempotency")) >= copies - 1
        )
        assert run.requests == run.accepted == 1
        [placed] = run.log.named("dial.placed")
        skipped = run.log.named("dial.skipped", guard="idempotency")
        assert [s["key"] for s in skipped] == [placed["key"]] * (copies - 1)


async def test_same_event_published_again_places_one_call(tmp_path: Path) -> None:
    async with running(tmp_path, contacts=2) as run:
        for _ in range(3):
            await run.platform.publish(PRESENCE, available())
        await run.log.until(lambda: len(run.log.named("dial.skipped", guard="idempotency")) >= 2)
        assert run.requests == run.accepted == 1
        # A different event (a later presence change) is a new trigger: the
        # agent is on the first call, so it is stopped by another guard.
        await run.platform.publish(PRESENCE, available("2026-11-23T09:20:00.000Z"))
        await run.log.until(lambda: bool(run.log.named("dial.skipped", guard="one_active_call")))
        assert run.accepted == 1


async def test_same_event_after_a_reconnect_places_one_call(tmp_path: Path) -> None:
    """A redelivery across a dropped socket (and the REST refresh that follows)."""
    async with running(tmp_path, timing=QUICK, contacts=2) as run:
        await run.platform.publish(PRESENCE, available())
        [call] = await run.platform.wait_for_calls(1, timeout=WAIT)
        # The call ends (answered); the contact is done. The agent chooses Available
        # again (a new presence change: a new trigger) and is dialed for contact 2.
        await run.log.until(lambda: bool(run.log.named("call.ended")))
        await run.platform.publish(PRESENCE, available("2026-11-23T09:20:00.000Z"))
        await run.platform.wait_for_calls(2, timeout=WAIT)
        gaps = run.daemon.gaps_handled
        await run.platform.drop_sockets()
        await wait_for_daemon(run, lambda: run.daemon.gaps_handled > gaps)
        await run.platform.wait_for(lambda: bool(run.platform.connected_channels), timeout=WAIT)
        # The first trigger arrives once more on the new socket.
        before = len(run.log.named("dial.skipped", guard="idempotency"))
        await run.platform.publish(PRESENCE, available())
        await run.log.until(
            lambda: len(run.log.named("dial.skipped", guard="idempotency")) > before
        )
        numbers = [c.payload["phoneNumber"] for c in run.platform.recorded.accepted_calls]
        assert numbers == ["+441212345601", "+441212345602"]
        assert call.payload["phoneNumber"] == NUMBER


# The REST side breaking while the call is placed


async def test_503_then_success_places_one_call(tmp_path: Path) -> None:
    async with running(tmp_path) as run:
        run.platform.fail_next(CALL_PATH, 503, method="POST")
        await run.platform.publish(PRESENCE, available())
        await run.platform.wait_for_calls(1, timeout=WAIT)
        await run.dials_settled(1)
        statuses = [c.status for c in run.platform.recorded.call_requests]
        assert statuses == [503, 200]
        assert len(run.log.named("dial.retry")) == 1
        [placed] = run.log.named("dial.placed")
        assert placed["attempts"] == 2


async def test_429_then_success_places_one_call(tmp_path: Path) -> None:
    async with running(tmp_path) as run:
        run.platform.fail_next(CALL_PATH, 429, retry_after=30, method="POST")
        await run.platform.publish(PRESENCE, available())
        await run.platform.wait_for_calls(1, timeout=WAIT)
        assert [c.status for c in run.platform.recorded.call_requests] == [429, 200]
        [retry] = run.log.named("dial.retry")
        assert retry["delay"] == 30  # the platform's Retry-After, honoured


async def test_answer_timing_out_after_the_call_was_accepted_places_one_call(
    tmp_path: Path,
) -> None:
    """The platform accepts the call; its answer comes after the client gave up."""
    async with running(tmp_path, client_timeout=0.3, timing=QUICK) as run:
        run.platform.stall_next(CALL_PATH, 1.0, method="POST")
        await run.platform.publish(PRESENCE, available())
        await run.log.until(lambda: bool(run.log.named("dial.placed")))
        [unknown] = run.log.named("dial.unknown")
        [placed] = run.log.named("dial.placed")
        assert placed["reconciled"] is True
        assert placed["key"] == unknown["key"]
        [call] = run.platform.recorded.accepted_calls
        assert placed["conversation"] == call.conversation_id
        assert run.requests == 1
        # And the call is tracked to its end like any other.
        await run.log.until(lambda: bool(run.log.named("call.ended")))
        [ended] = run.log.named("call.ended")
        assert (ended["conversation"], ended["outcome"]) == (call.conversation_id, "answered")
        claim = await run.store.get_claim(placed["key"])
        assert claim is not None
        assert (claim.state, claim.retries) == ("placed", 0)
        # Nothing left to reconcile, and the late answer changes nothing.
        assert await run.daemon.handlers.reconcile_unknown() == 0
        run.platform.release_stalls()
        assert run.requests == 1


async def test_request_handled_after_the_client_gave_up_places_one_call(tmp_path: Path) -> None:
    """The request reaches the platform late: not listed at first, found later, never resent."""
    async with running(tmp_path, client_timeout=0.3) as run:
        run.platform.stall_next(CALL_PATH, 1.0, method="POST", after_effect=False)
        await run.platform.publish(PRESENCE, available())
        await run.log.until(lambda: bool(run.log.named("dial.unresolved")))
        assert run.accepted == 0  # nothing yet: a blind retry now would be a second call
        await run.platform.wait_for_calls(1, timeout=WAIT)
        assert await run.daemon.handlers.reconcile_unknown() == 1
        [placed] = run.log.named("dial.placed")
        assert placed["reconciled"] is True
        # Even once the wait is over, there is nothing to send again.
        run.clock.advance_wall(3600)
        assert await run.daemon.handlers.reconcile_unknown() == 0
        assert run.requests == run.accepted == 1


async def test_connection_dropped_mid_dial_places_one_call(tmp_path: Path) -> None:
    """The TCP connection is reset after the platform accepted the call, before its answer."""
    async with running(tmp_path, rest_proxy=True, client_timeout=10.0) as run:
        run.platform.stall_next(CALL_PATH, 5.0, method="POST")
        await run.platform.publish(PRESENCE, available())
        await run.platform.wait_for_calls(1, timeout=WAIT)
        assert run.platform.rest_proxy.reset() >= 1
        await run.log.until(lambda: bool(run.log.named("dial.placed")))
        [unknown] = run.log.named("dial.unknown")
        assert "reconciled" in unknown["error"]
        [placed] = run.log.named("dial.placed")
        assert placed["reconciled"] is True
        assert placed["conversation"] == run.platform.recorded.accepted_calls[0].conversation_id
        assert run.requests == run.accepted == 1


async def test_request_that_never_reached_the_platform_is_sent_once_more(
    tmp_path: Path,
) -> None:
    """Lost on the way: the client cannot know, so it reconciles, waits, then sends again."""
    async with running(tmp_path, rest_proxy=True, client_timeout=0.3) as run:
        proxy = run.platform.rest_proxy
        proxy.freeze(discard=True)  # the request (and the first lookup) vanish
        await run.platform.publish(PRESENCE, available())
        await run.log.until(lambda: bool(run.log.named("dial.reconcile_failed")))
        assert run.requests == 0
        proxy.clear()
        # The history can be read now, but is not conclusive yet: still nothing sent.
        assert await run.daemon.handlers.reconcile_unknown() == 0
        assert run.requests == 0
        run.clock.advance_wall(60)
        assert await run.daemon.handlers.reconcile_unknown() == 1
        assert run.requests == run.accepted == 1
        [resend] = run.log.named("dial.resend")
        [placed] = run.log.named("dial.placed")
        assert (resend["key"], resend["retry"]) == (placed["key"], 1)
        [call] = run.platform.recorded.accepted_calls
        assert call.payload == {"phoneNumber": NUMBER, "callerId": "+4930123456"}
        # Settled for good: later runs find nothing to do.
        run.clock.advance_wall(3600)
        assert await run.daemon.handlers.reconcile_unknown() == 0
        assert run.accepted == 1


async def test_socket_dropped_while_a_dial_is_in_flight_places_one_call(tmp_path: Path) -> None:
    """The event socket drops mid-dial; the refresh after the gap must not dial again."""
    async with running(tmp_path, contacts=2) as run:
        run.platform.stall_next(CALL_PATH, 0.5, method="POST")
        await run.platform.publish(PRESENCE, available())
        await run.platform.wait_for_calls(1, timeout=WAIT)
        gaps = run.daemon.gaps_handled
        await run.platform.drop_sockets()
        await wait_for_daemon(run, lambda: run.daemon.gaps_handled > gaps)
        await run.log.until(lambda: bool(run.log.named("dial.placed")))
        assert run.requests == run.accepted == 1
        assert run.platform.agent_presence(AGENT) == "Busy"


async def test_a_request_abandoned_at_its_timeout_is_reset_not_delivered_later(
    tmp_path: Path,
) -> None:
    """The request crawls through the network and the client gives up on it.

    The client closes such a connection with a reset, so what the network
    still held is dropped instead of being delivered after the client gave up;
    once ``settle`` has passed, the dial is sent once more: one call in all.
    """
    timeout = 0.3
    settle = timeout + HISTORY_LAG_FLOOR
    async with running(tmp_path, rest_proxy=True, client_timeout=timeout, settle=settle) as run:
        await run.log.until(lambda: bool(run.log.named("daemon.refreshed")))
        proxy = run.platform.rest_proxy
        proxy.latency(1.0)  # every chunk a second late: the answer cannot come in time
        await run.platform.publish(PRESENCE, available())
        await run.log.until(lambda: bool(run.log.named("dial.unknown")))
        # The reset reached the proxy: the chunks it still held for the platform are gone.
        await run.platform.wait_for(lambda: proxy.active_connections == 0, timeout=WAIT)
        proxy.clear()
        assert run.requests == 0
        run.clock.advance_wall(settle)
        await run.daemon.handlers.reconcile_unknown()
        await run.log.until(lambda: bool(run.log.named("dial.placed")))
        assert run.requests == run.accepted == 1
        assert len(run.log.named("dial.resend")) == 1


async def test_a_request_the_platform_handles_after_the_client_gave_up_places_one_call(
    tmp_path: Path,
) -> None:
    """It got through, but the platform acts on it only after the client's timeout.

    Nothing is sent again before ``settle``, which may not be shorter than the
    request timeout plus the platform's history lag (config validation): by
    then the late call is in the history, and it is tracked, not placed twice.
    """
    timeout = 0.3
    settle = timeout + HISTORY_LAG_FLOOR
    async with running(tmp_path, client_timeout=timeout, settle=settle) as run:
        run.platform.stall_next(CALL_PATH, 1.0, method="POST", after_effect=False)
        await run.platform.publish(PRESENCE, available())
        await run.log.until(lambda: bool(run.log.named("dial.unknown")))
        assert run.accepted == 0
        await run.platform.wait_for_calls(1, timeout=WAIT)  # handled late, after the timeout
        run.clock.advance_wall(settle / 2)
        await run.daemon.handlers.reconcile_unknown()
        run.clock.advance_wall(settle)
        await run.daemon.handlers.reconcile_unknown()
        await run.log.until(lambda: bool(run.log.named("dial.placed")))
        assert run.requests == run.accepted == 1
        assert run.log.named("dial.resend") == []


# Both platforms: the daemon on the ready topic, through the backends facade


@pytest.mark.parametrize("copies", [2, 3])
async def test_every_event_arriving_several_times_calls_each_contact_once(
    tmp_path: Path, backend: Backend, copies: int
) -> None:
    [agent] = backend.agent_ids(1)
    numbers = NUMBERS_BOTH[:4]
    async with backend.start([agent]) as fake:
        for number in numbers:
            fake.set_outcome(number, Outcome.ANSWERED)
        fake.duplicate_events(copies)
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, n) for n in numbers]) as run:
            await run.until("call.ended", len(numbers))
            await run.until("dial.skipped", guard="contacts")  # the list is done
            epochs = [e["epoch"] for e in run.log.named("agent.ready")]
    assert fake.numbers() == numbers
    assert fake.requests == len(numbers)
    assert len(epochs) == len(set(epochs))  # each readiness offered once


async def test_event_connection_broken_while_a_dial_is_in_flight_places_one_call(
    tmp_path: Path, backend: Backend
) -> None:
    """The event connection breaks while the dial's answer is on its way; the gap's
    re-read must not dial the agent again."""
    [agent] = backend.agent_ids(1)
    first, second = NUMBERS_BOTH[:2]
    async with backend.start([agent]) as fake:
        fake.set_outcome(first, Outcome.ANSWERED)
        fake.set_outcome(second, Outcome.ANSWERED)
        fake.hold_next_dial_answer(0.5)
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, first), (agent, second)]) as run:
            await fake.wait_for(lambda: fake.requests == 1)
            gaps = run.daemon.gaps_handled
            await fake.break_events()
            await run.log.until(lambda: run.daemon.gaps_handled > gaps)
            await run.until("dial.placed")
            assert run.log.named("dial.placed")[0]["number"] == first
            await run.until("call.ended", 2)
    assert fake.numbers() == [first, second]
    assert fake.requests == 2


async def test_a_dial_answer_lost_after_the_call_was_placed_places_one_call(
    tmp_path: Path, backend: Backend
) -> None:
    """The platform places the call, its answer never arrives (the connection is
    reset): the call is found (Genesys: in the history; CXone: on the session),
    tracked to its end, never sent again, and the next contact follows."""
    [agent] = backend.agent_ids(1)
    first, second = NUMBERS_BOTH[:2]
    async with backend.start([agent], proxy=True) as fake:
        fake.set_outcome(first, Outcome.ANSWERED)
        fake.set_outcome(second, Outcome.ANSWERED)
        fake.lose_next_dial_answer()
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, first), (agent, second)]) as run:
            await run.until("call.ended", 2)
            unknown = run.log.named("dial.unknown")
            placed = run.log.named("dial.placed")
            ended = run.log.named("call.ended")
    calls = fake.calls()
    assert [c.number for c in calls] == [first, second]
    assert fake.requests == 2
    assert placed[0]["conversation"] == calls[0].call_id
    if backend.kind == "genesys":
        # Only the answer names the conversation: unknown, then found in the history.
        assert [u["key"] for u in unknown] == [placed[0]["key"]]
        assert placed[0]["reconciled"] is True
    else:
        # CXone's 202 names nothing anyway: the contact on the agent's session tells
        # which call the dial made, answer or not.
        assert unknown == []
    assert [(e["conversation"], e["outcome"]) for e in ended] == [
        (c.call_id, "answered") for c in calls
    ]


async def test_a_working_day_of_faults_calls_every_contact_exactly_once(
    tmp_path: Path, backend: Backend
) -> None:
    """Every event twice, a quarter of dial requests refused: each contact once.

    On the ready topic: once available, the agent works through the whole list.
    Refused with 429 (with ``Retry-After``), which both platforms take as "not
    acted on" and retry. A 503 is that on Genesys (``test_503_then_success...``)
    but not on CXone, whose client holds a 5xx'd dial as unknown until
    ``reconcile.settle`` rather than risk a second call.
    """
    [agent] = backend.agent_ids(1)
    numbers = NUMBERS_BOTH[:6]
    async with backend.start([agent], available=False) as fake:
        for number in numbers:
            fake.set_outcome(number, Outcome.ANSWERED)
        fake.duplicate_events(2)
        fake.fail_dials(0.25, status=429)
        config = fake.config(sqlite(tmp_path))
        async with (
            open_store(config.store.url) as store,
            daemon_for(config, contacts=[(agent, n) for n in numbers], store=store) as run,
        ):
            await run.until("agent.not_ready", reason=fake.away_reason())
            await fake.available(agent)
            await fake.wait_for_calls(len(numbers), timeout=WAIT * 2)
            await run.until("call.ended", len(numbers))
            summary = await store.contacts_summary()
            # Each readiness was offered once however often its events came: one epoch each.
            epochs = [e["epoch"] for e in run.log.named("agent.ready")]
    assert sorted(fake.numbers()) == numbers
    assert (summary.done, summary.due, summary.dialing) == (len(numbers), 0, 0)
    assert len(epochs) == len(set(epochs)) >= len(numbers)
    assert fake.requests > len(numbers)  # the 429s happened, and were retried
