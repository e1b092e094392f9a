"""Genesys event sources: topics over notification channels, one supervisor per channel.

At most 1,000 topics a channel and 20 channels per app (``DESIGN.md``): the
split is :func:`~outdial.platforms.genesys.plan.shard_topics` at the start and
:func:`~outdial.platforms.genesys.plan.reshard` when the topics change, so topics that
stay keep their channel. Each channel is kept alive by a
:class:`~outdial.platforms.genesys.channel.ChannelSupervisor`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from random import Random

from outdial.clock import Clock
from outdial.config import ListenerConfig
from outdial.platforms.base import ChannelApi, ConnectionLeases, SourceSink
from outdial.platforms.genesys.channel import ChannelSupervisor
from outdial.platforms.genesys.plan import reshard, shard_topics

__all__ = ["ChannelSources"]


class ChannelSources:
    """The :class:`~outdial.platforms.base.EventSourceFactory` of Genesys channels."""

    def __init__(
        self,
        channels: ChannelApi,
        settings: ListenerConfig,
        clock: Clock,
        rng: Random | None = None,
    ) -> None:
        self._channels = channels
        self._settings = settings
        self._clock = clock
        self._rng = rng or Random()

    def use_leases(self, leases: ConnectionLeases) -> None:
        """Ignored: each replica has channels of its own, and the store's claims dedupe
        the dials of replicas that hear the same events."""

    def shard(
        self, current: Sequence[frozenset[str]], wanted: Iterable[str]
    ) -> list[frozenset[str]]:
        """As few channels as hold ``wanted``, moving as few topics as possible."""
        if not current:
            return [frozenset(shard) for shard in shard_topics(wanted)]
        return reshard(current, wanted)

    def source(self, name: str, topics: frozenset[str], sink: SourceSink) -> ChannelSupervisor:
        """The supervisor of one channel carrying ``topics``."""
        return ChannelSupervisor(
            name,
            sorted(topics),
            platform=self._channels,
            settings=self._settings,
            clock=self._clock,
            rng=self._rng,
            deliver=sink.deliver,
            report_gap=sink.report_gap,
            rotation_started=sink.rotation_started,
            rotation_finished=sink.rotation_finished,
        )
