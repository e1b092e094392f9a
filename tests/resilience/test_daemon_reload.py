"""Reloading the config adds agents at run time: subscribed with a POST, dialed at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from listener_harness import USER, daemon_config

from outdial.fake import CallTiming, FakePlatform
from outdial.fake.pytest_plugin import running_daemon

pytestmark = pytest.mark.anyio

OTHER = "8d2f7a10-6c3b-4e9d-a1f2-0b3c4d5e6f70"


async def test_reload_subscribes_new_agents_without_reconnecting_and_dials_them(
    tmp_path: Path,
) -> None:
    timing = CallTiming(ring=(5.0, 5.0), talk=(5.0, 5.0), wrapup=1.0, dial=0.01)
    contacts = [(USER, "+441212345601"), (OTHER, "+441212345602")]
    async with FakePlatform([USER, OTHER], timing=timing, seed=1) as platform:
        db = tmp_path / "outdial.db"
        async with running_daemon(daemon_config(platform, db, [USER]), contacts=contacts) as d:
            (first,) = await platform.wait_for_calls(1)
            assert first.user_id == USER
            changes = len(platform.recorded.subscription_changes)

            restart = await d.reload(daemon_config(platform, db, [USER, OTHER]))

            calls = await platform.wait_for_calls(2)
            connects = d.listener.supervisors[0].stats.connects
    assert restart == []
    assert calls[1].user_id == OTHER
    assert calls[1].payload["phoneNumber"] == "+441212345602"
    methods = [c.method for c in platform.recorded.subscription_changes[changes:]]
    assert methods == ["POST"]
    assert connects == 1
