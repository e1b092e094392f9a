"""The listener: keeps the platform's notification channels alive and hands on events."""

from outdial.listener.backoff import Backoff
from outdial.listener.channel import ChannelState, ChannelSupervisor, ListenerFatal
from outdial.listener.keepalive import Liveness, Verdict
from outdial.listener.pool import Listener, ListenerStats

__all__ = [
    "Backoff",
    "ChannelState",
    "ChannelSupervisor",
    "Listener",
    "ListenerFatal",
    "ListenerStats",
    "Liveness",
    "Verdict",
]
