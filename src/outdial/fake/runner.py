"""Acting on scheduled faults: start or undo one :class:`~outdial.fake.schedule.Fault` on a
running :class:`~outdial.fake.platform.FakePlatform`, and follow a whole schedule.

:func:`start_fault` and :func:`end_fault` map each kind onto the platform's
controls; :class:`FaultRun` is the handle :meth:`FakePlatform.run_schedule
<outdial.fake.platform.FakePlatform.run_schedule>` returns while a schedule
plays in the platform's task group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.lowlevel

from outdial.fake.schedule import Fault, Step
from outdial.log import emit

if TYPE_CHECKING:
    from outdial.fake.platform import FakePlatform
    from outdial.fake.proxy import FaultProxy

__all__ = ["CALL_PATH", "FaultRun", "RunEntry", "end_fault", "start_fault"]

_log = logging.getLogger("outdial.fake.faults")

CALL_PATH = "/api/v2/conversations/calls/user/"
"""What a ``stall`` fault holds when it names no path: call requests."""


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One step a run took: when (seconds after the run started), which fault, and the outcome.

    ``error`` is set when the step could not be applied (the run carries on).
    """

    at: float
    kind: str
    end: bool
    error: str | None = None


@dataclass(eq=False)
class FaultRun:
    """A schedule playing on a platform: what it did so far, and a way to wait for or stop it."""

    steps: Sequence[Step]
    log: list[RunEntry] = field(default_factory=list)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    finished: anyio.Event = field(default_factory=anyio.Event)

    @property
    def done(self) -> bool:
        """True once every step ran (or the run was cancelled)."""
        return self.finished.is_set()

    async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the run is done; :class:`TimeoutError` after ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            await self.finished.wait()

    def cancel(self) -> None:
        """Stop the run (faults already started stay in force)."""
        self.scope.cancel()


async def follow(platform: FakePlatform, run: FaultRun) -> None:
    """Play ``run``'s steps on ``platform`` at their times (the task behind ``run_schedule``)."""
    try:
        with run.scope:
            start = anyio.current_time()
            for step in run.steps:
                wait = start + step.at - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)
                error: str | None = None
                try:
                    if step.end:
                        await end_fault(platform, step.fault)
                    else:
                        await start_fault(platform, step.fault)
                except Exception as exc:  # one bad step must not end the platform
                    error = f"{type(exc).__name__}: {exc}"
                    emit(
                        _log, "fake.fault.failed", logging.WARNING, kind=step.fault.kind, error=exc
                    )
                run.log.append(RunEntry(step.at, step.fault.kind, step.end, error))
                platform.notify_changed()
    finally:
        run.finished.set()


def _proxy(platform: FakePlatform, fault: Fault) -> FaultProxy:
    return platform.rest_proxy if fault.proxy_name == "rest" else platform.ws_proxy


def _pick(channels: list[str], pick: str | None, default: str) -> list[str]:
    pick = pick or default
    if not channels or pick == "all":
        return channels
    return [channels[0] if pick == "oldest" else channels[-1]]


async def start_fault(platform: FakePlatform, fault: Fault) -> None:
    """Make ``fault`` happen now (its ``at`` and ``duration`` are the caller's business)."""
    emit(_log, "fake.fault.start", kind=fault.kind)
    kind = fault.kind
    if kind == "reset":
        _proxy(platform, fault).reset()
    elif kind == "freeze":
        _proxy(platform, fault).freeze(discard=bool(fault.discard))
    elif kind == "thaw":
        _proxy(platform, fault).thaw()
    elif kind == "latency":
        _proxy(platform, fault).latency(_or(fault.seconds, 0.2), _or(fault.jitter, 0.0))
    elif kind == "bandwidth":
        _proxy(platform, fault).bandwidth(_or(fault.bytes_per_second, 1000.0))
    elif kind == "slice":
        _proxy(platform, fault).slice(_or(fault.segment_size, 1))
    elif kind == "refuse":
        _proxy(platform, fault).refuse(True)
    elif kind == "closing_warning":
        for channel_id in _pick(platform.connected_channels, fault.channel, "all"):
            await platform.send_socket_closing(channel_id, close_after=fault.seconds)
    elif kind == "expire_channel":
        for channel_id in _pick(platform.live_channels, fault.channel, "oldest"):
            platform.expire_channel(channel_id)
    elif kind == "evict":
        platform.evict_oldest()
    elif kind == "kick_socket":
        for channel_id in _pick(platform.connected_channels, fault.channel, "oldest"):
            platform.kick_socket(channel_id)
    elif kind == "drop_sockets":
        await platform.drop_sockets()
    elif kind == "malformed":
        await platform.send_malformed(fault.text)
    elif kind == "oversized":
        await platform.send_oversized(_or(fault.nbytes, 1_100_000))
    elif kind == "unknown_topic":
        await platform.publish_unknown_topic()
    else:
        _start_lasting(platform, fault)


def _start_lasting(platform: FakePlatform, fault: Fault) -> None:
    kind = fault.kind
    if kind == "duplicate":
        platform.duplicate_events = _or(fault.count, 2)
    elif kind == "reorder":
        platform.reorder_events(_or(fault.window, 4))
    elif kind == "delay_events":
        platform.delay_events(_or(fault.seconds, 1.0))
    elif kind == "stop_heartbeats":
        platform.heartbeats_enabled = False
    elif kind == "ignore_pings":
        platform.answer_pings = False
    elif kind == "rest_errors":
        platform.fail_rate(
            _or(fault.status, 503), _or(fault.rate, 0.5), fault.path, method=fault.method
        )
    elif kind == "slow_rest":
        platform.slow_rest(_or(fault.seconds, 1.0))
    elif kind == "stall":
        platform.stall_next(
            fault.path or CALL_PATH,
            _or(fault.seconds, 10.0),
            method=fault.method,
            count=_or(fault.count, 1),
            after_effect=fault.after_effect is not False,
        )
    else:  # pragma: no cover - every kind is handled above
        raise ValueError(f"unknown fault kind {kind!r}")


async def end_fault(platform: FakePlatform, fault: Fault) -> None:
    """Undo a lasting ``fault`` (a no-op for kinds that have no end)."""
    emit(_log, "fake.fault.end", kind=fault.kind)
    kind = fault.kind
    if kind == "freeze":
        _proxy(platform, fault).thaw()
    elif kind == "latency":
        _proxy(platform, fault).latency(0.0)
    elif kind == "bandwidth":
        _proxy(platform, fault).bandwidth(None)
    elif kind == "slice":
        _proxy(platform, fault).slice(None)
    elif kind == "refuse":
        _proxy(platform, fault).refuse(False)
    elif kind == "duplicate":
        platform.duplicate_events = 1
    elif kind == "reorder":
        platform.reorder_events(1)
    elif kind == "delay_events":
        platform.delay_events(0.0)
    elif kind == "stop_heartbeats":
        platform.heartbeats_enabled = True
    elif kind == "ignore_pings":
        platform.answer_pings = True
    elif kind == "rest_errors":
        platform.fail_rate(_or(fault.status, 503), 0.0, fault.path, method=fault.method)
    elif kind == "slow_rest":
        platform.slow_rest(0.0)
    await anyio.lowlevel.checkpoint()


_T = TypeVar("_T")


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value
