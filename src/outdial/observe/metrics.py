"""Prometheus metrics of one daemon, in a registry of its own.

Two kinds: what the daemon already counts (channel stats, the listener's
queue, the REST client's answers and budget, agents' readiness) is read when
scraped, by a custom collector; what only happens at a moment (a gap and its
length, an event of a topic, a dial and its outcome, the event-to-dial
latency) is recorded by the daemon's hooks as it happens.

Names (all prefixed ``outdial_``) are listed in :data:`METRIC_NAMES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from outdial.listener import ChannelState
from outdial.observe.status import busy_agents, readiness_problems
from outdial.platforms.ratelimit import RequestBudget, RestStats

if TYPE_CHECKING:
    from outdial.app import Daemon
    from outdial.events import Event, Gap
    from outdial.handlers.dialer import DialResult
    from outdial.store.timings import Timings

__all__ = ["METRIC_NAMES", "DaemonMetrics", "topic_kind"]

#: Every metric this module exports (counters without their ``_total`` suffix).
METRIC_NAMES = (
    "outdial_ready",
    "outdial_store_healthy",
    "outdial_store_claim_seconds",
    "outdial_channels",
    "outdial_channel_state",
    "outdial_channel_last_frame_age_seconds",
    "outdial_channel_connects",
    "outdial_channel_reconnects",
    "outdial_gaps",
    "outdial_gap_seconds",
    "outdial_events",
    "outdial_listener_queue_depth",
    "outdial_listener_queue_capacity",
    "outdial_listener_overflowed",
    "outdial_lane_overflowed",
    "outdial_lanes_queued",
    "outdial_agents_reread",
    "outdial_agents_reread_pending",
    "outdial_dials",
    "outdial_dial_skips",
    "outdial_event_to_dial_seconds",
    "outdial_rest_responses",
    "outdial_rest_rate_limited",
    "outdial_rest_unanswered",
    "outdial_rest_budget_remaining",
    "outdial_agents_ready",
    "outdial_agents_busy",
    "outdial_agents_tracked",
)

# Gaps run from a few milliseconds (a rotation's overlap) to minutes (an outage).
_GAP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# A dial is placed a few milliseconds to a few seconds after its event.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def topic_kind(topic: str) -> str:
    """A topic with its ids replaced: ``v2.users.{id}.presence`` (a bounded label)."""
    parts = topic.split(".")
    if len(parts) >= 4 and parts[1] in ("users", "routing", "conversations", "queues"):
        parts[2] = "{id}"
    return ".".join(parts)


class DaemonMetrics:
    """The daemon's metrics: hook methods to call as things happen, :meth:`render` to scrape."""

    def __init__(self, daemon: Daemon) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._gap_seconds = Histogram(
            "outdial_gap_seconds",
            "Length of each gap (events possibly missed), by cause",
            ["reason"],
            buckets=_GAP_BUCKETS,
            registry=self.registry,
        )
        self._dials = Counter(
            "outdial_dials",
            "Rule matches dialed, by rule and outcome (placed, skipped, failed, unknown)",
            ["rule", "status"],
            registry=self.registry,
        )
        self._skips = Counter(
            "outdial_dial_skips",
            "Dials a guard held back, by guard",
            ["guard"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "outdial_event_to_dial_seconds",
            "From receiving the triggering event (for ready rules: the readiness"
            " verdict) to the platform accepting the dial",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Events by topic kind: a plain dict on the hot path, exported when scraped.
        self._events: dict[str, int] = {}
        self._kinds: dict[str, str] = {}
        self.registry.register(_StateCollector(daemon, self._events))
        self._clock = daemon.clock

    def event(self, event: Event) -> None:
        """An event from the listener, about to be handled."""
        kind = self._kinds.get(event.topic)
        if kind is None:
            kind = self._kinds[event.topic] = topic_kind(event.topic)
        self._events[kind] = self._events.get(kind, 0) + 1

    def gap(self, gap: Gap) -> None:
        """A gap from the listener."""
        self._gap_seconds.labels(gap.reason.split(" ", 1)[0]).observe(max(0.0, gap.end - gap.start))

    def dialed(self, trigger: Event, result: DialResult) -> None:
        """A rule's match, dialed."""
        self._dials.labels(result.rule, result.status).inc()
        if result.status == "skipped":
            self._skips.labels(result.guard or "unknown").inc()
        elif result.status == "placed":
            self._latency.observe(max(0.0, self._clock.monotonic() - trigger.received_at))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric, now."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Reads what the daemon keeps anyway, when scraped (nothing to update on the hot path)."""

    def __init__(self, daemon: Daemon, events: dict[str, int]) -> None:
        self._daemon = daemon
        self._events = events

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families depend on the daemon's state

    def collect(self) -> Iterator[Metric]:
        daemon = self._daemon
        listener = daemon.listener
        yield _gauge(
            "outdial_ready", "1 when /readyz answers ready", int(not readiness_problems(daemon))
        )
        yield _gauge(
            "outdial_store_healthy", "1 while the store answers", int(daemon.store_healthy)
        )
        yield _histogram(
            "outdial_store_claim_seconds",
            "Seconds a dial's claim took in the store, its durable commit (fsync) included",
            daemon.store.claim_timings,
        )
        yield _gauge(
            "outdial_channels",
            "Notification channels (shards) kept open",
            len(listener.supervisors),
        )
        state = GaugeMetricFamily(
            "outdial_channel_state", "1 for each shard's current state", labels=["shard", "state"]
        )
        age = GaugeMetricFamily(
            "outdial_channel_last_frame_age_seconds",
            "Seconds since each shard's socket last received a frame",
            labels=["shard"],
        )
        connects = CounterMetricFamily(
            "outdial_channel_connects", "Sockets opened, by shard", labels=["shard"]
        )
        reconnects = CounterMetricFamily(
            "outdial_channel_reconnects", "Sockets lost and reopened, by shard", labels=["shard"]
        )
        now = daemon.clock.monotonic()
        for s in listener.supervisors:
            for value in ChannelState:
                state.add_metric([s.name, value.value], int(s.stats.state is value))
            if s.last_frame_at is not None:
                age.add_metric([s.name], max(0.0, now - s.last_frame_at))
            connects.add_metric([s.name], s.stats.connects)
            reconnects.add_metric([s.name], s.stats.reconnects)
        yield from (state, age, connects, reconnects)
        yield _counter(
            "outdial_gaps",
            "Gaps handled (re-reads of agents after possible loss)",
            daemon.gaps_handled,
        )
        events = CounterMetricFamily(
            "outdial_events", "Events received, by topic kind", labels=["topic"]
        )
        for kind, count in sorted(self._events.items()):
            events.add_metric([kind], count)
        yield events
        yield _gauge(
            "outdial_listener_queue_depth", "Events waiting for the handlers", listener.queue_depth
        )
        yield _gauge(
            "outdial_listener_queue_capacity",
            "The listener queue's size ([listener] queue_size)",
            daemon.config.listener.queue_size,
        )
        yield _counter(
            "outdial_listener_overflowed",
            "Events dropped because the queue was full (each run of them is a gap)",
            listener.stats.overflowed,
        )
        yield _counter(
            "outdial_lane_overflowed",
            "Events dropped because their agent's lane was full (the agent is re-read)",
            daemon.lane_overflowed,
        )
        yield _gauge(
            "outdial_lanes_queued",
            "Events waiting in agents' lanes behind what each agent is doing",
            daemon.lanes_queued,
        )
        yield _counter(
            "outdial_agents_reread",
            "Agents whose state was re-read over REST after a gap (or the store's return)",
            daemon.agents_reread,
        )
        yield _gauge(
            "outdial_agents_reread_pending",
            "Agents waiting to be re-read after a gap",
            daemon.agents_reread_pending,
        )
        yield from self._rest(daemon)
        pacer = daemon.handlers.pacer
        ready = sum(1 for v in pacer.verdicts.values() if v.ready)
        yield _gauge("outdial_agents_ready", "Agents ready for a personal call", ready)
        yield _gauge(
            "outdial_agents_busy", "Agents on a call or with a dial open", busy_agents(daemon)
        )
        yield _gauge(
            "outdial_agents_tracked", "Agents whose readiness is tracked", len(pacer.facts)
        )

    def _rest(self, daemon: Daemon) -> Iterator[Metric]:
        # A platform's REST client counts its answers (``rest_stats``) and keeps the
        # shared budget (``budget``); a test double without them counts nothing.
        rest = daemon.platform.calls
        stats = getattr(rest, "rest_stats", None)
        budget = getattr(rest, "budget", None)
        if not isinstance(stats, RestStats) or not isinstance(budget, RequestBudget):
            return
        responses = CounterMetricFamily(
            "outdial_rest_responses", "REST answers, by HTTP status", labels=["status"]
        )
        for status, count in sorted(stats.responses.items()):
            responses.add_metric([str(status)], count)
        yield responses
        yield _counter(
            "outdial_rest_rate_limited",
            "REST answers 429 (rate limited)",
            stats.responses.get(429, 0),
        )
        yield _counter(
            "outdial_rest_unanswered",
            "REST requests that got no answer (network)",
            stats.unanswered,
        )
        yield _gauge(
            "outdial_rest_budget_remaining",
            "REST requests that may be sent now without waiting for the rate budget",
            budget.remaining(),
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, timings: Timings) -> HistogramMetricFamily:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count)
        for bound, count in timings.cumulative()
    ]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=timings.total)
