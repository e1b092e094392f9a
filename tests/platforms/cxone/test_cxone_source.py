"""The per-agent session source against the in-memory CXone; time moves only by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from random import Random

import anyio
import httpx
import pytest
from cxone_mock import GONE, NOT_MODIFIED, MockCxone, settings

from outdial.clock import ManualClock
from outdial.config import ListenerConfig
from outdial.events import Event, Gap
from outdial.listener.state import ChannelState, ListenerFatal
from outdial.platforms.cxone.client import CxoneClient
from outdial.platforms.cxone.codec import CxoneCodec
from outdial.platforms.cxone.correlate import DialCorrelator, SessionRegistry
from outdial.platforms.cxone.source import CxoneSessionSource, CxoneSources

pytestmark = pytest.mark.anyio
AGENT = "3141592"
TOPICS = CxoneCodec().agent_topics(AGENT)
STATE = {"Type": "AgentState", "CurrentState": "Available", "IsAcw": "False"}
CONTACT = {
    "Type": "CallContactEvent",
    "ContactID": "700001",
    "Status": "Dialing",
    "IsInbound": "False",
    "DNIS": "+15551234567",
}


@dataclass
class Sink:
    events: list[Event] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    def report_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)

    def rotation_started(self) -> None:
        pass

    def rotation_finished(self) -> None:
        pass


@dataclass
class Rig:
    mock: MockCxone
    clock: ManualClock
    sink: Sink
    source: CxoneSessionSource
    sessions: SessionRegistry
    correlator: DialCorrelator


async def settle() -> None:
    for _ in range(5):
        await anyio.wait_all_tasks_blocked()


@asynccontextmanager
async def running(**changes: object) -> AsyncIterator[Rig]:
    mock, clock, sink = MockCxone(), ManualClock(), Sink()
    config = settings(**changes)
    client = CxoneClient(config, clock, transport=mock.transport())
    sessions, correlator = SessionRegistry(), DialCorrelator()
    factory = CxoneSources(
        client=client,
        settings=config,
        listener=ListenerConfig(backoff_base=1.0, backoff_cap=5.0, stable_after=30.0),
        clock=clock,
        rng=Random(3),
        sessions=sessions,
        correlator=correlator,
    )
    source = factory.source("cxone-0", TOPICS, sink)
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run)
        await settle()
        yield Rig(mock, clock, sink, source, sessions, correlator)
        tg.cancel_scope.cancel()
    await client.aclose()


async def test_startup_gap_then_every_event_delivered_on_its_type_topic() -> None:
    async with running() as rig:
        session = rig.mock.session_of(AGENT)
        assert session is not None
        assert [g.reason for g in rig.sink.gaps] == ["startup"]
        assert rig.sink.gaps[0].topics == TOPICS
        assert rig.source.stats.state is ChannelState.SUBSCRIBED
        assert rig.sessions.session_for(AGENT) == session.ids[0]
        rig.mock.push(AGENT, STATE, CONTACT, {"Type": "Indicator", "Value": "x"})
        await settle()
        topics = [e.topic for e in rig.sink.events]
        assert topics == [
            f"cxone.users.{AGENT}.AgentState",
            f"cxone.users.{AGENT}.CallContactEvent",
            f"cxone.users.{AGENT}.Indicator",
        ]
        # The next poll, and any dial, use the id the 200 carried.
        assert rig.sink.events[0].channel_id == session.ids[1]
        assert rig.sessions.session_for(AGENT) == session.ids[1]
        assert rig.source.connection_id == session.ids[1]
        assert rig.mock.requests[-1].url.path.endswith(f"{session.ids[1]}/get-next-event")
        assert rig.correlator.agent_of("700001") == AGENT
        assert rig.source.last_frame_at == rig.clock.monotonic()
    # Cancelled: the session we started is ended.
    assert session.ended
    assert rig.sessions.session_for(AGENT) is None
    # (read afresh: mypy keeps the SUBSCRIBED it saw inside the block)
    assert rig.source.stats.state.value == ChannelState.STOPPED.value


async def test_304_polls_again_and_409_starts_a_new_session_with_a_gap() -> None:
    async with running() as rig:
        first = rig.mock.session_of(AGENT)
        rig.mock.push(AGENT, NOT_MODIFIED)
        await settle()
        assert sum(p.endswith("get-next-event") for p in rig.mock.paths("GET")) == 2
        rig.mock.push(AGENT, GONE)
        await settle()
        second = rig.mock.session_of(AGENT)
        assert second is not None
        assert second is not first
        assert [g.reason for g in rig.sink.gaps] == ["startup", "session ended"]
        assert rig.source.stats.reconnects == 1
        assert rig.source.stats.connects == 2


async def test_a_hung_poll_is_abandoned_at_its_watchdog_and_is_a_gap() -> None:
    async with running() as rig:
        assert rig.mock.polls_in_flight == 1
        rig.clock.advance(49)
        await settle()
        assert rig.mock.polls_in_flight == 1  # poll_timeout 30 + watchdog 20 not yet up
        rig.clock.advance(1)
        await settle()
        assert rig.mock.polls_in_flight == 0
        assert rig.source.stats.state is ChannelState.DEGRADED
        assert rig.source.stats.last_dead_after == 50
        rig.clock.advance(5)  # the backoff (cap 5 s)
        await settle()
        assert rig.mock.polls_in_flight == 1
        rig.mock.push(AGENT, STATE)
        await settle()
        assert [g.reason for g in rig.sink.gaps] == ["startup", "poll hung"]
        assert rig.sink.gaps[1].end - rig.sink.gaps[1].start >= 50


async def test_a_state_renewal_is_delivered_and_reported_as_a_gap() -> None:
    async with running() as rig:
        rig.mock.push(AGENT, STATE)
        await settle()
        rig.mock.push(AGENT, {"_branch": "3"}, STATE)
        await settle()
        assert len(rig.sink.events) == 2
        assert [g.reason for g in rig.sink.gaps] == ["startup", "state renewal"]


async def test_a_failed_poll_backs_off_and_the_gap_closes_on_the_next_answer() -> None:
    async with running() as rig:
        fail = True

        def broken(request: httpx.Request) -> httpx.Response | None:
            if fail and request.url.path.endswith("get-next-event"):
                return httpx.Response(503, headers={"Retry-After": "2"})
            return None

        rig.mock.overrides.append(broken)
        rig.mock.push(AGENT, NOT_MODIFIED)  # wake the waiting poll: the next one fails
        await settle()
        assert rig.source.stats.state is ChannelState.DEGRADED
        assert rig.source.stats.last_error
        fail = False
        rig.clock.advance(5)
        await settle()
        rig.mock.push(AGENT, STATE)
        await settle()
        assert [g.reason for g in rig.sink.gaps] == ["startup", "poll failed"]


async def test_no_topics_ends_the_session_and_topics_again_start_a_new_one() -> None:
    async with running() as rig:
        first = rig.mock.session_of(AGENT)
        await rig.source.update_topics(frozenset())
        await settle()
        assert first is not None
        assert first.ended
        assert rig.sessions.session_for(AGENT) is None
        assert rig.source.stats.state is ChannelState.STOPPED
        await rig.source.update_topics(TOPICS)
        await settle()
        second = rig.mock.session_of(AGENT)
        assert second is not None
        assert second is not first
        assert [g.reason for g in rig.sink.gaps] == ["startup", "startup"]


async def test_join_mode_never_ends_the_agents_own_session() -> None:
    async with running(session="join") as rig:
        session = rig.mock.session_of(AGENT)
        assert session is not None
        assert session.joined
    assert not session.ended
    assert "DELETE" not in {r.method for r in rig.mock.requests}


async def test_a_session_in_progress_is_joined_instead() -> None:
    mock = MockCxone()
    async with running() as rig:
        mock = rig.mock
        rig.mock.push(AGENT, GONE)  # our session ends; pretend the agent now has one
        rig.mock.overrides.append(
            lambda r: (
                httpx.Response(400, text="SessionInProgress")
                if r.url.path.endswith("/agent-sessions")
                else None
            )
        )
        await settle()
        assert mock.paths("POST")[-1].endswith("/agent-sessions/join")
        assert rig.source.stats.state is ChannelState.SUBSCRIBED
    assert "DELETE" not in {r.method for r in mock.requests}


def _refusing(text: str) -> tuple[MockCxone, ManualClock, CxoneClient, Sink, CxoneSessionSource]:
    mock, clock = MockCxone(), ManualClock()
    mock.overrides.append(
        lambda r: httpx.Response(400, text=text) if r.url.path.endswith("/agent-sessions") else None
    )
    config = settings()
    client = CxoneClient(config, clock, transport=mock.transport())
    sink = Sink()
    source = CxoneSources(
        client=client,
        settings=config,
        listener=ListenerConfig(),
        clock=clock,
        rng=Random(1),
        sessions=SessionRegistry(),
        correlator=DialCorrelator(),
    ).source("s", TOPICS, sink)
    return mock, clock, client, sink, source


async def test_a_fatal_start_stops_the_listener_naming_the_agent() -> None:
    _mock, _clock, client, _sink, source = _refusing("ImpersonateNotEnabled")
    with pytest.raises(ListenerFatal, match=f"agent {AGENT}.*ImpersonateNotEnabled"):
        await source.run()
    await client.aclose()


@pytest.mark.parametrize("answer", ["InvalidAgentId", ""])
async def test_an_agent_the_platform_does_not_know_stops_only_its_own_session(
    answer: str,
) -> None:
    """Not the daemon's end: a gap asks for the re-read that names the agent. A 400 that
    says nothing at all (the error body format is not published) is taken the same way."""
    _mock, _clock, client, sink, source = _refusing(answer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run)
        await settle()
        assert [g.reason for g in sink.gaps] == ["agent unknown"]
        assert sink.gaps[0].topics == TOPICS
        assert source.stats.state is ChannelState.STOPPED
        tg.cancel_scope.cancel()
    await client.aclose()


def test_shard_is_one_agent_per_source_and_keeps_indexes() -> None:
    codec = CxoneCodec()
    factory = CxoneSources(
        client=None,  # type: ignore[arg-type]
        settings=settings(),
        listener=ListenerConfig(),
        clock=ManualClock(),
        rng=Random(1),
        sessions=SessionRegistry(),
        correlator=DialCorrelator(),
    )
    a, b, c = (codec.agent_topics(x) for x in ("1", "2", "3"))
    assert factory.shard([], [*b, *a]) == [a, b]
    assert factory.shard([a, b], [*c, *b]) == [frozenset(), b, c]
    assert factory.shard([frozenset(), b, c], [*a, *b]) == [frozenset(), b, frozenset(), a]
    assert factory.shard([], ["no.agent.here"]) == []
    with pytest.raises(ValueError, match="one agent"):
        factory.source("x", frozenset([*a, *b]), Sink())
