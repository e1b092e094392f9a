"""Run the fake platform as a standalone server (``outdial fake-server``).

:func:`serve` runs a :class:`~outdial.fake.platform.FakePlatform` until
cancelled and reports readiness through ``on_ready`` (by default printing
:func:`banner`), so a user can point the daemon, the official SDK or ``curl``
at it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import anyio

from outdial.fake.platform import DEFAULT_AGENTS, FakePlatform
from outdial.fake.scenario import load_scenario
from outdial.fake.script import CallTiming, Outcome

__all__ = ["banner", "print_banner", "serve"]


def banner(platform: FakePlatform) -> str:
    """A few lines telling a user where the fake listens and how to log in to it."""
    lines = [
        "outdial fake Genesys Cloud platform is ready",
        f"  api_url       {platform.api_url}",
        f"  login_url     {platform.login_url}",
        f"  ws_url        {platform.ws_url}",
        f"  client_id     {platform.client_id}",
        f"  client_secret {platform.client_secret}",
        "  agents        " + ", ".join(platform.agents),
    ]
    return "\n".join(lines)


def print_banner(platform: FakePlatform) -> None:
    """Print :func:`banner` to standard output and flush it (for wrappers waiting on it)."""
    print(banner(platform), file=sys.stdout, flush=True)


async def serve(
    port: int = 0,
    ws_port: int = 0,
    agents: Iterable[str] = DEFAULT_AGENTS,
    seed: int | None = None,
    *,
    host: str = "127.0.0.1",
    client_id: str = "fake-client",
    client_secret: str = "fake-secret",
    heartbeat_interval: float = 30.0,
    timing: CallTiming | None = None,
    outcome_weights: Mapping[Outcome, float] | None = None,
    scenario: str | Path | None = None,
    on_ready: Callable[[FakePlatform], None] | None = print_banner,
) -> None:
    """Serve the fake platform until cancelled; call ``on_ready`` once it listens.

    ``scenario`` names a TOML file (see :mod:`outdial.fake.scenario`); its
    timing, weights and heartbeat interval replace the arguments', and its
    forced outcomes are applied before the first request.
    """
    forced: Mapping[str, Outcome] = {}
    if scenario is not None:
        loaded = load_scenario(scenario)
        timing = loaded.call_timing()
        outcome_weights = loaded.weights or outcome_weights
        heartbeat_interval = loaded.heartbeat_interval
        forced = loaded.outcomes
    async with FakePlatform(
        agents,
        seed=seed,
        client_id=client_id,
        client_secret=client_secret,
        host=host,
        port=port,
        ws_port=ws_port,
        heartbeat_interval=heartbeat_interval,
        timing=timing,
        outcome_weights=outcome_weights,
    ) as platform:
        for number, outcome in forced.items():
            platform.set_outcome(number, outcome)
        if on_ready is not None:
            on_ready(platform)
        await anyio.sleep_forever()
