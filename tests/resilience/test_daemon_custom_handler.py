"""A custom Python handler runs in the daemon next to the config's rules, on each platform's
own topics (Genesys routing status, CXone agent state)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from listener_harness import FAST, USER

from outdial import Event, HandlerRegistry, Match, open_daemon, parse_config
from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio


async def test_registered_handler_gets_matching_events_on_its_own_topic(tmp_path: Path) -> None:
    registry = HandlerRegistry()
    seen: list[tuple[str, str]] = []
    got_one = anyio.Event()

    @registry.on(
        "v2.users.{userId}.routingStatus",
        users=[USER],
        when={"routingStatus.status": "NOT_RESPONDING"},
    )
    async def not_responding(event: Event, match: Match) -> None:
        seen.append((match.bindings["userId"], event.body["routingStatus"]["status"]))
        got_one.set()

    async with FakePlatform([USER]) as platform:
        config = parse_config(
            {
                "platform": {
                    "api_url": platform.api_url,
                    "login_url": platform.login_url,
                    "client_id": platform.client_id,
                    "client_secret": platform.client_secret,
                },
                "listener": FAST.model_dump(),
                "store": {"url": f"sqlite:///{tmp_path / 'o.db'}"},
            },
            "test",
            {},
        )
        async with open_daemon(config, registry=registry) as daemon:
            assert f"v2.users.{USER}.routingStatus" in daemon.listener.topics
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                await platform.wait_for_subscription(f"v2.users.{USER}.routingStatus")
                # On Queue: the platform sets IDLE (no match), then the agent stops responding.
                await platform.set_presence(USER, "On Queue")
                await platform.set_presence(USER, "On Queue", "NOT_RESPONDING")
                with anyio.fail_after(5):
                    await got_one.wait()
                tg.cancel_scope.cancel()
    assert seen == [(USER, "NOT_RESPONDING")]


async def test_registered_handler_gets_cxone_agent_state_events(tmp_path: Path) -> None:
    """CXone: a handler on ``cxone.users.{userId}.AgentState`` with a ``when`` on the
    event's own fields, next to the rules, gets the agent's state as it changes."""
    from backends import CxoneBackend

    backend = CxoneBackend()
    [agent] = backend.agent_ids(1)
    registry = HandlerRegistry()
    seen: list[tuple[str, str]] = []
    got_one = anyio.Event()

    @registry.on(
        "cxone.users.{userId}.AgentState",
        users=[agent],
        when={"CurrentState": "Unavailable"},
    )
    async def unavailable(event: Event, match: Match) -> None:
        seen.append((match.bindings["userId"], event.body["CurrentOutReason"]))
        got_one.set()

    async with backend.start([agent]) as fake:
        config = fake.config(f"sqlite:///{tmp_path / 'o.db'}")
        async with open_daemon(config, registry=registry) as daemon:
            assert f"cxone.users.{agent}.AgentState" in daemon.listener.topics
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                await fake.connected()
                await fake.away(agent)
                with anyio.fail_after(5):
                    await got_one.wait()
                tg.cancel_scope.cancel()
    assert seen == [(agent, "Break")]
