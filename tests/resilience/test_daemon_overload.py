"""Handlers that fall behind cost re-reads of the agents whose events were lost, no more.

When the listener's queue overflows, the events it drops are counted, and the
gap that follows names only their agents. The daemon re-reads exactly those
agents, not everyone: a re-read of every agent after each overflow is work
the size of seconds of live events, which made a daemon that was just behind
collapse into re-reading (issue 13's refresh storm).

And an agent whose handling waits on the platform (a dial's answer) holds up
that agent only: the other agents of its worker go on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from backends import Backend, Fake, backend, backend_fixture  # noqa: F401 (the backend fixture)
from daemon_harness import NUMBERS, Watched, daemon_for, ready_config, sqlite
from listener_harness import presence

from outdial.app import Daemon
from outdial.events import Event, topic_user_id
from outdial.fake import FakePlatform, Outcome
from outdial.handlers.dispatch import UserStep
from outdial.handlers.rereads import RereadPacing

pytestmark = pytest.mark.anyio

CALLS_PATH = r"/api/v2/conversations/calls/user/"

AGENTS = [str(uuid.UUID(int=0x5EED0000 + n)) for n in range(40)]
BLOCKER = AGENTS[0]


def holding_prepare(daemon: Daemon, agent: str, hold: Callable[[], Awaitable[None]]) -> None:
    """Make the quick part of ``agent``'s live events await ``hold()`` first (an instance
    attribute shadows ``Handlers.prepare``; re-reads do not go through it)."""
    prepare = daemon.handlers.prepare

    async def held(event: Event) -> UserStep | None:
        if topic_user_id(event.topic) == agent:
            await hold()
        return await prepare(event)

    daemon.handlers.prepare = held  # type: ignore[method-assign]


async def run_step(daemon: Daemon, agent: str, step: Callable[[], Awaitable[None]]) -> None:
    """Queue ``step`` for ``agent`` as the refresher does, and wait for it to run."""
    await daemon.handlers.run_for_user(agent, step)


async def test_an_overflow_re_reads_only_the_agents_whose_events_were_dropped(
    tmp_path: Path,
) -> None:
    held = anyio.Event()
    release = anyio.Event()

    async def falling_behind() -> None:
        # The handlers stop taking events (the quick part of one never ends)
        # until released: the listener's queue overflows meanwhile.
        if not release.is_set():
            held.set()
            await release.wait()

    async with FakePlatform(AGENTS) as platform:
        config = ready_config(platform, sqlite(tmp_path), AGENTS)
        config = config.model_copy(
            update={
                "listener": config.listener.model_copy(update={"queue_size": 4}),
                "handling": config.handling.model_copy(
                    update={"workers": 1, "worker_queue_size": 1}
                ),
            }
        )
        async with daemon_for(config) as run:
            daemon, log = run.daemon, run.log
            await run.until("daemon.refreshed")
            at_start = daemon.agents_reread
            assert at_start == len(AGENTS), "the startup reads every agent once"
            holding_prepare(daemon, BLOCKER, falling_behind)
            # Small batches, so that the re-read of the dropped agents takes several.
            daemon.reread_pacing = RereadPacing(batch=5)
            for n, agent in enumerate(AGENTS):
                await platform.publish(f"v2.users.{agent}.presence", presence(n, "Away"))
                if agent == BLOCKER:
                    await held.wait()
            await log.until(lambda: daemon.listener.stats.overflowed > 0)
            release.set()
            await log.until(
                lambda: (
                    len(log.named("daemon.gap")) >= 2
                    and daemon.agents_reread_pending == 0
                    and len(log.named("daemon.refreshed")) >= 2
                )
            )
            dropped = daemon.listener.stats.overflowed
            reread = daemon.agents_reread - at_start
            gaps = log.named("daemon.gap")[1:]  # the first is the startup's
    # One presence event per agent: each dropped event is one agent to re-read.
    assert 0 < dropped < len(AGENTS) - 1
    assert sum(gap["users"] for gap in gaps) == dropped
    assert reread == dropped, "re-read exactly the agents whose events were dropped"


@asynccontextmanager
async def first_dial_held(
    backend: Backend, tmp_path: Path, **handling: int
) -> AsyncIterator[tuple[Fake, Watched]]:
    """Two agents with a contact each, the daemon running with ``[handling]`` as given; the
    first agent made available and its dial sent, the answer held (until ``release``)."""
    first, second = backend.agent_ids(2)
    async with backend.start([first, second], available=False) as fake:
        fake.set_outcome(NUMBERS[0], Outcome.ANSWERED)
        fake.set_outcome(NUMBERS[1], Outcome.ANSWERED)
        config = fake.config(sqlite(tmp_path))
        config = config.model_copy(update={"handling": config.handling.model_copy(update=handling)})
        contacts = [(first, NUMBERS[0]), (second, NUMBERS[1])]
        async with daemon_for(config, contacts=contacts) as run:
            await fake.connected()
            await run.until("agent.not_ready", 2, reason=fake.away_reason())
            fake.hold_next_dial_answer(60.0)  # released by the test, never waited out
            await fake.available(first)
            await fake.wait_for(lambda: fake.requests == 1)
            yield fake, run


async def test_a_dial_waiting_for_the_platform_holds_up_its_agent_only(
    tmp_path: Path, backend: Backend
) -> None:
    """Two agents on one worker: while the first one's dial waits for its answer, the
    second one is dialed; the first one's call is placed once and tracked to its end."""
    first, second = backend.agent_ids(2)
    async with first_dial_held(backend, tmp_path, workers=1) as (fake, run):
        await fake.available(second)
        await run.until("dial.placed", user=second)
        assert not run.log.named("dial.placed", user=first), "the first answer is held"
        fake.release()
        await run.until("dial.placed", user=first)
        await run.until("call.ended", 2)
    assert sorted(fake.numbers()) == sorted(NUMBERS[:2])
    assert fake.requests == 2


