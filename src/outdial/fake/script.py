"""How a simulated call plays out, as pure functions of a seeded RNG, timing and a start time.

:func:`plan_call` draws an outcome and durations; :func:`call_script` turns the
plan into the conversation bodies the platform would publish on
``v2.users.{userId}.conversations.calls``, each with the delay after the
previous one; :func:`wrapup_done` is the body that ends an ACD call's
after-call work; :func:`foreign_call_script` and :func:`hang_up` are the
bodies of a call outdial did not place (inbound, or dialed by hand). The I/O
shell in :mod:`outdial.fake.platform` only sleeps and publishes; everything a
test might want to reason about is decided here.

Disconnect types are relative to the leg that carries them, as on the real
platform: ``endpoint`` says this leg's own end hung up, ``peer`` that another
participant ended it, ``client`` that the agent ended it from the Genesys UI,
``timeout``, ``error`` and ``uncallable`` that the dial itself ended it.

Outcome mapping (the daemon's call state machine relies on it):

=================  =====================================================
ANSWERED           customer dialing -> connected (``connectedTime``) ->
                   disconnected. The customer hangs up (customer leg
                   ``endpoint``, agent leg ``peer``) or, with
                   ``agent_hangs_up``, the agent does (agent ``client``,
                   customer ``peer``)
BUSY               customer dialing -> disconnected, customer ``endpoint``
                   without ever connecting, agent ``peer``
NO_ANSWER          customer dialing -> alerting -> disconnected, customer
                   ``timeout``, agent ``peer``; with ``agent_hangs_up`` the
                   agent abandons the ringing call instead (agent ``client``,
                   customer ``peer``)
FAILED             customer dialing -> disconnected, ``error`` (``uncallable``
                   for a number that is well formed but not assigned, see
                   :func:`outdial.fake.validation.check_phone_number`), agent
                   ``peer``
AGENT_UNAVAILABLE  agent alerting -> disconnected, ``timeout`` (forced or
                   drawn: the agent's station rang unanswered) or ``error``
                   (the agent is ``Offline``: no station to ring, reported
                   sooner); no customer participant, the customer is never
                   dialed
=================  =====================================================

Legs, purposes and wrap-up. A :class:`CallStyle` says how the platform labels
a call's legs. A call with a queue (placed with ``callFromQueueId``, or an
inbound ACD call) is an ACD call: its agent leg carries ``queue``, and when
that leg ends it goes into the queue's after-call work (``wrapupRequired``
true, ``wrapupPrompt``, ``wrapupTimeoutMs``, ``startAcwTime``, state still
``disconnected``) until :func:`wrapup_done` (state ``terminated``,
``endAcwTime``, ``wrapup``). A call without a queue ends with
``wrapupRequired`` false and nothing follows. ACD calls use the purposes
``agent``/``customer``, non-ACD ones ``user``/``external``; which pair a call
placed through ``POST /api/v2/conversations/calls/user/{userId}`` gets is not
settled by any public source, so :func:`purposes_for` takes a mode.

Agent unavailable. A call placed on behalf of an agent first brings up the
agent's own leg (the platform rings the agent's station); only once that leg
is connected does the platform dial the customer. When the agent's leg never
comes up, the customer is never dialed, and the conversation bodies say so by
leaving the customer participant **out** of ``participants`` altogether (the
body keeps the shape of the fixture ``call-answered-sequence.json`` otherwise:
``id``, ``participants``, ``recordingState``, ``maxParticipants``, the agent
leg with ``startTime``, ``purpose``, ``state``, ``direction``, ``user`` and, once
ended, ``endTime``, ``disconnectType`` and ``wrapupRequired`` false). It
happens when forced for a number or drawn by weight
(:data:`DEFAULT_OUTCOME_WEIGHTS` gives it 0, so seeded replays of scenarios
written before it existed do not change), and always when the agent is
``Offline`` (see :func:`plan_call`'s ``agent_available``); an agent in any
other presence (Away, Break, ...) still has a station the platform can ring.
The agent never got on such a call, so it counts in no conversation summary,
changes no routing status and has no wrap-up.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "AGENT_PURPOSES",
    "AVAILABLE_PRESENCE_ID",
    "BUSY_PRESENCE_ID",
    "DEFAULT_OUTCOME_WEIGHTS",
    "DEFAULT_WRAPUP_CODE",
    "FAR_PURPOSES",
    "ON_QUEUE",
    "PURPOSE_MODES",
    "SYSTEM_PRESENCES",
    "CallParties",
    "CallPlan",
    "CallStep",
    "CallStyle",
    "CallTiming",
    "Outcome",
    "WrapupCode",
    "agent_disconnect_for",
    "call_script",
    "canonical_presence",
    "conversation_body",
    "end_call",
    "foreign_call_script",
    "hang_up",
    "iso_ms",
    "pick_outcome",
    "plan_call",
    "presence_body",
    "presence_definition_id",
    "presence_label",
    "purposes_for",
    "q850_cause",
    "routing_status_body",
    "wrapup_done",
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

AGENT_PURPOSES = frozenset({"agent", "user"})
"""Purposes of the agent's own leg: ``agent`` on ACD calls, ``user`` on non-ACD ones."""
FAR_PURPOSES = frozenset({"customer", "external"})
"""Purposes of the far end: ``customer`` on ACD calls, ``external`` on non-ACD ones."""

