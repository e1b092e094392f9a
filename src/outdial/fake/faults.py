"""Pure decisions behind the fake's faults: which REST request fails or stalls, and how
published events are duplicated, reordered and delayed.

Nothing here sleeps, sends or owns a task. :class:`RestFaults` answers "what
happens to this request" with a :class:`RestVerdict`; :class:`EventShaper`
turns published events into :class:`Release` entries saying when each copy
goes out. :mod:`outdial.fake.platform` is the shell that acts on them.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "FAILURE_STATUSES",
    "EventShaper",
    "Release",
    "RestFaults",
    "RestVerdict",
]

FAILURE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses :meth:`RestFaults.fail_rate` may answer with (the retryable ones)."""


@dataclass(frozen=True, slots=True)
class RestVerdict:
    """What happens to one REST request.

    ``status`` is None to handle it normally, else the error status to answer
    with instead (``retry_after`` for a 429). ``hold_before`` delays handling,
    ``hold_after`` delays the answer after handling (so the effect happens but
    the client waits). ``stalled`` tells whether a :meth:`RestFaults.stall_next`
    rule matched: its hold ends early on ``release_stalls()``.
    """

    status: int | None = None
    retry_after: float | None = None
    hold_before: float = 0.0
    hold_after: float = 0.0
    stalled: bool = False


@dataclass(slots=True)
class _Rule:
    pattern: re.Pattern[str] | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.pattern is None or self.pattern.search(path) is not None


@dataclass(slots=True)
class _FailNext(_Rule):
    status: int
    remaining: int
    retry_after: float | None


@dataclass(slots=True)
class _Stall(_Rule):
    seconds: float
    remaining: int
    after_effect: bool


@dataclass(slots=True)
class _FailRate(_Rule):
    status: int
    rate: float


def _compile(path_regex: str | None) -> re.Pattern[str] | None:
    return None if path_regex is None else re.compile(path_regex)


