"""The fake platform's REST side: login, errors, channels, subscriptions, injected failures."""

from __future__ import annotations

import re

import anyio
import httpx
import pytest
from fake_helpers import api, channel

from outdial.clock import ManualClock
from outdial.fake import FakePlatform
from outdial.fake.pytest_plugin import fake_control_client

pytestmark = pytest.mark.anyio

ERROR_KEYS = {
    "message",
    "code",
    "status",
    "messageWithParams",
    "messageParams",
    "contextId",
    "details",
    "errors",
}


async def test_token_flow_and_bad_credentials() -> None:
    async with FakePlatform(seed=0) as platform, httpx.AsyncClient() as client:
        ok = await client.post(
            f"{platform.login_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("fake-client", "fake-secret"),
        )
        assert ok.status_code == 200
        body = ok.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 86399
        assert body["access_token"]
        assert ok.headers["ININ-Correlation-Id"]

        wrong = await client.post(
            f"{platform.login_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("fake-client", "nope"),
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"

        grant = await client.post(
            f"{platform.login_url}/oauth/token",
            data={"grant_type": "password"},
            auth=("fake-client", "fake-secret"),
        )
        assert grant.status_code == 400
        assert grant.json()["error"] == "unsupported_grant_type"
        assert [t.granted for t in platform.recorded.token_requests] == [True, False, False]


async def test_api_refuses_missing_unknown_and_expired_tokens() -> None:
    clock = ManualClock()
    async with FakePlatform(seed=0, token_lifetime=60.0, clock=clock) as platform:
        async with httpx.AsyncClient(base_url=platform.api_url) as bare:
            missing = await bare.post("/api/v2/notifications/channels")
            assert missing.status_code == 401
            assert set(missing.json()) == ERROR_KEYS
            assert missing.json()["code"] == "authentication.required"
            assert missing.json()["contextId"] == missing.headers["ININ-Correlation-Id"]
            unknown = await bare.post(
                "/api/v2/notifications/channels", headers={"Authorization": "Bearer nope"}
            )
            assert unknown.status_code == 401
            assert unknown.json()["code"] == "bad.credentials"
        async with api(platform) as client:
            assert (await client.post("/api/v2/notifications/channels")).status_code == 200
            clock.advance(60.0)
            expired = await client.post("/api/v2/notifications/channels")
            assert expired.status_code == 401
            assert expired.json()["status"] == 401


async def test_every_api_answer_carries_correlation_and_rate_limit_headers() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        first = await client.post("/api/v2/notifications/channels")
        second = await client.get("/api/v2/users/nobody/routingstatus")
        for response in (first, second):
            assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["ININ-Correlation-Id"])
            assert response.headers["inin-ratelimit-allowed"] == "300"
            assert int(response.headers["inin-ratelimit-reset"]) <= 60
        assert first.headers["inin-ratelimit-count"] == "1"
        assert second.headers["inin-ratelimit-count"] == "2"
        assert second.status_code == 404
        assert second.json()["details"] == [{"errorCode": "not.found", "fieldName": "userId"}]
        nowhere = await client.get("/api/v2/nowhere")
        assert nowhere.status_code == 404
        assert set(nowhere.json()) == ERROR_KEYS
        wrong_method = await client.patch("/api/v2/notifications/channels")
        assert wrong_method.status_code == 405


