"""The fake platforms, Genesys Cloud and NICE CXone, on loopback: for tests and for trying rules.

>>> from outdial.fake import FakeCxone, FakePlatform, CallTiming, Outcome
>>> # async with FakePlatform(agents=["user-1"], seed=0) as platform: ...
>>> # async with FakeCxone(agents=["3141592"], seed=0) as cxone: ...

:class:`FakePlatform` speaks the platform contract of ``DESIGN.md`` closely
enough that the official ``PureCloudPlatformClientV2`` SDK works against it
(auth, channels, subscriptions, calls, presence, routing status, the users
reads with expands, and the conversation details query of
:mod:`outdial.fake.analytics`); :func:`serve` runs it standalone for ``outdial
fake-server``.

Where to look:

* :mod:`outdial.fake.genesys`: the Genesys shell by concern (login, channels and sockets,
  events, users, calls, analytics, faults, controls); :mod:`outdial.fake.common`: what
  both fakes share (the HTTP front with its REST faults, typed routes, control security).
* :mod:`outdial.fake.agents`: agents' presence, routing status and conversation summary
  as the platform keeps them (pure), and the users reads built from them.
* :mod:`outdial.fake.script`: how one call plays out (pure): outcomes, legs, wrap-up.
* :mod:`outdial.fake.proxy`: :class:`FaultProxy`, TCP faults (half-open, RST, latency,
  bandwidth, slicing, refusal); ``FakePlatform(ws_proxy=True)`` puts one in front of
  the WebSocket (``platform.ws_proxy``), ``rest_proxy=True`` in front of the REST API.
* :mod:`outdial.fake.faults`: the pure cores of the REST and event faults.
* :mod:`outdial.fake.schedule`: :class:`Fault`, timed schedules, :func:`random_schedule`.
* :mod:`outdial.fake.scenario`: scenario files (agents, outcomes, timing, faults).
* :mod:`outdial.fake.control`: the ``/fake/...`` HTTP control endpoints.
* :mod:`outdial.fake.pytest_plugin`: the ``fake_platform`` fixtures and daemon helpers.
* :mod:`outdial.fake.cxone`: :class:`FakeCxone`, the fake NICE CXone platform
  (``outdial fake-server --platform cxone``; ``fake_cxone`` fixtures).
"""

from outdial.fake.cxone import FakeCxone
from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.platform import (
    DEFAULT_AGENTS,
    FakePlatform,
    Recorded,
    RecordedCall,
    RecordedToken,
    SubscriptionChange,
)
from outdial.fake.proxy import FaultProxy
from outdial.fake.runner import FaultRun
from outdial.fake.scenario import Scenario, ScenarioError, load_scenario, platform_from_scenario
from outdial.fake.schedule import FAULT_KINDS, Fault, random_schedule
from outdial.fake.script import (
    CallPlan,
    CallStep,
    CallStyle,
    CallTiming,
    Outcome,
    WrapupCode,
    call_script,
    plan_call,
)
from outdial.fake.server import banner, print_banner, serve

__all__ = [
    "DEFAULT_AGENTS",
    "FAULT_KINDS",
    "ApiError",
    "CallPlan",
    "CallStep",
    "CallStyle",
    "CallTiming",
    "FakeCxone",
    "FakePlatform",
    "Fault",
    "FaultProxy",
    "FaultRun",
    "FieldDetail",
    "Outcome",
    "Recorded",
    "RecordedCall",
    "RecordedToken",
    "Scenario",
    "ScenarioError",
    "SubscriptionChange",
    "WrapupCode",
    "banner",
    "call_script",
    "load_scenario",
    "plan_call",
    "platform_from_scenario",
    "print_banner",
    "random_schedule",
    "serve",
]
