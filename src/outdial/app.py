"""The daemon: config, platform, listener, handlers and store wired together.

One task receives (the listener, with its own tasks per shard), one task
handles (reading the listener's bounded stream in order). A gap from the
listener makes the handlers re-read the affected agents and calls over REST.
Shutdown is cancellation of the daemon's task group: every socket closes and
the store is closed by its context manager.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from random import Random

import anyio
import anyio.abc

from outdial.clock import Clock, SystemClock
from outdial.config import Config, ConfigError, load_config
from outdial.events import Event, Gap, topic_user_id
from outdial.handlers.dispatch import Handlers
from outdial.handlers.donotcall import DoNotCallFileError
from outdial.handlers.registry import HandlerRegistry
from outdial.handlers.rules import RuleError
from outdial.listener import Listener
from outdial.log import emit
from outdial.platforms.base import Platform
from outdial.platforms.genesys import GenesysPlatform
from outdial.store import open_store
from outdial.store.base import Store

__all__ = ["Daemon", "open_daemon", "platform_from_config", "run_until_signalled"]

log = logging.getLogger("outdial.app")

#: How long a shutdown may take before we stop waiting for sockets to close politely.
SHUTDOWN_GRACE = 5.0


def platform_from_config(config: Config, clock: Clock | None = None) -> Platform:
    """The REST client for ``config.platform``."""
    settings = config.platform
    return GenesysPlatform(
        api_url=settings.resolved_api_url,
        login_url=settings.resolved_login_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        timeout=settings.request_timeout,
        clock=clock,
    )


class Daemon:
    """outdial running: listener in, handlers out."""

    def __init__(
        self,
        config: Config,
        *,
        platform: Platform,
        store: Store,
        clock: Clock | None = None,
        rng: Random | None = None,
        registry: HandlerRegistry | None = None,
    ) -> None:
        self.config = config
        self.platform = platform
        self.store = store
        self.clock = clock or SystemClock()
        self.handlers = Handlers(config, platform, store, self.clock, registry=registry)
        self.listener = Listener(platform, self.handlers.topics(), config.listener, self.clock, rng)
        self.events_handled = 0
        self.gaps_handled = 0

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled, or raise ``ListenerFatal`` when the platform refuses us."""
        emit(log, "daemon.start", rules=len(self.config.rules), topics=len(self.listener.topics))
        try:
            await self.handlers.start()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.listener.run)
                tg.start_soon(self._reconcile_periodically)
                task_status.started()
                async for item in self.listener:
                    await self._consume(item)
        finally:
            emit(log, "daemon.stopped", events=self.events_handled, gaps=self.gaps_handled)

    async def _reconcile_periodically(self) -> None:
        """Settle dials whose outcome is unknown (sent, then no answer), on a timer.

        Gaps reconcile too (``refresh`` starts with it); the timer covers a
        quiet, healthy connection, where no gap would ever come.
        """
        while True:
            await anyio.sleep(self.config.reconcile.interval)
            try:
                settled = await self.handlers.reconcile_unknown()
            except Exception as exc:  # never let bookkeeping stop the daemon
                emit(log, "daemon.reconcile_failed", logging.ERROR, error=repr(exc))
            else:
                if settled:
                    emit(log, "daemon.reconciled", dials=settled)

    async def reload(self, config: Config) -> list[str]:
        """Apply a changed config without a restart: rules, users (topics) and guards.

        Sections that need a restart to change (platform, store, listener,
        reconcile) keep their running values; their names are returned so the
        caller can say so. Topics change with the smallest subscription
        request, without reconnecting.
        """
        needs_restart = [
            name
            for name in ("platform", "store", "listener", "reconcile")
            if getattr(config, name) != getattr(self.config, name)
        ]
        before = self.listener.topics
        await self.handlers.apply_config(config)
        self.config = config.model_copy(
            update={name: getattr(self.config, name) for name in needs_restart}
        )
        rejected = await self.listener.set_topics(self.handlers.topics())
        for result in rejected:
            emit(
                log,
                "daemon.topic_rejected",
                logging.ERROR,
                topic=result.topic,
                reason=result.reason,
            )
        # Nothing is known of newly subscribed agents: read their state, as after a gap.
        added = self.listener.topics - before
        await self.handlers.refresh(sorted({u for t in added if (u := topic_user_id(t))}))
        emit(
            log,
            "daemon.reloaded",
            rules=len(config.rules),
            topics=len(self.listener.topics),
            needs_restart=",".join(needs_restart) or None,
        )
        return needs_restart

    async def _consume(self, item: Event | Gap) -> None:
        if isinstance(item, Gap):
            self.gaps_handled += 1
            users = sorted({uid for t in item.topics if (uid := topic_user_id(t)) is not None})
            await self.handlers.refresh(users)
        else:
            self.events_handled += 1
            await self.handlers.handle(item)


@asynccontextmanager
async def open_daemon(
    config: Config,
    *,
    clock: Clock | None = None,
    rng: Random | None = None,
    registry: HandlerRegistry | None = None,
) -> AsyncIterator[Daemon]:
    """A daemon with its store and platform client, both closed on exit.

    ``registry`` adds custom Python handlers (see
    :class:`~outdial.handlers.registry.HandlerRegistry`) to the config's rules.
    """
    clock = clock or SystemClock()
    async with open_store(config.store.url) as store:
        platform = platform_from_config(config, clock)
        try:
            yield Daemon(
                config, platform=platform, store=store, clock=clock, rng=rng, registry=registry
            )
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE):
                await platform.aclose()


async def run_until_signalled(config: Config, config_path: str | None = None) -> None:
    """``outdial run``: the daemon until SIGTERM or SIGINT, then a clean, bounded stop.

    SIGHUP re-reads ``config_path`` and applies it (see :meth:`Daemon.reload`);
    a config with problems is reported and the running one kept.
    """
    async with open_daemon(config) as daemon, anyio.create_task_group() as tg:

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
                async for signum in sigs:
                    emit(log, "daemon.signal", signal=signal.Signals(signum).name)
                    if signum == signal.SIGHUP:
                        await _reload_from(daemon, config_path)
                        continue
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(on_signals)
        await daemon.run()
        tg.cancel_scope.cancel()


async def _reload_from(daemon: Daemon, config_path: str | None) -> None:
    if config_path is None:
        return
    try:
        config = load_config(config_path)
        await daemon.reload(config)
    except (ConfigError, RuleError, DoNotCallFileError) as exc:
        emit(log, "daemon.reload_refused", logging.ERROR, error=str(exc))
