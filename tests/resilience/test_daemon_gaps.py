"""A gap in the event stream does not cost a call: state is re-read over REST.

The platform keeps nothing for a disconnected client. An agent who becomes
Available while outdial is cut off must still get their next call as soon as
outdial is back, without waiting for another event.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from listener_harness import USER, daemon_config

from outdial.fake import CallTiming, FakePlatform
from outdial.fake.pytest_plugin import running_daemon

pytestmark = pytest.mark.anyio

NUMBER = "+441212345601"


async def test_agent_available_during_an_outage_is_dialed_after_reconnect(
    tmp_path: Path,
) -> None:
    timing = CallTiming(ring=(0.1, 0.1), talk=(0.1, 0.1), wrapup=0.1, dial=0.01)
    async with FakePlatform([USER], ws_proxy=True, timing=timing, seed=1) as platform:
        await platform.set_presence(USER, "Busy")
        config = daemon_config(platform, tmp_path / "outdial.db")
        async with running_daemon(config, contacts=[(USER, NUMBER)]) as daemon:
            await platform.wait_for(lambda: len(platform.connected_channels) == 1)
            with anyio.fail_after(5):
                # The startup refresh has seen Busy (polled: the daemon has no hook for it).
                while daemon.gaps_handled < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            assert platform.recorded.accepted_calls == []

            proxy = platform.ws_proxy
            proxy.refuse(True)
            proxy.reset()
            await platform.wait_for(lambda: not platform.connected_channels)
            await platform.set_presence(USER, "Available")  # published to nobody
            proxy.refuse(False)

            (call,) = await platform.wait_for_calls(1, timeout=10)
            gaps = daemon.gaps_handled
    assert call.user_id == USER
    assert call.payload["phoneNumber"] == NUMBER
    assert gaps >= 2
