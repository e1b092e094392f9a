"""How a simulated call plays out, as pure functions of a seeded RNG, timing and a start time.

:func:`plan_call` draws an outcome and durations; :func:`call_script` turns the
plan into the conversation bodies the platform would publish on
``v2.users.{userId}.conversations.calls``, each with the delay after the
previous one. The I/O shell in :mod:`outdial.fake.platform` only sleeps and
publishes; everything a test might want to reason about is decided here.

Outcome mapping (the daemon's call state machine relies on it):

=================  =====================================================
ANSWERED           customer dialing -> connected (``connectedTime``) ->
                   disconnected, ``peer``
BUSY               customer dialing -> disconnected, ``peer``, never connected
NO_ANSWER          customer dialing -> alerting -> disconnected, ``timeout``
FAILED             customer dialing -> disconnected, ``error`` (``uncallable``
                   for a number that is well formed but not assigned, see
                   :func:`outdial.fake.validation.check_phone_number`)
AGENT_UNAVAILABLE  agent alerting -> disconnected, ``timeout`` (forced or
                   drawn: the agent's station rang unanswered) or ``error``
                   (the agent is ``Offline``: no station to ring, reported
                   sooner); no customer participant, the customer is never
                   dialed
=================  =====================================================

Agent unavailable. A call placed on behalf of an agent first brings up the
agent's own leg (the platform rings the agent's station); only once that leg
is connected does the platform dial the customer. When the agent's leg never
comes up, the customer is never dialed, and the conversation bodies say so by
leaving the customer participant **out** of ``participants`` altogether (the
body keeps the shape of the fixture ``call-answered-sequence.json`` otherwise:
``id``, ``participants``, ``recordingState``, ``maxParticipants``, the agent
leg with ``startTime``, ``purpose``, ``state``, ``direction``, ``user`` and, once
ended, ``endTime`` and ``disconnectType``). It happens when forced for a number
or drawn by weight (:data:`DEFAULT_OUTCOME_WEIGHTS` gives it 0, so seeded
replays of scenarios written before it existed do not change), and always
when the agent is ``Offline`` (see :func:`plan_call`'s ``agent_available``);
an agent in any other presence (Away, Break, ...) still has a station the
platform can ring. The agent's presence and routing status do not change for
such a call: the agent never got on it, so the fake publishes no Busy or
INTERACTING for it and no wrap-up follows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "AVAILABLE_PRESENCE_ID",
    "BUSY_PRESENCE_ID",
    "DEFAULT_OUTCOME_WEIGHTS",
    "CallParties",
    "CallPlan",
    "CallStep",
    "CallTiming",
    "Outcome",
    "call_script",
    "conversation_body",
    "iso_ms",
    "pick_outcome",
    "plan_call",
    "presence_body",
    "presence_definition_id",
    "routing_status_body",
]


class Outcome(StrEnum):
    """How a simulated call ends."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    # Last, so adding it moved no existing outcome's slot in pick_outcome().
    AGENT_UNAVAILABLE = "agent_unavailable"


DEFAULT_OUTCOME_WEIGHTS: Mapping[Outcome, float] = {
    Outcome.ANSWERED: 0.6,
    Outcome.BUSY: 0.15,
    Outcome.NO_ANSWER: 0.15,
    Outcome.FAILED: 0.1,
    Outcome.AGENT_UNAVAILABLE: 0.0,
}
"""Relative likelihood of each outcome when no outcome is forced for a number.

``AGENT_UNAVAILABLE`` is 0: an agent-unavailable call happens when forced, when
a scenario gives it a weight, or when the agent is ``Offline``."""


