"""What every event source reports: its connection state and counters, and a fatal stop.

Shared by all platforms' sources (a Genesys channel, a CXone agent session), so
logs, metrics and the status page read them the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ChannelState", "ListenerFatal", "SupervisorStats"]


class ListenerFatal(Exception):
    """The listener cannot go on without a change by the operator (credentials, config)."""


class ChannelState(enum.Enum):
    """Connection states, as logged and counted."""

    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    DEGRADED = "degraded"
    RECONNECTING = "reconnecting"
    ROTATING = "rotating"
    #: Another replica holds this connection (CXone: the agent's session lease).
    STANDBY = "standby"
    STOPPED = "stopped"


@dataclass(slots=True)
class SupervisorStats:
    """Counters of one shard, for logs, metrics and the soak report."""

    state: ChannelState = ChannelState.CONNECTING
    connects: int = 0
    reconnects: int = 0
    rotations: int = 0
    channels_created: int = 0
    resubscribes: int = 0
    gaps: int = 0
    longest_recovery: float = 0.0
    #: Events on topics this shard does not subscribe (dropped: nothing asked for them).
    unexpected_topics: int = 0
    #: Silence (seconds since the last frame) when a socket was last declared dead.
    last_dead_after: float | None = None
    #: The last error a connection attempt failed with (None: none yet, or it said nothing).
    last_error: str | None = None
    transitions: dict[str, int] = field(default_factory=dict)
