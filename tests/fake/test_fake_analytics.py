"""``POST /api/v2/analytics/conversations/details/query``: a user's calls in an interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fake_helpers import FAST, api, customer

from outdial.clock import ManualClock
from outdial.fake import CallTiming, FakePlatform, Outcome
from outdial.fake.analytics import (
    DetailsQuery,
    Predicate,
    SegmentFilter,
    details_response,
    facts_from_body,
)
from outdial.fake.script import iso_ms

pytestmark = pytest.mark.anyio

A = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
B = "8d1f0a3e-2b7c-4e95-a6d4-5f0e1c2b3a47"
QUERY = "/api/v2/analytics/conversations/details/query"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def interval(start: datetime, end: datetime) -> str:
    return f"{iso_ms(start)}/{iso_ms(end)}"


def by_user(user: str, start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "interval": interval(start, end),
        "segmentFilters": [{"type": "and", "predicates": [{"dimension": "userId", "value": user}]}],
        **extra,
    }


async def place(client: httpx.AsyncClient, user: str, number: str, **extra: Any) -> str:
    response = await client.post(
        f"/api/v2/conversations/calls/user/{user}", json={"phoneNumber": number, **extra}
    )
    response.raise_for_status()
    conversation_id: str = response.json()["id"]
    return conversation_id


def calls_ended(platform: FakePlatform) -> bool:
    bodies = [
        platform.conversation(c.conversation_id or "") for c in platform.recorded.accepted_calls
    ]
    return all(b is not None and customer(b)["state"] == "disconnected" for b in bodies)


async def test_lists_a_users_calls_inside_the_interval() -> None:
    clock = ManualClock(T0)
    async with FakePlatform([A, B], seed=0, timing=FAST, clock=clock) as platform:
        platform.set_outcome("+441212345601", Outcome.ANSWERED)
        async with api(platform) as client:
            first = await place(client, A, "+441212345601", callerId="+4930123456")
            clock.advance(300)
            await place(client, B, "+441212345602")
            clock.advance(300)
            second = await place(client, A, "+441212345603")
            await platform.wait_for(lambda: calls_ended(platform))
            whole = by_user(A, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
            answer = (await client.post(QUERY, json=whole)).json()
            assert answer["totalHits"] == 2
            assert [c["conversationId"] for c in answer["conversations"]] == [first, second]

            conversation = answer["conversations"][0]
            assert conversation["conversationStart"] == "2026-01-05T12:00:00.000Z"
            assert conversation["conversationEnd"] > conversation["conversationStart"]
            assert conversation["originatingDirection"] == "outbound"
            agent, callee = conversation["participants"]
            assert agent["purpose"] == "agent"
            assert agent["userId"] == A
            assert callee["purpose"] == "customer"
            assert "userId" not in callee
            [session] = agent["sessions"]
            assert session["mediaType"] == "voice"
            assert session["direction"] == "outbound"
            assert session["dnis"] == "tel:+441212345601"
            assert session["ani"] == "tel:+4930123456"
            segments = callee["sessions"][0]["segments"]
            assert [s["segmentType"] for s in segments] == ["dialing", "interact"]
            # The customer hung up: its own leg ended it (disconnectType is per leg).
            assert segments[-1]["disconnectType"] == "endpoint"

            desc = (await client.post(QUERY, json={**whole, "order": "desc"})).json()
            assert [c["conversationId"] for c in desc["conversations"]] == [second, first]

            later = by_user(A, T0 + timedelta(seconds=1), T0 + timedelta(hours=1))
            assert [
                c["conversationId"]
                for c in (await client.post(QUERY, json=later)).json()["conversations"]
            ] == [second]

            page = {**whole, "paging": {"pageSize": 1, "pageNumber": 2}}
            paged = (await client.post(QUERY, json=page)).json()
            assert paged["totalHits"] == 2
            assert [c["conversationId"] for c in paged["conversations"]] == [second]

            everyone = {"interval": whole["interval"]}
            assert (await client.post(QUERY, json=everyone)).json()["totalHits"] == 3

            nobody = by_user("no-such-user", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
            assert (await client.post(QUERY, json=nobody)).json() == {
                "conversations": [],
                "totalHits": 0,
            }


async def test_a_call_still_going_has_no_end() -> None:
    slow = CallTiming(ring=(30.0, 30.0), talk=(30.0, 30.0), dial=0.0)
    async with FakePlatform([A], seed=0, timing=slow) as platform, api(platform) as client:
        conversation_id = await place(client, A, "+441212345601")
        now = datetime.now(UTC)
        body = by_user(A, now - timedelta(minutes=5), now + timedelta(minutes=5))
        [conversation] = (await client.post(QUERY, json=body)).json()["conversations"]
        assert conversation["conversationId"] == conversation_id
        assert "conversationEnd" not in conversation
        assert "segmentEnd" not in conversation["participants"][1]["sessions"][0]["segments"][-1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "interval"),
        ({"interval": "2026-01-05T00:00:00Z"}, "interval"),
        ({"interval": "yesterday/today"}, "interval"),
        ({"interval": "2026-01-06T00:00:00Z/2026-01-05T00:00:00Z"}, "interval"),
        ({"interval": 17}, "interval"),
        ([], "body"),
        ({"interval": "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z", "order": "up"}, "order"),
        ({"interval": "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z", "sort": 1}, "sort"),
        (
            {
                "interval": "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z",
                "paging": {"pageSize": 101},
            },
            "paging.pageSize",
        ),
        (
            {
                "interval": "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z",
                "segmentFilters": [
                    {"type": "and", "predicates": [{"dimension": "queueId", "value": "q"}]}
                ],
            },
            "segmentFilters[0].predicates[0].dimension",
        ),
        (
            {
                "interval": "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z",
                "segmentFilters": [{"type": "xor", "predicates": []}],
            },
            "segmentFilters[0].type",
        ),
    ],
)
async def test_invalid_queries_are_refused_naming_the_field(body: Any, field: str) -> None:
    async with FakePlatform(seed=0) as platform, api(platform) as client:
        response = await client.post(QUERY, json=body)
        assert response.status_code == 400
        error = response.json()
        assert error["status"] == 400
        assert error["details"][0]["fieldName"] == field
        assert field in error["message"]


async def test_query_needs_a_token() -> None:
    async with FakePlatform(seed=0) as platform, httpx.AsyncClient() as client:
        response = await client.post(f"{platform.api_url}{QUERY}", json={})
        assert response.status_code == 401


def dim(name: str, value: str) -> dict[str, str]:
    return {"type": "dimension", "dimension": name, "operator": "matches", "value": value}


async def test_media_direction_and_dialed_number_narrow_the_answer() -> None:
    clock = ManualClock(T0)
    fake = FakePlatform([A], seed=0, timing=FAST, clock=clock)
    async with fake as platform, api(platform) as client:
        first = await place(client, A, "+441212345601")
        clock.advance(60)
        second = await place(client, A, "+441212345602")
        clock.advance(60)
        third = await place(client, A, "+441212345601")
        whole = by_user(A, T0 - timedelta(hours=1), T0 + timedelta(hours=1))

        async def ids(*filters: dict[str, Any], **extra: Any) -> list[str]:
            body = {**whole, **extra}
            body["segmentFilters"] = [*whole["segmentFilters"], *filters]
            answer = (await client.post(QUERY, json=body)).json()
            return [c["conversationId"] for c in answer["conversations"]]

        voice_out = {
            "type": "and",
            "predicates": [dim("mediaType", "voice"), dim("direction", "outbound")],
        }
        assert await ids(voice_out) == [first, second, third]
        to_601 = {"type": "or", "predicates": [dim("dnis", "tel:+441212345601")]}
        assert await ids(voice_out, to_601) == [first, third]
        # Newest first, page by page, as the daemon asks.
        assert await ids(voice_out, to_601, order="desc") == [third, first]
        paged = {"order": "desc", "paging": {"pageSize": 1, "pageNumber": 2}}
        assert await ids(voice_out, to_601, **paged) == [first]
        # The bare +E164 form is not how the platform records it; "or" lets a client
        # ask for both.
        bare = {"type": "or", "predicates": [dim("dnis", "+441212345602")]}
        assert await ids(bare) == []
        both = {
            "type": "or",
            "predicates": [dim("dnis", "tel:+441212345602"), dim("dnis", "+441212345602")],
        }
        assert await ids(both) == [second]
        chat = {"type": "and", "predicates": [dim("mediaType", "chat")]}
        assert await ids(chat) == []
        inbound = {"type": "and", "predicates": [dim("direction", "inbound")]}
        assert await ids(inbound) == []


def test_facts_of_a_non_acd_call_keep_its_purposes() -> None:
    body = {
        "id": "conv",
        "participants": [
            {"id": "a", "purpose": "user", "state": "disconnected", "user": {"id": A}},
            {
                "id": "c",
                "purpose": "external",
                "address": "tel:+441212345601",
                "state": "terminated",
                "connectedTime": "2026-01-05T12:00:05.000Z",
                "endTime": "2026-01-05T12:01:00.000Z",
                "disconnectType": "peer",
            },
        ],
    }
    facts = facts_from_body(body, T0, "+4930123456")
    assert (facts.user_id, facts.phone_number) == (A, "+441212345601")
    assert facts.end is not None
    assert facts.disconnect_type == "peer"
    query = DetailsQuery(
        T0 - timedelta(hours=1),
        T0 + timedelta(hours=1),
        filters=(SegmentFilter("and", (Predicate("purpose", "external"),)),),
    )
    [listed] = details_response([facts], query)["conversations"]
    assert [p["purpose"] for p in listed["participants"]] == ["user", "external"]
    assert listed["participants"][0]["userId"] == A
