"""Re-reading agent state over REST: the bulk users read with expands (best effort, so they
can be dropped), the single-user read, and the official SDK reading both."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from fake_helpers import FAST, api, fixture

from outdial.events import ConversationSummary, body_as
from outdial.fake import FakePlatform
from outdial.fake.pytest_plugin import fake_control_client

pytestmark = pytest.mark.anyio

A = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
B = "8d1f0a3e-2b7c-4e95-a6d4-5f0e1c2b3a47"
EXPANDS = "presence,routingStatus,conversationSummary"
QUEUE = "5e2c7a90-1111-4000-8000-000000000003"


def _keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(v) for v in value[:1]]
    return None


async def test_bulk_read_answers_the_fixture_shape_for_the_ids_asked() -> None:
    async with FakePlatform([A, B], seed=0, timing=FAST) as platform, api(platform) as client:
        await platform.set_presence(A, "On Queue")
        await platform.start_foreign_call(A, phone_number="+441212345699", queue_id=QUEUE)
        # Repeated ids and the SDK's comma-separated style alike; unknown ids are absent.
        response = await client.get(
            "/api/v2/users",
            params=[("id", A), ("id", f"nobody,{B}"), ("expand", EXPANDS)],
        )
        assert response.status_code == 200
        page = response.json()
        assert _keys(page) == _keys(fixture("users-expand-rest.json"))
        assert [e["id"] for e in page["entities"]] == [A, B]
        assert (page["total"], page["pageSize"], page["pageNumber"], page["pageCount"]) == (
            2,
            25,
            1,
            1,
        )
        first = page["entities"][0]
        assert first["presence"]["presenceDefinition"]["systemPresence"] == "On Queue"
        assert first["routingStatus"]["status"] == "INTERACTING"
        summary = body_as(ConversationSummary, first["conversationSummary"])
        assert (summary.call.contact_center.active, summary.call.enterprise.active) == (1, 0)
        assert page["entities"][1]["routingStatus"]["status"] == "OFF_QUEUE"
        # Each re-read agrees with the dedicated reads.
        presence = await client.get(f"/api/v2/users/{A}/presences/purecloud")
        assert first["presence"] == presence.json()
        routing = await client.get(f"/api/v2/users/{A}/routingstatus")
        assert first["routingStatus"] == routing.json()


async def test_bulk_read_pages_and_refuses_bad_queries() -> None:
    agents = [f"agent-{i}" for i in range(7)]
    async with FakePlatform(agents, seed=0, timing=FAST) as platform, api(platform) as client:
        ids = ",".join(reversed(agents))
        second = (
            await client.get("/api/v2/users", params={"id": ids, "pageSize": 3, "pageNumber": 2})
        ).json()
        assert [e["id"] for e in second["entities"]] == ["agent-3", "agent-2", "agent-1"]
        assert (second["total"], second["pageCount"]) == (7, 3)
        assert "presence" not in second["entities"][0]  # no expand asked
        everyone = (await client.get("/api/v2/users")).json()
        assert [e["id"] for e in everyone["entities"]] == agents
        refusals: list[tuple[dict[str, str | int], str]] = [
            ({"pageSize": 501}, "pageSize"),
            ({"pageSize": "x"}, "pageSize"),
            ({"expand": "presense"}, "expand"),
            ({"id": ",".join(f"u{i}" for i in range(101))}, "id"),
        ]
        for params, field in refusals:
            refused = await client.get("/api/v2/users", params=params)
            assert refused.status_code == 400
            assert refused.json()["details"][0]["fieldName"] == field
        # Valid expands the fake does not simulate are simply not returned (best effort).
        skills = (await client.get("/api/v2/users", params={"expand": "skills"})).json()
        assert "skills" not in skills["entities"][0]
    async with FakePlatform(agents, seed=0) as platform, httpx.AsyncClient() as bare:
        assert (await bare.get(f"{platform.api_url}/api/v2/users")).status_code == 401


async def test_single_user_read() -> None:
    async with FakePlatform([A], seed=0, timing=FAST) as platform, api(platform) as client:
        entity = (await client.get(f"/api/v2/users/{A}", params={"expand": EXPANDS})).json()
        assert _keys(entity) == _keys(fixture("users-expand-rest.json")["entities"][0])
        assert entity["name"] == "Agent 1"
        plain = (await client.get(f"/api/v2/users/{A}")).json()
        assert set(plain) == {"id", "name", "state", "selfUri"}
        missing = await client.get("/api/v2/users/nobody")
        assert missing.status_code == 404
        assert missing.json()["details"] == [{"errorCode": "not.found", "fieldName": "userId"}]


async def test_dropped_expands_leave_the_fallback_reads_whole() -> None:
    async with FakePlatform([A, B], seed=0, timing=FAST) as platform, api(platform) as client:
        platform.drop_expand(A, "conversationSummary")

        async def bulk() -> list[dict[str, Any]]:
            response = await client.get(
                "/api/v2/users", params={"id": f"{A},{B}", "expand": EXPANDS}
            )
            entities: list[dict[str, Any]] = response.json()["entities"]
            return entities

        a, b = await bulk()
        assert "conversationSummary" not in a
        assert {"presence", "routingStatus"} <= set(a)
        assert "conversationSummary" in b
        # The single read is the fallback: it still has the expand ...
        single = (await client.get(f"/api/v2/users/{A}", params={"expand": EXPANDS})).json()
        assert "conversationSummary" in single
        # ... unless the test says otherwise.
        platform.drop_expand(A, "conversationSummary", single=True)
        single = (await client.get(f"/api/v2/users/{A}", params={"expand": EXPANDS})).json()
        assert "conversationSummary" not in single

        # A fraction, drawn from its own seeded stream: some reads lose it, some do not.
        platform.drop_expand(None, "presence", 0.5)
        kept = [("presence" in e) for _ in range(20) for e in await bulk()]
        assert 0 < sum(kept) < len(kept)

        platform.clear_faults()
        a, b = await bulk()
        assert {"presence", "routingStatus", "conversationSummary"} <= set(a) & set(b)
        with pytest.raises(ValueError, match="expand"):
            platform.drop_expand(A, "skills")


async def test_drop_expand_over_the_control_endpoint() -> None:
    async with (
        FakePlatform([A], seed=0, timing=FAST) as platform,
        api(platform) as client,
        fake_control_client(platform) as control,
    ):
        set_rule = await control.put("/expands/routingStatus", json={"userId": A})
        assert set_rule.json() == {
            "expand": "routingStatus",
            "userId": A,
            "rate": 1.0,
            "single": False,
        }
        [entity] = (await client.get("/api/v2/users", params={"expand": EXPANDS})).json()[
            "entities"
        ]
        assert "routingStatus" not in entity
        bad = await control.put("/expands/skills", json={})
        assert bad.status_code == 400
        bad_rate = await control.put("/expands/presence", json={"rate": "all"})
        assert bad_rate.json()["details"][0]["fieldName"] == "rate"


def _sdk_reads(api_url: str, client_id: str, secret: str) -> dict[str, Any]:
    sdk = pytest.importorskip("PureCloudPlatformClientV2")
    sdk.configuration.host = api_url
    client = sdk.api_client.ApiClient(host=api_url).get_client_credentials_token(client_id, secret)
    users = sdk.UsersApi(client)
    listing = users.get_users(id=[A, B, "nobody"], expand=EXPANDS.split(","), page_size=100)
    one = users.get_user(A, expand=["conversationSummary"])
    presence = sdk.PresenceApi(client).get_user_presences_purecloud(A)
    return {"listing": listing, "one": one, "presence": presence}


async def test_official_sdk_reads_users_with_expands() -> None:
    async with FakePlatform([A, B], seed=0, timing=FAST) as platform:
        await platform.start_foreign_call(B, phone_number="+441212345699")
        result = await anyio.to_thread.run_sync(
            _sdk_reads, platform.api_url, platform.client_id, platform.client_secret
        )
    listing = result["listing"]
    assert [u.id for u in listing.entities] == [A, B]
    assert (listing.total, listing.page_size) == (2, 100)
    first, second = listing.entities
    assert first.presence.presence_definition.system_presence == "Available"
    assert first.presence.self_uri == f"/api/v2/users/{A}/presences/PURECLOUD"
    assert first.routing_status.status == "OFF_QUEUE"
    assert second.conversation_summary.call.enterprise.active == 1
    assert result["one"].conversation_summary.call.enterprise.active == 0
    assert result["presence"].source_id == "PURECLOUD"
