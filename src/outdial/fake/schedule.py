"""Timed fault schedules: the ``[[faults]]`` entries of a scenario, as pure data.

A :class:`Fault` says what breaks, when (``at`` seconds after the schedule
starts) and for how long (``duration``, for faults that have an end)::

    [[faults]]
    at = 5.0
    kind = "freeze"          # half-open WebSocket for 3 s (needs the TCP proxy)
    duration = 3.0

    [[faults]]
    at = 12.0
    kind = "rest_errors"     # half of the call requests get a 503 for 10 s
    status = 503
    rate = 0.5
    path = "/conversations/calls"
    duration = 10.0

:func:`expand` turns faults into the ordered :class:`Step` list a runner
follows (a fault with a ``duration`` becomes a start and an end step);
:func:`random_schedule` draws a seeded schedule for soak runs. Running a
schedule is :meth:`outdial.fake.platform.FakePlatform.run_schedule`.

Kinds, their parameters (defaults in brackets), and whether they take a duration:

==================  =================================================  ========
kind                parameters                                         duration
==================  =================================================  ========
reset               proxy ["ws"]: RST every proxied connection         no
freeze              proxy ["ws"], discard [false]: half-open           yes
thaw                proxy ["ws"]: end a freeze                         no
latency             proxy, seconds [0.2], jitter [0]                   yes
bandwidth           proxy, bytes_per_second [1000]                     yes
slice               proxy, segment_size [1]                            yes
refuse              proxy: new connections get RST                     yes
closing_warning     channel ["all"], seconds: close that long after    no
expire_channel      channel ["oldest"]                                 no
evict               (the oldest channel, as a 21st would)              no
kick_socket         channel ["oldest"]: as a second socket would       no
drop_sockets        every socket dropped without a close frame         no
malformed           text: a frame that is not JSON                     no
oversized           nbytes [1100000]: a frame over 1 MiB               no
unknown_topic       an event on a topic nobody subscribed              no
duplicate           count [2]: copies of each event                    yes
reorder             window [4]                                         yes
delay_events        seconds [1.0]                                      yes
stop_heartbeats                                                        yes
ignore_pings        pings get no pong                                  yes
rest_errors         status [503], rate [0.5], path, method             yes
slow_rest           seconds [1.0]                                      yes
stall               path [call requests], seconds [10], count [1],     no
                    method, after_effect [true]
==================  =================================================  ========

A fault with a duration but none given lasts until the schedule ends (or
forever); two overlapping faults of the same kind end together at the first
end.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DURABLE_KINDS",
    "FAULT_KINDS",
    "PROXY_KINDS",
    "Fault",
    "FaultKind",
    "Step",
    "expand",
    "random_schedule",
]

FaultKind = Literal[
    "reset",
    "freeze",
    "thaw",
    "latency",
    "bandwidth",
    "slice",
    "refuse",
    "closing_warning",
    "expire_channel",
    "evict",
    "kick_socket",
    "drop_sockets",
    "malformed",
    "oversized",
    "unknown_topic",
    "duplicate",
    "reorder",
    "delay_events",
    "stop_heartbeats",
    "ignore_pings",
    "rest_errors",
    "slow_rest",
    "stall",
]
"""Every kind of fault a schedule can hold."""

FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
"""The kinds, in a fixed order."""

PROXY_KINDS = frozenset({"reset", "freeze", "thaw", "latency", "bandwidth", "slice", "refuse"})
"""Kinds acting on a TCP fault proxy (the platform needs ``ws_proxy``/``rest_proxy``)."""

DURABLE_KINDS = frozenset(
    {
        "freeze",
        "latency",
        "bandwidth",
        "slice",
        "refuse",
        "duplicate",
        "reorder",
        "delay_events",
        "stop_heartbeats",
        "ignore_pings",
        "rest_errors",
        "slow_rest",
    }
)
"""Kinds that last a ``duration`` and are then undone."""

ChannelPick = Literal["oldest", "newest", "all"]


class Fault(BaseModel):
    """One scheduled fault: ``kind`` at ``at`` seconds, for ``duration`` seconds if it lasts.

    Only the parameters of its kind may be set (see the module's table).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(default=0.0, ge=0)
    kind: FaultKind
    duration: float | None = Field(default=None, gt=0)
    proxy: Literal["ws", "rest"] | None = None
    discard: bool | None = None
    seconds: float | None = Field(default=None, ge=0)
    jitter: float | None = Field(default=None, ge=0)
    bytes_per_second: float | None = Field(default=None, gt=0)
    segment_size: int | None = Field(default=None, ge=1)
    channel: ChannelPick | None = None
    text: str | None = None
    nbytes: int | None = Field(default=None, ge=1)
    count: int | None = Field(default=None, ge=1)
    window: int | None = Field(default=None, ge=1)
    status: Literal[429, 500, 502, 503, 504] | None = None
    rate: float | None = Field(default=None, ge=0, le=1)
    path: str | None = None
    method: str | None = None
    after_effect: bool | None = None

    @model_validator(mode="after")
    def _parameters_fit_the_kind(self) -> Self:
        allowed = _PARAMETERS[self.kind]
        for name in _ALL_PARAMETERS - allowed:
            if getattr(self, name) is not None:
                raise ValueError(f"{name!r} does not apply to a {self.kind!r} fault")
        if self.duration is not None and self.kind not in DURABLE_KINDS:
            raise ValueError(f"a {self.kind!r} fault has no duration")
        if self.proxy is not None and self.kind not in PROXY_KINDS:
            raise ValueError(f"'proxy' does not apply to a {self.kind!r} fault")
        return self

    @property
    def proxy_name(self) -> Literal["ws", "rest"] | None:
        """Which proxy the fault acts on (None for protocol and REST faults)."""
        if self.kind not in PROXY_KINDS:
            return None
        return self.proxy or "ws"


_PARAMETERS: dict[str, frozenset[str]] = {
    "reset": frozenset(),
    "freeze": frozenset({"discard"}),
    "thaw": frozenset(),
    "latency": frozenset({"seconds", "jitter"}),
    "bandwidth": frozenset({"bytes_per_second"}),
    "slice": frozenset({"segment_size"}),
    "refuse": frozenset(),
    "closing_warning": frozenset({"channel", "seconds"}),
    "expire_channel": frozenset({"channel"}),
    "evict": frozenset(),
    "kick_socket": frozenset({"channel"}),
    "drop_sockets": frozenset(),
    "malformed": frozenset({"text"}),
    "oversized": frozenset({"nbytes"}),
    "unknown_topic": frozenset(),
    "duplicate": frozenset({"count"}),
    "reorder": frozenset({"window"}),
    "delay_events": frozenset({"seconds"}),
    "stop_heartbeats": frozenset(),
    "ignore_pings": frozenset(),
    "rest_errors": frozenset({"status", "rate", "path", "method"}),
    "slow_rest": frozenset({"seconds"}),
    "stall": frozenset({"path", "seconds", "count", "method", "after_effect"}),
}
_ALL_PARAMETERS = frozenset().union(*_PARAMETERS.values())
assert set(_PARAMETERS) == set(FAULT_KINDS)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a schedule runner does: start (or, with ``end``, undo) ``fault`` at ``at``."""

    at: float
    fault: Fault
    end: bool = False


def expand(faults: Iterable[Fault]) -> list[Step]:
    """The steps of a schedule in the order they run: by time, ends before starts at a tie,
    then in the order the faults were listed."""
    steps: list[tuple[float, int, int, Step]] = []
    for index, fault in enumerate(faults):
        steps.append((fault.at, 1, index, Step(fault.at, fault)))
        if fault.duration is not None:
            end = fault.at + fault.duration
            steps.append((end, 0, index, Step(end, fault, end=True)))
    return [step for *_, step in sorted(steps, key=lambda s: s[:3])]


def random_schedule(
    seed: int,
    duration: float,
    kinds: Sequence[str] = FAULT_KINDS,
    *,
    mean_gap: float = 10.0,
    max_fault: float = 10.0,
) -> list[Fault]:
    """A seeded random schedule over ``duration`` seconds for soak runs.

    Faults start on average every ``mean_gap`` seconds (exponential gaps);
    each picks a kind from ``kinds`` and lasts up to ``max_fault`` seconds
    when it has a duration, always ending by ``duration``. Two faults of one
    kind never overlap. The same arguments give the same schedule.
    """
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
    if not kinds:
        raise ValueError("kinds must not be empty")
    if duration <= 0 or mean_gap <= 0 or max_fault <= 0:
        raise ValueError("duration, mean_gap and max_fault must be positive")
    rng = random.Random(seed)
    busy_until: dict[str, float] = {}
    faults: list[Fault] = []
    at = rng.expovariate(1 / mean_gap)
    while at < duration:
        start = round(at, 3)
        kind = rng.choice(list(kinds))
        # Whole milliseconds, rounded down, so a fault never runs past the schedule's end.
        length = math.floor(min(rng.uniform(0.5, max_fault), duration - start) * 1000) / 1000
        status = rng.choice([429, 500, 503])
        rate = round(rng.uniform(0.1, 0.6), 2)
        free = busy_until.get(kind, -1.0) <= start and start < duration
        if kind != "thaw" and free and (kind not in DURABLE_KINDS or length > 0):
            params: dict[str, object] = {"at": start, "kind": kind}
            if kind in DURABLE_KINDS:
                params["duration"] = length
                busy_until[kind] = start + length
            if kind == "rest_errors":
                params["status"] = status
                params["rate"] = rate
            faults.append(Fault.model_validate(params))
        at += rng.expovariate(1 / mean_gap)
    return faults
