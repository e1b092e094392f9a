"""One shard's channel, kept alive forever: the thin anyio shell around its lifecycle.

:class:`ChannelSupervisor` runs :class:`~outdial.platforms.genesys.lifecycle.ChannelLifecycle`
for one shard: it carries out each action (create or check the channel, open a
socket, read or replace the subscriptions, report a gap, back off, close a
socket, stop) and feeds back what happened. What sockets report on their own
(a socket ended, a ``socket_closing`` warning) waits in a small inbox and is fed
between actions; the channel's expiry is waited for on the injected clock
(``clock.sleep_until``), as is every backoff, so tests move time by hand.

It owns at most two sockets at a time (two only during a make-before-break
rotation), each in a task of the supervisor's task group with its own cancel
scope. Retryable errors back off; fatal ones (credentials, permissions, a
rejected subscription, a 400) stop the daemon with what to fix.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

import anyio
import anyio.abc

from outdial.clock import Clock
from outdial.config import ListenerConfig
from outdial.events import Event, Gap, SocketClosing
from outdial.listener.backoff import Backoff
from outdial.listener.state import ChannelState, ListenerFatal, SupervisorStats
from outdial.log import emit
from outdial.platforms.base import (
    ChannelApi,
    ChannelGone,
    ChannelInfo,
    PlatformError,
    SubscriptionResult,
)
from outdial.platforms.genesys import lifecycle as lc
from outdial.platforms.genesys.socket import SocketSession, WarningLimiter

__all__ = ["ChannelSupervisor"]

log = logging.getLogger("outdial.listener")

#: The actions the run loop awaits an answer to.
_REQUESTS = (
    lc.CreateChannel,
    lc.CheckChannel,
    lc.Connect,
    lc.ReadSubscriptions,
    lc.PutSubscriptions,
    lc.BackOff,
)


@dataclass(eq=False)
class _Live:
    number: int
    session: SocketSession
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class ChannelSupervisor:
    """Keeps one channel carrying ``topics`` connected, forever, until cancelled."""

    def __init__(
        self,
        name: str,
        topics: Sequence[str],
        *,
        platform: ChannelApi,
        settings: ListenerConfig,
        clock: Clock,
        rng: Random,
        deliver: Callable[[Event], None],
        report_gap: Callable[[Gap], None],
        rotation_started: Callable[[], None] = lambda: None,
        rotation_finished: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self._platform = platform
        self._settings = settings
        self._clock = clock
        self._machine = lc.ChannelLifecycle(
            frozenset(topics),
            backoff=Backoff(
                settings.backoff_base, settings.backoff_cap, settings.stable_after, rng
            ),
            rotate_before_expiry=settings.rotate_before_expiry,
            error_after=settings.error_after,
        )
        self._deliver = deliver
        self._report_gap = report_gap
        # Shared by the channel's successive sockets: a reconnect storm of bad
        # frames still logs one summary per interval, not one line per socket.
        self._malformed_log = WarningLimiter()
        self._rotation_started = rotation_started
        self._rotation_finished = rotation_finished
        # Held while the channel's subscriptions are being read or changed, so a
        # runtime topic change and a reconnect never interleave their requests.
        self._subscriptions = anyio.Lock()
        # What sockets report on their own, fed to the machine between actions.
        # Small without a bound: one end per socket (two at most are open), and
        # a warning is not queued twice.
        self._inbox: deque[lc.Input] = deque()
        self._reported = anyio.Event()
        self._sockets: dict[int, _Live] = {}
        self._latest: _Live | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._cause: BaseException | None = None
        self.stats = SupervisorStats()

    @property
    def topics(self) -> frozenset[str]:
        """The topics this shard carries (or will, once connected)."""
        return self._machine.topics

    @topics.setter
    def topics(self, topics: frozenset[str]) -> None:
        # EventSource declares the attribute; changing it is a request to the
        # platform, which only update_topics can make.
        raise AttributeError("topics change through update_topics()")

    @property
    def channel(self) -> ChannelInfo | None:
        """The channel carrying the topics, or the one to reuse (None: none yet)."""
        return self._machine.channel

    @property
    def last_frame_at(self) -> float | None:
        """Monotonic time of the last frame on this shard's latest socket (None: none yet)."""
        return self._latest.session.last_frame_at if self._latest is not None else None

    @property
    def connection_id(self) -> str | None:
        """The channel carrying the topics now (None: none yet)."""
        return self.channel.id if self.channel else None

    async def run(self) -> None:
        """Run until cancelled; raise :class:`ListenerFatal` when retrying cannot help."""
        machine = self._machine
        todo: deque[lc.Output] = deque(machine.begin(self._clock.monotonic()))
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                while True:
                    while self._inbox:
                        todo.extend(self._feed(self._inbox.popleft()))
                    if not todo:
                        todo.extend(self._feed(await self._idle()))
                        continue
                    happened = await self._do(todo.popleft())
                    if happened is not None:
                        todo.extend(self._feed(happened))
        finally:
            self._tg = None
            for output in machine.handle(lc.Shutdown(), self._clock.monotonic()):
                self._report(output)

    def _feed(self, happened: lc.Input) -> list[lc.Output]:
        outputs = self._machine.handle(happened, self._clock.monotonic())
        live = self._sockets.get(self._machine.live) if self._machine.live is not None else None
        if live is not None:
            self._latest = live
        return outputs

    # -- carrying out one action ---------------------------------------------------

    async def _do(self, action: lc.Output) -> lc.Input | None:
        """Carry out ``action``; what answered it (None: nothing answers it)."""
        if not isinstance(action, _REQUESTS):
            self._report(action)
            return None
        # A fatal stop names the error that caused it (None: a rejection, say).
        self._cause = None
        try:
            match action:
                case lc.CreateChannel():
                    return await self._create()
                case lc.CheckChannel(channel_id=channel_id):
                    if await self._platform.channel_exists(channel_id):
                        return lc.ChannelExists()
                    emit(log, "channel.gone", shard=self.name, channel=channel_id)
                    return lc.ChannelGone()
                case lc.Connect(socket=number, channel=channel):
                    return await self._connect(number, channel)
                case lc.ReadSubscriptions(channel_id=channel_id):
                    async with self._subscriptions:
                        read = await self._platform.get_subscriptions(channel_id)
                    return lc.SubscriptionsRead(frozenset(read))
                case lc.PutSubscriptions(channel_id=channel_id, topics=topics):
                    async with self._subscriptions:
                        results = await self._platform.put_subscriptions(channel_id, topics)
                    self.stats.resubscribes += 1
                    return lc.SubscriptionsPut(tuple(results))
                case lc.BackOff():
                    await self._back_off(action)
                    return lc.BackoffElapsed()
        except ChannelGone as exc:
            self._cause = exc
            return lc.ChannelGone(str(exc))
        except PlatformError as exc:
            self._cause = exc
            return lc.Failed(str(exc), fatal=not exc.retryable, retry_after=exc.retry_after)
        raise AssertionError(f"unknown request {action!r}")  # pragma: no cover

    def _report(self, action: lc.Output) -> None:
        """Carry out an action nothing answers: a log line, a count, a callback."""
        match action:
            case lc.CloseSocket(socket=number):
                live = self._sockets.get(number)
                if live is not None:
                    live.scope.cancel()
            case lc.ReportGap(start=start, end=end, reason=reason):
                self._close_gap(start, end, reason)
            case lc.Enter(state=state, reason=reason):
                fields: dict[str, Any] = {}
                if reason is not None:
                    fields = {
                        "reason": reason,
                        "close_code": action.close_code,
                        "closed_by": action.closed_by,
                    }
                self._set_state(state, **fields)
            case lc.SocketLost(silent_for=silent_for):
                if silent_for is not None:
                    self.stats.last_dead_after = silent_for
                self.stats.reconnects += 1
            case lc.Subscribed(channel_id=channel_id, topics=count):
                emit(log, "channel.subscribed", shard=self.name, channel=channel_id, topics=count)
            case lc.StartRotation():
                self._rotation_started()
            case lc.FinishRotation():
                self._rotation_finished()
            case lc.Rotated(channel_id=channel_id, took=took):
                self.stats.rotations += 1
                emit(
                    log, "channel.rotated", shard=self.name, channel=channel_id, took=round(took, 3)
                )
            case lc.Stop(message=message):
                raise ListenerFatal(message) from self._cause
            case _:  # pragma: no cover - the machine asks only for the above here
                raise AssertionError(f"unexpected action {action!r}")

    async def _create(self) -> lc.Input:
        channel = await self._platform.create_channel()
        self.stats.channels_created += 1
        emit(
            log,
            "channel.created",
            shard=self.name,
            channel=channel.id,
            expires=channel.expires.isoformat() if channel.expires else None,
        )
        # The machine keeps time on the monotonic clock; the platform says when in wall time.
        expires_in = (
            (channel.expires - self._clock.now()).total_seconds() if channel.expires else None
        )
        return lc.ChannelCreated(channel, expires_in)

    async def _connect(self, number: int, channel: ChannelInfo) -> lc.Input:
        assert self._tg is not None
        live = _Live(
            number,
            SocketSession(
                channel,
                ping_interval=self._settings.ping_interval,
                ping_timeout=self._settings.ping_timeout,
                clock=self._clock,
                on_event=self._on_event,
                on_closing=self._on_closing,
                open_timeout=self._settings.connect_timeout,
                malformed_log=self._malformed_log,
            ),
        )
        self._sockets[number] = live
        try:
            await self._tg.start(self._run_live, live)
        except BaseException:
            self._sockets.pop(number, None)
            raise
        self.stats.connects += 1
        return lc.SocketConnected(number)

    async def _run_live(
        self, live: _Live, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        end = None
        try:
            with live.scope:
                end = await live.session.run(task_status=task_status)
        finally:
            self._sockets.pop(live.number, None)
            session = live.session
            if session.liveness is not None:  # it was open: its end is news
                self._post(
                    lc.SocketEnded(
                        live.number,
                        end.value if end is not None else None,
                        session.last_frame_at,
                        close_code=session.stats.close_code,
                        closed_by=session.stats.closed_by,
                        silent_for=session.stats.silent_for_when_dead,
                    )
                )

    async def _back_off(self, action: lc.BackOff) -> None:
        if action.error is not None:
            self.stats.last_error = action.error
        # An operator at --log-level warning must see the platform failing; an
        # alert-worthy streak (listener.error_after attempts in a row) is ERROR.
        emit(
            log,
            "channel.backoff",
            logging.ERROR if action.severe else logging.WARNING,
            shard=self.name,
            delay=round(action.seconds, 3),
            attempt=action.attempt,
            error=action.error,
        )
        await self._clock.sleep_until(action.until)

    async def _idle(self) -> lc.Input:
        """Nothing to do: wait for a socket to report, or for the channel's expiry to near."""
        deadline = self._machine.deadline
        if not self._inbox:
            self._reported = anyio.Event()
            async with anyio.create_task_group() as tg:

                async def reported() -> None:
                    await self._reported.wait()
                    tg.cancel_scope.cancel()

                async def expiring(at: float) -> None:
                    await self._clock.sleep_until(at)
                    tg.cancel_scope.cancel()

                tg.start_soon(reported)
                if deadline is not None:
                    tg.start_soon(expiring, deadline)
        # A socket that ended wins over a deadline passed at the same time.
        return self._inbox.popleft() if self._inbox else lc.ExpiryNear()

    def _post(self, happened: lc.Input) -> None:
        if isinstance(happened, lc.ClosingWarning) and happened in self._inbox:
            return
        self._inbox.append(happened)
        self._reported.set()

    # -- runtime topic changes -------------------------------------------------------

    async def update_topics(self, topics: frozenset[str]) -> list[SubscriptionResult]:
        """Carry ``topics`` from now on, with the smallest request, without reconnecting.

        Returns the topics the platform rejected (they are dropped, and the
        rest stay subscribed). When no socket is up, the next reconnect
        subscribes the new set.
        """
        async with self._subscriptions:
            todo = deque(self._feed(lc.TopicsChanged(frozenset(topics))))
            rejected: list[SubscriptionResult] = []
            while todo:
                action = todo.popleft()
                match action:
                    case lc.ChangeSubscriptions():
                        todo.extend(self._feed(await self._change(action)))
                    case lc.TopicsUpdated():
                        emit(
                            log,
                            "channel.topics_changed",
                            shard=self.name,
                            channel=action.channel_id,
                            request=action.method,
                            topics=len(action.topics),
                            rejected=len(action.rejected),
                        )
                        rejected = list(action.rejected)
                    case _:
                        self._report(action)
            return rejected

    async def _change(self, action: lc.ChangeSubscriptions) -> lc.Input:
        change = (
            self._platform.add_subscriptions
            if action.method == "post"
            else self._platform.put_subscriptions
        )
        try:
            results = await change(action.channel_id, list(action.topics))
        except PlatformError as exc:
            # The channel may not carry what we want now: reconnecting resyncs it
            # (GET, then PUT) and reports the gap, like any other outage.
            emit(
                log,
                "channel.topics_change_failed",
                logging.WARNING,
                shard=self.name,
                channel=action.channel_id,
                error=str(exc),
            )
            return lc.TopicsChangeFailed(str(exc))
        return lc.TopicsChangeAnswered(tuple(results))

    # -- what sockets report -----------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.topic in self._machine.topics:
            self._deliver(event)
            return
        self.stats.unexpected_topics += 1
        if self.stats.unexpected_topics == 1 or self.stats.unexpected_topics % 1000 == 0:
            emit(
                log,
                "channel.unexpected_topic",
                logging.WARNING,
                shard=self.name,
                topic=event.topic,
                count=self.stats.unexpected_topics,
            )

    def _on_closing(self, warning: SocketClosing) -> None:
        emit(
            log,
            "channel.closing_warning",
            shard=self.name,
            channel=warning.channel_id,
            reason=warning.reason,
        )
        self._post(lc.ClosingWarning())

    # -- logs and counters -----------------------------------------------------------

    def _set_state(self, state: ChannelState, **fields: Any) -> None:
        if state is not self.stats.state:
            self.stats.state = state
            self.stats.transitions[state.value] = self.stats.transitions.get(state.value, 0) + 1
            emit(
                log,
                f"channel.{state.value}",
                shard=self.name,
                channel=self.channel.id if self.channel else None,
                **fields,
            )

    def _close_gap(self, start: float, end: float, reason: str) -> None:
        self.stats.gaps += 1
        if reason != "startup":
            self.stats.longest_recovery = max(self.stats.longest_recovery, end - start)
        emit(log, "listener.gap", shard=self.name, reason=reason, seconds=round(end - start, 3))
        self._report_gap(Gap(topics=self.topics, start=start, end=end, reason=reason))