class RestFaults:
    """The REST faults in force, and the decision for each request.

    Patterns are matched with :func:`re.search` against the path without
    the query string; ``method``, when given, restricts a rule to one method.
    ``rng`` draws the :meth:`fail_rate` coin flips, so the same seed and the
    same sequence of requests fail the same requests.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._fail_next: list[_FailNext] = []
        self._stalls: list[_Stall] = []
        self._rates: list[_FailRate] = []
        self.slow = 0.0
        """Seconds every response is held back (after handling)."""

    def fail_next(
        self,
        path_regex: str,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (429: ``Retry-After``)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        if status == 429 and retry_after is None:
            retry_after = 1.0
        rule = _FailNext(_compile(path_regex), method, status, count, retry_after)
        self._fail_next.append(rule)

    def stall_next(
        self,
        path_regex: str,
        seconds: float,
        method: str | None = None,
        count: int = 1,
        after_effect: bool = True,
    ) -> None:
        """Hold the next ``count`` matching requests for ``seconds``.

        With ``after_effect`` (the default) the request is handled at once and
        only its answer is held: the platform did what was asked, the client
        times out. Without it, the request is held before it is handled.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._stalls.append(_Stall(_compile(path_regex), method, seconds, count, after_effect))

    def fail_rate(
        self,
        status: int,
        rate: float,
        path_regex: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer a random ``rate`` (0..1) of matching requests with ``status``.

        A new rule replaces one with the same ``path_regex`` and ``method``;
        ``rate`` 0 removes it.
        """
        if status not in FAILURE_STATUSES:
            raise ValueError(f"fail_rate status must be one of {sorted(FAILURE_STATUSES)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        pattern = _compile(path_regex)
        self._rates = [
            r
            for r in self._rates
            if not ((r.pattern.pattern if r.pattern else None) == path_regex and r.method == method)
        ]
        if rate > 0:
            self._rates.append(_FailRate(pattern, method, status, rate))

    def clear(self) -> None:
        """Remove every REST fault: no failures, stalls or slowness."""
        self._fail_next.clear()
        self._stalls.clear()
        self._rates.clear()
        self.slow = 0.0

    def decide(self, method: str, path: str) -> RestVerdict:
        """The verdict for one request; consumes the ``count`` of the rules that match."""
        status: int | None = None
        retry_after: float | None = None
        hold_before = hold_after = 0.0
        stalled = False
        stall = _take(self._stalls, method, path)
        if stall is not None:
            stalled = True
            if stall.after_effect:
                hold_after += stall.seconds
            else:
                hold_before += stall.seconds
        once = _take(self._fail_next, method, path)
        if once is not None:
            status, retry_after = once.status, once.retry_after
        else:
            for rule in self._rates:
                # One draw per matching rule, whatever its outcome, to keep replays aligned.
                if rule.matches(method, path) and self._rng.random() < rule.rate and status is None:
                    status = rule.status
                    retry_after = 1.0 if status == 429 else None
        return RestVerdict(status, retry_after, hold_before, hold_after + self.slow, stalled)


_R = TypeVar("_R", _FailNext, _Stall)


def _take(rules: list[_R], method: str, path: str) -> _R | None:
    for rule in rules:
        if rule.matches(method, path):
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
    return None


@dataclass(frozen=True, slots=True)
class Release:
    """One copy of an event to send ``at`` (the shell's clock, seconds)."""

    at: float
    topic: str
    text: str


@dataclass(slots=True)
class EventShaper:
    """Duplicates, reorders and delays published events, as a pure queue.

    :meth:`push` takes a published event at time ``now``; :meth:`due` returns
    the copies whose time has come, in the order they go out; :meth:`next_at`
    tells the shell when to call :meth:`due` again. With every knob at its
    default an event is due the moment it is pushed.

    ``duplicates``: each event goes out that many times (same correlation id).
    ``reorder_window``: events are held until that many are pending, then
    shuffled (seeded) and released; a partial window is released
    ``reorder_flush`` seconds after its first event arrived.
    ``delay``: every copy goes out that many seconds after it was released.
    ``capacity``: most copies held back at once; a copy pushed beyond it is
    dropped and counted in ``dropped`` (the platform has no durability either:
    a lost event is what a client must survive).
    """

    rng: random.Random
    duplicates: int = 1
    reorder_window: int = 1
    reorder_flush: float = 0.2
    delay: float = 0.0
    capacity: int = 10_000
    dropped: int = 0
    _window: list[tuple[str, str]] = field(default_factory=list)
    _window_since: float = 0.0
    _ready: deque[Release] = field(default_factory=deque)

    def push(self, topic: str, text: str, now: float) -> None:
        """Take one published event."""
        copies = [(topic, text)] * max(1, self.duplicates)
        room = max(0, self.capacity - self.pending)
        if len(copies) > room:
            self.dropped += len(copies) - room
            copies = copies[:room]
            if not copies:
                return
        if self.reorder_window <= 1 and not self._window:
            self._schedule(copies, now)
            return
        if not self._window:
            self._window_since = now
        self._window.extend(copies)
        if len(self._window) >= self.reorder_window:
            self._flush_window(now)

    def due(self, now: float) -> list[Release]:
        """The copies to send now, in order (a partial reorder window is flushed if stale)."""
        if self._window and now >= self._window_since + self.reorder_flush:
            self._flush_window(now)
        out: list[Release] = []
        while self._ready and self._ready[0].at <= now:
            out.append(self._ready.popleft())
        return out

    def next_at(self) -> float | None:
        """When something next becomes due (None: nothing pending)."""
        times = []
        if self._ready:
            times.append(self._ready[0].at)
        if self._window:
            times.append(self._window_since + self.reorder_flush)
        return min(times) if times else None

    @property
    def pending(self) -> int:
        """Copies not yet sent."""
        return len(self._ready) + len(self._window)

    def _flush_window(self, now: float) -> None:
        batch, self._window = self._window, []
        self.rng.shuffle(batch)
        self._schedule(batch, now)

    def _schedule(self, copies: list[tuple[str, str]], now: float) -> None:
        # Times never go backwards in the queue, so order is kept even if ``delay`` shrinks.
        floor = self._ready[-1].at if self._ready else now
        at = max(floor, now + self.delay)
        self._ready.extend(Release(at, topic, text) for topic, text in copies)