async def test_rate_limit_when_enforced() -> None:
    async with FakePlatform(seed=0, rate_limit=2) as platform, api(platform) as client:
        statuses = [
            (await client.get("/api/v2/notifications/channels")).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        limited = await client.get("/api/v2/notifications/channels")
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["code"] == "too.many.requests"
        # The refusal carries the counters too, so a client sees why.
        assert limited.headers["inin-ratelimit-allowed"] == "2"
        assert limited.headers["inin-ratelimit-count"] == "4"


async def test_three_hundred_a_minute_by_default() -> None:
    clock = ManualClock()
    async with (
        FakePlatform(seed=0, clock=clock) as platform,
        api(platform) as client,
        fake_control_client(platform) as control,
    ):
        for _ in range(150):
            assert (await client.head("/api/v2/notifications/channels/nope")).status_code == 404
            # Control requests and logins are not API requests of the token: not counted.
            assert (await control.get("/state")).status_code == 200
        login = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(platform.client_id, platform.client_secret),
        )
        assert "inin-ratelimit-count" not in login.headers
        for _ in range(150):
            last = await client.get("/api/v2/users/nobody/routingstatus")
        assert last.headers["inin-ratelimit-count"] == "300"
        refused = await client.get("/api/v2/users/nobody/routingstatus")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "60"
        assert refused.json()["messageParams"] == {"retryAfter": "60"}
        # A fresh token has its own budget; the window's end restores this one.
        async with api(platform) as other:
            assert (await other.get("/api/v2/users/nobody/routingstatus")).status_code == 404
        clock.advance(60.0)
        again = await client.get("/api/v2/users/nobody/routingstatus")
        assert again.status_code == 404
        assert again.headers["inin-ratelimit-count"] == "1"


@pytest.mark.parametrize("off", [None, 0])
async def test_rate_limit_can_be_switched_off(off: int | None) -> None:
    async with FakePlatform(seed=0, rate_limit=off) as platform, api(platform) as client:
        for _ in range(305):
            response = await client.head("/api/v2/notifications/channels/nope")
            assert response.status_code == 404
        assert response.headers["inin-ratelimit-count"] == "305"
        assert response.headers["inin-ratelimit-allowed"] == "300"


async def test_channel_create_head_and_expiry() -> None:
    clock = ManualClock()
    async with (
        FakePlatform(seed=0, channel_lifetime=3600.0, clock=clock) as platform,
        api(platform) as client,
    ):
        created = await channel(client)
        assert set(created) == {"id", "connectUri", "expires"}
        assert created["connectUri"] == f"{platform.ws_url}/channels/{created['id']}"
        assert created["expires"] == "2026-01-05T13:00:00.000Z"
        head = await client.head(f"/api/v2/notifications/channels/{created['id']}")
        assert head.status_code == 200
        missing = await client.head("/api/v2/notifications/channels/streaming-0-nope")
        assert missing.status_code == 404
        listed = (await client.get("/api/v2/notifications/channels")).json()
        assert [c["id"] for c in listed["entities"]] == [created["id"]]
        clock.advance(3600.0)
        gone = await client.head(f"/api/v2/notifications/channels/{created['id']}")
        assert gone.status_code == 404
        assert platform.live_channels == []


async def test_twenty_first_channel_evicts_the_oldest() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        ids = [(await channel(client))["id"] for _ in range(21)]
        assert platform.recorded.channels == ids
        oldest = await client.head(f"/api/v2/notifications/channels/{ids[0]}")
        assert oldest.status_code == 404
        for channel_id in (ids[1], ids[20]):
            head = await client.head(f"/api/v2/notifications/channels/{channel_id}")
            assert head.status_code == 200
        assert platform.live_channels == ids[1:]


