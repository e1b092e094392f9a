"""A gap in the event stream does not cost a call: state is re-read over REST.

The platform keeps nothing for a disconnected client. An agent who becomes
Available while outdial is cut off must still get their next call as soon as
outdial is back, without waiting for another event.
"""

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

NUMBER = "+441212345601"


def _config(platform: FakePlatform, db: Path) -> Config:
    data: dict[str, Any] = {
        "platform": {
            "api_url": platform.api_url,
            "login_url": platform.login_url,
            "client_id": platform.client_id,
            "client_secret": "${SECRET}",
        },
        "listener": FAST.model_dump(),
        "store": {"url": f"sqlite:///{db}"},
        "guards": {"calling_window": ["00:00", "23:59"]},
        "rules": [
            {
                "name": "next-when-available",
                "topic": "v2.users.{userId}.presence",
                "users": [USER],
                "when": {"presenceDefinition.systemPresence": "Available"},
                "dial": {"user": "{userId}", "contact": "next"},
            }
        ],
    }
    return parse_config(data, "test", {"SECRET": platform.client_secret})


async def test_agent_available_during_an_outage_is_dialed_after_reconnect(
    tmp_path: Path,
) -> None:
    timing = CallTiming(ring=(0.1, 0.1), talk=(0.1, 0.1), wrapup=0.1, dial=0.01)
    async with FakePlatform([USER], ws_proxy=True, timing=timing, seed=1) as platform:
        await platform.set_presence(USER, "Busy")
        config = _config(platform, tmp_path / "outdial.db")
        async with open_store(config.store.url) as store:
            await store.import_contacts([ContactRow(USER, NUMBER, "Ada")])
            client = platform_from_config(config)
            daemon = Daemon(config, platform=client, store=store)
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                await platform.wait_for(lambda: len(platform.connected_channels) == 1)
                with anyio.fail_after(5):
                    # The startup refresh has seen Busy (polled: the daemon has no hook for it).
                    while daemon.gaps_handled < 1:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                assert platform.recorded.accepted_calls == []

                proxy = platform.ws_proxy
                assert proxy is not None
                proxy.refuse(True)
                proxy.reset()
                await platform.wait_for(lambda: not platform.connected_channels)
                await platform.set_presence(USER, "Available")  # published to nobody
                proxy.refuse(False)

                (call,) = await platform.wait_for_calls(1, timeout=10)
                tg.cancel_scope.cancel()
            await client.aclose()
    assert call.user_id == USER
    assert call.payload["phoneNumber"] == NUMBER
    assert daemon.gaps_handled >= 2
