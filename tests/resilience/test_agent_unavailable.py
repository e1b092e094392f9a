"""Agent unavailable, end to end: the real daemon against the fake platform.

A dial is placed on behalf of an agent whose own leg never comes up (the
agent's station is not answered, or the agent is Offline on the platform
although the trigger said Available). The customer is never dialed, so the
call ends ``agent_unavailable``, the contact goes back to due without an
attempt counted, and once the agent is available again the same contact is
dialed again and this time reached.

Nothing sleeps for a deadline: the test waits for the daemon's log events and
the fake's own conditions.

Genesys only: a CXone dial has no agent-unavailable outcome. ``dial-phone``
runs on the agent's own session and is refused (400 ``InvalidState``) before
anything is placed when the agent cannot take it, so there is no call whose
customer leg never comes up; the fake CXone refuses the outcome outright.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from listener_harness import LogWatch, daemon_config

from outdial.app import Daemon, platform_from_config
from outdial.cli import format_summary
from outdial.fake import CallTiming, FakePlatform, Outcome
from outdial.fake.script import presence_body
from outdial.store import open_store
from outdial.store.base import ContactRow

pytestmark = pytest.mark.anyio

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
PRESENCE = f"v2.users.{AGENT}.presence"
CALLS = f"v2.users.{AGENT}.conversations.calls"
NUMBER = "+441212345601"
QUICK = CallTiming(ring=(0.05, 0.05), talk=(0.05, 0.05), wrapup=0.05, dial=0.01)
WAIT = 10.0
"""Seconds any condition may take before the test fails (never reached when all is well)."""


@pytest.mark.parametrize("cause", ["station_not_answered", "agent_offline"])
async def test_contact_is_dialed_again_without_an_attempt_once_the_agent_is_available(
    tmp_path: Path, cause: str
) -> None:
    watch = LogWatch(WAIT)
    root = logging.getLogger("outdial")
    level = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    try:
        async with FakePlatform([AGENT], seed=3, timing=QUICK) as fake:
            # No Available agent at startup, so the startup refresh dials nobody.
            if cause == "agent_offline":
                # Offline wins over whatever is forced for the number.
                fake.set_outcome(NUMBER, Outcome.ANSWERED)
                await fake.set_presence(AGENT, "Offline")
            else:
                fake.set_outcome(NUMBER, Outcome.AGENT_UNAVAILABLE)
                await fake.set_presence(AGENT, "Busy")
            config = daemon_config(fake, tmp_path / "outdial.db", [AGENT], caller_id="+4930123456")
            async with open_store(config.store.url) as store:
                await store.import_contacts([ContactRow(AGENT, NUMBER, name="only")])
                client = platform_from_config(config)
                daemon = Daemon(config, platform=client, store=store)
                try:
                    async with anyio.create_task_group() as tg:
                        await tg.start(daemon.run)
                        await fake.wait_for_subscription(PRESENCE, timeout=WAIT)
                        await fake.wait_for_subscription(CALLS, timeout=WAIT)
                        await watch.until(lambda: daemon.gaps_handled >= 1)

                        # The trigger: Available. When the agent is Offline on the platform
                        # the event is a stale one (the agent went Offline right after).
                        if cause == "agent_offline":
                            stale = presence_body("Available", datetime.now(UTC))
                            await fake.publish(PRESENCE, stale)
                        else:
                            await fake.publish_presence(AGENT, "Available")
                        await watch.until(lambda: len(watch.named("call.ended")) >= 1)

                        [first] = watch.named("call.ended")
                        assert first["outcome"] == "agent_unavailable"
                        assert first["attempt_counted"] is False
                        [contact] = await store.contacts(AGENT)
                        assert (contact.state, contact.attempts) == ("due", 0)
                        assert contact.last_outcome is None
                        assert await store.active_call_for_user(AGENT) is None
                        # The daemon does not dial again on its own: nothing said the
                        # agent became available.
                        assert len(fake.recorded.accepted_calls) == 1

                        # The agent is available now: the same contact is dialed again.
                        fake.set_outcome(NUMBER, Outcome.ANSWERED)
                        if cause == "agent_offline":
                            await fake.set_presence(AGENT, "Available")
                        else:
                            await fake.publish_presence(AGENT, "Available")
                        await watch.until(lambda: len(watch.named("call.ended")) >= 2)
                        tg.cancel_scope.cancel()
                finally:
                    await client.aclose()

                [contact] = await store.contacts(AGENT)
                summary = await store.call_summary()
    finally:
        root.removeHandler(watch)
        root.setLevel(level)

    calls = fake.recorded.accepted_calls
    assert [c.payload["phoneNumber"] for c in calls] == [NUMBER, NUMBER]
    assert [c.plan.outcome if c.plan else None for c in calls] == [
        Outcome.AGENT_UNAVAILABLE,
        Outcome.ANSWERED,
    ]
    disconnect = "error" if cause == "agent_offline" else "timeout"
    ended = watch.named("call.ended")
    assert [(e["outcome"], e["attempt_counted"]) for e in ended] == [
        ("agent_unavailable", False),
        ("answered", True),
    ]
    assert ended[0]["disconnect_type"] == disconnect
    assert [e["conversation"] for e in ended] == [c.conversation_id for c in calls]
    # Reached on the second call, which is its first (and only) counted attempt.
    assert (contact.state, contact.attempts, contact.last_outcome) == ("done", 1, "answered")
    [row] = summary
    assert (row.placed, row.answered, row.agent_unavailable, row.failed, row.active) == (
        2,
        1,
        1,
        0,
        0,
    )
    table = format_summary(summary).splitlines()
    head, agent_row = table[0].split(), table[2].split()
    assert "unavailable" in head
    # Columns: agent, placed, answered, busy, no answer, failed, agent unavailable, active.
    assert agent_row == [AGENT, "2", "1", "0", "0", "0", "1", "0"]
