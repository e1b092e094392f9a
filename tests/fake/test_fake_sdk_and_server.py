"""The official Genesys Cloud SDK works against the fake; the standalone server starts and stops."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from fake_helpers import FAST

from outdial.fake import FakePlatform, banner, serve

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"


def _sdk_session(api_url: str, client_id: str, secret: str) -> dict[str, Any]:
    """Log in, create a channel, subscribe it and place a call, all through the SDK (sync)."""
    sdk = pytest.importorskip("PureCloudPlatformClientV2")
    # The SDK derives the login host by replacing "//api." with "//login."; a plain
    # 127.0.0.1 host is left as it is, and the fake serves both on one port.
    sdk.configuration.host = api_url
    client = sdk.api_client.ApiClient(host=api_url).get_client_credentials_token(client_id, secret)
    notifications = sdk.NotificationsApi(client)
    created = notifications.post_notifications_channels()
    topics = [sdk.ChannelTopic(), sdk.ChannelTopic()]
    topics[0].id = f"v2.users.{USER}.presence"
    topics[1].id = f"v2.users.{USER}.conversations.calls"
    listing = notifications.put_notifications_channel_subscriptions(created.id, topics)
    request = sdk.CreateCallRequest()
    request.phone_number = "+441212345601"
    request.caller_id = "+4930123456"
    request.attributes = {"contactId": "ext-17"}
    placed = sdk.ConversationsApi(client).post_conversations_calls_user_user_id(USER, request)
    presence = sdk.PresenceApi(client).get_user_presences_purecloud(USER)
    query = sdk.ConversationQuery()
    query.interval = "2020-01-01T00:00:00.000Z/2100-01-01T00:00:00.000Z"
    query.order = "asc"
    predicate = sdk.SegmentDetailQueryPredicate()
    predicate.dimension = "userId"
    predicate.value = USER
    segment_filter = sdk.SegmentDetailQueryFilter()
    segment_filter.type = "and"
    segment_filter.predicates = [predicate]
    query.segment_filters = [segment_filter]
    query.paging = sdk.PagingSpec()
    query.paging.page_size = 100
    query.paging.page_number = 1
    details = sdk.AnalyticsApi(client).post_analytics_conversations_details_query(query)
    return {
        "details": details,
        "channel": created,
        "states": [t.state for t in listing.entities],
        "conversation_id": placed.id,
        "presence": presence.presence_definition.system_presence,
    }


async def test_official_sdk_against_the_fake() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform:
        result = await anyio.to_thread.run_sync(
            _sdk_session, platform.api_url, platform.client_id, platform.client_secret
        )
        assert result["channel"].connect_uri.startswith(platform.ws_url)
        assert result["states"] == ["Permitted", "Permitted"]
        assert result["presence"] == "Available"  # a call does not change presence
        [call] = platform.recorded.accepted_calls
        assert call.conversation_id == result["conversation_id"]
        assert call.payload == {
            "phoneNumber": "+441212345601",
            "callerId": "+4930123456",
            "attributes": {"contactId": "ext-17"},
        }
        assert [t.granted for t in platform.recorded.token_requests] == [True]
        details = result["details"]
        assert details.total_hits == 1
        [conversation] = details.conversations
        assert conversation.conversation_id == call.conversation_id
        agent = conversation.participants[0]
        assert (agent.purpose, agent.user_id) == ("agent", USER)
        assert agent.sessions[0].dnis == "tel:+441212345601"
        assert agent.sessions[0].media_type == "voice"


async def test_serve_runs_until_cancelled() -> None:
    ready: list[FakePlatform] = []
    started = anyio.Event()

    def on_ready(platform: FakePlatform) -> None:
        ready.append(platform)
        started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(agents=[USER], seed=3, on_ready=on_ready))
        with anyio.fail_after(5):
            await started.wait()
        platform = ready[0]
        text = banner(platform)
        assert platform.api_url in text
        assert platform.ws_url in text
        assert "fake-client" in text
        assert USER in text
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{platform.login_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("fake-client", "fake-secret"),
            )
            assert response.status_code == 200
        tg.cancel_scope.cancel()


def _sdk_remaining_endpoints(api_url: str, client_id: str, secret: str) -> dict[str, Any]:
    """Every other endpoint the fake implements, through the SDK, and an error as it sees it."""
    sdk = pytest.importorskip("PureCloudPlatformClientV2")
    sdk.configuration.host = api_url
    client = sdk.api_client.ApiClient(host=api_url).get_client_credentials_token(client_id, secret)
    notifications = sdk.NotificationsApi(client)
    channel = notifications.post_notifications_channels()
    out: dict[str, Any] = {"channel": channel.id}
    notifications.head_notifications_channel(channel.id)
    out["listed"] = [c.id for c in notifications.get_notifications_channels().entities]
    topic = sdk.ChannelTopic()
    topic.id = f"v2.users.{USER}.presence"
    notifications.post_notifications_channel_subscriptions(channel.id, [topic])
    out["subscribed"] = [
        t.id for t in notifications.get_notifications_channel_subscriptions(channel.id).entities
    ]
    notifications.delete_notifications_channel_subscriptions(channel.id)
    out["after_delete"] = notifications.get_notifications_channel_subscriptions(channel.id).entities
    out["routing"] = sdk.UsersApi(client).get_user_routingstatus(USER).status
    request = sdk.CreateCallRequest()
    request.phone_number = "+441212345601"
    conversations = sdk.ConversationsApi(client)
    placed = conversations.post_conversations_calls_user_user_id(USER, request)
    call = conversations.get_conversations_call(placed.id)
    out["call_parties"] = sorted(p.purpose for p in call.participants)
    bad = sdk.CreateCallRequest()
    bad.phone_number = "12345"
    try:
        conversations.post_conversations_calls_user_user_id(USER, bad)
    except sdk.rest.ApiException as exc:
        out["error_status"] = exc.status
        out["error_body"] = exc.body
    return out


async def test_official_sdk_reaches_every_other_endpoint_and_reads_errors() -> None:
    async with FakePlatform([USER], seed=0, timing=FAST) as platform:
        result = await anyio.to_thread.run_sync(
            _sdk_remaining_endpoints, platform.api_url, platform.client_id, platform.client_secret
        )
    assert result["channel"] in result["listed"]
    assert result["subscribed"] == [f"v2.users.{USER}.presence"]
    assert not result["after_delete"]
    assert result["routing"] == "OFF_QUEUE"  # Available is not On Queue
    assert result["call_parties"] == ["external", "user"]  # no queue: a non-ACD call
    assert result["error_status"] == 400
    body = json.loads(result["error_body"])
    assert body["code"] == "invalid.phone.number"
    assert body["details"][0]["fieldName"] == "phoneNumber"
