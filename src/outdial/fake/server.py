"""Run the fake platform as a standalone server (``outdial fake-server``).

:func:`serve` runs a :class:`~outdial.fake.platform.FakePlatform` until
cancelled and reports readiness through ``on_ready`` (by default printing
:func:`banner`), so a user can point the daemon, the official SDK or ``curl``
at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from outdial.fake.common.serve import (
    check_bind,
    format_banner,
    print_text,
    remote_bind_refusal,
    run_until_cancelled,
)
from outdial.fake.control import control_token
from outdial.fake.platform import DEFAULT_AGENTS, FakePlatform
from outdial.fake.scenario import Scenario, load_scenario, platform_from_scenario
from outdial.fake.script import CallTiming, Outcome

__all__ = ["banner", "print_banner", "remote_bind_refusal", "serve"]


def banner(platform: FakePlatform) -> str:
    """A few lines telling a user where the fake listens and how to log in to it."""
    return format_banner(
        "outdial fake Genesys Cloud platform is ready",
        [
            ("api_url", platform.api_url),
            ("login_url", platform.login_url),
            ("ws_url", platform.connect_url),
            ("control_url", platform.control_url),
            (
                "control_token",
                f"{control_token(platform)}  (Authorization: Bearer <control_token>)",
            ),
            ("client_id", platform.client_id),
            ("client_secret", platform.client_secret),
            ("agents", ", ".join(platform.agents)),
        ],
    )


def print_banner(platform: FakePlatform) -> None:
    """Print :func:`banner` to standard output and flush it (for wrappers waiting on it)."""
    print_text(banner(platform))


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
    scenario: str | Path | Scenario | None = None,
    on_ready: Callable[[FakePlatform], None] | None = print_banner,
    allow_remote: bool = False,
) -> None:
    """Serve the fake platform until cancelled; call ``on_ready`` once it listens.

    A ``host`` other than loopback raises :class:`ValueError` unless
    ``allow_remote`` (see :func:`remote_bind_refusal`).

    ``scenario`` names a TOML file (see :mod:`outdial.fake.scenario`) or is a
    loaded :class:`Scenario`. Its agents, seed, timing, weights, heartbeat
    interval and proxies replace the arguments'; its forced outcomes apply
    before the first request and its fault schedule starts once the platform
    listens.
    """
    check_bind(host, allow_remote=allow_remote)
    options: dict[str, Any] = {
        "agents": agents,
        "seed": seed,
        "heartbeat_interval": heartbeat_interval,
        "timing": timing,
        "outcome_weights": outcome_weights,
    }
    network: dict[str, Any] = {
        "host": host,
        "port": port,
        "ws_port": ws_port,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    loaded: Scenario | None = None
    if scenario is not None:
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        # The command line's seed and agents apply only where the scenario names none.
        fallback: dict[str, Any] = {}
        if loaded.seed is None:
            fallback["seed"] = seed
        if loaded.agents is None:
            fallback["agents"] = agents
        platform = platform_from_scenario(loaded, **network, **fallback)
    else:
        platform = FakePlatform(**options, **network)
    faults = loaded.faults if loaded is not None else None

    def started(running: FakePlatform) -> None:
        if faults:
            running.run_schedule(faults)

    await run_until_cancelled(platform, on_ready, started=started)