PURPOSE_MODES = ("auto", "agent-customer", "user-external")
"""How :func:`purposes_for` labels legs: by queue (``auto``), or always one pair."""


@dataclass(frozen=True, slots=True)
class CallTiming:
    """Durations of a simulated call, in seconds; ranges are drawn uniformly from the seeded RNG.

    ``ring``: dialing until answered (or busy, or no-answer timeout, or failure).
    ``talk``: connected until someone hangs up (answered calls only).
    ``wrapup``: an ACD call's after-call work: from its agent leg ending until the
    agent has wrapped up (calls without a queue have none).
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
    """What will happen to one call: its outcome, durations and how each leg ends.

    ``disconnect_type`` is the customer leg's (agent unavailable: the agent leg's,
    there being no customer leg); ``agent_disconnect_type`` the agent leg's;
    ``hangup`` who ended an answered (or abandoned) call, ``customer`` or ``agent``.
    """

    outcome: Outcome
    ring: float
    talk: float
    disconnect_type: str
    agent_disconnect_type: str = "peer"
    hangup: Literal["customer", "agent"] = "customer"


@dataclass(frozen=True, slots=True)
class CallParties:
    """The ids and number of one simulated call."""

    conversation_id: str
    user_id: str
    phone_number: str
    agent_participant_id: str
    customer_participant_id: str


@dataclass(frozen=True, slots=True)
class CallStyle:
    """How the platform labels one call's legs, and the wrap-up its queue asks for.

    ``queue_id`` makes it an ACD call (the agent leg carries ``queue`` and ends in
    after-call work with ``wrapup_prompt`` and ``wrapup_timeout_ms``).
    ``disconnect_reasons`` adds ``disconnectReasons: [{"type": "q850", "code"}]`` to
    the ended customer leg (off by default: the calls topic may not carry them).
    """

    agent_purpose: str = "agent"
    far_purpose: str = "customer"
    direction: Literal["outbound", "inbound"] = "outbound"
    queue_id: str | None = None
    wrapup_prompt: str = "mandatory"
    wrapup_timeout_ms: int = 60000
    disconnect_reasons: bool = False

    @property
    def acd(self) -> bool:
        """True for a call with a queue: it counts as contact center work and has wrap-up."""
        return self.queue_id is not None


@dataclass(frozen=True, slots=True)
class WrapupCode:
    """The wrap-up code an agent picks at the end of after-call work."""

    code: str
    name: str


DEFAULT_WRAPUP_CODE = WrapupCode("7fb334b0-0e9e-11e4-9191-0800200c9a66", "Default Wrap-up Code")
"""The code the fake's agents pick when a test names none."""


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
        customers = [p for p in participants if p.get("purpose") in FAR_PURPOSES]
        if customers:
            return any(p.get("state") == "disconnected" for p in customers)
        return any(
            p.get("purpose") in AGENT_PURPOSES and p.get("state") == "disconnected"
            for p in participants
        )


