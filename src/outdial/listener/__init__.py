"""The listener: keeps every event source alive and hands on events and gaps, for any platform.

Platform-neutral: liveness (:mod:`.keepalive`), backoff (:mod:`.backoff`), the
long-poll session machine (:mod:`.longpoll`), the overlap deduper, the shared
source state, and the :class:`Listener` that owns every source and the one
bounded stream out. Each platform's own sources live in its package
(``outdial.platforms.genesys.channel``, ``outdial.platforms.cxone``).
"""

from outdial.listener.backoff import Backoff
from outdial.listener.keepalive import Liveness, Verdict
from outdial.listener.pool import Listener, ListenerStats
from outdial.listener.state import ChannelState, ListenerFatal, SupervisorStats

__all__ = [
    "Backoff",
    "ChannelState",
    "Listener",
    "ListenerFatal",
    "ListenerStats",
    "Liveness",
    "SupervisorStats",
    "Verdict",
]
