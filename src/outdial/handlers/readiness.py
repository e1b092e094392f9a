"""Readiness: when an agent can take the next personal call. Pure: facts in, verdict out.

An agent is ready when all of these hold (``../shared/DESIGN.md``, "Readiness
and pacing"):

* presence is one of ``[readiness] presences`` (the ``systemPresence`` name,
  compared case-insensitively, or the presence definition id): presence is
  what the user chose, and a call never changes it;
* routing status is one of ``[readiness] routing_statuses``;
* the conversation summary shows no active call and no after-call work, of any
  origin (inbound, manual, another application's, outdial's own);
* every call of the agent seen on ``conversations.calls`` has its agent leg
  ended and its wrap-up done (or not required), ``after_call`` seconds ago;
* no dial of the agent is open (sent and not yet seen as a call) or unknown.

:class:`AgentFacts` holds those inputs for one agent; the ``with_*`` functions
return updated facts (they never mutate), and :func:`assess` turns facts and a
time into a :class:`Readiness`. Nothing here reads a clock, a socket or the
store.

The readiness **epoch** names one spell of readiness, from platform facts
only: the presence and its ``modifiedDate``, and the conversation that ended
last. The same readiness seen live and re-read over REST, by a restarted
daemon or by a second replica, has the same epoch, so the dial it triggers
(whose idempotency key is rule + agent + epoch) is claimed once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from outdial.config import ReadinessConfig
from outdial.domain import CallLeg, PresenceSeen, WorkloadSeen
from outdial.timestamps import parse_time

__all__ = [
    "AgentFacts",
    "CallLeg",
    "Readiness",
    "ReadinessPolicy",
    "assess",
    "epoch_of",
    "parse_time",
    "with_call",
    "with_calls_settled",
    "with_dial_closed",
    "with_dial_open",
    "with_presence",
    "with_routing_status",
    "with_workload",
]

#: Conversations remembered as finished, so a late or repeated event of one
#: of them cannot bring it back (or move the epoch back to it).
_FINISHED_KEPT = 32


@dataclass(frozen=True, slots=True)
class ReadinessPolicy:
    """``[readiness]`` as the core uses it: names lower-cased, statuses upper-cased."""

    presences: frozenset[str] = frozenset({"available"})
    routing_statuses: frozenset[str] = frozenset({"OFF_QUEUE", "IDLE"})
    after_call: float = 5.0
    #: False on a platform without routing statuses (CXone): the check is left out.
    check_routing: bool = True

    @classmethod
    def from_config(cls, config: ReadinessConfig, *, check_routing: bool = True) -> ReadinessPolicy:
        """The policy of a ``[readiness]`` section (``check_routing``: the platform has one)."""
        return cls(
            presences=frozenset(p.lower() for p in config.presences),
            routing_statuses=frozenset(s.upper() for s in config.routing_statuses),
            after_call=config.after_call,
            check_routing=check_routing,
        )

    def presence_allowed(self, system_presence: str | None, definition_id: str | None) -> bool:
        """True when the presence (by name, any case, or by definition id) allows dialing."""
        if system_presence is not None and system_presence.lower() in self.presences:
            return True
        return definition_id is not None and definition_id.lower() in self.presences


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """Everything readiness depends on for one agent, as last heard.

    ``calls`` holds the agent's calls that are not done; ``last_call`` and
    ``last_done_at`` the call the agent finished last (a platform fact: a
    conversation id) and when. ``open_dials`` names dials of this process for
    the agent not yet seen as a call (a claim key or a conversation id).
    ``None`` means not heard yet.
    """

    user_id: str
    presence: str | None = None
    presence_id: str | None = None
    presence_modified: str | None = None
    routing_status: str | None = None
    active_calls: int | None = None
    acw_calls: int | None = None
    calls: Mapping[str, CallLeg] = field(default_factory=dict)
    last_call: str | None = None
    last_done_at: datetime | None = None
    finished: tuple[str, ...] = ()
    open_dials: frozenset[str] = frozenset()


def with_presence(facts: AgentFacts, presence: PresenceSeen) -> AgentFacts:
    """Facts after a presence event (or a presence re-read over REST)."""
    return replace(
        facts,
        presence=presence.name,
        presence_id=presence.definition_id,
        presence_modified=presence.modified,
    )


def with_routing_status(facts: AgentFacts, status: str) -> AgentFacts:
    """Facts after a routing status event or re-read."""
    return replace(facts, routing_status=status.upper())


def with_workload(facts: AgentFacts, workload: WorkloadSeen) -> AgentFacts:
    """Facts after the platform said how many calls the agent is on and wrapping up."""
    return replace(facts, active_calls=workload.active, acw_calls=workload.acw)


def with_call(facts: AgentFacts, leg: CallLeg) -> AgentFacts:
    """Facts after one of the agent's calls moved on (any origin).

    A call that is done leaves ``calls`` and becomes ``last_call`` unless a
    call finished later is already known; a finished call never comes back.
    Seeing a call also settles the open dial that placed it.
    """
    cid = leg.conversation_id
    open_dials = facts.open_dials - {cid}
    if cid in facts.finished:
        return replace(facts, open_dials=open_dials)
    calls = dict(facts.calls)
    if not leg.done:
        calls[cid] = leg
        return replace(facts, calls=calls, open_dials=open_dials)
    calls.pop(cid, None)
    finished = (*facts.finished, cid)[-_FINISHED_KEPT:]
    last_call, last_done_at = facts.last_call, facts.last_done_at
    assert leg.done_at is not None
    # Latest end wins (ties by id): the same calls seen in any order give the same epoch.
    if last_done_at is None or (leg.done_at, cid) > (last_done_at, last_call or ""):
        last_call, last_done_at = cid, leg.done_at
    return replace(
        facts,
        calls=calls,
        finished=finished,
        last_call=last_call,
        last_done_at=last_done_at,
        open_dials=open_dials,
    )


def with_calls_settled(facts: AgentFacts, now: datetime, keep: Iterable[str] = ()) -> AgentFacts:
    """Facts after a re-read whose conversation summary shows no call and no ACW.

    Calls still listed as going on ended unseen (their events were lost in a
    gap): each is done ``now``, except those in ``keep`` (calls re-read on
    their own, whose own snapshot decides).
    """
    kept = set(keep)
    for cid in sorted(c for c in facts.calls if c not in kept):
        facts = with_call(facts, CallLeg(cid, ended=True, done_at=now))
    return facts


def with_dial_open(facts: AgentFacts, ref: str) -> AgentFacts:
    """A dial of the agent was sent (or its answer is unknown): not ready until settled.

    ``ref`` is the call's conversation id once the platform named it (the
    call's own events settle it), else the claim key. A call already seen
    needs no open dial: it speaks for itself.
    """
    if ref in facts.calls or ref in facts.finished:
        return facts
    return replace(facts, open_dials=facts.open_dials | {ref})


def with_dial_closed(facts: AgentFacts, ref: str) -> AgentFacts:
    """A dial of the agent settled without a call (refused, given up)."""
    return replace(facts, open_dials=facts.open_dials - {ref})


@dataclass(frozen=True, slots=True)
class Readiness:
    """The verdict for one agent at one time.

    ``reason`` says why not (or ``"ready"``); ``epoch`` and ``since`` are set
    when ready; ``recheck_at`` is when time alone may change the verdict (the
    end of ``after_call``), None when only a new fact can.
    """

    ready: bool
    reason: str
    epoch: str | None = None
    since: datetime | None = None
    recheck_at: datetime | None = None


def epoch_of(facts: AgentFacts) -> str:
    """The readiness epoch: a digest of presence, its ``modifiedDate`` and the last call."""
    text = "\n".join(
        (
            facts.user_id,
            (facts.presence or facts.presence_id or "").lower(),
            facts.presence_modified or "",
            facts.last_call or "",
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def assess(facts: AgentFacts, policy: ReadinessPolicy, now: datetime) -> Readiness:
    """Ready or not, and why, for ``facts`` at ``now``."""
    if facts.presence is None and facts.presence_id is None:
        return Readiness(False, "presence not known yet")
    if not policy.presence_allowed(facts.presence, facts.presence_id):
        return Readiness(False, f"presence {facts.presence or facts.presence_id}")
    if policy.check_routing:
        if facts.routing_status is None:
            return Readiness(False, "routing status not known yet")
        if facts.routing_status not in policy.routing_statuses:
            return Readiness(False, f"routing status {facts.routing_status}")
    if facts.active_calls is None:
        # Fail closed: without it a call outdial did not place would go unseen.
        return Readiness(False, "conversation summary not known yet")
    if facts.active_calls:
        return Readiness(False, f"on {facts.active_calls} call(s) (conversation summary)")
    if facts.acw_calls:
        return Readiness(False, f"in after-call work on {facts.acw_calls} call(s)")
    for cid, leg in sorted(facts.calls.items()):
        what = "wrapping up" if leg.wrapup_pending else "on"
        return Readiness(False, f"{what} call {cid}")
    if facts.open_dials:
        return Readiness(False, f"dial open ({min(facts.open_dials)[:12]})")
    since = parse_time(facts.presence_modified)
    if facts.last_done_at is not None:
        rested = facts.last_done_at + timedelta(seconds=policy.after_call)
        if rested > now:
            return Readiness(False, "resting after the last call", recheck_at=rested)
        since = max(since, rested) if since else rested
    return Readiness(True, "ready", epoch=epoch_of(facts), since=since or now)