def purposes_for(mode: str, queue_id: str | None) -> tuple[str, str]:
    """The (agent leg, far leg) purposes of a call under ``mode`` (one of :data:`PURPOSE_MODES`).

    ``auto`` labels an ACD call (with a queue) ``agent``/``customer`` and any other
    ``user``/``external``, as the platform does for calls it routes; the other two
    modes pin one pair, because which pair an API-placed call gets is not settled.
    """
    if mode == "agent-customer" or (mode == "auto" and queue_id is not None):
        return "agent", "customer"
    if mode in ("auto", "user-external"):
        return "user", "external"
    raise ValueError(f"purposes must be one of {', '.join(PURPOSE_MODES)}, not {mode!r}")


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
    agent_hangs_up: bool = False,
) -> CallPlan:
    """Draw one call's outcome and durations.

    Exactly three draws are taken every time (outcome, ring, talk), whether or
    not the outcome is forced, so forcing one number's outcome does not shift
    the outcomes and timings of the calls after it: the same seed and the same
    sequence of requests always give the same plans. Who hangs up is not drawn
    here (``agent_hangs_up`` comes from the caller's own stream), for the same
    reason.

    The agent's leg comes up before the customer is dialed, so the agent decides
    first: an agent who is not available (``agent_available`` False: presence
    ``Offline``) always gives ``AGENT_UNAVAILABLE`` with ``error``, and a forced
    or drawn ``AGENT_UNAVAILABLE`` (the station rang unanswered, ``timeout``)
    wins over the number. Otherwise an unreachable number always fails
    (``uncallable``). ``agent_hangs_up`` ends an answered call from the agent's
    side and makes a no-answer call one the agent abandons while it rings.
    """
    u = rng.random()
    ring = rng.uniform(*timing.ring)
    talk = rng.uniform(*timing.talk)
    if not agent_available:
        return CallPlan(Outcome.AGENT_UNAVAILABLE, ring, talk, "error", "error")
    outcome = forced if forced is not None else pick_outcome(weights, u)
    if outcome is Outcome.AGENT_UNAVAILABLE:
        return CallPlan(outcome, ring, talk, "timeout", "timeout")
    if not reachable:
        return CallPlan(Outcome.FAILED, ring, talk, "uncallable")
    if agent_hangs_up and outcome in (Outcome.ANSWERED, Outcome.NO_ANSWER):
        return CallPlan(outcome, ring, talk, "peer", "client", "agent")
    customer = {
        Outcome.ANSWERED: "endpoint",
        Outcome.BUSY: "endpoint",
        Outcome.NO_ANSWER: "timeout",
        Outcome.FAILED: "error",
    }[outcome]
    return CallPlan(outcome, ring, talk, customer)


def q850_cause(plan: CallPlan) -> int:
    """The Q.850 cause of the customer leg's end: 16 normal clearing, 17 user busy, 19 no
    answer (the phone rang), 1 unallocated number, 41 temporary failure."""
    if plan.outcome is Outcome.BUSY:
        return 17
    if plan.outcome is Outcome.NO_ANSWER and plan.hangup == "customer":
        return 19
    if plan.outcome is Outcome.FAILED:
        return 1 if plan.disconnect_type == "uncallable" else 41
    return 16


