"""Scenario files for the standalone fake: call timing, outcome weights and forced outcomes.

A scenario is a small TOML file a user writes to try dialing rules against a
platform that behaves a particular way::

    heartbeat_interval = 30.0

    [timing]
    ring = [1.0, 3.0]        # seconds, drawn uniformly
    talk = [2.0, 6.0]
    wrapup = 1.0

    [weights]                # relative likelihood of each outcome
    answered = 0.6
    busy = 0.15
    no_answer = 0.15
    failed = 0.1

    [outcomes]               # numbers that always end the same way
    "+441212345601" = "busy"
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outdial.fake.script import CallTiming, Outcome

__all__ = ["Scenario", "ScenarioError", "load_scenario"]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate (the message names the key)."""


class _Timing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ring: tuple[float, float] = (1.0, 3.0)
    talk: tuple[float, float] = (2.0, 6.0)
    wrapup: float = Field(default=1.0, ge=0)
    dial: float = Field(default=0.05, ge=0)


class Scenario(BaseModel):
    """How the standalone fake behaves: timing, outcome weights, forced outcomes, heartbeat."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_interval: float = Field(default=30.0, gt=0)
    timing: _Timing = Field(default_factory=_Timing)
    weights: dict[Outcome, float] | None = None
    outcomes: dict[str, Outcome] = Field(default_factory=dict)

    def call_timing(self) -> CallTiming:
        """The scenario's timing as a :class:`CallTiming`."""
        t = self.timing
        return CallTiming(ring=t.ring, talk=t.talk, wrapup=t.wrapup, dial=t.dial)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise :class:`ScenarioError` naming what is wrong."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"scenario {path}: {exc}") from None
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
