"""The fake Genesys Cloud platform: REST + WebSocket on loopback, for tests and for trying rules.

>>> from outdial.fake import FakePlatform, CallTiming, Outcome
>>> # async with FakePlatform(agents=["user-1"], seed=0) as platform: ...

:class:`FakePlatform` speaks the platform contract of ``DESIGN.md`` closely
enough that the official ``PureCloudPlatformClientV2`` SDK works against it;
:func:`serve` runs it standalone for ``outdial fake-server``.
"""

from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.platform import (
    DEFAULT_AGENTS,
    FakePlatform,
    Recorded,
    RecordedCall,
    RecordedToken,
    SubscriptionChange,
)
from outdial.fake.scenario import Scenario, ScenarioError, load_scenario
from outdial.fake.script import CallPlan, CallStep, CallTiming, Outcome, call_script, plan_call
from outdial.fake.server import banner, print_banner, serve

__all__ = [
    "DEFAULT_AGENTS",
    "ApiError",
    "CallPlan",
    "CallStep",
    "CallTiming",
    "FakePlatform",
    "FieldDetail",
    "Outcome",
    "Recorded",
    "RecordedCall",
    "RecordedToken",
    "Scenario",
    "ScenarioError",
    "SubscriptionChange",
    "banner",
    "call_script",
    "load_scenario",
    "plan_call",
    "print_banner",
    "serve",
]
