"""One shard's channel, kept alive forever: reconnect, resubscribe, rotate.

:class:`ChannelSupervisor` owns at most two sockets at a time (two only during a
make-before-break rotation). Its loop:

1. bring up a socket: reuse the channel if it still exists, else create one;
   connect; make the channel carry exactly the wanted topics (GET, PUT if they
   differ); report the gap since the last frame of the previous socket;
2. wait for the socket to end, for a ``socket_closing`` warning, or for the
   channel's expiry to come near;
3. on a warning or near expiry, bring up a new channel *before* closing the old
   one; on a socket end, back off (full jitter) and go to 1.

Retryable errors back off; fatal ones (credentials, permissions, a rejected
subscription, a 400) stop the daemon with what to fix.
"""

from __future__ import annotations

import logging
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
from outdial.platforms.genesys.plan import rotation_delay, subscription_change
from outdial.platforms.genesys.socket import SessionEnd, SocketSession, WarningLimiter

__all__ = ["ChannelSupervisor"]

log = logging.getLogger("outdial.listener")


@dataclass(eq=False)
class _Live:
    session: SocketSession
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    end: SessionEnd | None = None


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
        self.topics = frozenset(topics)
        self._platform = platform
        self._settings = settings
        self._clock = clock
        self._backoff = Backoff(
            settings.backoff_base, settings.backoff_cap, settings.stable_after, rng
        )
        self._deliver = deliver
        self._report_gap = report_gap
        # Shared by the channel's successive sockets: a reconnect storm of bad
        # frames still logs one summary per interval, not one line per socket.
        self._malformed_log = WarningLimiter()
        self._rotation_started = rotation_started
        self._rotation_finished = rotation_finished
        self._closing_warned = anyio.Event()
        # Held while the channel's subscriptions are being read or changed, so a
        # runtime topic change and a reconnect never interleave their requests.
        self._subscriptions = anyio.Lock()
        self._subscribed_channel: str | None = None
        self._live: _Live | None = None
        self.stats = SupervisorStats()
        self.channel: ChannelInfo | None = None

    @property
    def last_frame_at(self) -> float | None:
        """Monotonic time of the last frame on this shard's latest socket (None: none yet)."""
        return self._live.session.last_frame_at if self._live is not None else None

    @property
    def connection_id(self) -> str | None:
        """The channel carrying the topics now (None: none yet)."""
        return self.channel.id if self.channel else None

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

    async def run(self) -> None:
        """Run until cancelled; raise :class:`ListenerFatal` when retrying cannot help."""
        gap_start: float | None = self._clock.monotonic()  # before start, nothing is known
        gap_reason = "startup"
        live: _Live | None = None
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    if live is None:
                        self._set_state(
                            ChannelState.CONNECTING
                            if gap_reason == "startup"
                            else ChannelState.RECONNECTING
                        )
                        try:
                            live = await self._bring_up(tg, self.channel)
                        except ChannelGone:
                            self.channel = None
                            await self._sleep_backoff(None)
                            continue
                        except PlatformError as exc:
                            if not exc.retryable:
                                raise ListenerFatal(str(exc)) from exc
                            await self._sleep_backoff(exc)
                            continue
                        now = self._clock.monotonic()
                        self._backoff.connected(now)
                        if gap_start is not None:
                            self._close_gap(gap_start, now, gap_reason)
                            gap_start = None
                        self._set_state(ChannelState.SUBSCRIBED)

                    self._live = live
                    if await self._wait_for_trouble(live):
                        rotated = await self._rotate(tg, live)
                        if rotated is not None:
                            live = rotated
                            continue
                    # The socket ended: events since its last frame may be lost.
                    gap_start = live.session.last_frame_at or self._clock.monotonic()
                    gap_reason = f"socket {live.end.value if live.end else 'ended'}"
                    self._subscribed_channel = None
                    if live.session.stats.silent_for_when_dead is not None:
                        self.stats.last_dead_after = live.session.stats.silent_for_when_dead
                    self.stats.reconnects += 1
                    ended = live.session.stats
                    live = None
                    self._set_state(
                        ChannelState.DEGRADED,
                        reason=gap_reason,
                        close_code=ended.close_code,
                        closed_by=ended.closed_by or None,
                    )
                    await self._forget_channel_if_gone()
                    await self._sleep_backoff(None)
        finally:
            self._set_state(ChannelState.STOPPED)

    async def _sleep_backoff(self, error: PlatformError | None) -> None:
        delay = self._backoff.failed(self._clock.monotonic(), error.retry_after if error else None)
        if error is not None:
            self.stats.last_error = str(error)
        # An operator at --log-level warning must see the platform failing; an
        # alert-worthy streak (listener.error_after attempts in a row) is ERROR.
        level = (
            logging.ERROR
            if self._backoff.attempts >= self._settings.error_after
            else logging.WARNING
        )
        emit(
            log,
            "channel.backoff",
            level,
            shard=self.name,
            delay=round(delay, 3),
            attempt=self._backoff.attempts,
            error=str(error) if error else None,
        )
        await anyio.sleep(delay)

    async def _forget_channel_if_gone(self) -> None:
        if self.channel is None:
            return
        try:
            exists = await self._platform.channel_exists(self.channel.id)
        except PlatformError as exc:
            if not exc.retryable:
                raise ListenerFatal(str(exc)) from exc
            return  # unknown: try the channel again; a refused handshake will tell
        if not exists:
            emit(log, "channel.gone", shard=self.name, channel=self.channel.id)
            self.channel = None

    async def _bring_up(self, tg: anyio.abc.TaskGroup, channel: ChannelInfo | None) -> _Live:
        """A connected socket on a channel that carries exactly our topics."""
        fresh = channel is None
        if channel is None:
            channel = await self._platform.create_channel()
            self.stats.channels_created += 1
            emit(
                log,
                "channel.created",
                shard=self.name,
                channel=channel.id,
                expires=channel.expires.isoformat() if channel.expires else None,
            )
        live = _Live(
            SocketSession(
                channel,
                ping_interval=self._settings.ping_interval,
                ping_timeout=self._settings.ping_timeout,
                clock=self._clock,
                on_event=self._on_event,
                on_closing=self._on_closing,
                open_timeout=self._settings.connect_timeout,
                malformed_log=self._malformed_log,
            )
        )
        try:
            await tg.start(self._run_live, live)
        except ChannelGone:
            self.channel = None
            raise
        self.channel = channel
        self.stats.connects += 1
        try:
            await self._ensure_subscribed(channel, fresh=fresh)
        except BaseException:
            live.scope.cancel()
            raise
        return live

    async def _run_live(
        self, live: _Live, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            with live.scope:
                live.end = await live.session.run(task_status=task_status)
        finally:
            live.done.set()

    async def _ensure_subscribed(self, channel: ChannelInfo, *, fresh: bool) -> None:
        async with self._subscriptions:
            self._subscribed_channel = None
            wanted = self.topics
            current = (
                frozenset()
                if fresh
                else frozenset(await self._platform.get_subscriptions(channel.id))
            )
            if current != wanted:
                results = await self._platform.put_subscriptions(channel.id, sorted(wanted))
                self.stats.resubscribes += 1
                rejected = [r for r in results if not r.permitted]
                if rejected:
                    raise ListenerFatal(_rejection_message(rejected))
                emit(
                    log,
                    "channel.subscribed",
                    shard=self.name,
                    channel=channel.id,
                    topics=len(wanted),
                )
            self._subscribed_channel = channel.id

    async def update_topics(self, topics: frozenset[str]) -> list[SubscriptionResult]:
        """Carry ``topics`` from now on, with the smallest request, without reconnecting.

        Returns the topics the platform rejected (they are dropped, and the
        rest stay subscribed). When no socket is up, the next reconnect
        subscribes the new set.
        """
        async with self._subscriptions:
            action, listed = subscription_change(self.topics, topics)
            self.topics = topics
            channel = self._subscribed_channel
            if action == "none" or channel is None:
                return []
            try:
                if action == "post":
                    results = await self._platform.add_subscriptions(channel, listed)
                else:
                    results = await self._platform.put_subscriptions(channel, listed)
            except PlatformError as exc:
                # The channel may not carry what we want now: reconnecting resyncs it
                # (GET, then PUT) and reports the gap, like any other outage.
                emit(
                    log,
                    "channel.topics_change_failed",
                    logging.WARNING,
                    shard=self.name,
                    channel=channel,
                    error=str(exc),
                )
                self._subscribed_channel = None
                if self._live is not None:
                    self._live.scope.cancel()
                return []
            rejected = [r for r in results if not r.permitted and r.topic in topics]
            self.topics = topics - {r.topic for r in rejected}
            emit(
                log,
                "channel.topics_changed",
                shard=self.name,
                channel=channel,
                request=action,
                topics=len(self.topics),
                rejected=len(rejected),
            )
            return rejected

    def _on_event(self, event: Event) -> None:
        if event.topic in self.topics:
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
        self._closing_warned.set()

    async def _wait_for_trouble(self, live: _Live) -> bool:
        """Wait until the socket ends (False) or it is time to rotate (True)."""
        assert self.channel is not None
        delay = rotation_delay(
            self.channel.expires, self._clock.now(), self._settings.rotate_before_expiry
        )
        rotate = False
        async with anyio.create_task_group() as tg:

            async def socket_ended() -> None:
                await live.done.wait()
                tg.cancel_scope.cancel()

            async def warned() -> None:
                nonlocal rotate
                await self._closing_warned.wait()
                rotate = True
                tg.cancel_scope.cancel()

            async def expiring(seconds: float) -> None:
                nonlocal rotate
                await anyio.sleep(seconds)
                rotate = True
                tg.cancel_scope.cancel()

            tg.start_soon(socket_ended)
            tg.start_soon(warned)
            if delay is not None:
                tg.start_soon(expiring, delay)
        return rotate and not live.done.is_set()

    async def _rotate(self, tg: anyio.abc.TaskGroup, old: _Live) -> _Live | None:
        """Make before break: a new channel carries the topics before the old socket closes."""
        self._set_state(ChannelState.ROTATING)
        started = self._clock.monotonic()
        self._rotation_started()
        try:
            while True:
                try:
                    new = await self._bring_up(tg, None)
                    break
                except PlatformError as exc:
                    if not exc.retryable and not isinstance(exc, ChannelGone):
                        raise ListenerFatal(str(exc)) from exc
                    if old.done.is_set():
                        # The old socket is gone too: fall back to a plain reconnect.
                        self._closing_warned = anyio.Event()
                        return None
                    await self._sleep_backoff(exc)
            old.scope.cancel()
            await old.done.wait()
        finally:
            self._rotation_finished()
        self._closing_warned = anyio.Event()
        self.stats.rotations += 1
        self._backoff.connected(self._clock.monotonic())
        emit(
            log,
            "channel.rotated",
            shard=self.name,
            channel=new.session.channel.id,
            took=round(self._clock.monotonic() - started, 3),
        )
        self._set_state(ChannelState.SUBSCRIBED)
        return new

    def _close_gap(self, start: float, end: float, reason: str) -> None:
        self.stats.gaps += 1
        if reason != "startup":
            self.stats.longest_recovery = max(self.stats.longest_recovery, end - start)
        emit(log, "listener.gap", shard=self.name, reason=reason, seconds=round(end - start, 3))
        self._report_gap(Gap(topics=self.topics, start=start, end=end, reason=reason))


def _rejection_message(rejected: list[SubscriptionResult]) -> str:
    listed = ", ".join(f"{r.topic} ({r.reason or 'no reason given'})" for r in rejected)
    return (
        f"the platform rejected {len(rejected)} subscription(s): {listed}; "
        "check the OAuth client's permissions and the user ids in the rules"
    )
