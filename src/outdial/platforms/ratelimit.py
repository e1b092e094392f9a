"""One REST budget per client-credentials token: a pure core and a thin async shell.

Genesys Cloud allows a client-credentials token 300 requests a minute by
default. Beyond that it answers 429 with ``Retry-After``, and every answer
carries ``inin-ratelimit-count`` (requests counted in the current window),
``inin-ratelimit-allowed`` (the allowance) and ``inin-ratelimit-reset``
(seconds until the window starts over). Every REST request of the daemon,
channels, subscriptions, dials, re-reads and reconcile queries alike, spends
from that one allowance, so they all go through one :class:`RateBudget`.

:class:`RateBudget` is pure: the caller passes the monotonic time in, and it
answers how long to wait. It grants a request only when

- fewer than ``limit`` requests were granted in the last ``per`` seconds (a
  sliding window, so no burst across a window edge can exceed the limit);
- no ``Retry-After`` the platform gave is still running;
- the platform's own count, as its headers last told it, has not used up the
  allowance of its current window (then the wait is until that window resets).

The platform's word only ever makes the budget stricter, never looser: a
token whose real allowance is lower than configured (the headers say so)
is held to the lower one until the platform's window resets.

:class:`RequestBudget` is the shell: :meth:`RequestBudget.acquire` sleeps
(with an injectable sleep, so tests never wait for real) until the core
grants a request. Waiting requests are served first come, first served.
A request that must not wait where it is (a dial, sent from an agent's turn:
waiting there would hold up every agent behind it) takes a grant with
:meth:`RequestBudget.try_acquire` instead and, refused, raises
:class:`BudgetSpent` without sending; its caller waits elsewhere
(:meth:`RequestBudget.until_ready`) and sends it again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from outdial.clock import Clock
from outdial.platforms.base import RetryableError

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_PER",
    "BudgetSpent",
    "RateBudget",
    "RequestBudget",
    "RestStats",
    "Sleep",
]

#: Requests a client-credentials token may make per window (the platform's default).
DEFAULT_LIMIT = 300
#: Seconds in one window.
DEFAULT_PER = 60.0
#: Added to the window and to every wait the platform names: network delay means the
#: platform sees a request a little later than we sent it, and its ``reset`` and
#: ``Retry-After`` are whole seconds, rounded.
DEFAULT_MARGIN = 0.5
# Float slack when comparing a time with the readiness time computed from it, so that
# sleeping exactly the wait returned always ends the wait.
_EPS = 1e-9
# Two header readings whose window ends differ by more than this describe two windows.
_SAME_WINDOW = 1.0

Sleep = Callable[[float], Awaitable[None]]


class RateBudget:
    """At most ``limit`` requests in any ``per`` seconds; Retry-After and the platform's
    own count are honoured on top. Pure: time is passed in (monotonic seconds)."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        per: float = DEFAULT_PER,
        *,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1 request")
        if not per > 0 or not math.isfinite(per):
            raise ValueError("per must be a positive number of seconds")
        if margin < 0 or not math.isfinite(margin):
            raise ValueError("margin must not be negative")
        self.limit = limit
        self.per = per
        self.margin = margin
        self._window = per + margin
        # Times of the most recent grants, oldest first; only the last ``limit`` matter.
        self._grants: deque[float] = deque(maxlen=limit)
        self._blocked_until = -math.inf
        # The platform's window as its headers last described it.
        self._platform_end = -math.inf
        self._platform_left: int | None = None

    def ready_at(self, now: float) -> float:
        """The earliest time a request may be sent (``now`` or earlier: at once)."""
        ready = self._blocked_until
        if len(self._grants) >= self.limit:
            # The ``limit``-th most recent grant must leave the window first.
            ready = max(ready, self._grants[0] + self._window)
        left = self._platform_left
        if left is not None and left <= 0 and now < self._platform_end:
            # The platform says its allowance is used up: wait for its window to reset.
            ready = max(ready, self._platform_end)
        return ready

    def wait(self, now: float) -> float:
        """Seconds until a request may be sent (0.0: now); takes nothing."""
        ready = self.ready_at(now)
        return 0.0 if now + _EPS >= ready else ready - now

    def remaining(self, now: float) -> int:
        """Requests that may still be sent now without waiting (0 while a 429 holds them).

        The smaller of what our own window has left and what the platform's
        headers last said it has left, in the platform's current window.
        """
        if now < self._blocked_until:
            return 0
        cutoff = now - self._window
        ours = self.limit - sum(1 for granted in self._grants if granted > cutoff)
        left = self._platform_left
        if left is not None and now < self._platform_end:
            ours = min(ours, left)
        return max(0, ours)

    def try_acquire(self, now: float) -> float:
        """Take one request and return 0.0, or take nothing and return seconds to wait."""
        wait = self.wait(now)
        if wait > 0:
            return wait
        self._grants.append(now)
        if self._platform_left is not None and now < self._platform_end:
            self._platform_left -= 1
        return 0.0

    def retry_after(self, now: float, seconds: float) -> None:
        """The platform answered 429 with ``Retry-After: seconds``: nothing goes before then."""
        if not math.isfinite(seconds):
            return
        self._blocked_until = max(self._blocked_until, now + max(0.0, seconds) + self.margin)

    def observe(self, now: float, *, count: int, allowed: int, reset: float) -> None:
        """What an answer's ``inin-ratelimit-*`` headers said at ``now``.

        ``count`` requests of ``allowed`` are used in the platform's window,
        which resets ``reset`` seconds from now. Answers can come back out of
        order, so within one window the lowest allowance left wins.
        """
        if not math.isfinite(reset):
            return
        end = now + max(0.0, reset) + self.margin
        left = allowed - count
        if (
            self._platform_left is None
            or now >= self._platform_end
            or end > self._platform_end + _SAME_WINDOW
        ):
            # The first reading, or the platform's window started over.
            self._platform_end = end
            self._platform_left = left
        elif end < self._platform_end - _SAME_WINDOW:
            # A late answer from the window before: what it says is over.
            return
        else:
            self._platform_left = min(self._platform_left, left)
            self._platform_end = max(self._platform_end, end)


