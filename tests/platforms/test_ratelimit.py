"""The REST budget: a sliding window, Retry-After and the platform's own count, by hand-fed
times; and the async shell, whose sleeps only move a manual clock."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.clock import ManualClock
from outdial.platforms.ratelimit import RateBudget, RequestBudget

pytestmark = pytest.mark.anyio


def grant_all(budget: RateBudget, now: float, n: int) -> int:
    """How many of ``n`` requests at ``now`` are granted at once."""
    return sum(budget.try_acquire(now) == 0.0 for _ in range(n))


def test_the_limit_goes_at_once_and_the_next_waits_for_the_window() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    assert grant_all(budget, 0.0, 200) == 200
    assert grant_all(budget, 30.0, 200) == 100
    assert budget.try_acquire(30.0) == pytest.approx(30.0)
    assert budget.try_acquire(59.9) == pytest.approx(0.1)
    # The 200 sent at 0 s left the window; the 100 sent at 30 s are still in it.
    assert grant_all(budget, 60.0, 300) == 200
    assert budget.try_acquire(60.0) == pytest.approx(30.0)


def test_no_burst_across_a_window_edge() -> None:
    # A fixed window would allow 300 at 59 s and 300 more at 61 s.
    budget = RateBudget(limit=300, per=60, margin=0)
    assert grant_all(budget, 59.0, 300) == 300
    assert grant_all(budget, 61.0, 300) == 0
    assert grant_all(budget, 119.0, 300) == 300


def test_margin_widens_the_window() -> None:
    budget = RateBudget(limit=2, per=10, margin=0.5)
    assert grant_all(budget, 0.0, 2) == 2
    assert budget.try_acquire(10.0) == pytest.approx(0.5)
    assert budget.try_acquire(10.5) == 0.0


def test_retry_after_blocks_every_request_until_it_is_over() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    budget.retry_after(5.0, 7.0)
    assert budget.try_acquire(5.0) == pytest.approx(7.0)
    assert budget.try_acquire(11.0) == pytest.approx(1.0)
    assert budget.try_acquire(12.0) == 0.0
    # A shorter Retry-After later does not shorten the longer one.
    budget.retry_after(12.0, 30.0)
    budget.retry_after(13.0, 1.0)
    assert budget.wait(14.0) == pytest.approx(28.0)


def test_used_up_allowance_waits_for_the_platforms_reset() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    assert budget.try_acquire(0.0) == 0.0
    # Someone else spends this token too: the platform counts 300 of 300 already.
    budget.observe(1.0, count=300, allowed=300, reset=20.0)
    assert budget.wait(1.0) == pytest.approx(20.0)
    assert budget.try_acquire(21.0) == 0.0


def test_a_lower_allowance_than_configured_is_honoured_until_the_reset() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    budget.observe(0.0, count=1, allowed=5, reset=30.0)
    assert grant_all(budget, 0.0, 10) == 4
    assert budget.wait(0.0) == pytest.approx(30.0)
    # The platform's window is over: our own limit applies again.
    assert grant_all(budget, 30.0, 10) == 10


def test_out_of_order_answers_keep_the_lowest_allowance_left() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    budget.observe(0.0, count=299, allowed=300, reset=30.0)
    budget.observe(0.1, count=250, allowed=300, reset=29.9)  # an older answer, late
    assert budget.try_acquire(0.2) == 0.0
    assert budget.wait(0.2) == pytest.approx(29.8)


def test_a_late_answer_from_the_previous_window_is_ignored() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    budget.observe(0.0, count=1, allowed=300, reset=60.0)
    budget.observe(0.5, count=300, allowed=300, reset=0.0)  # said before the reset
    assert budget.wait(0.5) == 0.0


def test_a_new_platform_window_replaces_the_old_reading() -> None:
    budget = RateBudget(limit=300, per=60, margin=0)
    budget.observe(0.0, count=300, allowed=300, reset=2.0)
    assert budget.wait(1.0) == pytest.approx(1.0)
    budget.observe(2.5, count=1, allowed=300, reset=59.0)
    assert budget.wait(2.5) == 0.0


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        RateBudget(limit=0)
    with pytest.raises(ValueError, match="per"):
        RateBudget(per=0)
    with pytest.raises(ValueError, match="margin"):
        RateBudget(margin=-1)


@dataclass(frozen=True)
class Acquire:
    pass


@dataclass(frozen=True)
class RetryAfter:
    seconds: float


@dataclass(frozen=True)
class Headers:
    count: int
    allowed: int
    reset: float


ops = st.one_of(
    st.just(Acquire()),
    st.builds(RetryAfter, st.floats(0, 120)),
    st.builds(Headers, st.integers(0, 400), st.integers(1, 400), st.floats(0, 61)),
)
steps = st.lists(st.tuples(st.floats(0, 5), ops), max_size=200)


@given(limit=st.integers(1, 20), per=st.floats(0.5, 60), margin=st.floats(0, 1), plan=steps)
def test_never_more_than_limit_in_any_window(
    limit: int, per: float, margin: float, plan: list[tuple[float, object]]
) -> None:
    """Whatever the platform says, no ``per``-second interval holds more than ``limit`` grants,
    no grant falls inside a Retry-After, nor inside a used-up platform window (until a later
    reading of the platform's count says its window started over)."""
    budget = RateBudget(limit, per, margin=margin)
    now = 0.0
    grants: list[float] = []
    # (first grant index it applies to, last index or None for all, time it lasts until)
    blocked: list[tuple[int, int | None, float]] = []
    exhausted: int | None = None  # index into blocked of the first used-up reading
    seen_headers = False
    for dt, op in plan:
        now += dt
        if isinstance(op, Acquire):
            if budget.try_acquire(now) == 0.0:
                grants.append(now)
        elif isinstance(op, RetryAfter):
            budget.retry_after(now, op.seconds)
            blocked.append((len(grants), None, now + op.seconds))
        elif isinstance(op, Headers):
            if exhausted is not None:
                start, _, end = blocked[exhausted]
                blocked[exhausted] = (start, len(grants), end)
                exhausted = None
            budget.observe(now, count=op.count, allowed=op.allowed, reset=op.reset)
            # A late answer from an earlier window may be discarded; the first reading
            # (nothing earlier to compare it with) must be honoured.
            if op.count >= op.allowed and not seen_headers:
                exhausted = len(blocked)
                blocked.append((len(grants), None, now + op.reset))
            seen_headers = True
    for first, last in zip(grants, grants[limit:], strict=False):
        assert last - first >= per - 1e-6
    for start, stop, end in blocked:
        assert not [g for g in grants[start:stop] if g < end - 1e-6]


@given(
    limit=st.integers(1, 20),
    per=st.floats(0.5, 60),
    margin=st.floats(0, 1),
    plan=steps,
)
def test_waiting_what_it_says_is_enough(
    limit: int, per: float, margin: float, plan: list[tuple[float, object]]
) -> None:
    """A shell that sleeps exactly the wait returned is granted next time: no spinning."""
    budget = RateBudget(limit, per, margin=margin)
    now = 0.0
    for dt, op in plan:
        now += dt
        if isinstance(op, RetryAfter):
            budget.retry_after(now, op.seconds)
        elif isinstance(op, Headers):
            budget.observe(now, count=op.count, allowed=op.allowed, reset=op.reset)
        else:
            wait = budget.try_acquire(now)
            if wait > 0:
                now += wait
                assert budget.try_acquire(now) == 0.0


class Sleeper:
    """An injected sleep that moves the manual clock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


async def test_acquire_sleeps_until_the_budget_allows() -> None:
    clock = ManualClock(monotonic=0.0)
    sleep = Sleeper(clock)
    shell = RequestBudget(RateBudget(limit=2, per=10, margin=0), clock, sleep)
    for _ in range(3):
        await shell.acquire()
    assert sleep.slept == [pytest.approx(10.0)]
    shell.retry_after(4.0)
    assert shell.wait() == pytest.approx(4.0)
    await shell.acquire()
    assert clock.monotonic() == pytest.approx(14.0)


async def test_acquire_serves_waiters_in_arrival_order() -> None:
    clock = ManualClock(monotonic=0.0)
    shell = RequestBudget(RateBudget(limit=1, per=1, margin=0), clock, Sleeper(clock))
    order: list[int] = []

    async def one(i: int) -> None:
        await shell.acquire()
        order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(one, i)
            await anyio.lowlevel.checkpoint()
    assert order == [0, 1, 2, 3, 4]
    assert clock.monotonic() == pytest.approx(4.0)
