"""Shared pieces of the resilience tests: a real Listener (or Daemon) on a real FakePlatform.

Tests say *what* must become true (``await harness.until(...)``,
``await watch.until(...)``) and never sleep for a fixed time; the waits wake
on every item the listener delivers or every structured log event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import anyio

from outdial.clock import SystemClock
from outdial.config import Config, ListenerConfig, parse_config
from outdial.events import Event, Gap
from outdial.fake import FakePlatform
from outdial.listener import Listener
from outdial.platforms.base import ChannelInfo
from outdial.platforms.genesys import GenesysPlatform
from outdial.platforms.genesys.channel import ChannelSupervisor
from outdial.platforms.genesys.sources import ChannelSources

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{USER}.presence"

#: Fast settings: resilience tests run the real timing logic, just scaled down.
FAST = ListenerConfig(
    ping_interval=0.5,
    ping_timeout=0.5,
    backoff_base=0.02,
    backoff_cap=0.2,
    stable_after=1.0,
    connect_timeout=2.0,
    rotate_before_expiry=0.0,
    queue_size=1000,
)


def presence(n: int, status: str = "Available") -> dict[str, Any]:
    """A presence body made unique by ``n`` (so each published event has its own identity)."""
    return {
        "source": "PURECLOUD",
        "presenceDefinition": {
            "id": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
            "systemPresence": status,
        },
        "primary": True,
        "message": f"seq {n}",
        "modifiedDate": f"2026-11-23T09:15:{n % 60:02d}.{n:06d}Z",
    }


def seq_of(event: Event) -> int:
    """The ``n`` a :func:`presence` body was made with."""
    return int(str(event.body["message"]).split()[1])


@dataclass
class Harness:
    """What the listener delivered, in order, and a way to wait for conditions on it."""

    listener: Listener
    client: GenesysPlatform
    items: list[Event | Gap] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    reading: anyio.Event = field(default_factory=anyio.Event)

    @property
    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]

    def channel(self, shard: int) -> ChannelInfo | None:
        """The notification channel shard ``shard`` is on now (Genesys sources only)."""
        supervisor = self.listener.supervisors[shard]
        assert isinstance(supervisor, ChannelSupervisor)
        return supervisor.channel

    @property
    def gaps(self) -> list[Gap]:
        return [i for i in self.items if isinstance(i, Gap)]

    @property
    def supervisor_stats(self) -> Any:
        return self.listener.supervisors[0].stats

    async def collect(self) -> None:
        await self.reading.wait()
        async for item in self.listener:
            self.items.append(item)
            self._changed.set()
            self._changed = anyio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds, re-checked after each delivered item."""
        with anyio.fail_after(timeout):
            while not predicate():
                with anyio.move_on_after(0.05):
                    await self._changed.wait()

    async def ready(self, gaps: int = 1) -> None:
        """Connected and subscribed: the ``gaps``-th gap (startup counts) has been reported."""
        await self.until(lambda: len(self.gaps) >= gaps)

    async def roundtrip(self, platform: FakePlatform, start: int, count: int) -> list[int]:
        """Publish ``count`` numbered events and wait for the last; return the numbers seen."""
        for n in range(start, start + count):
            await platform.publish(PRESENCE, presence(n))
        last = start + count - 1
        await self.until(lambda: any(seq_of(e) == last for e in self.events))
        return [seq_of(e) for e in self.events if start <= seq_of(e) <= last]


@asynccontextmanager
async def running_listener(
    platform: FakePlatform,
    topics: Iterable[str] = (PRESENCE,),
    settings: ListenerConfig = FAST,
    *,
    read: bool = True,
    client_secret: str | None = None,
) -> AsyncIterator[Harness]:
    """Run a Listener for ``topics`` against ``platform`` until the block ends."""
    client = GenesysPlatform(
        api_url=platform.api_url,
        login_url=platform.login_url,
        client_id=platform.client_id,
        client_secret=client_secret or platform.client_secret,
        timeout=2.0,
    )
    listener = Listener(
        ChannelSources(client, settings, SystemClock(), Random(0)), topics, settings, SystemClock()
    )
    harness = Harness(listener, client)
    if read:
        harness.reading.set()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.run)
            tg.start_soon(harness.collect)
            yield harness
            tg.cancel_scope.cancel()
    finally:
        await client.aclose()


def daemon_config(
    platform: FakePlatform,
    db: Path,
    users: Iterable[str] = (USER,),
    *,
    listener: ListenerConfig = FAST,
    caller_id: str | None = None,
    ready: bool = False,
    after_call: float = 0.1,
) -> Config:
    """A config for the daemon against ``platform``: one next-contact-when-Available rule,
    or with ``ready`` one next-contact-when-ready rule (``after_call`` of rest).

    The client secret comes through ``${SECRET}``, as a user's would; the
    calling window is open all day, so tests do not depend on the hour.
    """
    dial: dict[str, Any] = {"user": "{userId}", "contact": "next"}
    if caller_id is not None:
        dial["caller_id"] = caller_id
    data: dict[str, Any] = {
        "platform": {
            "api_url": platform.api_url,
            "login_url": platform.login_url,
            "client_id": platform.client_id,
            "client_secret": "${SECRET}",
        },
        "listener": listener.model_dump(),
        "store": {"url": f"sqlite:///{db}"},
        "guards": {"calling_window": ["00:00", "23:59"], "default_region": "GB"},
        "readiness": {"after_call": after_call},
        "rules": [
            {
                "name": "next-when-ready",
                "topic": "outdial.users.{userId}.ready",
                "users": list(users),
                "dial": dial,
            }
            if ready
            else {
                "name": "next-when-available",
                "topic": "v2.users.{userId}.presence",
                "users": list(users),
                "when": {"presenceDefinition.systemPresence": "Available"},
                "dial": dial,
            }
        ],
    }
    return parse_config(data, "test", {"SECRET": platform.client_secret})


class LogWatch(logging.Handler):
    """Collects outdial's structured log events; tests await conditions on them."""

    def __init__(self, wait: float = 10.0) -> None:
        super().__init__(logging.DEBUG)
        self.wait = wait
        self.events: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "outdial", None)
        if isinstance(fields, dict) and "event" in fields:
            self.events.append(dict(fields))
            self._changed.set()
            self._changed = anyio.Event()

    def named(self, name: str, **match: Any) -> list[dict[str, Any]]:
        """The events called ``name`` whose fields include ``match``, in order."""
        return [
            e
            for e in self.events
            if e["event"] == name and all(e.get(k) == v for k, v in match.items())
        ]

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked on every log event."""
        with anyio.fail_after(self.wait):
            while not predicate():
                await self._changed.wait()
