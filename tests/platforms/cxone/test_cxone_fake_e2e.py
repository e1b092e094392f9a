"""The CXone backend end to end against the fake CXone on loopback: log in, discover,
start the agent's session, dial, follow the call to its end, re-read and reconcile.

The fake runs on real time (its sockets and call timings); the backend's own clock is a
manual one, so the contact wait only runs out when the test says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

import anyio
import pytest
from test_cxone_source import Sink

from outdial.clock import ManualClock
from outdial.config import CxonePlatformConfig, ListenerConfig
from outdial.domain import DialRequest, PlacedCall
from outdial.events import Event
from outdial.fake.cxone import FakeCxone
from outdial.fake.script import CallTiming, Outcome
from outdial.platforms.base import AmbiguousOutcome, PlatformBundle
from outdial.platforms.cxone.bundle import cxone_bundle
from outdial.platforms.ratelimit import RestStats

pytestmark = pytest.mark.anyio
AGENT = "3141592"
NUMBER = "+15551234567"
FAST = CallTiming(ring=(0.02, 0.05), talk=(0.02, 0.05), wrapup=0.02, dial=0.01)


@dataclass
class Rig:
    cxone: FakeCxone
    clock: ManualClock
    bundle: PlatformBundle
    sink: Sink


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for something the fake does on its own real-time schedule: what the
    backend does is checked after each of its steps, which wait on the fake's sockets."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 (the backend's state has no event to wait on)
            await anyio.sleep(0.005)


@asynccontextmanager
async def running() -> AsyncIterator[Rig]:
    async with FakeCxone(agents=[AGENT], seed=1, timing=FAST) as cxone:
        cxone.set_outcome(NUMBER, Outcome.ANSWERED)
        config = CxonePlatformConfig(
            kind="cxone",
            issuer=cxone.issuer_url,
            client_id=cxone.client_id,
            client_secret=cxone.client_secret,  # type: ignore[arg-type]
            access_key_id=cxone.access_key_id,
            access_key_secret=cxone.access_key_secret,  # type: ignore[arg-type]
            skill_id=cxone.skill_id,
            station_phone_number="+14155550100",
        )
        clock, sink = ManualClock(start=datetime.now(UTC)), Sink()
        bundle = cxone_bundle(config, ListenerConfig(), clock, Random(2))
        source = bundle.sources.source("cx0", bundle.codec.agent_topics(AGENT), sink)
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.run)
            await until(lambda: bool(sink.gaps) and cxone.polls_waiting(AGENT) > 0)
            yield Rig(cxone, clock, bundle, sink)
            tg.cancel_scope.cancel()
        await bundle.aclose()


def events_of(sink: Sink, contact_id: str) -> list[Event]:
    return [e for e in sink.events if e.body.get("ContactID") == contact_id]


async def test_a_dial_is_followed_to_its_end_and_found_again() -> None:
    async with running() as rig:
        assert [g.reason for g in rig.sink.gaps] == ["startup"]
        placed = await rig.bundle.calls.place_call(DialRequest(AGENT, NUMBER))
        [call] = rig.cxone.recorded.calls
        assert placed == PlacedCall(call.contact_id)
        await until(
            lambda: any(
                e.body.get("FinalState") == "True" for e in events_of(rig.sink, call.contact_id)
            )
        )
        codec = rig.bundle.codec
        later = datetime.now(UTC) + timedelta(seconds=5)
        seen = [codec.decode(e, later).call for e in events_of(rig.sink, call.contact_id)]
        assert seen[-1] is not None
        assert seen[-1].leg is not None
        assert seen[-1].leg.done
        assert any(s is not None and s.update.connected for s in seen)
        # Read again over REST, and found by the reconciler.
        snapshot = await rig.bundle.calls.get_call(call.contact_id)
        assert snapshot is not None
        assert snapshot.body["FinalState"] == "True"
        now = datetime.now(UTC)
        found = await rig.bundle.calls.find_outbound_calls(
            AGENT, now - timedelta(minutes=5), now + timedelta(minutes=1), NUMBER
        )
        assert call.contact_id in [c.conversation_id for c in found]
        state, stranger = await rig.bundle.agents.get_agent_states([AGENT, "999"])
        assert state.known
        assert not stranger.known
        assert state.reread_events()[0][0] == f"cxone.users.{AGENT}.AgentState"
        # The REST accounting the daemon's metrics read off the call control.
        stats = getattr(rig.bundle.calls, "rest_stats", None)
        assert isinstance(stats, RestStats)
        assert stats.responses.get(202, 0) >= 1  # the dial's accepted answer
        assert stats.responses.get(200, 0) >= 3


async def test_a_lost_dial_is_ambiguous_and_never_sent_twice() -> None:
    async with running() as rig:
        rig.cxone.lose_next_dial()
        outcome: list[BaseException | PlacedCall] = []

        async def dial() -> None:
            try:
                outcome.append(await rig.bundle.calls.place_call(DialRequest(AGENT, NUMBER)))
            except AmbiguousOutcome as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(dial)
            await until(lambda: len(rig.cxone.recorded.dials) == 1)
            await anyio.wait_all_tasks_blocked()
            rig.clock.advance(15)  # contact_wait
        [result] = outcome
        assert isinstance(result, AmbiguousOutcome)
        assert len(rig.cxone.recorded.dials) == 1


async def test_a_dial_whose_answer_was_dropped_is_found_by_its_contact() -> None:
    async with running() as rig:
        rig.cxone.drop_next_dial_answer()
        placed = await rig.bundle.calls.place_call(DialRequest(AGENT, NUMBER))
        [call] = rig.cxone.recorded.calls
        assert placed == PlacedCall(call.contact_id)
        assert len(rig.cxone.recorded.dials) == 1
