"""The fake Genesys Cloud platform, :class:`FakePlatform` (from :mod:`outdial.fake.genesys`).

It lives in :mod:`outdial.fake.genesys`, one module per concern; this module
keeps the names it always offered importable from here.
"""

from outdial.fake.genesys import (
    DEFAULT_AGENTS,
    DEFAULT_RATE_LIMIT,
    RATE_LIMIT_WINDOW,
    FakePlatform,
    Recorded,
    RecordedCall,
    RecordedToken,
    SubscriptionChange,
)
from outdial.fake.genesys.channels import MAX_CHANNELS
from outdial.fake.genesys.sockets import HEARTBEAT, PONG

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_RATE_LIMIT",
    "HEARTBEAT",
    "MAX_CHANNELS",
    "PONG",
    "RATE_LIMIT_WINDOW",
    "FakePlatform",
    "Recorded",
    "RecordedCall",
    "RecordedToken",
    "SubscriptionChange",
]
