"""``outdial check --online`` against the fake: a wrong secret, an unknown agent and a
rejected topic are each named."""

from __future__ import annotations

from typing import Any

import pytest

from outdial.config import Config, parse_config
from outdial.exits import EXIT_AUTH, EXIT_CONFIG, EXIT_OK
from outdial.fake import FakePlatform
from outdial.online import check_online

pytestmark = pytest.mark.anyio

KNOWN, UNKNOWN = "agent-known", "agent-nobody"


def _config(platform: FakePlatform, *, secret: str | None = None, **rule: Any) -> Config:
    data = {
        "platform": {
            "api_url": platform.api_url,
            "login_url": platform.login_url,
            "client_id": platform.client_id,
            "client_secret": secret or platform.client_secret,
        },
        "rules": [
            {
                "name": "next",
                "topic": rule.get("topic", "v2.users.{userId}.presence"),
                "users": rule.get("users", [KNOWN]),
                "dial": {"user": "{userId}", "contact": "next"},
            }
        ],
    }
    return parse_config(data, "<test>", {})


def _topics(config: Config) -> list[str]:
    from outdial.handlers.dispatch import rule_topics
    from outdial.handlers.rules import RuleIndex
    from outdial.platforms.genesys.codec import GenesysCodec

    return sorted(rule_topics(RuleIndex.compile(config.rules), GenesysCodec()))


async def test_a_good_config_passes(fake_platform: FakePlatform) -> None:
    fake_platform.add_agent(KNOWN)
    config = _config(fake_platform)
    report = await check_online(config, _topics(config))
    assert report.problems == []
    assert report.code == EXIT_OK


async def test_a_wrong_secret_is_named(fake_platform: FakePlatform) -> None:
    config = _config(fake_platform, secret="wrong")
    report = await check_online(config, _topics(config))
    assert report.code == EXIT_AUTH
    assert "platform.client_secret" in report.problems[0]


async def test_an_unknown_agent_is_named(fake_platform: FakePlatform) -> None:
    fake_platform.add_agent(KNOWN)
    config = _config(fake_platform, users=[KNOWN, UNKNOWN])
    report = await check_online(config, _topics(config))
    assert report.code == EXIT_CONFIG
    assert any(f"rules[0].users[1]: agent id {UNKNOWN}" in p for p in report.problems)


async def test_a_rejected_topic_is_named(fake_platform: FakePlatform) -> None:
    fake_platform.add_agent(KNOWN)
    config = _config(fake_platform, topic="v2.users.{userId}.bogus")
    report = await check_online(config, _topics(config))
    assert report.code == EXIT_AUTH
    assert any(f"topic v2.users.{KNOWN}.bogus: rejected" in p for p in report.problems)
