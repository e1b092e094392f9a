"""REST faults: stalled answers (timeout after accepting), slow answers, random failure rates."""

from __future__ import annotations

import anyio
import httpx
import pytest
from fake_helpers import api

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
CALLS = f"/api/v2/conversations/calls/user/{USER}"
PRESENCE = f"/api/v2/users/{USER}/presences/purecloud"
SHORT = httpx.Timeout(0.05)


async def test_stall_after_effect_times_out_after_the_call_was_accepted() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.stall_next("/conversations/calls/user/", 30.0, method="POST")
        with pytest.raises(httpx.ReadTimeout):
            await client.post(CALLS, json={"phoneNumber": "+441212345601"}, timeout=SHORT)
        [call] = await platform.wait_for_calls(1)  # accepted, recorded, playing out
        assert call.payload == {"phoneNumber": "+441212345601"}
        await platform.wait_for(lambda: platform.stalled_requests == 1)
        platform.release_stalls()
        await platform.wait_for(lambda: platform.stalled_requests == 0)
        # Only the next request was stalled: the following one answers at once.
        response = await client.post(CALLS, json={"phoneNumber": "+441212345602"}, timeout=SHORT)
        assert response.status_code == 200


async def test_stall_before_effect_holds_the_request_unhandled() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.stall_next("/conversations/calls/", 30.0, after_effect=False)
        with pytest.raises(httpx.ReadTimeout):
            await client.post(CALLS, json={"phoneNumber": "+441212345601"}, timeout=SHORT)
        await platform.wait_for(lambda: platform.stalled_requests == 1)
        assert platform.recorded.call_requests == []  # nothing happened yet
        platform.release_stalls()
        await platform.wait_for_calls(1)  # then it is handled (the client is long gone)


async def test_stall_only_matches_its_method() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.stall_next("/presences/", 30.0, method="PUT")
        response = await client.get(PRESENCE, timeout=SHORT)
        assert response.status_code == 200


async def test_slow_rest_holds_every_answer() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.slow_rest(0.05)
        start = anyio.current_time()
        assert (await client.get(PRESENCE)).status_code == 200
        assert anyio.current_time() - start >= 0.05
        platform.slow_rest(0)
        assert (await client.get(PRESENCE, timeout=SHORT)).status_code == 200
        with pytest.raises(ValueError, match="negative"):
            platform.slow_rest(-1)


async def statuses(seed: int, n: int = 40) -> list[int]:
    async with FakePlatform(seed=seed) as platform, api(platform) as client:
        platform.fail_rate(503, 0.5, "/presences/")
        return [(await client.get(PRESENCE)).status_code for _ in range(n)]


async def test_fail_rate_fails_a_seeded_fraction() -> None:
    first = await statuses(3)
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 32
    assert await statuses(3) == first  # same seed, same requests: same failures


async def test_fail_rate_429_carries_retry_after_and_rate_zero_removes_it() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.fail_rate(429, 1.0)
        response = await client.get(PRESENCE)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert response.json()["status"] == 429
        assert response.headers["ININ-Correlation-Id"] == response.json()["contextId"]
        platform.fail_rate(429, 0.0)
        assert (await client.get(PRESENCE)).status_code == 200
        with pytest.raises(ValueError, match="status"):
            platform.fail_rate(404, 0.5)


async def test_failed_call_requests_are_recorded_as_not_accepted() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.fail_rate(500, 1.0, "/conversations/calls/")
        response = await client.post(CALLS, json={"phoneNumber": "+441212345601"})
        assert response.status_code == 500
        [call] = platform.recorded.call_requests
        assert call.status == 500
        assert call.conversation_id is None
        platform.clear_rest_faults()
        assert (await client.post(CALLS, json={"phoneNumber": "+441212345601"})).is_success
