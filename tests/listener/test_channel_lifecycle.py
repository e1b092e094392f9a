"""The Genesys channel lifecycle machine, input by input: no I/O, time passed in by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from random import Random

import pytest

from outdial.listener.backoff import Backoff
from outdial.listener.state import ChannelState
from outdial.platforms.base import ChannelInfo, SubscriptionResult
from outdial.platforms.genesys import lifecycle as lc
from outdial.platforms.genesys.lifecycle import TRANSITIONS, ChannelLifecycle, LifecycleError

A, B = "v2.users.a.presence", "v2.users.b.presence"
S = ChannelState


def chan(n: int) -> ChannelInfo:
    return ChannelInfo(f"ch{n}", f"wss://x/ch{n}", datetime(2026, 1, 2, tzinfo=UTC))


def ok(*topics: str) -> tuple[SubscriptionResult, ...]:
    return tuple(SubscriptionResult(t, True) for t in topics)


def machine(topics: frozenset[str] = frozenset({A}), error_after: int = 5) -> ChannelLifecycle:
    return ChannelLifecycle(
        topics,
        backoff=Backoff(1.0, 30.0, 10.0, Random(3)),
        rotate_before_expiry=60.0,
        error_after=error_after,
    )


def kinds(outputs: list[lc.Output]) -> list[str]:
    return [type(o).__name__ for o in outputs]


def subscribed(m: ChannelLifecycle, now: float = 10.0) -> list[lc.Output]:
    """Startup, all the way to subscribed on ch1 with socket 1."""
    assert m.begin(now - 10) == [lc.CreateChannel()]
    assert m.handle(lc.ChannelCreated(chan(1), 86400.0), now - 8) == [lc.Connect(1, chan(1))]
    assert m.handle(lc.SocketConnected(1), now - 5) == [lc.PutSubscriptions("ch1", (A,))]
    return m.handle(lc.SubscriptionsPut(ok(A)), now)


def ended(socket: int, at: float, how: str = "closed_by_server") -> lc.SocketEnded:
    return lc.SocketEnded(socket, how, at, close_code=1000, closed_by="platform")


def rotating(m: ChannelLifecycle) -> None:
    """Subscribed on socket 1, then warned: rotating, awaiting the new channel."""
    subscribed(m)
    assert kinds(m.handle(lc.ClosingWarning(), 20.0)) == ["Enter", "StartRotation", "CreateChannel"]


# -- the paths, one by one ------------------------------------------------------------


def test_startup_creates_connects_subscribes_and_reports_the_startup_gap() -> None:
    m = machine()
    out = subscribed(m)
    assert out == [
        lc.Subscribed("ch1", 1),
        lc.ReportGap(0.0, 10.0, "startup"),
        lc.Enter(S.SUBSCRIBED),
    ]
    assert m.state is S.SUBSCRIBED
    assert m.subscribed_channel == "ch1"
    assert m.live == 1
    # The channel expires 86400 s after it was created, at 2: rotate a minute before.
    assert m.deadline == 2.0 + 86400.0 - 60.0


def test_a_socket_end_checks_the_channel_reuses_it_and_reports_exactly_the_silence() -> None:
    m = machine()
    subscribed(m)
    out = m.handle(ended(1, at=95.0), 100.0)
    assert out == [
        lc.SocketLost(None),
        lc.Enter(S.DEGRADED, "socket closed_by_server", 1000, "platform"),
        lc.CheckChannel("ch1"),
    ]
    [backoff] = m.handle(lc.ChannelExists(), 101.0)
    assert isinstance(backoff, lc.BackOff)
    assert backoff.error is None
    assert m.handle(lc.BackoffElapsed(), backoff.until) == [
        lc.Enter(S.RECONNECTING),
        lc.Connect(2, chan(1)),
    ]
    assert m.handle(lc.SocketConnected(2), 103.0) == [lc.ReadSubscriptions("ch1")]
    # The channel still carries the topics: no PUT, and the gap runs from the
    # last frame of the old socket to the moment the new one carries them.
    assert m.handle(lc.SubscriptionsRead(frozenset({A})), 104.0) == [
        lc.ReportGap(95.0, 104.0, "socket closed_by_server"),
        lc.Enter(S.SUBSCRIBED),
    ]


def test_a_channel_that_is_gone_is_created_anew_and_subscribed() -> None:
    m = machine()
    subscribed(m)
    m.handle(ended(1, at=50.0, how="dead"), 51.0)
    [backoff] = m.handle(lc.ChannelGone(), 52.0)
    assert isinstance(backoff, lc.BackOff)
    assert m.channel is None
    assert m.handle(lc.BackoffElapsed(), 53.0) == [lc.Enter(S.RECONNECTING), lc.CreateChannel()]
    m.handle(lc.ChannelCreated(chan(2), 86400.0), 54.0)
    assert m.handle(lc.SocketConnected(2), 55.0) == [lc.PutSubscriptions("ch2", (A,))]
    assert m.handle(lc.SubscriptionsPut(ok(A)), 56.0)[1] == lc.ReportGap(50.0, 56.0, "socket dead")


def test_a_reused_channel_that_lost_its_topics_is_put_again() -> None:
    m = machine()
    subscribed(m)
    m.handle(ended(1, at=50.0), 51.0)
    m.handle(lc.ChannelExists(), 52.0)
    m.handle(lc.BackoffElapsed(), 53.0)
    m.handle(lc.SocketConnected(2), 54.0)
    assert m.handle(lc.SubscriptionsRead(frozenset()), 55.0) == [lc.PutSubscriptions("ch1", (A,))]


def test_a_refused_handshake_forgets_the_channel_and_backs_off_quietly() -> None:
    m = machine()
    subscribed(m)
    m.handle(ended(1, at=50.0), 51.0)
    m.handle(lc.ChannelExists(), 52.0)
    m.handle(lc.BackoffElapsed(), 53.0)
    [backoff] = m.handle(lc.ChannelGone("socket handshake refused with 403"), 54.0)
    assert isinstance(backoff, lc.BackOff)
    assert backoff.error is None
    assert m.channel is None


def test_retryable_failures_back_off_honouring_retry_after_and_close_a_half_brought_socket() -> (
    None
):
    m = machine()
    m.begin(0.0)
    [backoff] = m.handle(lc.Failed("503", retry_after=None), 1.0)
    assert isinstance(backoff, lc.BackOff)
    assert backoff.error == "503"
    assert m.state is S.CONNECTING
    assert m.handle(lc.BackoffElapsed(), backoff.until) == [lc.CreateChannel()]
    m.handle(lc.ChannelCreated(chan(1), None), 3.0)
    m.handle(lc.SocketConnected(1), 4.0)
    out = m.handle(lc.Failed("429", retry_after=7.0), 5.0)
    assert out[0] == lc.CloseSocket(1)
    assert isinstance(out[1], lc.BackOff)
    assert out[1].seconds >= 7.0
    # The channel is kept: the next try reads what it carries before writing.
    assert m.handle(lc.BackoffElapsed(), out[1].until) == [lc.Connect(2, chan(1))]
    assert m.handle(lc.SocketConnected(2), 13.0) == [lc.ReadSubscriptions("ch1")]


def test_a_long_failure_streak_is_severe() -> None:
    m = machine(error_after=2)
    m.begin(0.0)
    first = m.handle(lc.Failed("503"), 1.0)[0]
    m.handle(lc.BackoffElapsed(), 2.0)
    second = m.handle(lc.Failed("503"), 3.0)[0]
    assert isinstance(first, lc.BackOff)
    assert isinstance(second, lc.BackOff)
    assert (first.attempt, first.severe, second.attempt, second.severe) == (1, False, 2, True)


def test_fatal_errors_and_rejected_topics_stop_with_what_to_fix() -> None:
    m = machine()
    m.begin(0.0)
    assert m.handle(lc.Failed("401: check client_secret", fatal=True), 1.0) == [
        lc.Enter(S.STOPPED),
        lc.Stop("401: check client_secret"),
    ]
    m = machine()
    m.begin(0.0)
    m.handle(lc.ChannelCreated(chan(1), None), 1.0)
    m.handle(lc.SocketConnected(1), 2.0)
    out = m.handle(lc.SubscriptionsPut((SubscriptionResult(A, False, "no permission"),)), 3.0)
    assert kinds(out) == ["CloseSocket", "Enter", "Stop"]
    stop = out[-1]
    assert isinstance(stop, lc.Stop)
    assert "rejected 1 subscription(s)" in stop.message
    assert "no permission" in stop.message
    assert m.state is S.STOPPED


def test_rotation_is_make_before_break_and_no_gap() -> None:
    m = machine()
    rotating(m)
    assert m.handle(lc.ChannelCreated(chan(2), 86400.0), 21.0) == [lc.Connect(2, chan(2))]
    assert m.handle(lc.SocketConnected(2), 22.0) == [lc.PutSubscriptions("ch2", (A,))]
    # The old socket is closed only once the new channel carries the topics.
    assert m.handle(lc.SubscriptionsPut(ok(A)), 23.0) == [
        lc.Subscribed("ch2", 1),
        lc.CloseSocket(1),
    ]
    assert m.state is S.ROTATING
    out = m.handle(ended(1, at=24.0, how=None), 24.0)  # type: ignore[arg-type]
    assert out == [lc.FinishRotation(), lc.Rotated("ch2", 4.0), lc.Enter(S.SUBSCRIBED)]
    assert m.live == 2
    assert not m.gap_open
    # The new channel's own expiry decides the next rotation.
    assert m.deadline == 21.0 + 86400.0 - 60.0


def test_expiry_near_rotates_like_a_warning() -> None:
    m = machine()
    subscribed(m)
    assert m.deadline is not None
    out = m.handle(lc.ExpiryNear(), m.deadline)
    assert kinds(out) == ["Enter", "StartRotation", "CreateChannel"]


def test_a_failed_rotation_retries_while_the_old_socket_carries_the_topics() -> None:
    m = machine()
    rotating(m)
    [backoff] = m.handle(lc.Failed("503"), 21.0)
    assert isinstance(backoff, lc.BackOff)
    assert backoff.error == "503"
    assert m.state is S.ROTATING
    assert m.handle(lc.BackoffElapsed(), backoff.until) == [lc.CreateChannel()]


def test_a_rotation_whose_old_socket_died_falls_back_to_a_reconnect_with_a_gap() -> None:
    m = machine()
    rotating(m)
    assert m.handle(ended(1, at=21.0), 21.5) == []  # noted: the rotation goes on
    out = m.handle(lc.Failed("503"), 22.0)
    assert out == [
        lc.FinishRotation(),
        lc.SocketLost(None),
        lc.Enter(S.DEGRADED, "socket closed_by_server", 1000, "platform"),
        lc.CheckChannel("ch1"),
    ]
    m.handle(lc.ChannelExists(), 23.0)
    m.handle(lc.BackoffElapsed(), 24.0)
    m.handle(lc.SocketConnected(2), 25.0)
    assert m.handle(lc.SubscriptionsRead(frozenset({A})), 26.0)[0] == lc.ReportGap(
        21.0, 26.0, "socket closed_by_server"
    )


def test_a_rotation_completes_if_the_old_socket_ended_on_its_own_and_reports_the_gap() -> None:
    m = machine()
    rotating(m)
    m.handle(lc.ChannelCreated(chan(2), None), 21.0)
    m.handle(lc.SocketConnected(2), 22.0)
    assert m.handle(ended(1, at=22.5), 22.5) == []
    out = m.handle(lc.SubscriptionsPut(ok(A)), 23.0)
    assert kinds(out) == [
        "Subscribed",
        "CloseSocket",
        "FinishRotation",
        "Rotated",
        "ReportGap",
        "Enter",
    ]
    # Nothing carried the topics from the old socket's last frame until now.
    assert lc.ReportGap(22.5, 23.0, "socket closed_by_server") in out
    assert m.state is S.SUBSCRIBED


def test_a_socket_that_ends_while_being_subscribed_reconnects_once_subscribed() -> None:
    m = machine()
    m.begin(0.0)
    m.handle(lc.ChannelCreated(chan(1), None), 1.0)
    m.handle(lc.SocketConnected(1), 2.0)
    assert m.handle(ended(1, at=2.5), 3.0) == []
    out = m.handle(lc.SubscriptionsPut(ok(A)), 4.0)
    assert kinds(out) == [
        "Subscribed",
        "ReportGap",
        "Enter",
        "SocketLost",
        "Enter",
        "CheckChannel",
    ]
    assert [o.state for o in out if isinstance(o, lc.Enter)] == [S.SUBSCRIBED, S.DEGRADED]


def test_a_warning_during_bring_up_rotates_once_subscribed() -> None:
    m = machine()
    m.begin(0.0)
    assert m.handle(lc.ClosingWarning(), 0.5) == []
    m.handle(lc.ChannelCreated(chan(1), None), 1.0)
    m.handle(lc.SocketConnected(1), 2.0)
    out = m.handle(lc.SubscriptionsPut(ok(A)), 3.0)
    assert kinds(out)[-4:] == ["Enter", "Enter", "StartRotation", "CreateChannel"]
    assert m.state is S.ROTATING


def test_a_warning_outlives_a_socket_end_and_rotates_after_the_reconnect() -> None:
    m = machine()
    subscribed(m)
    m.handle(ended(1, at=11.0), 11.0)
    assert m.handle(lc.ClosingWarning(), 11.5) == []
    m.handle(lc.ChannelExists(), 12.0)
    m.handle(lc.BackoffElapsed(), 13.0)
    m.handle(lc.SocketConnected(2), 14.0)
    out = m.handle(lc.SubscriptionsRead(frozenset({A})), 15.0)
    assert kinds(out) == ["ReportGap", "Enter", "Enter", "StartRotation", "CreateChannel"]


def test_runtime_topic_changes_use_the_smallest_request_and_drop_rejections() -> None:
    m = machine()
    subscribed(m)
    assert m.handle(lc.TopicsChanged(frozenset({A, B})), 20.0) == [
        lc.ChangeSubscriptions("ch1", "post", (B,))
    ]
    rejected = SubscriptionResult(B, False, "unknown user")
    out = m.handle(lc.TopicsChangeAnswered((*ok(A), rejected)), 21.0)
    assert out == [lc.TopicsUpdated("ch1", "post", frozenset({A}), (rejected,))]
    assert m.topics == frozenset({A})
    assert m.handle(lc.TopicsChanged(frozenset()), 22.0) == [
        lc.ChangeSubscriptions("ch1", "put", ())
    ]
    m.handle(lc.TopicsChangeAnswered(()), 23.0)
    assert m.handle(lc.TopicsChanged(frozenset()), 24.0) == []  # nothing to change


def test_a_failed_topic_change_reconnects_to_resync() -> None:
    m = machine()
    subscribed(m)
    m.handle(lc.TopicsChanged(frozenset({A, B})), 20.0)
    assert m.handle(lc.TopicsChangeFailed("503"), 21.0) == [lc.CloseSocket(1)]
    assert m.subscribed_channel is None
    m.handle(ended(1, at=21.0, how=None), 21.5)  # type: ignore[arg-type]
    m.handle(lc.ChannelExists(), 22.0)
    m.handle(lc.BackoffElapsed(), 23.0)
    m.handle(lc.SocketConnected(2), 24.0)
    assert m.handle(lc.SubscriptionsRead(frozenset({A})), 25.0) == [
        lc.PutSubscriptions("ch1", (A, B))
    ]


def test_topics_changed_while_not_subscribed_are_what_the_next_subscription_puts() -> None:
    m = machine()
    m.begin(0.0)
    assert m.handle(lc.TopicsChanged(frozenset({A, B})), 0.5) == []
    m.handle(lc.ChannelCreated(chan(1), None), 1.0)
    assert m.handle(lc.SocketConnected(1), 2.0) == [lc.PutSubscriptions("ch1", (A, B))]
    # Changed again while the PUT was in flight: its answer is stale, put again.
    assert m.handle(lc.TopicsChanged(frozenset({B})), 2.5) == []
    assert m.handle(lc.SubscriptionsPut(ok(A, B)), 3.0) == [lc.PutSubscriptions("ch1", (B,))]
    assert lc.Enter(S.SUBSCRIBED) in m.handle(lc.SubscriptionsPut(ok(B)), 4.0)


def test_a_shard_with_no_topics_connects_without_subscribing() -> None:
    m = machine(frozenset())
    m.begin(0.0)
    m.handle(lc.ChannelCreated(chan(1), None), 1.0)
    assert m.handle(lc.SocketConnected(1), 2.0) == [
        lc.ReportGap(0.0, 2.0, "startup"),
        lc.Enter(S.SUBSCRIBED),
    ]
    assert m.deadline is None  # a channel without an expiry is never rotated


def test_shutdown_mid_rotation_finishes_it() -> None:
    m = machine()
    rotating(m)
    assert m.handle(lc.Shutdown(), 21.0) == [lc.FinishRotation(), lc.Enter(S.STOPPED)]


@pytest.mark.parametrize(
    ("setup", "bad"),
    [
        (lambda m: subscribed(m), lc.SubscriptionsRead(frozenset())),  # nothing was asked
        (lambda m: m.begin(0.0), lc.SocketConnected(1)),  # a create was asked, not a connect
        (lambda m: m.begin(0.0), lc.ExpiryNear()),  # no deadline while connecting
        (lambda m: subscribed(m), lc.TopicsChangeAnswered(())),  # no change in flight
        (lambda m: subscribed(m), lc.BackoffElapsed()),
    ],
)
def test_an_input_out_of_turn_is_a_protocol_error(
    setup: Callable[[ChannelLifecycle], object], bad: lc.Input
) -> None:
    m = machine()
    setup(m)
    with pytest.raises(LifecycleError):
        m.handle(bad, 100.0)


def test_a_rotation_never_reads_a_channel_it_just_created() -> None:
    # (rotating, "connected") has no row: a rotation's channel is always new.
    assert (S.ROTATING, "connected") not in TRANSITIONS
    assert (S.SUBSCRIBED, "created") not in TRANSITIONS


# -- the whole table, walked at random --------------------------------------------------


_DONE = ("put_ok", "read_same", "connected_synced")


class _Shell:
    """A shell that answers every request at random and reports sockets' ends at random,
    checking what must always hold: no input out of turn, gaps that cover every
    silent moment, and an old socket closed only once its successor carries the topics."""

    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        self.m = machine(self.some_topics(), error_after=3)
        self.now = 0.0
        self.pending: lc.Output | None = None
        self.up: int | None = None  # the socket last asked for
        self.connected: set[int] = set()
        self.carrying: dict[int, float] = {}  # socket -> since when it carries the topics
        self.carried: list[tuple[float, float]] = []
        self.gaps: list[tuple[float, float]] = []
        self.channels = 0
        self.stopped = False
        self.changing: lc.ChangeSubscriptions | None = None
        self.inbox: list[lc.Input] = []
        self.stopped_at: float | None = None
        self.last_input_at = 0.0
        self.gap_before: float | None = None
        self.seen: set[tuple[ChannelState, str]] = set()

    def some_topics(self) -> frozenset[str]:
        return frozenset(self.rng.sample([A, B, "v2.users.c.presence"], self.rng.randint(0, 2)))

    def feed(self, happened: lc.Input) -> None:
        if self.m.state is not S.STOPPED:
            self.last_input_at, self.gap_before = self.now, self.m.gap_since
        state, key = self.m.state, self.m.key(happened)
        self.seen.add((state, key))
        if key in _DONE and self.up in self.connected:
            assert self.up is not None
            self.carrying[self.up] = self.now
        outputs = self.m.handle(happened, self.now)
        if state is S.ROTATING and key in _DONE:
            # Make before break: the old socket is closed only now, and the new one
            # carries the topics already.
            [close] = [o for o in outputs if isinstance(o, lc.CloseSocket)]
            assert self.up in self.carrying or self.up not in self.connected
            assert close.socket != self.up
        for out in outputs:
            self.act(out)

    def act(self, out: lc.Output) -> None:
        match out:
            case (
                lc.CreateChannel()
                | lc.CheckChannel()
                | lc.ReadSubscriptions()
                | lc.PutSubscriptions()
                | lc.BackOff()
            ):
                assert self.pending is None, (self.pending, out)
                self.pending = out
            case lc.Connect(socket=socket):
                assert self.pending is None, (self.pending, out)
                self.pending, self.up = out, socket
            case lc.CloseSocket(socket=socket) if socket in self.connected:
                # Its end is reported later, as a real socket's would be.
                self.end(socket)
                self.inbox.append(lc.SocketEnded(socket, None, self.now))
            case lc.ReportGap(start=start, end=end):
                assert start <= end
                self.gaps.append((start, end))
            case lc.Stop():
                self.stopped, self.stopped_at = True, self.last_input_at
            case lc.ChangeSubscriptions():
                self.changing = out
            case _:
                pass

    def end(self, socket: int) -> None:
        since = self.carrying.pop(socket, None)
        if since is not None:
            self.carried.append((since, self.now))
        self.connected.discard(socket)

    def answer(self) -> lc.Input:
        r = self.rng.random()
        out, self.pending = self.pending, None
        fail = r < 0.15
        match out:
            case lc.CreateChannel():
                if fail:
                    return lc.Failed("503", fatal=r < 0.005)
                self.channels += 1
                return lc.ChannelCreated(chan(self.channels), self.rng.choice([None, 30.0]))
            case lc.CheckChannel():
                if r < 0.1:
                    return lc.Failed("403", fatal=r < 0.01)
                return lc.ChannelGone() if r < 0.4 else lc.ChannelExists()
            case lc.Connect(socket=socket):
                if fail:
                    return lc.ChannelGone("403") if r < 0.07 else lc.Failed("timeout")
                self.connected.add(socket)
                return lc.SocketConnected(socket)
            case lc.ReadSubscriptions():
                if fail:
                    return lc.Failed("503")
                return lc.SubscriptionsRead(self.m.topics if r < 0.6 else frozenset())
            case lc.PutSubscriptions(topics=topics):
                if fail:
                    return lc.ChannelGone("404") if r < 0.05 else lc.Failed("429", retry_after=1.0)
                if r > 0.97 and topics:
                    return lc.SubscriptionsPut((SubscriptionResult(topics[0], False),))
                return lc.SubscriptionsPut(ok(*topics))
            case lc.BackOff(until=until):
                self.now = max(self.now, until)
                return lc.BackoffElapsed()
        raise AssertionError(out)  # pragma: no cover

    def step(self) -> None:
        self.now += self.rng.choice([0.0, 0.5, 1.0])
        r = self.rng.random()
        if self.inbox and self.rng.random() < 0.5:  # a closing socket may take a while
            self.feed(self.inbox.pop(0))
        elif r < 0.1 and self.connected:
            socket = self.rng.choice(sorted(self.connected))
            self.end(socket)
            self.feed(lc.SocketEnded(socket, "dead", self.now))
        elif r < 0.14:
            self.feed(lc.ClosingWarning())
        elif r < 0.18 and self.changing is None:
            self.feed(lc.TopicsChanged(self.some_topics()))
        elif r < 0.22 and self.changing is not None:
            change, self.changing = self.changing, None
            if self.rng.random() < 0.3:
                self.feed(lc.TopicsChangeFailed("503"))
            else:
                self.feed(lc.TopicsChangeAnswered(ok(*change.topics)))
        elif self.pending is not None:
            self.feed(self.answer())
        elif self.m.deadline is not None:
            self.now = max(self.now, self.m.deadline)
            self.feed(lc.ExpiryNear())

    def walk(self, steps: int = 300, *, shutdown: bool = True) -> None:
        for out in self.m.begin(0.0):
            self.act(out)
        for _ in range(self.rng.choice([1, 3, steps])):
            if self.stopped:
                break
            self.step()
        if not shutdown:
            return
        if not self.stopped:
            self.feed(lc.Shutdown())
        # A topic change may still come (or be answered) once it is all over.
        if self.changing is not None:
            self.feed(
                lc.TopicsChangeFailed("503")
                if self.rng.random() < 0.5
                else (lc.TopicsChangeAnswered(ok(*self.changing.topics)))
            )
        self.feed(lc.TopicsChanged(self.some_topics()))
        self.feed(lc.Shutdown())


def _covers(intervals: list[tuple[float, float]], start: float, end: float) -> bool:
    reach = start
    for a, b in sorted(intervals):
        if a > reach:
            return False
        reach = max(reach, b)
    return reach >= end


@pytest.mark.parametrize("seed", range(200))
def test_random_walks_stay_in_the_table_and_gaps_cover_every_silent_moment(seed: int) -> None:
    shell = _Shell(seed)
    shell.walk(shutdown=False)
    carried = shell.carried + [(since, shell.now) for since in shell.carrying.values()]
    # (A fatal stop ends what was open: the daemon exits.)
    since = shell.gap_before if shell.stopped else shell.m.gap_since
    still_open = [(since, shell.now)] if since is not None else []
    # Every moment is carried by a socket or inside a reported (or still open) gap,
    # up to now or, after a fatal stop (the daemon exits), up to the stop.
    until = shell.stopped_at if shell.stopped_at is not None else shell.now
    assert _covers(carried + shell.gaps + still_open, 0.0, until)
    # And a gap is silence: it never reaches into the time a socket carried the topics.
    for start, end in shell.gaps:
        assert not any(start < b and a < end for a, b in carried), (start, end)


def test_random_walks_reach_every_row_of_the_table() -> None:
    seen: set[tuple[ChannelState, str]] = set()
    for seed in range(400):
        shell = _Shell(seed)
        shell.walk()
        seen |= shell.seen
    assert seen <= set(TRANSITIONS)
    missing = set(TRANSITIONS) - seen
    assert not missing, sorted((s.value, k) for s, k in missing)
