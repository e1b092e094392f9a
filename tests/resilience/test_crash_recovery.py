"""A daemon killed mid-dial, restarted at once: its claim is settled in seconds, no call twice.

``outdial run`` runs as a real process against the fake (in this process, over
loopback). Its first dial is accepted by the platform but the answer is held
back, and the daemon is killed with SIGKILL while it waits: the claim stays
``claimed``, owned by a process that no longer exists. A new ``outdial run``
sees at once that the owner is gone (same host, dead pid), finds the call in
the platform's history instead of dialing it again, and the agent's next
contact is dialed within seconds, not after ``stale_after`` (10 minutes).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest

from outdial.fake import FakePlatform, Outcome
from outdial.fake.pytest_plugin import FAST_TIMING
from outdial.store import SqliteStore
from outdial.store.base import ContactRow

pytestmark = pytest.mark.anyio

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
FIRST, SECOND = "+441212345601", "+441212345602"
CALL_PATH = r"/api/v2/conversations/calls/user/"


def write_config(path: Path, platform: FakePlatform, db: Path) -> None:
    path.write_text(
        f"""
[platform]
api_url = "{platform.api_url}"
login_url = "{platform.login_url}"
client_id = "{platform.client_id}"
client_secret = "${{FAKE_SECRET}}"

[listener]
ping_interval = 2.0
ping_timeout = 2.0

[store]
url = "sqlite:///{db}"

[guards]
default_region = "GB"
calling_window = ["00:00", "23:59"]

[readiness]
after_call = 0.2

[[rules]]
name = "next-contact-when-ready"
topic = "outdial.users.{{userId}}.ready"
users = ["{AGENT}"]
dial = {{ user = "{{userId}}", contact = "next" }}
"""
    )


async def start_daemon(config: Path, secret: str) -> anyio.abc.Process:
    env = {**os.environ, "FAKE_SECRET": secret}
    return await anyio.open_process(
        [sys.executable, "-m", "outdial", "run", "--config", str(config)],
        env=env,
        stdout=None,
        stderr=None,
    )


async def test_a_daemon_killed_mid_dial_is_replaced_without_a_second_call(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outdial.db"
    store = SqliteStore(db)
    await store.import_contacts([ContactRow(AGENT, FIRST), ContactRow(AGENT, SECOND)])
    await store.aclose()
    async with FakePlatform([AGENT], timing=FAST_TIMING, seed=3) as platform:
        platform.set_outcome(FIRST, Outcome.ANSWERED)
        platform.set_outcome(SECOND, Outcome.ANSWERED)
        # The first dial is accepted and played out; its answer is held back for long.
        platform.stall_next(CALL_PATH, 60.0, method="POST")
        config = tmp_path / "outdial.toml"
        write_config(config, platform, db)
        first = await start_daemon(config, platform.client_secret)
        try:
            await platform.wait_for(lambda: platform.stalled_requests == 1, timeout=20)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert [c.payload["phoneNumber"] for c in platform.recorded.accepted_calls] == [FIRST]

        restarted = anyio.current_time()
        second = await start_daemon(config, platform.client_secret)
        try:
            await platform.wait_for(lambda: len(platform.recorded.accepted_calls) >= 2, timeout=20)
            dialed_again = anyio.current_time()
        finally:
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                await second.wait()
        platform.release_stalls()
    numbers = [c.payload["phoneNumber"] for c in platform.recorded.accepted_calls]
    assert numbers == [FIRST, SECOND]
    # Includes the new process's start (imports, token, channel, subscription).
    assert dialed_again - restarted <= 10.0
    store = SqliteStore(db)
    try:
        claims = [await store.get_claim(k) for k in await _claim_keys(db)]
    finally:
        await store.aclose()
    # The killed process's claim (the first) was found placed, not sent again.
    first_claim = claims[0]
    assert first_claim is not None
    assert (first_claim.state, first_claim.phone_number) == ("placed", FIRST)


async def _claim_keys(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT key FROM dial_claims ORDER BY created_at")]
