"""A gap in the event stream does not cost a call: state is re-read over REST.

The platform keeps nothing for a disconnected client (Genesys: a dropped
WebSocket; CXone: a session that ended while outdial was cut off). An agent
who becomes available while outdial is cut off must still get their next call
as soon as outdial is back, without waiting for another event. Runs on both
platforms, on the next-contact-when-ready rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import Backend, backend_fixture  # noqa: F401 (the backend fixture)
from daemon_harness import daemon_for, sqlite

from outdial.fake import CallTiming

pytestmark = pytest.mark.anyio

NUMBER = "+441212345601"


async def test_agent_available_during_an_outage_is_dialed_after_reconnect(
    tmp_path: Path, backend: Backend
) -> None:
    timing = CallTiming(ring=(0.1, 0.1), talk=(0.1, 0.1), wrapup=0.1, dial=0.01)
    [agent] = backend.agent_ids(1)
    async with backend.start([agent], timing=timing, seed=1, available=False, proxy=True) as fake:
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, NUMBER)]) as run:
            await fake.connected()
            # The startup refresh has seen the agent away.
            await run.until("agent.not_ready", reason=fake.away_reason())
            assert fake.calls() == []
            async with fake.outage():
                await fake.available(agent)  # published to nobody
            (call,) = await fake.wait_for_calls(1, timeout=10)
            gaps = run.daemon.gaps_handled
    assert (call.agent, call.number) == (agent, NUMBER)
    assert gaps >= 2
