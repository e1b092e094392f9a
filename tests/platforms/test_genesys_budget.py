"""Every REST request of GenesysPlatform spends from one budget; 429s and the platform's
``inin-ratelimit-*`` headers feed it. Sleeps only move a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from outdial.clock import ManualClock
from outdial.config import PlatformConfig
from outdial.fake import FakePlatform
from outdial.platforms.base import DialRequest, RetryableError
from outdial.platforms.genesys.client import (
    GenesysPlatform,
    error_from_response,
    retry_after_seconds,
)
from outdial.platforms.ratelimit import BudgetSpent, RateBudget, RequestBudget

pytestmark = pytest.mark.anyio

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Sleeper:
    """Records each sleep and moves the clock by it instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


Handler = Callable[[httpx.Request], httpx.Response]


def ok(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/api/v2/notifications/channels":
        return httpx.Response(200, json={"id": "ch", "connectUri": "wss://x"})
    if path.endswith("/subscriptions"):
        return httpx.Response(200, json={"entities": []})
    if path.startswith("/api/v2/conversations/calls/user/"):
        return httpx.Response(200, json={"id": "conv"})
    if path.startswith("/api/v2/conversations/calls/"):
        return httpx.Response(200, json={"id": "conv", "participants": []})
    if path.startswith("/api/v2/analytics/"):
        return httpx.Response(200, json={"totalHits": 0})
    return httpx.Response(200, json={})


def mocked(
    handler: Handler, clock: ManualClock, *, limit: int = 300
) -> tuple[GenesysPlatform, Sleeper, list[str]]:
    sleeper = Sleeper(clock)
    sent: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        sent.append(f"{request.method} {request.url.path}")
        return handler(request)

    platform = GenesysPlatform(
        api_url="http://api.test",
        login_url="http://login.test",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=httpx.MockTransport(route),
        budget=RequestBudget(RateBudget(limit, 60, margin=0), clock, sleeper),
    )
    return platform, sleeper, sent


async def test_every_kind_of_request_spends_from_the_one_budget() -> None:
    clock = ManualClock(T0, monotonic=0.0)
    platform, sleeper, sent = mocked(ok, clock, limit=6)
    await platform.create_channel()
    await platform.channel_exists("ch")
    await platform.put_subscriptions("ch", ["v2.users.a.presence"])
    await platform.place_call(DialRequest(AGENT, "+441212345601"))
    await platform.get_call("conv")
    await platform.find_outbound_calls(AGENT, T0, T0 + timedelta(minutes=1))
    # Six requests of six kinds fit; the token request did not count.
    assert sleeper.slept == []
    await platform.get_subscriptions("ch")
    assert sleeper.slept == [pytest.approx(60.0)]
    assert len(sent) == 7
    await platform.aclose()


async def test_a_429_holds_every_request_back_and_says_how_long() -> None:
    clock = ManualClock(T0, monotonic=0.0)
    answers = [httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"})]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else ok(request)

    platform, sleeper, _ = mocked(handler, clock)
    with pytest.raises(RetryableError) as caught:
        await platform.place_call(DialRequest(AGENT, "+441212345601"))
    assert caught.value.status == 429
    assert caught.value.retry_after == pytest.approx(7.0)
    # Any next request, not only a dial, waits the Retry-After out.
    await platform.create_channel()
    assert sleeper.slept == [pytest.approx(7.0)]
    await platform.aclose()


async def test_a_429_without_retry_after_uses_the_reset_header() -> None:
    clock = ManualClock(T0, monotonic=0.0)
    answers = [
        httpx.Response(
            429,
            headers={
                "inin-ratelimit-count": "301",
                "inin-ratelimit-allowed": "300",
                "inin-ratelimit-reset": "12",
            },
            json={"message": "rate limited"},
        )
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else ok(request)

    platform, sleeper, _ = mocked(handler, clock)
    with pytest.raises(RetryableError) as caught:
        await platform.create_channel()
    assert caught.value.retry_after == pytest.approx(12.0)
    await platform.create_channel()
    assert sum(sleeper.slept) == pytest.approx(12.0)
    await platform.aclose()


async def test_a_429_that_names_no_wait_still_has_one() -> None:
    clock = ManualClock(T0, monotonic=0.0)
    answers = [httpx.Response(429, json={"message": "rate limited"})]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else ok(request)

    platform, _, _ = mocked(handler, clock)
    with pytest.raises(RetryableError) as caught:
        await platform.create_channel()
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    await platform.aclose()


async def test_headers_saying_the_allowance_is_used_up_wait_for_the_reset() -> None:
    clock = ManualClock(T0, monotonic=0.0)

    def handler(request: httpx.Request) -> httpx.Response:
        response = ok(request)
        response.headers.update(
            {
                "inin-ratelimit-count": "300",
                "inin-ratelimit-allowed": "300",
                "inin-ratelimit-reset": "20",
            }
        )
        return response

    platform, sleeper, _ = mocked(handler, clock)
    await platform.create_channel()
    assert sleeper.slept == []
    await platform.create_channel()
    assert sleeper.slept == [pytest.approx(20.0)]
    await platform.aclose()


def test_retry_after_as_an_http_date() -> None:
    response = httpx.Response(
        429,
        headers={
            "Retry-After": "Mon, 05 Jan 2026 12:00:30 GMT",
            "Date": "Mon, 05 Jan 2026 12:00:00 GMT",
        },
    )
    assert retry_after_seconds(response) == 30.0
    # Without a Date header, measured from the caller's now.
    undated = httpx.Response(429, headers={"Retry-After": "Mon, 05 Jan 2026 12:00:30 GMT"})
    assert retry_after_seconds(undated, T0 + timedelta(seconds=10)) == 20.0
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "-3"})) == 0.0
    assert error_from_response(undated, what="x").retry_after is not None


