"""What a running daemon is doing, as one JSON-able snapshot, and the same as text.

:class:`StatusBoard` remembers what the daemon's state does not keep: recent
gaps, the calls placed and in flight, and recent outcomes, each bounded.
:func:`snapshot` reads the rest (channels, agents, the store) from the daemon
at the moment it is asked; :func:`render_text` is ``outdial status``'s view of
a snapshot. Both are pure apart from reading the objects handed in.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from outdial.events import Gap, topic_user_id
from outdial.listener import ChannelState

if TYPE_CHECKING:
    from outdial.app import Daemon
    from outdial.events import Event
    from outdial.handlers.dialer import DialResult
    from outdial.store.base import CallRecord

__all__ = [
    "CallSeen",
    "GapSeen",
    "StatusBoard",
    "channel_fresh",
    "mask_number",
    "readiness_problems",
    "render_text",
    "snapshot",
]

#: Gaps and ended calls kept for the page (the oldest are forgotten).
RECENT = 20
#: Calls in flight kept at most (a call whose end is never seen must not grow memory).
MAX_IN_FLIGHT = 1000


@dataclass(slots=True)
class GapSeen:
    """One gap the daemon handled: why, how long (seconds), and when it ended (monotonic)."""

    reason: str
    seconds: float
    ended: float
    topics: int


@dataclass(slots=True)
class CallSeen:
    """A call outdial placed, as last written: in flight until ``outcome`` is set."""

    conversation_id: str
    rule: str | None
    user_id: str | None
    placed_at: datetime
    phone_number: str | None = None
    state: str = "placed"
    outcome: str | None = None
    ended_at: datetime | None = None


class StatusBoard:
    """Recent gaps, calls in flight and recent outcomes, fed by the daemon's hooks."""

    def __init__(self) -> None:
        self.gaps: deque[GapSeen] = deque(maxlen=RECENT)
        self.in_flight: OrderedDict[str, CallSeen] = OrderedDict()
        self.ended: deque[CallSeen] = deque(maxlen=RECENT)

    def gap(self, gap: Gap) -> None:
        """A gap reached the daemon."""
        self.gaps.append(GapSeen(gap.reason, gap.end - gap.start, gap.end, len(gap.topics)))

    def dialed(self, trigger: Event, result: DialResult, now: datetime) -> None:
        """A dial's result: a placed call is in flight from now."""
        cid = result.conversation_id
        if result.status != "placed" or cid is None or cid in self.in_flight:
            return
        user = topic_user_id(trigger.topic)
        self.in_flight[cid] = CallSeen(cid, result.rule, user, now)
        while len(self.in_flight) > MAX_IN_FLIGHT:
            self.in_flight.popitem(last=False)

    def call_progressed(self, record: CallRecord) -> None:
        """A call's new state; an ended one moves to the recent outcomes."""
        seen = self.in_flight.get(record.conversation_id)
        if seen is None:
            # Placed before this process started (or by a replica): shown all the same.
            seen = CallSeen(record.conversation_id, None, record.user_id, record.updated_at)
            self.in_flight[record.conversation_id] = seen
        seen.user_id = record.user_id
        seen.phone_number = record.phone_number
        seen.state = record.state
        if record.ended_at is not None:
            seen.outcome = record.outcome or record.state
            seen.ended_at = record.ended_at
            del self.in_flight[record.conversation_id]
            self.ended.append(seen)


def mask_number(number: str | None) -> str | None:
    """A phone number with its middle hidden (``+44•••••••601``): enough to tell calls apart."""
    if number is None or len(number) <= 6:
        return number
    return number[:3] + "•" * (len(number) - 6) + number[-3:]


def channel_fresh(
    last_frame_at: float | None, now: float, ping_interval: float, timeout: float
) -> bool:
    """A frame came within the keepalive's limit (longer and the socket is being declared dead)."""
    return last_frame_at is not None and now - last_frame_at <= ping_interval + timeout


def readiness_problems(daemon: Daemon) -> list[str]:
    """Why the daemon is not ready (empty: ready): each channel subscribed and fresh (or on
    standby for another replica), store up."""
    problems: list[str] = []
    settings = daemon.config.listener
    now = daemon.clock.monotonic()
    for supervisor in daemon.listener.supervisors:
        state = supervisor.stats.state
        if state is ChannelState.STANDBY:
            continue  # another replica listens to this agent: standing by is healthy
        if state not in (ChannelState.SUBSCRIBED, ChannelState.ROTATING):
            problems.append(f"{supervisor.name} is {state.value}")
        elif not channel_fresh(
            supervisor.last_frame_at, now, settings.ping_interval, settings.ping_timeout
        ):
            problems.append(f"{supervisor.name} has had no frame for too long")
    if not daemon.store_healthy:
        problems.append("the store is unavailable")
    return problems


def _age(then: float | None, now: float) -> float | None:
    return None if then is None else round(max(0.0, now - then), 3)


