"""GenesysPlatform.find_outbound_calls and the ambiguous answers of place_call."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from outdial.fake import CallTiming, FakePlatform
from outdial.platforms.base import AmbiguousOutcome, DialRequest, PlatformError, RetryableError
from outdial.platforms.genesys.client import (
    AnalyticsConversation,
    GenesysPlatform,
    analytics_query,
    outbound_call_from,
)

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SLOW = CallTiming(ring=(5.0, 5.0), talk=(5.0, 5.0), wrapup=1.0)


def client(platform: FakePlatform, timeout: float = 5.0) -> GenesysPlatform:
    return GenesysPlatform(
        api_url=platform.api_url,
        login_url=platform.login_url,
        client_id=platform.client_id,
        client_secret=platform.client_secret,
        timeout=timeout,
    )


def conversation(
    cid: str,
    start: str,
    *,
    user: str = AGENT,
    direction: str = "outbound",
    media: str = "voice",
    dnis: str = "tel:+441212345601",
) -> dict[str, Any]:
    return {
        "conversationId": cid,
        "conversationStart": start,
        "participants": [
            {
                "participantId": "p1",
                "purpose": "agent",
                "userId": user,
                "sessions": [{"mediaType": media, "direction": direction, "dnis": dnis}],
            }
        ],
    }


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> GenesysPlatform:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        return handler(request)

    return GenesysPlatform(
        api_url="http://api.test",
        login_url="http://login.test",
        client_id="id",
        client_secret="secret",
        transport=httpx.MockTransport(route),
    )


def dimension(name: str, value: str) -> dict[str, Any]:
    return {"type": "dimension", "dimension": name, "operator": "matches", "value": value}


def test_query_body() -> None:
    body = analytics_query(AGENT, T0, T0 + timedelta(minutes=5), 2)
    assert body == {
        "interval": "2026-01-05T12:00:00.000Z/2026-01-05T12:05:00.000Z",
        "order": "desc",
        "orderBy": "conversationStart",
        "segmentFilters": [
            {"type": "and", "predicates": [dimension("userId", AGENT)]},
            {
                "type": "and",
                "predicates": [dimension("mediaType", "voice"), dimension("direction", "outbound")],
            },
        ],
        "paging": {"pageSize": 100, "pageNumber": 2},
    }


def test_query_body_narrowed_to_the_dialed_number() -> None:
    body = analytics_query(AGENT, T0, T0 + timedelta(minutes=5), 1, "+441212345601")
    assert body["segmentFilters"][-1] == {
        "type": "or",
        "predicates": [
            dimension("dnis", "tel:+441212345601"),
            dimension("dnis", "+441212345601"),
        ],
    }
    same = analytics_query(AGENT, T0, T0 + timedelta(minutes=5), 1, "tel:+441212345601")
    assert same == body


def test_outbound_call_from_a_detail_record() -> None:
    record = AnalyticsConversation.model_validate(
        {
            **conversation("c1", "2026-01-05T12:00:01.5Z"),
            "conversationEnd": "2026-01-05T12:01:00Z",
        }
    )
    call = outbound_call_from(record, AGENT)
    assert call is not None
    assert call.conversation_id == "c1"
    assert call.phone_number == "tel:+441212345601"
    assert call.started_at == T0 + timedelta(seconds=1.5)
    assert call.ended_at == T0 + timedelta(minutes=1)
    inbound = AnalyticsConversation.model_validate(
        conversation("c2", "2026-01-05T12:00:00Z", direction="inbound")
    )
    assert outbound_call_from(inbound, AGENT) is None
    chat = AnalyticsConversation.model_validate(
        conversation("c3", "2026-01-05T12:00:00Z", media="chat")
    )
    assert outbound_call_from(chat, AGENT) is None


@pytest.mark.anyio
async def test_pages_until_every_hit_is_read() -> None:
    pages: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        pages.append(body)
        number = body["paging"]["pageNumber"]
        first = (number - 1) * 100
        batch = [
            conversation(f"c{i:03d}", f"2026-01-05T12:{i // 60:02d}:{i % 60:02d}Z")
            for i in range(first, min(first + 100, 150))
        ]
        return httpx.Response(200, json={"conversations": batch, "totalHits": 150})

    platform = mocked(handler)
    calls = await platform.find_outbound_calls(AGENT, T0, T0 + timedelta(hours=1))
    await platform.aclose()
    assert [p["paging"]["pageNumber"] for p in pages] == [1, 2]
    assert len(calls) == 150
    assert calls[0].conversation_id == "c000"
    assert calls == sorted(calls, key=lambda c: c.started_at)


@pytest.mark.anyio
async def test_no_conversations_key_means_none() -> None:
    platform = mocked(lambda request: httpx.Response(200, json={"totalHits": 0}))
    assert await platform.find_outbound_calls(AGENT, T0, T0 + timedelta(minutes=1)) == []
    await platform.aclose()


@pytest.mark.anyio
async def test_lookup_errors_are_platform_errors() -> None:
    platform = mocked(lambda request: httpx.Response(503, json={"message": "busy"}))
    with pytest.raises(RetryableError):
        await platform.find_outbound_calls(AGENT, T0, T0 + timedelta(minutes=1))
    await platform.aclose()
    platform = mocked(lambda request: httpx.Response(200, json={"conversations": [{"x": 1}]}))
    with pytest.raises(PlatformError, match="unexpected answer"):
        await platform.find_outbound_calls(AGENT, T0, T0 + timedelta(minutes=1))
    await platform.aclose()


@pytest.mark.anyio
async def test_gateway_timeout_on_place_call_is_ambiguous() -> None:
    platform = mocked(lambda request: httpx.Response(504, json={"message": "gateway timeout"}))
    with pytest.raises(AmbiguousOutcome, match="reconciled") as caught:
        await platform.place_call(DialRequest(AGENT, "+441212345601"))
    assert caught.value.status == 504
    await platform.aclose()


@pytest.mark.anyio
async def test_finds_the_call_the_fake_placed() -> None:
    async with FakePlatform(agents=[AGENT], seed=1, timing=SLOW) as fake:
        genesys = client(fake)
        before = datetime.now(UTC) - timedelta(seconds=5)
        placed = await genesys.place_call(DialRequest(AGENT, "+441212345601"))
        after = datetime.now(UTC) + timedelta(seconds=5)
        calls = await genesys.find_outbound_calls(AGENT, before, after)
        assert [c.conversation_id for c in calls] == [placed.conversation_id]
        assert calls[0].phone_number == "tel:+441212345601"
        assert before <= calls[0].started_at <= after
        assert await genesys.find_outbound_calls("someone-else", before, after) == []
        assert await genesys.find_outbound_calls(AGENT, after, after + timedelta(hours=1)) == []
        await genesys.aclose()


@pytest.mark.anyio
async def test_a_timeout_after_the_call_was_accepted_is_ambiguous_and_findable() -> None:
    async with FakePlatform(agents=[AGENT], seed=1, timing=SLOW) as fake:
        genesys = client(fake, timeout=0.3)
        fake.stall_next(r"/conversations/calls/user/", 1.0)
        since = datetime.now(UTC) - timedelta(seconds=5)
        with pytest.raises(AmbiguousOutcome):
            await genesys.place_call(DialRequest(AGENT, "+441212345601"))
        calls = await genesys.find_outbound_calls(AGENT, since, since + timedelta(minutes=1))
        assert [c.conversation_id for c in calls] == [
            c.conversation_id for c in fake.recorded.accepted_calls
        ]
        fake.release_stalls()
        await genesys.aclose()


@pytest.mark.anyio
async def test_narrowed_by_number_only_for_an_e164_one_and_returned_oldest_first() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        # The platform answers newest first, as asked.
        newest_first = [
            conversation("c2", "2026-01-05T12:02:00Z"),
            conversation("c1", "2026-01-05T12:01:00Z"),
        ]
        return httpx.Response(200, json={"conversations": newest_first, "totalHits": 2})

    platform = mocked(handler)
    calls = await platform.find_outbound_calls(
        AGENT, T0, T0 + timedelta(hours=1), phone_number="+441212345601"
    )
    assert [c.conversation_id for c in calls] == ["c1", "c2"]
    assert bodies[0]["order"] == "desc"
    assert [f["predicates"][0]["dimension"] for f in bodies[0]["segmentFilters"]] == [
        "userId",
        "mediaType",
        "dnis",
    ]
    # A number that is not E.164 could miss the call: no dnis predicate then.
    await platform.find_outbound_calls(AGENT, T0, T0 + timedelta(hours=1), phone_number="0121")
    assert len(bodies[1]["segmentFilters"]) == 2
    await platform.aclose()


@pytest.mark.anyio
async def test_the_fake_lists_only_calls_to_the_number_asked_about() -> None:
    async with FakePlatform(agents=[AGENT], seed=1, timing=SLOW) as fake:
        genesys = client(fake)
        before = datetime.now(UTC) - timedelta(seconds=5)
        first = await genesys.place_call(DialRequest(AGENT, "+441212345601"))
        second = await genesys.place_call(DialRequest(AGENT, "+441212345602"))
        after = datetime.now(UTC) + timedelta(seconds=5)
        everything = await genesys.find_outbound_calls(AGENT, before, after)
        assert [c.conversation_id for c in everything] == [
            first.conversation_id,
            second.conversation_id,
        ]
        to_second = await genesys.find_outbound_calls(
            AGENT, before, after, phone_number="+441212345602"
        )
        assert [c.conversation_id for c in to_second] == [second.conversation_id]
        nobody = await genesys.find_outbound_calls(
            AGENT, before, after, phone_number="+441212345699"
        )
        assert nobody == []
        await genesys.aclose()