def test_requests_per_minute_is_configured_and_positive() -> None:
    base = {"region": "mypurecloud.ie", "client_id": "i", "client_secret": "s"}
    assert PlatformConfig.model_validate(base).requests_per_minute == 300
    assert PlatformConfig.model_validate({**base, "requests_per_minute": 60}).requests_per_minute
    with pytest.raises(ValueError, match="requests_per_minute"):
        PlatformConfig.model_validate({**base, "requests_per_minute": 0})


async def test_against_the_fakes_limit_the_headers_alone_prevent_any_429() -> None:
    """Configured for 300 a minute, on a token the platform allows only 5: its
    ``inin-ratelimit-*`` headers hold the client back, so no request is refused."""
    clock = ManualClock(T0, monotonic=0.0)
    sleeper = Sleeper(clock)
    async with FakePlatform([AGENT], seed=0, clock=clock, rate_limit=5) as fake:
        platform = GenesysPlatform(
            api_url=fake.api_url,
            login_url=fake.login_url,
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            clock=clock,
            sleep=sleeper,
        )
        try:
            for _ in range(12):
                await platform.create_channel()
        finally:
            await platform.aclose()
        assert len(sleeper.slept) == 2
        assert all(s >= 50 for s in sleeper.slept)


async def test_a_dial_the_budget_would_hold_back_is_refused_unsent_never_waited_for() -> None:
    clock = ManualClock(T0, monotonic=0.0)
    platform, sleeper, sent = mocked(ok, clock, limit=1)
    await platform.create_channel()
    with pytest.raises(BudgetSpent) as caught:
        await platform.place_call(DialRequest(AGENT, "+441212345601"))
    # Not sent, nothing slept: the dialer waits elsewhere and sends it again.
    assert sent == ["POST /api/v2/notifications/channels"]
    assert sleeper.slept == []
    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(60.0)
    await platform.budget.until_ready()
    assert sleeper.slept == [pytest.approx(60.0)]
    await platform.place_call(DialRequest(AGENT, "+441212345601"))
    assert len(sent) == 2
    await platform.aclose()
