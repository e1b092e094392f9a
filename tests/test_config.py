"""The config contract: secrets from the environment, every problem with its location."""

from __future__ import annotations

from typing import Any

import pytest

from outdial.config import ConfigError, PlatformConfig, parse_config

ENV = {"ID": "client", "SECRET": "s3cret"}


def _data(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "platform": {"region": "mypurecloud.ie", "client_id": "${ID}", "client_secret": "${SECRET}"}
    }
    data.update(sections)
    return data


def _problems(data: dict[str, Any], env: dict[str, str] = ENV) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "outdial.toml", env)
    return dict(caught.value.problems)


def test_secrets_come_from_the_environment_and_never_print() -> None:
    config = parse_config(_data(), "outdial.toml", ENV)
    assert config.platform.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert isinstance(config.platform, PlatformConfig)
    assert config.platform.resolved_api_url == "https://api.mypurecloud.ie"
    assert config.platform.resolved_login_url == "https://login.mypurecloud.ie"


def test_unset_variable_is_named_with_its_key_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_data(), "outdial.toml", {})
    assert caught.value.problems == [
        ("platform.client_id", "environment variable ID is not set"),
        ("platform.client_secret", "environment variable SECRET is not set"),
    ]


def test_api_and_login_url_override_the_region() -> None:
    platform = {
        "api_url": "http://127.0.0.1:8080/",
        "login_url": "http://127.0.0.1:8080",
        "client_id": "a",
        "client_secret": "b",
    }
    config = parse_config({"platform": platform}, "t", {})
    assert isinstance(config.platform, PlatformConfig)
    assert config.platform.resolved_api_url == "http://127.0.0.1:8080"


def test_typos_and_bad_values_are_all_reported_at_once() -> None:
    data = _data(
        listener={"ping_intreval": 3, "ping_timeout": -1},
        guards={"calling_window": ["8:00", "21:00"], "retry_after": {"no-answer": 60}},
    )
    data["platform"]["region"] = "mypurecloud.xx"
    problems = _problems(data)
    assert "unknown region 'mypurecloud.xx'" in problems["platform.region"]
    assert "Extra inputs" in problems["listener.ping_intreval"]
    assert "greater than 0" in problems["listener.ping_timeout"]
    assert "'8:00' is not HH:MM" in problems["guards.calling_window"]
    assert "unknown outcome(s) no-answer" in problems["guards.retry_after"]


def test_rules_need_users_for_user_topics_and_one_dial_target() -> None:
    rules = [
        {
            "name": "a",
            "topic": "v2.users.{userId}.presence",
            "dial": {"user": "{userId}", "contact": "next"},
        },
        {"name": "b", "topic": "v2.users.u1.presence", "dial": {"user": "u1"}},
    ]
    problems = _problems(_data(rules=rules))
    assert "list the agents to subscribe" in problems["rules[0]"]
    assert "exactly one of" in problems["rules[1].dial"]


def test_rule_names_are_unique() -> None:
    rule = {"name": "a", "topic": "v2.users.u1.presence", "dial": {"user": "u1", "contact": "next"}}
    problems = _problems(_data(rules=[rule, rule]))
    assert any("used twice" in why for why in problems.values())


def test_store_url_scheme_is_checked() -> None:
    problems = _problems(_data(store={"url": "mysql://x"}))
    assert "sqlite:///PATH or postgresql://" in problems["store.url"]


def test_settle_may_not_be_shorter_than_a_request_can_linger() -> None:
    problems = _problems(_data(reconcile={"settle": 0}))
    [(where, why)] = problems.items()
    assert where == "(root)"
    assert "reconcile.settle = 0 is too short" in why
    assert "set it to 15 or more" in why  # request_timeout 10 s + a 5 s history lag
    late = _data(platform={**_data()["platform"], "request_timeout": 30}, reconcile={"settle": 20})
    assert "set it to 35 or more" in next(iter(_problems(late).values()))
    assert parse_config(_data(reconcile={"settle": 15}), "outdial.toml", ENV).reconcile.settle == 15


def test_rules_skip_outdials_own_calls_and_numbers_are_capped_by_default() -> None:
    rule = {
        "name": "callback",
        "topic": "v2.users.{userId}.conversations.calls",
        "users": ["u1"],
        "dial": {"user": "{userId}", "phone_number": "{participants.address}"},
    }
    config = parse_config(_data(rules=[rule]), "outdial.toml", ENV)
    assert config.rules[0].on_own_calls is False
    assert (config.guards.max_calls_per_number.count, config.guards.max_calls_per_number.per) == (
        3,
        86400.0,
    )
