"""Scenario files for the fake: agents, call timing, the contacts' outcome model, and a
timed fault schedule.

A scenario is a small TOML file a user writes to try dialing rules against a
platform that behaves a particular way::

    agents = ["3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"]   # the simulated agents' user ids
    seed = 7                 # same seed, same outcomes, timings and random faults
    heartbeat_interval = 30.0
    ws_proxy = true          # put the TCP fault proxy in front of the WebSocket
                             # (implied by any proxy fault below)
    rate_limit = 300         # API requests per token per minute (0: never refuse)
    purposes = "auto"        # or "agent-customer", "user-external" (see FakePlatform)
    presence_case = "title"  # or "upper": AVAILABLE, ON_QUEUE on the wire
    disconnect_reasons = false   # Q.850 causes on ended customer legs
    agent_hangup_rate = 0.0  # seeded share of answered calls the agent ends

    [timing]
    ring = [1.0, 3.0]        # seconds, drawn uniformly
    talk = [2.0, 6.0]
    wrapup = 1.0             # after-call work of calls placed from a queue

    [weights]                # relative likelihood of each outcome
    answered = 0.6
    busy = 0.15
    no_answer = 0.15
    failed = 0.1
    agent_unavailable = 0.0  # the agent's station is not answered; the customer is
                             # never dialed (also always when the agent is Offline)

    [outcomes]               # numbers that always end the same way: answered, busy,
    "+441212345601" = "busy" # no_answer, failed or agent_unavailable
    "+441212345602" = "agent_unavailable"

    [hangups]                # who ends answered calls to a number: customer or agent
    "+441212345603" = "agent"

    [[faults]]               # see outdial.fake.schedule for every kind
    at = 5.0
    kind = "freeze"
    duration = 3.0

    [[faults]]
    at = 20.0
    kind = "closing_warning"
    seconds = 5.0            # the socket closes 5 s after the warning

:func:`platform_from_scenario` builds the :class:`~outdial.fake.platform.FakePlatform`
a scenario describes; once it runs, ``platform.run_schedule(scenario.faults)``
plays the faults (``outdial fake-server --scenario FILE`` does both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outdial.fake.platform import DEFAULT_RATE_LIMIT, FakePlatform
from outdial.fake.schedule import Fault
from outdial.fake.script import CallTiming, Outcome
from outdial.files import TextFileError, load_toml

__all__ = ["Scenario", "ScenarioError", "load_scenario", "platform_from_scenario"]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate (the message names the key)."""


class _Timing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ring: tuple[float, float] = (1.0, 3.0)
    talk: tuple[float, float] = (2.0, 6.0)
    wrapup: float = Field(default=1.0, ge=0)
    dial: float = Field(default=0.05, ge=0)


class Scenario(BaseModel):
    """How the fake behaves: agents, timing, outcome weights and forced outcomes, who hangs
    up, heartbeat, proxies, the platform switches and a fault schedule. Every key is
    optional."""

    model_config = ConfigDict(extra="forbid")

    agents: list[str] | None = Field(default=None, min_length=1)
    seed: int | None = None
    heartbeat_interval: float = Field(default=30.0, gt=0)
    timing: _Timing = Field(default_factory=_Timing)
    weights: dict[Outcome, float] | None = None
    outcomes: dict[str, Outcome] = Field(default_factory=dict)
    ws_proxy: bool = False
    rest_proxy: bool = False
    rate_limit: int = Field(default=DEFAULT_RATE_LIMIT, ge=0)
    purposes: Literal["auto", "agent-customer", "user-external"] = "auto"
    presence_case: Literal["title", "upper"] = "title"
    disconnect_reasons: bool = False
    agent_hangup_rate: float = Field(default=0.0, ge=0, le=1)
    hangups: dict[str, Literal["customer", "agent"]] = Field(default_factory=dict)
    faults: list[Fault] = Field(default_factory=list)

    @property
    def needs_ws_proxy(self) -> bool:
        """True when asked for, or when a fault acts on the WebSocket proxy."""
        return self.ws_proxy or any(f.proxy_name == "ws" for f in self.faults)

    @property
    def needs_rest_proxy(self) -> bool:
        """True when asked for, or when a fault acts on the REST proxy."""
        return self.rest_proxy or any(f.proxy_name == "rest" for f in self.faults)

    def call_timing(self) -> CallTiming:
        """The scenario's timing as a :class:`CallTiming`."""
        t = self.timing
        return CallTiming(ring=t.ring, talk=t.talk, wrapup=t.wrapup, dial=t.dial)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise :class:`ScenarioError` naming what is wrong."""
    try:
        data = load_toml(path, what="a scenario")
    except TextFileError as exc:
        # One line: "scenario FILE, line N: cause" (not UTF-8, too large, too deep, syntax).
        raise ScenarioError(f"scenario {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
        scenario.call_timing()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScenarioError(f"scenario {path}: {where}: {first['msg']}") from None
    except ValueError as exc:
        raise ScenarioError(f"scenario {path}: {exc}") from None
    return scenario


def platform_from_scenario(scenario: Scenario, **overrides: Any) -> FakePlatform:
    """A (not yet started) :class:`FakePlatform` as ``scenario`` describes it.

    ``overrides`` are further :class:`FakePlatform` keyword arguments (``port``,
    ``clock``, ...) and win over the scenario's. The fault schedule is not
    started: call ``platform.run_schedule(scenario.faults)`` once it runs.
    """
    options: dict[str, Any] = {
        "seed": scenario.seed,
        "heartbeat_interval": scenario.heartbeat_interval,
        "timing": scenario.call_timing(),
        "outcome_weights": scenario.weights,
        "ws_proxy": scenario.needs_ws_proxy,
        "rest_proxy": scenario.needs_rest_proxy,
        "rate_limit": scenario.rate_limit,
        "purposes": scenario.purposes,
        "presence_case": scenario.presence_case,
        "disconnect_reasons": scenario.disconnect_reasons,
        "agent_hangup_rate": scenario.agent_hangup_rate,
    }
    if scenario.agents is not None:
        options["agents"] = scenario.agents
    options.update(overrides)
    platform = FakePlatform(**options)
    for number, outcome in scenario.outcomes.items():
        platform.set_outcome(number, outcome)
    for number, by in scenario.hangups.items():
        platform.set_hangup(number, by)
    return platform