def call_script(
    plan: CallPlan,
    parties: CallParties,
    timing: CallTiming,
    start: datetime,
    style: CallStyle | None = None,
) -> list[CallStep]:
    """The conversation bodies of one call, each with its delay after the previous step.

    ``start`` is the wall time of the request; timestamps in the bodies are
    ``start`` plus the planned offsets (not the time the shell actually
    publishes), so a script is fully determined by its inputs. ``style``
    (default: ``agent``/``customer`` legs, no queue) labels the legs; an ACD
    call's last body has the agent leg in wrap-up, which :func:`wrapup_done`
    ends.
    """
    style = style or CallStyle()

    def at(offset: float) -> datetime:
        return start + timedelta(seconds=offset)

    dial, ring = timing.dial, plan.ring
    if plan.outcome is Outcome.AGENT_UNAVAILABLE:
        return _agent_unavailable_script(plan, parties, style, dial, start)
    agent = _agent_leg(parties, style, start, "connected")
    dialed = iso_ms(at(dial))

    def body(state: str, **extra: str) -> dict[str, Any]:
        return _conversation(parties, style, agent, _far_leg(parties, style, dialed, state, extra))

    def final(end_offset: float, **extra: str) -> dict[str, Any]:
        cause = q850_cause(plan) if style.disconnect_reasons else None
        return end_call(
            body("dialing", **extra),
            parties,
            style,
            at(end_offset),
            far_disconnect=plan.disconnect_type,
            agent_disconnect=plan.agent_disconnect_type,
            cause=cause,
        )

    steps = [CallStep(dial, body("dialing"))]
    if plan.outcome is Outcome.ANSWERED:
        connected = iso_ms(at(dial + ring))
        steps.append(CallStep(ring, body("connected", connectedTime=connected)))
        steps.append(CallStep(plan.talk, final(dial + ring + plan.talk, connectedTime=connected)))
    elif plan.outcome is Outcome.NO_ANSWER:
        # Alerting halfway through the ring time; the no-answer timeout (or the agent
        # giving up) at its end.
        steps.append(CallStep(ring / 2, body("alerting")))
        steps.append(CallStep(ring - ring / 2, final(dial + ring)))
    elif plan.outcome is Outcome.BUSY:
        steps.append(CallStep(ring, final(dial + ring)))
    else:
        # A failure is reported sooner than a busy tone or a timeout.
        steps.append(CallStep(ring / 2, final(dial + ring / 2)))
    return steps


def _agent_unavailable_script(
    plan: CallPlan, parties: CallParties, style: CallStyle, dial: float, start: datetime
) -> list[CallStep]:
    """The agent's station alerts and its leg ends unanswered (``timeout``, after the ring
    time) or failed (``error``, sooner); no customer participant is ever added."""
    ring = plan.ring if plan.disconnect_type == "timeout" else plan.ring / 2
    alerting = _conversation(parties, style, _agent_leg(parties, style, start, "alerting"), None)
    ended = end_call(
        alerting,
        parties,
        style,
        start + timedelta(seconds=dial + ring),
        far_disconnect=None,
        agent_disconnect=plan.disconnect_type,
        wrapup=False,  # the agent never got on the call: nothing to wrap up
    )
    return [CallStep(dial, alerting), CallStep(ring, ended)]


def foreign_call_script(
    parties: CallParties, style: CallStyle, start: datetime
) -> list[dict[str, Any]]:
    """The bodies of a call outdial did not place, up to both legs connected.

    Inbound (``style.direction``): the customer is connected and the agent's
    station alerts, then the agent answers. Outbound (dialed by hand): the agent's
    leg is up and the customer is dialed, then answers. Everything happens at
    ``start``: the fake has no reason to make a test wait for a call it asked for.
    """
    now = iso_ms(start)
    answered = _far_leg(parties, style, now, "connected", {"connectedTime": now})
    connected = _agent_leg(parties, style, start, "connected")
    if style.direction == "inbound":
        alerting = _agent_leg(parties, style, start, "alerting")
        return [
            _conversation(parties, style, alerting, answered),
            _conversation(parties, style, connected, answered),
        ]
    dialing = _far_leg(parties, style, now, "dialing", {})
    return [
        _conversation(parties, style, connected, dialing),
        _conversation(parties, style, connected, answered),
    ]


def hang_up(
    body: Mapping[str, Any],
    parties: CallParties,
    style: CallStyle,
    end: datetime,
    by: Literal["customer", "agent"],
) -> dict[str, Any]:
    """``body`` with the call ended at ``end`` by the customer or by the agent.

    The customer hanging up reads customer leg ``endpoint``, agent leg ``peer``; the
    agent hanging up (from the Genesys UI) agent leg ``client``, customer leg ``peer``.
    """
    if by == "customer":
        far, agent = "endpoint", "peer"
    elif by == "agent":
        far, agent = "peer", "client"
    else:
        raise ValueError(f"by must be 'customer' or 'agent', not {by!r}")
    cause = 16 if style.disconnect_reasons else None
    return end_call(
        body, parties, style, end, far_disconnect=far, agent_disconnect=agent, cause=cause
    )