async def test_subscriptions_put_get_post_delete() -> None:
    user = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
    presence, calls = f"v2.users.{user}.presence", f"v2.users.{user}.conversations.calls"
    routing = f"v2.users.{user}.routingStatus"
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        channel_id = (await channel(client))["id"]
        url = f"/api/v2/notifications/channels/{channel_id}/subscriptions"

        put = await client.put(url, json=[{"id": presence}, {"id": calls}])
        assert put.json() == {
            "entities": [
                {"id": presence, "state": "Permitted"},
                {"id": calls, "state": "Permitted"},
            ]
        }
        post = await client.post(url, json=[{"id": routing}, {"id": "not a topic"}])
        assert post.status_code == 200
        rejected = [e for e in post.json()["entities"] if e["state"] == "Rejected"]
        assert [e["id"] for e in rejected] == ["not a topic"]
        assert rejected[0]["rejectionReason"]

        got = await client.get(url)
        assert [e["id"] for e in got.json()["entities"]] == [presence, calls, routing]

        replaced = await client.put(url, json=[{"id": routing}])
        assert [e["id"] for e in replaced.json()["entities"]] == [routing]

        deleted = await client.delete(url)
        assert deleted.status_code == 200
        assert (await client.get(url)).json() == {"entities": []}

        unknown_event = await client.put(url, json=[{"id": f"v2.users.{user}.nonsense"}])
        assert unknown_event.json()["entities"][0]["state"] == "Rejected"

        changes = platform.recorded.subscription_changes
        assert [(c.channel_id, c.method) for c in changes[:4]] == [
            (channel_id, "PUT"),
            (channel_id, "POST"),
            (channel_id, "PUT"),
            (channel_id, "DELETE"),
        ]
        assert changes[0].topics == (presence, calls)

        gone = await client.get("/api/v2/notifications/channels/streaming-0-nope/subscriptions")
        assert gone.status_code == 404


async def test_more_than_a_thousand_topics_is_refused() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        channel_id = (await channel(client))["id"]
        url = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
        topics = [{"id": f"v2.users.user-{i}.presence"} for i in range(1001)]
        too_many = await client.put(url, json=topics)
        assert too_many.status_code == 400
        body = too_many.json()
        assert body["details"] == [{"errorCode": "too.many.topics", "fieldName": "body"}]
        assert "1000" in body["message"]

        assert (await client.put(url, json=topics[:1000])).status_code == 200
        one_more = await client.post(url, json=[{"id": "v2.users.extra.presence"}])
        assert one_more.status_code == 400
        assert len(platform.channel_topics(channel_id)) == 1000

        bad_shape = await client.put(url, json=[{"topic": "x"}])
        assert bad_shape.status_code == 400
        assert bad_shape.json()["details"][0]["fieldName"] == "[0].id"


async def test_fail_next_answers_429_with_retry_after_then_recovers() -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        platform.fail_next(r"/notifications/channels$", 429, count=2, retry_after=3)
        first = await client.post("/api/v2/notifications/channels")
        second = await client.post("/api/v2/notifications/channels")
        third = await client.post("/api/v2/notifications/channels")
        assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
        assert first.headers["Retry-After"] == "3"
        assert set(first.json()) == ERROR_KEYS
        assert first.json()["code"] == "too.many.requests"
        assert first.json()["status"] == 429

        platform.fail_next(r"/subscriptions$", 500, method="PUT")
        channel_id = third.json()["id"]
        url = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
        assert (await client.get(url)).status_code == 200
        failed = await client.put(url, json=[])
        assert failed.status_code == 500
        assert failed.json()["code"] == "internal.server.error"
        assert (await client.put(url, json=[])).status_code == 200

        platform.fail_next(r"/oauth/token", 503)
        login = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(platform.client_id, platform.client_secret),
        )
        assert login.status_code == 503
        assert "Retry-After" not in login.headers


async def test_keep_alive_and_malformed_http() -> None:
    async with FakePlatform(seed=0) as platform:
        request = b"GET /api/v2/nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        async with await anyio.connect_tcp("127.0.0.1", platform.port) as stream:
            with anyio.fail_after(2):
                for _ in range(2):  # two requests, one connection
                    await stream.send(request)
                    head = await _read_response(stream)
                    assert head.startswith(b"HTTP/1.1 404 ")
        async with await anyio.connect_tcp("127.0.0.1", platform.port) as stream:
            await stream.send(b"NOT HTTP AT ALL\r\n\r\n")
            with anyio.fail_after(2):
                head = await _read_response(stream)
            assert head.startswith(b"HTTP/1.1 400 ")


async def _read_response(stream: anyio.abc.ByteStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += await stream.receive()
    return head