async def test_lanes_full_and_waiting_on_the_platform_hold_up_the_others_only_briefly(
    tmp_path: Path,
) -> None:
    """The lanes together hold at most ``workers x worker_queue_size`` events, past which
    the dispatcher waits for them; lanes that take nothing (a held dial answer) wait on
    the platform, not on the CPU: the dispatcher goes on and the other agent is dialed.

    On Genesys only: a CXone dial is settled by the agent's own events before its held
    HTTP answer comes, so a held answer there does not keep the lane waiting.
    """
    genesys = backend("genesys")
    first, second = genesys.agent_ids(2)
    # The lanes hold one event in all.
    async with first_dial_held(genesys, tmp_path, workers=1, worker_queue_size=1) as (fake, run):
        await fake.away(first)  # queued behind the held dial: the lanes are full
        await run.log.until(lambda: run.daemon.lanes_queued >= 1)
        await fake.available(second)
        await run.until("dial.placed", user=second)
        assert run.log.named("daemon.lanes_stalled"), "it waited for the lanes first"
        assert not run.log.named("dial.placed", user=first), "the first answer is held"
        fake.release()
        await run.until("dial.placed", user=first)
    assert fake.requests == 2


async def test_events_past_a_full_lane_are_dropped_counted_and_the_agent_re_read(
    tmp_path: Path,
) -> None:
    """An agent's dial waits long while its events keep coming: past ``worker_queue_size``
    they are dropped (no buffer grows without bound), and the agent is re-read after."""
    agent = AGENTS[0]
    async with FakePlatform([agent]) as platform:
        await platform.set_presence(agent, "Away")
        config = ready_config(platform, sqlite(tmp_path), [agent])
        config = config.model_copy(
            update={"handling": config.handling.model_copy(update={"worker_queue_size": 3})}
        )
        async with daemon_for(config, contacts=[(agent, NUMBERS[0])]) as run:
            await run.until("agent.not_ready")
            platform.stall_next(CALLS_PATH, 60.0, method="POST")  # released below
            await platform.set_presence(agent, "Available")
            await platform.wait_for(lambda: len(platform.recorded.call_requests) == 1)
            reread = run.daemon.agents_reread
            for n in range(6):  # the lane holds 3 of them
                await platform.publish(f"v2.users.{agent}.presence", presence(100 + n))
            # The call's own events come too (the platform placed it before answering).
            await run.log.until(lambda: run.daemon.lane_overflowed >= 3)
            warnings = run.log.named("daemon.lane_overflow")
            assert warnings
            assert {w["user"] for w in warnings} == {agent}
            platform.release_stalls()
            await run.until("dial.placed")
            await run.log.until(lambda: run.daemon.agents_reread > reread)
    assert len(platform.recorded.accepted_calls) == 1, "dropped events cost no second call"


async def test_a_step_queued_while_an_agents_event_is_prepared_runs_after_it(
    tmp_path: Path,
) -> None:
    """With SQLite the dispatcher does an event's quick part itself: a re-read queued for
    the agent meanwhile (from another task) waits for it, as it would behind a worker."""
    agent, other = AGENTS[:2]
    order: list[str] = []
    entered, release, stepped = anyio.Event(), anyio.Event(), anyio.Event()

    async def hold() -> None:
        order.append("event")
        entered.set()
        await release.wait()
        order.append("event done")

    async def step() -> None:
        order.append("step")
        stepped.set()

    async with FakePlatform([agent, other]) as platform:
        config = ready_config(platform, sqlite(tmp_path), [agent, other])
        async with daemon_for(config) as run, anyio.create_task_group() as tg:
            await run.until("daemon.refreshed")
            holding_prepare(run.daemon, agent, hold)
            await platform.publish(f"v2.users.{agent}.presence", presence(0, "Away"))
            await entered.wait()
            tg.start_soon(run_step, run.daemon, agent, step)
            await anyio.wait_all_tasks_blocked()
            assert order == ["event"], "the step waits for the agent's event"
            release.set()
            await stepped.wait()
    assert order == ["event", "event done", "step"]