def end_call(
    body: Mapping[str, Any],
    parties: CallParties,
    style: CallStyle,
    end: datetime,
    *,
    far_disconnect: str | None,
    agent_disconnect: str,
    cause: int | None = None,
    wrapup: bool | None = None,
) -> dict[str, Any]:
    """``body`` with both legs disconnected at ``end``, each with its own disconnect type.

    The agent leg says whether wrap-up follows (``wrapup``, by default: the call is
    ACD); when it does, it carries the queue's prompt and timeout and
    ``startAcwTime``. ``cause`` becomes the customer leg's Q.850 ``disconnectReasons``.
    """
    ended = iso_ms(end)
    acw = style.acd if wrapup is None else wrapup
    participants = []
    for leg in body["participants"]:
        leg = dict(leg)
        if leg["id"] == parties.agent_participant_id:
            leg.update(state="disconnected", disconnectType=agent_disconnect, endTime=ended)
            leg["wrapupRequired"] = acw
            if acw:
                leg["wrapupPrompt"] = style.wrapup_prompt
                leg["wrapupTimeoutMs"] = style.wrapup_timeout_ms
                leg["startAcwTime"] = ended
        elif leg["id"] == parties.customer_participant_id:
            leg.update(state="disconnected", endTime=ended)
            if far_disconnect is not None:
                leg["disconnectType"] = far_disconnect
            if cause is not None:
                leg["disconnectReasons"] = [{"type": "q850", "code": cause}]
        participants.append(leg)
    return {**body, "participants": participants}


def wrapup_done(
    body: Mapping[str, Any], parties: CallParties, end: datetime, code: WrapupCode
) -> dict[str, Any]:
    """``body`` with the agent's after-call work done at ``end``: the agent leg
    ``terminated``, with ``endAcwTime`` and the ``wrapup`` the agent chose."""
    ended = iso_ms(end)
    participants = []
    for leg in body["participants"]:
        leg = dict(leg)
        if leg["id"] == parties.agent_participant_id:
            began = datetime.fromisoformat(leg.get("startAcwTime") or leg["endTime"])
            leg.update(state="terminated", endAcwTime=ended)
            leg["wrapup"] = {
                "code": code.code,
                "name": code.name,
                "endTime": ended,
                "durationSeconds": max(0, int((end - began).total_seconds())),
            }
        participants.append(leg)
    return {**body, "participants": participants}


def agent_disconnect_for(customer_disconnect: str | None) -> str:
    """The agent leg's disconnect type that goes with the customer leg's, in a call the
    agent was on: the customer hanging up (``endpoint``) reads ``peer`` on the agent
    leg, the agent hanging up (customer ``peer``) reads ``client``."""
    return "client" if customer_disconnect == "peer" else "peer"


def conversation_body(
    parties: CallParties,
    start: datetime,
    dial_offset: float,
    customer: Mapping[str, Any],
    end_offset: float | None = None,
    *,
    style: CallStyle | None = None,
) -> dict[str, Any]:
    """One conversation body of an agent-placed call, as ``conversations.calls`` carries it.

    ``customer`` holds the customer participant's changing fields (``state``,
    ``connectedTime``, ``endTime``, ``disconnectType``); with ``end_offset`` the
    agent leg has ended too, that many seconds after ``start``, with the disconnect
    type that goes with the customer's (:func:`agent_disconnect_for`).
    """
    style = style or CallStyle()
    fields = dict(customer)
    state = str(fields.pop("state", "dialing"))
    dialed = iso_ms(start + timedelta(seconds=dial_offset))
    agent = _agent_leg(parties, style, start, "connected")
    body = _conversation(parties, style, agent, _far_leg(parties, style, dialed, state, fields))
    if end_offset is None:
        return body
    ended = end_call(
        body,
        parties,
        style,
        start + timedelta(seconds=end_offset),
        far_disconnect=None,
        agent_disconnect=agent_disconnect_for(fields.get("disconnectType")),
    )
    # The customer leg keeps the fields the caller gave it (state included).
    far = next(p for p in body["participants"] if p["id"] == parties.customer_participant_id)
    ended["participants"] = [
        far if p["id"] == parties.customer_participant_id else p for p in ended["participants"]
    ]
    return ended


