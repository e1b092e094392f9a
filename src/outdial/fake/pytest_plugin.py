"""pytest plugin (registered through the ``pytest11`` entry point): a ``fake_platform`` fixture.

The fixture is an anyio async fixture, so tests using it run under anyio's
pytest plugin (``@pytest.mark.anyio``). Timings are tiny so call play-outs
finish in well under a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from outdial.fake.platform import FakePlatform
from outdial.fake.script import CallTiming

__all__ = ["FAST_TIMING", "fake_platform"]

FAST_TIMING = CallTiming(ring=(0.02, 0.05), talk=(0.02, 0.05), wrapup=0.02, dial=0.01)
"""Call timing for tests: a whole call, wrap-up included, takes about a tenth of a second."""


@pytest.fixture
async def fake_platform(anyio_backend: str) -> AsyncIterator[FakePlatform]:
    """A running :class:`FakePlatform` with two agents, seed 0 and :data:`FAST_TIMING`."""
    async with FakePlatform(seed=0, timing=FAST_TIMING, heartbeat_interval=0.5) as platform:
        yield platform