class BudgetSpent(RetryableError):
    """A request refused here, unsent, because the REST budget holds it back.

    Nothing reached the platform, so sending it again later is safe;
    ``retry_after`` is how long the budget holds requests back now.
    """

    def __init__(self, what: str, wait: float) -> None:
        super().__init__(
            f"{what}: not sent, the REST budget holds requests back for {wait:.3f}s",
            code="outdial.rest_budget",
            retry_after=wait,
        )


class RequestBudget:
    """The async shell of a :class:`RateBudget`: :meth:`acquire` waits for a grant."""

    def __init__(self, budget: RateBudget, clock: Clock, sleep: Sleep | None = None) -> None:
        self.budget = budget
        self._clock = clock
        self._sleep: Sleep = sleep or anyio.sleep
        # First come, first served: one waiter at a time asks the core, in arrival order.
        self._turn = anyio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request may be sent, and take it."""
        async with self._turn:
            while True:
                wait = self.budget.try_acquire(self._clock.monotonic())
                if wait <= 0:
                    return
                await self._sleep(wait)

    def try_acquire(self) -> float:
        """Take one request now and return 0.0, or take nothing and return seconds to wait.

        Never waits. It does not queue behind requests waiting in
        :meth:`acquire`: those are woken by their own sleep, and the core
        grants no more than its limit whoever asks.
        """
        return self.budget.try_acquire(self._clock.monotonic())

    async def take_or_refuse(self, what: str = "request") -> None:
        """:meth:`try_acquire`, raising :class:`BudgetSpent` when it would have to wait."""
        wait = self.try_acquire()
        if wait > 0:
            raise BudgetSpent(what, wait)

    async def until_ready(self) -> None:
        """Wait (on this budget's sleep) until a request may be sent; takes nothing."""
        while (wait := self.wait()) > 0:
            await self._sleep(wait)

    def wait(self) -> float:
        """Seconds until the next request may be sent, as things stand now."""
        return self.budget.wait(self._clock.monotonic())

    def remaining(self) -> int:
        """Requests that may be sent now without waiting (see :meth:`RateBudget.remaining`)."""
        return self.budget.remaining(self._clock.monotonic())

    def retry_after(self, seconds: float) -> None:
        """Feed a 429's ``Retry-After`` in: every request waits it out."""
        self.budget.retry_after(self._clock.monotonic(), seconds)

    def observe(self, *, count: int, allowed: int, reset: float) -> None:
        """Feed an answer's ``inin-ratelimit-*`` headers in."""
        self.budget.observe(self._clock.monotonic(), count=count, allowed=allowed, reset=reset)


@dataclass(slots=True)
class RestStats:
    """Answers to authenticated REST requests, counted for metrics.

    ``responses`` counts answers by HTTP status (429s included); requests that
    got no answer at all (a connection refused, a timeout) are ``unanswered``.
    """

    responses: dict[int, int] = field(default_factory=dict)
    unanswered: int = 0