def _agent_leg(
    parties: CallParties, style: CallStyle, start: datetime, state: str
) -> dict[str, Any]:
    leg: dict[str, Any] = {
        "id": parties.agent_participant_id,
        "startTime": iso_ms(start),
        "purpose": style.agent_purpose,
        "state": state,
        "direction": style.direction,
        "user": {"id": parties.user_id},
    }
    if style.queue_id is not None:
        leg["queue"] = {"id": style.queue_id}
    return leg


def _far_leg(
    parties: CallParties,
    style: CallStyle,
    started: str,
    state: str,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "id": parties.customer_participant_id,
        "address": f"tel:{parties.phone_number}",
        "startTime": started,
        "purpose": style.far_purpose,
        "state": state,
        "direction": style.direction,
        **extra,
    }


def _conversation(
    parties: CallParties,
    style: CallStyle,
    agent: Mapping[str, Any],
    far: Mapping[str, Any] | None,
) -> dict[str, Any]:
    # An inbound call's first participant is the caller; an outbound one's the agent.
    legs = [dict(agent)] if far is None else [dict(agent), dict(far)]
    if style.direction == "inbound":
        legs.reverse()
    return {
        "id": parties.conversation_id,
        "participants": legs,
        "recordingState": "none",
        "maxParticipants": 10,
    }


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
SYSTEM_PRESENCES: tuple[str, ...] = tuple(_PRESENCE_IDS)
"""The system presences, as the fake names them (``Available``, ``On Queue``, ...)."""
ON_QUEUE = "On Queue"
"""The one presence in which an agent takes ACD work (and has a routing status other than
``OFF_QUEUE``)."""
AVAILABLE_PRESENCE_ID = _PRESENCE_IDS["Available"]
"""The system presence definition id of ``Available``."""
BUSY_PRESENCE_ID = _PRESENCE_IDS["Busy"]
"""The system presence definition id of ``Busy``."""

_BY_KEY = {name.upper().replace(" ", "_"): name for name in _PRESENCE_IDS}


def canonical_presence(system_presence: str) -> str:
    """The fake's name for a system presence given in any case: ``AVAILABLE``, ``available``
    and ``Available`` are all ``Available``; ``ON_QUEUE`` and ``on queue`` are ``On Queue``."""
    key = system_presence.strip().upper().replace(" ", "_")
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(
            f"unknown system presence {system_presence!r}; one of {sorted(_PRESENCE_IDS)}"
            " (any case)"
        ) from None


def presence_label(system_presence: str, *, upper: bool = False) -> str:
    """``systemPresence`` as the platform writes it: ``On Queue``, or with ``upper``
    ``ON_QUEUE`` (official examples show both styles)."""
    name = canonical_presence(system_presence)
    return name.upper().replace(" ", "_") if upper else name


def presence_definition_id(system_presence: str) -> str:
    """The presence definition id the fake uses for a system presence name (any case)."""
    return _PRESENCE_IDS[canonical_presence(system_presence)]


def presence_body(
    system_presence: str, modified: datetime, *, upper: bool = False
) -> dict[str, Any]:
    """The body of ``v2.users.{id}.presence`` (the REST read has more fields: see
    :func:`outdial.fake.agents.presence_rest_body`)."""
    return {
        "source": "PURECLOUD",
        "presenceDefinition": {
            "id": presence_definition_id(system_presence),
            "systemPresence": presence_label(system_presence, upper=upper),
        },
        "primary": True,
        "message": "",
        "modifiedDate": iso_ms(modified),
    }


def routing_status_body(user_id: str, status: str, start: datetime) -> dict[str, Any]:
    """The body of ``v2.users.{id}.routingStatus``."""
    return {"id": user_id, "routingStatus": {"status": status, "startTime": iso_ms(start)}}


def iso_ms(when: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, as the platform writes times."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
