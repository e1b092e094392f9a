"""The daemon on a ready-topic rule against the fake, watched through its log events.

Shared by the daemon tests in this folder: :func:`ready_config` (one
next-contact-when-ready rule, permissive guards), :func:`daemon_for` (the
real daemon for the body of an ``async with``, its log events timed, its live
presence events recorded) and :func:`sqlite` (a store URL in a tmp dir).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from listener_harness import FAST, USER, LogWatch

from outdial.app import Daemon, platform_from_config
from outdial.clock import Clock, SystemClock
from outdial.config import Config, parse_config
from outdial.events import Event
from outdial.fake import FakePlatform
from outdial.handlers.registry import HandlerRegistry
from outdial.store import open_store
from outdial.store.base import ContactRow, Store

AFTER_CALL = 0.3
NUMBERS = [f"+4412123456{i:02d}" for i in range(1, 21)]


def ready_config(
    platform: FakePlatform,
    store_url: str,
    users: Iterable[str] = (USER,),
    *,
    after_call: float = AFTER_CALL,
    calling_window: Sequence[str] = ("00:00", "23:59"),
    calls_per_second: float = 100.0,
) -> Config:
    data: dict[str, Any] = {
        "platform": {
            "api_url": platform.api_url,
            "login_url": platform.login_url,
            "client_id": platform.client_id,
            "client_secret": "${SECRET}",
        },
        "listener": FAST.model_dump(),
        "store": {"url": store_url},
        "guards": {
            "calling_window": list(calling_window),
            "default_region": "GB",
            "calls_per_second": calls_per_second,
        },
        "readiness": {"after_call": after_call},
        "rules": [
            {
                "name": "next-contact-when-ready",
                "topic": "outdial.users.{userId}.ready",
                "users": list(users),
                "dial": {"user": "{userId}", "contact": "next"},
            }
        ],
    }
    return parse_config(data, "test", {"SECRET": platform.client_secret})


class Watched:
    """The daemon's log events with the time each was emitted, and the presence events it got
    (Genesys: its presence topic; none are watched on other platforms)."""

    def __init__(self, daemon: Daemon, log: LogWatch, presences: list[Event]) -> None:
        self.daemon = daemon
        self.log = log
        self.presences = presences

    def times(self, name: str, **match: Any) -> list[float]:
        return [e["_at"] for e in self.log.named(name, **match)]

    async def until(self, name: str, count: int = 1, **match: Any) -> None:
        await self.log.until(lambda: len(self.log.named(name, **match)) >= count)


class TimedLogWatch(LogWatch):
    """A :class:`LogWatch` that also notes when (monotonic, real) each event was emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "outdial", None)
        if isinstance(fields, dict):
            fields["_at"] = anyio.current_time()
        super().emit(record)


@asynccontextmanager
async def daemon_for(
    config: Config,
    *,
    contacts: Iterable[tuple[str, str]] = (),
    clock: Clock | None = None,
    store: Store | None = None,
    wait: float = 20.0,
) -> AsyncIterator[Watched]:
    """Run the daemon for ``config``; its log events and live presence events are watched.

    ``clock`` is the daemon's (what it decides: windows, rests, retries); the platform
    client keeps the system clock for its I/O.
    """
    log = TimedLogWatch(wait=wait)
    logger = logging.getLogger("outdial")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    presences: list[Event] = []
    registry = HandlerRegistry()
    users = sorted({u for rule in config.rules for u in rule.users})

    if config.platform.kind == "genesys":
        # Genesys only: a presence topic the daemon would not subscribe to otherwise.

        @registry.on("v2.users.{userId}.presence", users=users)
        async def on_presence(event: Event, match: object) -> None:
            if event.channel_id != "refresh":
                presences.append(event)

    try:
        async with open_store(config.store.url) if store is None else _given(store) as opened:
            await opened.import_contacts([ContactRow(u, n) for u, n in contacts])
            # The platform's I/O keeps real time (a CXone poll's watchdog and back-off
            # run on its clock): a test's manual clock moves what the daemon decides.
            client = platform_from_config(config)
            daemon = Daemon(
                config,
                platform=client,
                store=opened,
                clock=clock or SystemClock(),
                registry=registry,
            )
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(daemon.run)
                    yield Watched(daemon, log, presences)
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose()
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)


@asynccontextmanager
async def _given(store: Store) -> AsyncIterator[Store]:
    yield store


def sqlite(tmp_path: Path, name: str = "outdial.db") -> str:
    return f"sqlite:///{tmp_path / name}"
