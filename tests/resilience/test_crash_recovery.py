"""A daemon killed mid-dial, restarted at once: its claim is settled in seconds, no call twice.

``outdial run`` runs as a real process against the fake (in this process, over
loopback), on each platform. Its first dial is accepted by the platform but
the answer is held back, and the daemon is killed with SIGKILL while it
waits: the claim stays ``claimed``, owned by a process that no longer exists.
A new ``outdial run`` sees at once that the owner is gone (same host, dead
pid), finds the call on the platform (Genesys: the conversation history;
CXone: the agent's contacts) instead of dialing it again, and the agent's
next contact is dialed within seconds, not after ``stale_after`` (10 minutes).

On CXone the killed process leaves the agent's session behind, live on the
platform: the new one must get on with it (it joins it) rather than fail.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest
from backends import Backend, backend_fixture, toml_text  # noqa: F401 (the backend fixture)

from outdial.fake import Outcome
from outdial.store import SqliteStore
from outdial.store.base import ContactRow

pytestmark = pytest.mark.anyio

FIRST, SECOND = "+441212345601", "+441212345602"


async def start_daemon(config: Path, env: dict[str, str]) -> anyio.abc.Process:
    return await anyio.open_process(
        [sys.executable, "-m", "outdial", "run", "--config", str(config)],
        env={**os.environ, **env},
        stdout=None,
        stderr=None,
    )


async def test_a_daemon_killed_mid_dial_is_replaced_without_a_second_call(
    tmp_path: Path, backend: Backend
) -> None:
    [agent] = backend.agent_ids(1)
    db = tmp_path / "outdial.db"
    store = SqliteStore(db)
    await store.import_contacts([ContactRow(agent, FIRST), ContactRow(agent, SECOND)])
    await store.aclose()
    async with backend.start([agent]) as fake:
        fake.set_outcome(FIRST, Outcome.ANSWERED)
        fake.set_outcome(SECOND, Outcome.ANSWERED)
        # The first dial is accepted and played out; its answer is held back for long.
        fake.hold_next_dial_answer(60.0)
        data = fake.config_data(f"sqlite:///{db}", after_call=0.2)
        data["listener"] = {"ping_interval": 2.0, "ping_timeout": 2.0}
        config = tmp_path / "outdial.toml"
        config.write_text(toml_text(data))
        first = await start_daemon(config, fake.env)
        try:
            await fake.wait_for_calls(1, timeout=20)
            await fake.wait_for(lambda: fake.requests == 1, timeout=20)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert fake.numbers() == [FIRST]

        restarted = anyio.current_time()
        second = await start_daemon(config, fake.env)
        try:
            await fake.wait_for_calls(2, timeout=20)
            dialed_again = anyio.current_time()
        finally:
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                await second.wait()
        fake.release()
        numbers = fake.numbers()
        requests = fake.requests
    assert numbers == [FIRST, SECOND]
    assert requests == 2
    # Includes the new process's start (imports, token, connection, subscription).
    assert dialed_again - restarted <= 10.0
    store = SqliteStore(db)
    try:
        claims = [await store.get_claim(k) for k in _claim_keys(db)]
    finally:
        await store.aclose()
    # The killed process's claim (the first) was found placed, not sent again.
    first_claim = claims[0]
    assert first_claim is not None
    assert (first_claim.state, first_claim.phone_number) == ("placed", FIRST)


def _claim_keys(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT key FROM dial_claims ORDER BY created_at")]
