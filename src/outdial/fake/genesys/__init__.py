"""The fake Genesys Cloud platform, one module per concern (see :mod:`.platform`).

:class:`FakePlatform` is re-exported by :mod:`outdial.fake` (and
:mod:`outdial.fake.platform`), where users import it from.
"""

from outdial.fake.genesys.login import DEFAULT_RATE_LIMIT, RATE_LIMIT_WINDOW
from outdial.fake.genesys.platform import DEFAULT_AGENTS, FakePlatform
from outdial.fake.genesys.recorded import Recorded, RecordedCall, RecordedToken, SubscriptionChange

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_RATE_LIMIT",
    "RATE_LIMIT_WINDOW",
    "FakePlatform",
    "Recorded",
    "RecordedCall",
    "RecordedToken",
    "SubscriptionChange",
]