def _call(seen: CallSeen, now: datetime) -> dict[str, Any]:
    return {
        "conversation": seen.conversation_id,
        "rule": seen.rule,
        "user": seen.user_id,
        "number": mask_number(seen.phone_number),
        "state": seen.state,
        "outcome": seen.outcome,
        "placed_at": seen.placed_at.isoformat(),
        "age": round(max(0.0, (now - seen.placed_at).total_seconds()), 1),
        "ended_at": seen.ended_at.isoformat() if seen.ended_at else None,
    }


def _busy(daemon: Daemon, user_id: str) -> bool:
    facts = daemon.handlers.pacer.facts.get(user_id)
    if facts is None:
        return False
    on_call = any(not leg.done for leg in facts.calls.values())
    return on_call or bool(facts.open_dials) or bool(facts.active_calls)


def busy_agents(daemon: Daemon) -> int:
    """Agents the readiness rules track that are on a call or have a dial open."""
    return sum(1 for user in daemon.handlers.pacer.facts if _busy(daemon, user))


def snapshot(daemon: Daemon, board: StatusBoard) -> dict[str, Any]:
    """The status page's data (``/status.json``), read now."""
    mono, wall = daemon.clock.monotonic(), daemon.clock.now()
    problems = readiness_problems(daemon)
    channels = [
        {
            "shard": s.name,
            "state": s.stats.state.value,
            "channel": s.connection_id,
            "topics": len(s.topics),
            "last_frame_age": _age(s.last_frame_at, mono),
            "connects": s.stats.connects,
            "reconnects": s.stats.reconnects,
            "gaps": s.stats.gaps,
        }
        for s in daemon.listener.supervisors
    ]
    pacer = daemon.handlers.pacer
    agents = []
    for user in sorted(pacer.facts):
        facts, verdict = pacer.facts[user], pacer.verdicts.get(user)
        agents.append(
            {
                "user": user,
                "ready": verdict.ready if verdict else False,
                "reason": verdict.reason if verdict else "not looked at yet",
                "busy": _busy(daemon, user),
                "presence": facts.presence,
                "routing_status": facts.routing_status,
            }
        )
    return {
        "ready": not problems,
        "problems": problems,
        "store_healthy": daemon.store_healthy,
        "now": wall.isoformat(),
        "events": daemon.events_handled,
        "gaps_handled": daemon.gaps_handled,
        "channels": channels,
        "gaps": [
            {
                "reason": g.reason,
                "seconds": round(g.seconds, 3),
                "ago": _age(g.ended, mono),
                "topics": g.topics,
            }
            for g in reversed(board.gaps)
        ],
        "agents": agents,
        "calls": [_call(c, wall) for c in reversed(board.in_flight.values())],
        "outcomes": [_call(c, wall) for c in reversed(board.ended)],
    }


def _table(title: str, headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = [f"{title} ({len(rows)})"]
    if not rows:
        return [*lines, "  (none)"]
    cells = [headers, *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        lines.append(
            "  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        )
    return lines


def render_text(status: dict[str, Any]) -> str:
    """A snapshot as ``outdial status`` prints it: a verdict line, then one table per part."""
    verdict = "ready" if status["ready"] else "NOT READY: " + "; ".join(status["problems"])
    lines = [
        f"outdial: {verdict}",
        f"store: {'healthy' if status['store_healthy'] else 'unavailable'}"
        f"   events: {status['events']}   gaps: {status['gaps_handled']}",
        "",
    ]
    lines += _table(
        "channels",
        ["shard", "state", "last frame", "topics", "reconnects", "channel"],
        [
            [
                c["shard"],
                c["state"],
                "-" if c["last_frame_age"] is None else f"{c['last_frame_age']:.1f}s ago",
                c["topics"],
                c["reconnects"],
                c["channel"],
            ]
            for c in status["channels"]
        ],
    )
    lines += [
        "",
        *_table(
            "recent gaps",
            ["reason", "length", "ago"],
            [[g["reason"], f"{g['seconds']:.3f}s", f"{g['ago']:.0f}s"] for g in status["gaps"]],
        ),
    ]
    lines += [
        "",
        *_table(
            "agents",
            ["agent", "ready", "busy", "reason"],
            [
                [
                    a["user"],
                    "yes" if a["ready"] else "no",
                    "yes" if a["busy"] else "no",
                    a["reason"],
                ]
                for a in status["agents"]
            ],
        ),
    ]
    lines += [
        "",
        *_table(
            "calls in flight",
            ["conversation", "agent", "rule", "number", "state", "age"],
            [
                [
                    c["conversation"],
                    c["user"],
                    c["rule"],
                    c["number"],
                    c["state"],
                    f"{c['age']:.0f}s",
                ]
                for c in status["calls"]
            ],
        ),
    ]
    lines += [
        "",
        *_table(
            "recent outcomes",
            ["conversation", "agent", "rule", "number", "outcome", "ended"],
            [
                [c["conversation"], c["user"], c["rule"], c["number"], c["outcome"], c["ended_at"]]
                for c in status["outcomes"]
            ],
        ),
    ]
    return "\n".join(lines) + "\n"
