"""Reloading the config adds agents at run time: subscribed with a POST, dialed at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from listener_harness import FAST, USER

from outdial.app import Daemon, platform_from_config
from outdial.config import Config, parse_config
from outdial.fake import CallTiming, FakePlatform
from outdial.store import open_store
from outdial.store.base import ContactRow

pytestmark = pytest.mark.anyio

OTHER = "8d2f7a10-6c3b-4e9d-a1f2-0b3c4d5e6f70"


def _config(platform: FakePlatform, db: Path, users: list[str]) -> Config:
    data: dict[str, Any] = {
        "platform": {
            "api_url": platform.api_url,
            "login_url": platform.login_url,
            "client_id": platform.client_id,
            "client_secret": platform.client_secret,
        },
        "listener": FAST.model_dump(),
        "store": {"url": f"sqlite:///{db}"},
        "guards": {"calling_window": ["00:00", "23:59"]},
        "rules": [
            {
                "name": "next-when-available",
                "topic": "v2.users.{userId}.presence",
                "users": users,
                "when": {"presenceDefinition.systemPresence": "Available"},
                "dial": {"user": "{userId}", "contact": "next"},
            }
        ],
    }
    return parse_config(data, "test", {})


async def test_reload_subscribes_new_agents_without_reconnecting_and_dials_them(
    tmp_path: Path,
) -> None:
    timing = CallTiming(ring=(5.0, 5.0), talk=(5.0, 5.0), wrapup=1.0, dial=0.01)
    async with FakePlatform([USER, OTHER], timing=timing, seed=1) as platform:
        config = _config(platform, tmp_path / "outdial.db", [USER])
        async with open_store(config.store.url) as store:
            await store.import_contacts(
                [ContactRow(USER, "+441212345601"), ContactRow(OTHER, "+441212345602")]
            )
            client = platform_from_config(config)
            daemon = Daemon(config, platform=client, store=store)
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                (first,) = await platform.wait_for_calls(1)
                assert first.user_id == USER
                changes = len(platform.recorded.subscription_changes)

                restart = await daemon.reload(
                    _config(platform, tmp_path / "outdial.db", [USER, OTHER])
                )

                calls = await platform.wait_for_calls(2)
                tg.cancel_scope.cancel()
            await client.aclose()
    assert restart == []
    assert calls[1].user_id == OTHER
    assert calls[1].payload["phoneNumber"] == "+441212345602"
    methods = [c.method for c in platform.recorded.subscription_changes[changes:]]
    assert methods == ["POST"]
    assert daemon.listener.supervisors[0].stats.connects == 1
