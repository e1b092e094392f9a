"""The package's pytest plugin: fixtures, config and daemon helpers, event helpers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from fake_helpers import api, channel, next_event
from websockets.asyncio.client import connect

from outdial.config import PlatformConfig
from outdial.fake import FakePlatform
from outdial.fake.pytest_plugin import (
    FAST_TIMING,
    always_open_window,
    fake_config,
    running_daemon,
)

pytestmark = pytest.mark.anyio


async def test_fixture_gives_a_running_platform(fake_platform: FakePlatform) -> None:
    async with api(fake_platform) as client:
        user = fake_platform.agents[0]
        response = await client.post(
            f"/api/v2/conversations/calls/user/{user}", json={"phoneNumber": "+441212345601"}
        )
        assert response.status_code == 200
    [call] = await fake_platform.wait_for_calls(1)
    idle = {"contactCenter": {"active": 0, "acw": 0}, "enterprise": {"active": 0, "acw": 0}}
    # The fast timings play the whole call out in a fraction of a second; the agent is
    # off the call again, still Available (a call never changes presence).
    await fake_platform.wait_for(lambda: fake_platform.conversation_summary(user)["call"] == idle)
    assert fake_platform.conversation(call.conversation_id or "") is not None
    assert fake_platform.agent_presence(user) == "Available"


async def test_factory_builds_platforms_with_fast_defaults(
    fake_platform_factory: Callable[..., FakePlatform],
) -> None:
    async with fake_platform_factory(agents=["u-1"], seed=5, ws_proxy=True) as platform:
        assert platform.agents == ["u-1"]
        assert platform.timing == FAST_TIMING
        assert platform.ws_proxy.port > 0
        assert platform.rate_limit == 300  # as the platform
    async with fake_platform_factory(rate_limit=None) as platform:
        assert platform.rate_limit is None


def test_always_open_window_is_open_everywhere_for_a_few_minutes() -> None:
    for minute in range(0, 60 * 24, 7):
        now = datetime(2026, 3, 29, tzinfo=UTC) + timedelta(minutes=minute)
        start, end = always_open_window(now)
        opens, closes = time.fromisoformat(start), time.fromisoformat(end)
        assert opens > closes  # wraps midnight: closed for one minute only
        for offset in range(-12 * 60, 14 * 60 + 1, 15):  # every zone offset
            for ahead in range(7):
                local = (now + timedelta(minutes=offset + ahead)).time()
                assert local >= opens or local < closes


def test_fake_config_points_a_mapping_at_the_fake(tmp_path: Path) -> None:
    platform = FakePlatform(agents=["a-1"])
    rules = {
        "platform": {"region": "mypurecloud.ie", "client_id": "x", "client_secret": "${S}"},
        "guards": {"max_attempts": 2},
        "rules": [
            {
                "name": "r",
                "topic": "v2.users.{userId}.presence",
                "users": ["a-1", "a-2"],
                "dial": {"user": "{userId}", "phone_number": "${NUMBER}"},
            }
        ],
    }
    config = fake_config(
        platform,
        rules,
        store_url=f"sqlite:///{tmp_path}/t.db",
        calling_window=("09:00", "17:00"),
        env={"NUMBER": "+441212345601"},
    )
    assert isinstance(config.platform, PlatformConfig)
    assert config.platform.api_url == platform.api_url
    assert config.platform.region is None
    assert config.platform.client_secret.get_secret_value() == platform.client_secret
    assert config.store.url == f"sqlite:///{tmp_path}/t.db"
    assert config.guards.calling_window == ("09:00", "17:00")
    assert config.guards.max_attempts == 2
    assert config.rules[0].dial.phone_number == "+441212345601"
    assert platform.agents == ["a-1", "a-2"]  # every agent the rules name is simulated


async def test_callback_rule_dials_the_number_from_a_call_event(
    fake_platform: FakePlatform, tmp_path: Path
) -> None:
    agent = fake_platform.agents[0]
    rules = {
        "platform": {"client_id": "x", "client_secret": "y"},
        "rules": [
            {
                "name": "callback",
                "topic": "v2.users.{userId}.conversations.calls",
                "users": [agent],
                "when": {
                    "participants.purpose": "customer",
                    "participants.disconnectType": "peer",
                },
                "dial": {"user": "{userId}", "phone_number": "{participants.address}"},
            }
        ],
    }
    config = fake_config(fake_platform, rules, store_url=f"sqlite:///{tmp_path}/t.db")
    async with running_daemon(config):
        await fake_platform.wait_for_subscription(f"v2.users.{agent}.conversations.calls")
        body = await fake_platform.publish_call_event(agent, "+441212345699")
        [call] = await fake_platform.wait_for_calls(1)
    assert body["participants"][1]["disconnectType"] == "peer"
    assert call.payload["phoneNumber"] == "+441212345699"


async def test_publish_presence_publishes_even_without_a_change(
    fake_platform: FakePlatform,
) -> None:
    agent = fake_platform.agents[0]
    topic = f"v2.users.{agent}.presence"
    async with api(fake_platform) as client:
        created = await channel(client, [topic])
        async with connect(created["connectUri"]) as ws:
            await fake_platform.wait_for_subscription(topic)
            assert fake_platform.agent_presence(agent) == "Available"
            assert await fake_platform.publish_presence(agent, "Available") == 1
            event = await next_event(ws)
            assert event["eventBody"]["presenceDefinition"]["systemPresence"] == "Available"
    with pytest.raises(TimeoutError):
        await fake_platform.wait_for_subscription("v2.users.nobody.presence", timeout=0.01)