@dataclass(frozen=True, slots=True)
class CallTiming:
    """Durations of a simulated call, in seconds; ranges are drawn uniformly from the seeded RNG.

    ``ring``: dialing until answered (or busy, or no-answer timeout, or failure).
    ``talk``: connected until the customer hangs up (answered calls only).
    ``wrapup``: after the call ends, until the agent is Available again.
    ``dial``: from the accepted request to the first (dialing) event.
    """

    ring: tuple[float, float] = (1.0, 3.0)
    talk: tuple[float, float] = (2.0, 6.0)
    wrapup: float = 1.0
    dial: float = 0.05

    def __post_init__(self) -> None:
        for name, (low, high) in (("ring", self.ring), ("talk", self.talk)):
            if not 0 <= low <= high:
                raise ValueError(f"CallTiming.{name} must be (low, high) with 0 <= low <= high")
        if self.wrapup < 0 or self.dial < 0:
            raise ValueError("CallTiming.wrapup and CallTiming.dial must not be negative")


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What will happen to one call: its outcome, durations and final disconnect type."""

    outcome: Outcome
    ring: float
    talk: float
    disconnect_type: str


@dataclass(frozen=True, slots=True)
class CallParties:
    """The ids and number of one simulated call."""

    conversation_id: str
    user_id: str
    phone_number: str
    agent_participant_id: str
    customer_participant_id: str


@dataclass(frozen=True, slots=True)
class CallStep:
    """One conversation update: publish ``body`` ``delay`` seconds after the previous step."""

    delay: float
    body: dict[str, Any]

    @property
    def ended(self) -> bool:
        """True when the call is over in this body: the customer leg is disconnected, or
        (agent unavailable) there is no customer leg and the agent leg is disconnected."""
        participants = self.body["participants"]
        customers = [p for p in participants if p.get("purpose") == "customer"]
        if customers:
            return any(p.get("state") == "disconnected" for p in customers)
        return any(
            p.get("purpose") == "agent" and p.get("state") == "disconnected" for p in participants
        )


def pick_outcome(weights: Mapping[Outcome, float], u: float) -> Outcome:
    """The outcome that a uniform draw ``u`` in [0, 1) selects under ``weights``.

    Outcomes are visited in the enum's fixed order, so the choice does not
    depend on the mapping's insertion order.
    """
    total = sum(max(0.0, weights.get(o, 0.0)) for o in Outcome)
    if total <= 0:
        raise ValueError("outcome weights must have a positive sum")
    threshold = u * total
    running = 0.0
    chosen = Outcome.ANSWERED
    for outcome in Outcome:
        weight = max(0.0, weights.get(outcome, 0.0))
        if weight <= 0:
            continue
        chosen = outcome
        running += weight
        if threshold < running:
            break
    return chosen


def plan_call(
    rng: random.Random,
    timing: CallTiming,
    weights: Mapping[Outcome, float],
    *,
    forced: Outcome | None = None,
    reachable: bool = True,
    agent_available: bool = True,
) -> CallPlan:
    """Draw one call's outcome and durations.

    Exactly three draws are taken every time (outcome, ring, talk), whether or
    not the outcome is forced, so forcing one number's outcome does not shift
    the outcomes and timings of the calls after it: the same seed and the same
    sequence of requests always give the same plans.

    The agent's leg comes up before the customer is dialed, so the agent decides
    first: an agent who is not available (``agent_available`` False: presence
    ``Offline``) always gives ``AGENT_UNAVAILABLE`` with ``error``, and a forced
    or drawn ``AGENT_UNAVAILABLE`` (the station rang unanswered, ``timeout``)
    wins over the number. Otherwise an unreachable number always fails
    (``uncallable``).
    """
    u = rng.random()
    ring = rng.uniform(*timing.ring)
    talk = rng.uniform(*timing.talk)
    if not agent_available:
        return CallPlan(Outcome.AGENT_UNAVAILABLE, ring, talk, "error")
    outcome = forced if forced is not None else pick_outcome(weights, u)
    if outcome is Outcome.AGENT_UNAVAILABLE:
        return CallPlan(outcome, ring, talk, "timeout")
    if not reachable:
        return CallPlan(Outcome.FAILED, ring, talk, "uncallable")
    disconnect = {
        Outcome.ANSWERED: "peer",
        Outcome.BUSY: "peer",
        Outcome.NO_ANSWER: "timeout",
        Outcome.FAILED: "error",
    }[outcome]
    return CallPlan(outcome, ring, talk, disconnect)


def call_script(
    plan: CallPlan, parties: CallParties, timing: CallTiming, start: datetime
) -> list[CallStep]:
    """The conversation bodies of one call, each with its delay after the previous step.

    ``start`` is the wall time of the request; timestamps in the bodies are
    ``start`` plus the planned offsets (not the time the shell actually
    publishes), so a script is fully determined by its inputs.
    """

    def at(offset: float) -> str:
        return iso_ms(start + timedelta(seconds=offset))

    def body(customer: dict[str, Any], end_offset: float | None = None) -> dict[str, Any]:
        return conversation_body(parties, start, timing.dial, customer, end_offset)

    def final(end_offset: float, **extra: str) -> dict[str, Any]:
        customer = {
            **extra,
            "state": "disconnected",
            "endTime": at(end_offset),
            "disconnectType": plan.disconnect_type,
        }
        return body(customer, end_offset)

    dial, ring = timing.dial, plan.ring
    if plan.outcome is Outcome.AGENT_UNAVAILABLE:
        return _agent_unavailable_script(plan, parties, dial, start)
    steps = [CallStep(dial, body({"state": "dialing"}))]
    if plan.outcome is Outcome.ANSWERED:
        connected = at(dial + ring)
        steps.append(CallStep(ring, body({"state": "connected", "connectedTime": connected})))
        steps.append(CallStep(plan.talk, final(dial + ring + plan.talk, connectedTime=connected)))
    elif plan.outcome is Outcome.NO_ANSWER:
        # Alerting halfway through the ring time; the no-answer timeout at its end.
        steps.append(CallStep(ring / 2, body({"state": "alerting"})))
        steps.append(CallStep(ring - ring / 2, final(dial + ring)))
    elif plan.outcome is Outcome.BUSY:
        steps.append(CallStep(ring, final(dial + ring)))
    else:
        # A failure is reported sooner than a busy tone or a timeout.
        steps.append(CallStep(ring / 2, final(dial + ring / 2)))
    return steps


def _agent_unavailable_script(
    plan: CallPlan, parties: CallParties, dial: float, start: datetime
) -> list[CallStep]:
    """The agent's station alerts and its leg ends unanswered (``timeout``, after the ring
    time) or failed (``error``, sooner); no customer participant is ever added."""

    def at(offset: float) -> str:
        return iso_ms(start + timedelta(seconds=offset))

    ring = plan.ring if plan.disconnect_type == "timeout" else plan.ring / 2
    ended = {
        "state": "disconnected",
        "endTime": at(dial + ring),
        "disconnectType": plan.disconnect_type,
    }
    return [
        CallStep(dial, _body(parties, [_agent_leg(parties, start, {"state": "alerting"})])),
        CallStep(ring, _body(parties, [_agent_leg(parties, start, ended)])),
    ]


def _agent_leg(parties: CallParties, start: datetime, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": parties.agent_participant_id,
        "startTime": iso_ms(start),
        "purpose": "agent",
        "state": fields["state"],
        "direction": "outbound",
        "user": {"id": parties.user_id},
        **{k: v for k, v in fields.items() if k != "state"},
    }


def _body(parties: CallParties, participants: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": parties.conversation_id,
        "participants": participants,
        "recordingState": "none",
        "maxParticipants": 10,
    }


def conversation_body(
    parties: CallParties,
    start: datetime,
    dial_offset: float,
    customer: dict[str, Any],
    end_offset: float | None = None,
) -> dict[str, Any]:
    """One conversation body of an agent-placed call, as ``conversations.calls`` carries it.

    ``customer`` holds the customer participant's changing fields (``state``,
    ``connectedTime``, ``endTime``, ``disconnectType``); with ``end_offset``
    the agent leg has ended too (``client``), that many seconds after ``start``.
    """

    def at(offset: float) -> str:
        return iso_ms(start + timedelta(seconds=offset))

    agent: dict[str, Any] = {"state": "connected" if end_offset is None else "disconnected"}
    if end_offset is not None:
        agent["endTime"] = at(end_offset)
        agent["disconnectType"] = "client"
    customer_leg = {
        "id": parties.customer_participant_id,
        "address": f"tel:{parties.phone_number}",
        "startTime": at(dial_offset),
        "purpose": "customer",
        "direction": "outbound",
        **customer,
    }
    return _body(parties, [_agent_leg(parties, start, agent), customer_leg])


_PRESENCE_IDS = {
    "Available": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
    "Busy": "31fe3bac-dea6-44b7-bed7-47f91660a1a0",
    "Away": "5e5c5c66-ea97-4e7f-ac41-6424784829f2",
    "Break": "a1ba25d4-66c7-4bb3-9e3d-bcb4d4d30f1c",
    "Meal": "3fd96123-badb-4f69-bc03-1b1ccc6d8014",
    "Meeting": "3b894b9d-ba92-4e4e-a0e2-3e4d1d4ff2a1",
    "Training": "e2b5cba5-b5a1-4be0-9c1b-9a5c28b1b5c6",
    "On Queue": "e08eaf1b-ee47-4fa9-a231-1200e284798f",
    "Idle": "0f6c4b9d-6fb5-4d83-87b8-b1c3ab7c58b2",
    "Offline": "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5",
}
AVAILABLE_PRESENCE_ID = _PRESENCE_IDS["Available"]
"""The system presence definition id of ``Available``."""
BUSY_PRESENCE_ID = _PRESENCE_IDS["Busy"]
"""The system presence definition id of ``Busy``."""


def presence_definition_id(system_presence: str) -> str:
    """The presence definition id the fake uses for a system presence name."""
    try:
        return _PRESENCE_IDS[system_presence]
    except KeyError:
        raise ValueError(
            f"unknown system presence {system_presence!r}; one of {sorted(_PRESENCE_IDS)}"
        ) from None


def presence_body(system_presence: str, modified: datetime) -> dict[str, Any]:
    """A UserPresence, as ``v2.users.{id}.presence`` carries it and the REST API returns it."""
    return {
        "source": "PURECLOUD",
        "presenceDefinition": {
            "id": presence_definition_id(system_presence),
            "systemPresence": system_presence,
        },
        "primary": True,
        "message": "",
        "modifiedDate": iso_ms(modified),
    }


def routing_status_body(status: str, start: datetime) -> dict[str, Any]:
    """The body of ``v2.users.{id}.routingStatus``."""
    return {"routingStatus": {"status": status, "startTime": iso_ms(start)}}


def iso_ms(when: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, as the platform writes times."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
