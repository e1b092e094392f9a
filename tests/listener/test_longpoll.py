"""The long-poll session machine, input by input: no I/O, time passed in by hand."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest

from outdial.listener.backoff import Backoff
from outdial.listener.longpoll import (
    TRANSITIONS,
    BackOff,
    BackoffElapsed,
    Deliver,
    EndSession,
    LeaseLost,
    LeaseRefused,
    LongPollError,
    LongPollSession,
    Poll,
    PollAnswered,
    PollEmpty,
    PollFailed,
    ReportGap,
    ResumeRequested,
    SessionEnded,
    SessionStarted,
    Standby,
    StandbyElapsed,
    StartFailed,
    StartProblem,
    StartSession,
    State,
    Stop,
    StopRequested,
    WatchdogExpired,
)

STATE_EVENT = {"Type": "AgentState", "CurrentState": "Available"}
SESSION_START = {"Type": "AgentSessionStart", "AgentId": "1"}


def machine(mode: str = "start") -> LongPollSession:
    return LongPollSession(
        mode=mode,  # type: ignore[arg-type]
        poll_timeout=30.0,
        poll_watchdog=20.0,
        backoff=Backoff(0.5, 30.0, 30.0, Random(7)),
    )


def state(m: LongPollSession) -> State:
    """The machine's state, read anew (mypy would keep an earlier assert's narrowing)."""
    return m.state


def up(m: LongPollSession, now: float = 100.0) -> list[Any]:
    assert m.begin(now - 1) == [StartSession(join=m.mode == "join")]
    return list(m.handle(SessionStarted("s0", joined=m.mode == "join"), now))


def test_startup_reports_a_gap_then_polls_with_the_new_id_every_time() -> None:
    m = machine()
    out = up(m)
    assert out == [ReportGap(99.0, 100.0, "startup"), Poll("s0", 30.0, 150.0)]
    assert m.state is State.POLLING
    assert m.owned
    out = m.handle(PollAnswered("s1", (SESSION_START, STATE_EVENT)), 101.0)
    # The first batch of a session opens with AgentSessionStart: not a snapshot.
    assert out == [Deliver("s1", (SESSION_START, STATE_EVENT)), Poll("s1", 30.0, 151.0)]
    assert m.handle(PollEmpty(), 131.0) == [Poll("s1", 30.0, 181.0)]
    assert m.handle(PollAnswered("s2", ()), 132.0) == [Poll("s2", 30.0, 182.0)]
    assert m.last_heard == 132.0


def test_a_snapshot_is_delivered_and_reported_as_a_gap() -> None:
    m = machine()
    up(m)
    m.handle(PollAnswered("s1", (SESSION_START,)), 101.0)
    out = m.handle(PollAnswered("s2", (SESSION_START, STATE_EVENT)), 110.0)
    assert out == [
        Deliver("s2", (SESSION_START, STATE_EVENT)),
        ReportGap(101.0, 110.0, "state renewal"),
        Poll("s2", 30.0, 160.0),
    ]
    # icBranchValue 3 on its own says the same.
    out = m.handle(PollAnswered("s3", (STATE_EVENT,), renewal=True), 120.0)
    assert out[1] == ReportGap(110.0, 120.0, "state renewal")


def test_a_failed_poll_is_a_gap_closed_by_the_next_answer_on_the_same_id() -> None:
    m = machine()
    up(m)
    m.handle(PollAnswered("s1", (STATE_EVENT,)), 101.0)
    [wait] = m.handle(PollFailed("ReadError"), 105.0)
    assert isinstance(wait, BackOff)
    assert wait.until == pytest.approx(105.0 + wait.seconds)
    assert m.state is State.BACKING_OFF
    assert m.gap_open
    assert m.last_error == "ReadError"
    # A second failure in a row is the same gap.
    assert m.handle(BackoffElapsed(), wait.until) == [Poll("s1", 30.0, wait.until + 50.0)]
    [wait] = m.handle(PollFailed("again"), 120.0)
    assert isinstance(wait, BackOff)
    m.handle(BackoffElapsed(), 125.0)
    out = m.handle(PollAnswered("s2", (SESSION_START, STATE_EVENT)), 126.0)
    assert out == [
        Deliver("s2", (SESSION_START, STATE_EVENT)),
        ReportGap(101.0, 126.0, "poll failed; state renewal"),
        Poll("s2", 30.0, 176.0),
    ]
    assert not m.gap_open


def test_a_hung_poll_is_a_dead_connection_and_a_gap() -> None:
    m = machine()
    up(m)
    [wait] = m.handle(WatchdogExpired(), 150.0)
    assert isinstance(wait, BackOff)
    assert "watchdog" in (wait.error or "")
    m.handle(BackoffElapsed(), wait.until)
    assert m.handle(PollEmpty(), 160.0)[0] == ReportGap(100.0, 160.0, "poll hung")


def test_a_409_starts_a_new_session_and_the_gap_runs_until_it_is_up() -> None:
    m = machine()
    up(m)
    m.handle(PollAnswered("s1", ()), 101.0)
    assert m.handle(SessionEnded(), 102.0) == [StartSession(join=False)]
    assert m.state is State.RESTARTING
    assert m.session_id is None
    assert not m.owned  # the platform ended it: nothing to DELETE
    out = m.handle(SessionStarted("t0"), 103.0)
    assert out == [ReportGap(101.0, 103.0, "session ended"), Poll("t0", 30.0, 153.0)]


def test_join_mode_rejoins_and_never_ends_the_agents_session() -> None:
    m = machine("join")
    up(m)
    assert not m.owned
    assert m.handle(SessionEnded(), 110.0) == [StartSession(join=True)]
    # The agent logged out: nothing to join yet, keep trying.
    [wait] = m.handle(StartFailed(StartProblem.UNAVAILABLE, "no session"), 111.0)
    assert isinstance(wait, BackOff)
    assert m.handle(BackoffElapsed(), wait.until) == [StartSession(join=True)]
    assert m.state is State.RESTARTING
    m.handle(SessionStarted("j1", joined=True), 200.0)
    assert m.handle(StopRequested(), 201.0) == [Stop()]


def test_a_session_in_progress_is_joined() -> None:
    m = machine()
    m.begin(0.0)
    out = m.handle(StartFailed(StartProblem.IN_PROGRESS, "SessionInProgress"), 1.0)
    assert out == [StartSession(join=True)]
    assert m.state is State.STARTING
    # Joining answered "in progress" again: not a loop, a backoff.
    [wait] = m.handle(StartFailed(StartProblem.IN_PROGRESS, "SessionInProgress"), 2.0)
    assert isinstance(wait, BackOff)
    assert m.handle(BackoffElapsed(), wait.until) == [StartSession(join=True)]
    assert m.state is State.STARTING
    m.handle(SessionStarted("j", joined=True), 10.0)
    assert not m.owned


def test_fatal_errors_stop_for_good() -> None:
    m = machine()
    m.begin(0.0)
    assert m.handle(StartFailed(StartProblem.FATAL, "ImpersonateNotEnabled"), 1.0) == [
        Stop(fatal="ImpersonateNotEnabled")
    ]
    assert m.state is State.STOPPED
    with pytest.raises(LongPollError):
        m.handle(ResumeRequested(), 2.0)
    m = machine()
    up(m)
    assert m.handle(PollFailed("401", fatal=True), 101.0) == [Stop(fatal="401")]


def test_an_unknown_agent_stops_its_session_with_a_gap_not_the_daemon() -> None:
    m = machine()
    m.begin(0.0)
    out = m.handle(StartFailed(StartProblem.UNKNOWN_AGENT, "InvalidAgentId"), 1.0)
    assert out == [ReportGap(1.0, 1.0, "agent unknown"), Stop(parked=True)]
    assert m.state is State.STOPPED
    assert m.fatal is None
    # Topics wanted again (a reload): it tries once more.
    assert m.handle(ResumeRequested(), 5.0) == [StartSession(join=False)]


def test_stop_ends_our_session_and_resume_starts_anew_with_a_startup_gap() -> None:
    m = machine()
    up(m)
    m.handle(PollAnswered("s1", ()), 101.0)
    assert m.handle(StopRequested(), 102.0) == [EndSession("s1"), Stop()]
    assert m.state is State.STOPPED
    assert m.handle(ResumeRequested(), 200.0) == [StartSession(join=False)]
    assert m.handle(SessionStarted("r0"), 201.0)[0] == ReportGap(200.0, 201.0, "startup")


def test_refused_the_lease_it_stands_by_and_takes_over_later_by_joining() -> None:
    """Another replica polls the agent's session: no session, no poll, no gap reported
    until the lease is ours; then the gap since startup closes (the agent is re-read)."""
    m = machine()
    m.begin(0.0)
    assert m.handle(LeaseRefused(), 0.5) == [Standby()]
    assert state(m) is State.STANDBY
    assert m.session_id is None
    assert m.handle(StandbyElapsed(), 5.5) == [StartSession(join=False)]
    assert state(m) is State.STARTING
    assert m.handle(LeaseRefused(), 5.6) == [Standby()]
    m.handle(StandbyElapsed(), 10.6)
    # The holder crashed and left its session behind: joined, never ended by us.
    assert m.handle(StartFailed(StartProblem.IN_PROGRESS, "SessionInProgress"), 10.7) == [
        StartSession(join=True)
    ]
    out = m.handle(SessionStarted("j0", joined=True), 10.8)
    assert out == [ReportGap(0.0, 10.8, "startup"), Poll("j0", 30.0, 60.8)]
    assert not m.owned
    assert m.handle(StopRequested(), 11.0) == [Stop()]


def test_a_lost_lease_steps_down_without_ending_the_session_and_comes_back_with_a_gap() -> None:
    m = machine()
    up(m)
    m.handle(PollAnswered("s1", ()), 101.0)
    # Ours, but the new holder polls it now: ending it would cut them off.
    assert m.handle(LeaseLost(), 102.0) == [Standby()]
    assert (m.state, m.session_id, m.owned) == (State.STANDBY, None, False)
    assert m.handle(StandbyElapsed(), 107.0) == [StartSession(join=False)]
    assert state(m) is State.RESTARTING
    out = m.handle(SessionStarted("r0"), 108.0)
    assert out[0] == ReportGap(101.0, 108.0, "lease lost")
    # Standing by, a stop is a stop.
    m.handle(LeaseLost(), 109.0)
    assert m.handle(StopRequested(), 110.0) == [Stop()]
    assert state(m) is State.STOPPED


def test_retry_after_is_a_floor_for_the_backoff() -> None:
    m = machine()
    m.begin(0.0)
    [wait] = m.handle(StartFailed(StartProblem.RETRYABLE, "429", retry_after=12.0), 1.0)
    assert isinstance(wait, BackOff)
    assert wait.seconds >= 12.0
    assert m.handle(BackoffElapsed(), wait.until) == [StartSession(join=False)]
    assert m.state is State.STARTING  # never up yet: still the startup gap


def test_inputs_the_table_has_no_row_for_are_protocol_errors() -> None:
    m = machine()
    with pytest.raises(LongPollError):
        m.handle(PollEmpty(), 0.0)
    m.begin(0.0)
    with pytest.raises(LongPollError):
        m.begin(0.0)
    with pytest.raises(LongPollError):
        m.handle(PollEmpty(), 1.0)  # no poll in flight while starting
    with pytest.raises(LongPollError):
        m.handle(BackoffElapsed(), 1.0)
    # Every state has a way out of it.
    assert {state for state, _ in TRANSITIONS} == set(State)


def test_the_backoff_grows_and_resets_once_polls_were_stable() -> None:
    m = machine()
    up(m)
    delays = []
    now = 100.0
    for _ in range(6):
        [wait] = m.handle(PollFailed("x"), now)
        assert isinstance(wait, BackOff)
        delays.append(wait.seconds)
        m.handle(BackoffElapsed(), wait.until)
        now = wait.until
    assert max(delays) <= 30.0
    m.handle(PollEmpty(), now)  # works again
    m.handle(PollEmpty(), now + 40.0)
    [wait] = m.handle(PollFailed("x"), now + 40.0)
    assert isinstance(wait, BackOff)
    assert wait.seconds <= 0.5  # stable for 30 s: attempts start over
