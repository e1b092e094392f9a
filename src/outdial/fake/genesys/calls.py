"""Calls on the fake Genesys platform: placed through the API, foreign ones, their
play-out, after-call work and the conversation reads.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from outdial.fake.agents import (
    CallLoad,
    CallPhase,
    change_call,
)
from outdial.fake.analytics import ConversationFacts
from outdial.fake.common.routes import Routes
from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.genesys.core import Endpoint, not_found
from outdial.fake.genesys.recorded import RecordedCall
from outdial.fake.genesys.users import UsersMixin
from outdial.fake.script import (
    CallParties,
    CallPlan,
    CallStep,
    CallStyle,
    CallTiming,
    Outcome,
    WrapupCode,
    call_script,
    conversation_body,
    foreign_call_script,
    hang_up,
    iso_ms,
    plan_call,
    purposes_for,
    wrapup_done,
)
from outdial.fake.validation import (
    check_phone_number,
    parse_json,
    validate_create_call,
)
from outdial.http import Request, Response
from outdial.log import emit

__all__ = ["CallsMixin"]

_log = logging.getLogger("outdial.fake")

# The system presence of an agent whose calls end agent-unavailable (no station to ring).
_OFFLINE = "Offline"

# A conversation's progress for the agent: on the call, its leg just ended (what follows
# is being published), in after-call work, or done with it.
_LIVE, _ENDING, _ACW, _DONE = "live", "ending", "acw", "done"


@dataclass(slots=True, eq=False)
class Conversation:
    """One call the fake knows: placed through the API (``plan`` set) or foreign (None)."""

    parties: CallParties
    style: CallStyle
    body: dict[str, Any]
    started: datetime
    plan: CallPlan | None = None
    caller_id: str | None = None
    # False for an agent-unavailable call: the agent never got on it, so it counts in no
    # summary, changes no routing status and has no wrap-up.
    engaged: bool = True
    phase: str = _LIVE
    # Set by FakePlatform.end_acw: the after-call work ends now, with this code.
    acw_end: WrapupCode | None = None

    @property
    def foreign(self) -> bool:
        return self.plan is None

    def facts(self) -> ConversationFacts:
        """What analytics says about the call, read off its legs by participant id (so any
        pair of purposes reads the same); with no customer leg (agent unavailable) the
        agent leg says whether and how the call ended."""
        legs = {p["id"]: p for p in self.body["participants"]}
        agent = legs[self.parties.agent_participant_id]
        far = legs.get(self.parties.customer_participant_id)
        source = far if far is not None else agent
        ended = source.get("state") in ("disconnected", "terminated")
        connected = far.get("connectedTime") if far is not None else None
        return ConversationFacts(
            conversation_id=self.parties.conversation_id,
            user_id=self.parties.user_id,
            phone_number=self.parties.phone_number,
            start=self.started,
            agent_participant_id=self.parties.agent_participant_id,
            customer_participant_id=self.parties.customer_participant_id,
            caller_id=self.caller_id,
            connected=datetime.fromisoformat(connected) if connected else None,
            end=datetime.fromisoformat(source["endTime"]) if ended else None,
            disconnect_type=source.get("disconnectType") if ended else None,
        )


class CallsMixin(UsersMixin):
    """Calls: the create-call and conversation routes, play-outs, wrap-up, foreign calls."""

    timing: CallTiming
    outcome_weights: dict[Outcome, float]
    purposes: str
    disconnect_reasons: bool
    agent_hangup_rate: float
    wrapup_prompt: str
    wrapup_timeout_ms: int
    wrapup_code: WrapupCode
    _rng: random.Random
    _hangup_rng: random.Random
    _forced: dict[str, Outcome]
    _hangups: dict[str, str]
    _acw_held: set[str]
    _conversations: dict[str, Conversation]

    def _call_routes(self, routes: Routes[Endpoint]) -> None:
        def record(request: Request, response: Response, params: dict[str, Any]) -> None:
            self._record_call(params["user_id"], request, response)

        calls = "/api/v2/conversations/calls"
        # Recorded whatever the answer, a refusal or an injected failure included.
        routes.add(
            "POST", f"{calls}/user/{{user_id}}", Endpoint(self._h_create_call, record=record)
        )
        routes.add("GET", f"{calls}/{{conversation_id}}", Endpoint(self._h_get_call))

    def set_outcome(self, phone_number: str, outcome: Outcome | None) -> None:
        """Force how calls to ``phone_number`` end (None returns it to the seeded draw).

        An ``Offline`` agent's call still ends ``AGENT_UNAVAILABLE`` whatever is forced.
        """
        if outcome is None:
            self._forced.pop(phone_number, None)
        else:
            self._forced[phone_number] = Outcome(outcome)

    def set_hangup(self, phone_number: str, by: str | None) -> None:
        """Who ends answered calls to ``phone_number``: ``"customer"`` (customer leg
        ``endpoint``, agent leg ``peer``) or ``"agent"`` (agent leg ``client``, customer
        leg ``peer``; a call that is not answered the agent then abandons while it
        rings). None returns the number to the seeded ``agent_hangup_rate``."""
        if by is None:
            self._hangups.pop(phone_number, None)
        elif by in ("customer", "agent"):
            self._hangups[phone_number] = by
        else:
            raise ValueError(f"by must be 'customer', 'agent' or None, not {by!r}")

    def hold_acw(self, user_id: str, hold: bool = True) -> None:
        """Keep an agent in after-call work until :meth:`end_acw` ends it (``hold=False``
        lets the agent's overdue wrap-ups finish now, and later ones on time)."""
        self._agent(user_id)
        if hold:
            self._acw_held.add(user_id)
        else:
            self._acw_held.discard(user_id)
        self._notify()

    async def end_acw(self, conversation_id: str, code: WrapupCode | None = None) -> dict[str, Any]:
        """End a call's after-call work now, with ``code`` (default :attr:`wrapup_code`);
        return the final body once published (agent leg ``terminated``, ``wrapup``).

        Raises :class:`KeyError` for an unknown conversation and :class:`ValueError`
        for one that is not in after-call work.
        """
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise KeyError(f"{conversation_id!r} is not a conversation of the fake")
        if conversation.phase != _ACW:
            raise ValueError(f"conversation {conversation_id} is not in after-call work")
        conversation.acw_end = code or self.wrapup_code
        self._notify()
        await self._until(lambda: conversation.phase == _DONE)
        return conversation.body

    async def start_foreign_call(
        self,
        user_id: str,
        *,
        phone_number: str,
        direction: str = "inbound",
        queue_id: str | None = None,
    ) -> str:
        """Put an agent on a call outdial did not place; return its conversation id.

        ``direction`` ``"inbound"`` (the customer called in; the agent's station
        alerts, then the agent answers) or ``"outbound"`` (the agent dialed by hand;
        the customer answers). With ``queue_id`` it is an ACD call. Its events
        (``conversations.calls``, the summary, routing status changes), the REST
        reads and analytics all show it as any other call. It lasts until
        :meth:`end_foreign_call`.
        """
        agent = self._agent(user_id)
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
        try:
            check_phone_number(phone_number, "phoneNumber")
        except ApiError as error:
            raise ValueError(error.message) from None
        parties = _new_parties(user_id, phone_number)
        now = self._clock.now()
        style = self._call_style(queue_id, direction)
        bodies = foreign_call_script(parties, style, now)
        conversation = Conversation(parties, style, bodies[0], now)
        self._conversations[parties.conversation_id] = conversation
        load = CallLoad(style.acd, CallPhase.ACTIVE)
        await self._apply(change_call(agent, parties.conversation_id, load, now))
        for body in bodies:
            conversation.body = body
            self._notify()
            await self.publish(f"v2.users.{user_id}.conversations.calls", body)
        emit(
            _log,
            "fake.call.foreign",
            user_id=user_id,
            conversation_id=parties.conversation_id,
            direction=direction,
        )
        return parties.conversation_id

    async def end_foreign_call(
        self, conversation_id: str, *, by: str = "customer"
    ) -> dict[str, Any]:
        """Hang up a call started with :meth:`start_foreign_call`; return its ended body.

        ``by`` ``"customer"`` (customer leg ``endpoint``, agent leg ``peer``) or
        ``"agent"`` (agent leg ``client``, customer leg ``peer``). An ACD call's
        after-call work follows as for any other. Raises :class:`KeyError` for a
        conversation that is not a foreign call and :class:`ValueError` for one
        that has already ended.
        """
        conversation = self._conversations.get(conversation_id)
        if conversation is None or not conversation.foreign:
            raise KeyError(f"{conversation_id!r} is not a foreign call of the fake")
        if by not in ("customer", "agent"):
            raise ValueError(f"by must be 'customer' or 'agent', not {by!r}")
        if conversation.phase != _LIVE:
            raise ValueError(f"foreign call {conversation_id} has already ended")
        conversation.phase = _ENDING
        parties = conversation.parties
        conversation.body = hang_up(
            conversation.body,
            parties,
            conversation.style,
            self._clock.now(),
            "customer" if by == "customer" else "agent",
        )
        self._notify()
        await self.publish(f"v2.users.{parties.user_id}.conversations.calls", conversation.body)
        await self._after_call(conversation)
        return conversation.body

    async def publish_call_event(
        self,
        user_id: str,
        phone_number: str,
        state: str = "disconnected",
        disconnect_type: str | None = "peer",
        *,
        answered: bool = True,
        conversation_id: str | None = None,
    ) -> dict[str, Any]:
        """Publish one ``v2.users.{id}.conversations.calls`` event for a made-up call; return
        its body.

        The customer leg (purposes ``agent``/``customer``) is in ``state``
        (``dialing``, ``alerting``, ``connected``, ``disconnected``); a disconnected
        one carries ``disconnect_type`` (``peer``: the agent hung up; ``endpoint``:
        the customer did) and, when ``answered``, a ``connectedTime``; the agent leg
        then ends with the disconnect type that goes with it. The call is not
        placed: nothing is recorded and no agent state changes (for a call that
        does count, see :meth:`start_foreign_call`).
        """
        now = self._clock.now()
        parties = _new_parties(user_id, phone_number, conversation_id)
        customer: dict[str, Any] = {"state": state}
        if state == "connected" or (state == "disconnected" and answered):
            customer["connectedTime"] = iso_ms(now)
        end: float | None = None
        if state == "disconnected":
            end = 0.0
            customer["endTime"] = iso_ms(now)
            if disconnect_type is not None:
                customer["disconnectType"] = disconnect_type
        body = conversation_body(parties, now, 0.0, customer, end)
        await self.publish(f"v2.users.{user_id}.conversations.calls", body)
        return body

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation body as it is now (as ``GET .../calls/{id}`` returns it)."""
        conv = self._conversations.get(conversation_id)
        return None if conv is None else conv.body

    async def wait_for_calls(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> list[RecordedCall]:
        """Wait until ``n`` calls were accepted; raise :class:`TimeoutError` after ``timeout``."""
        await self.wait_for(lambda: len(self.recorded.accepted_calls) >= n, timeout)
        return self.recorded.accepted_calls

    async def _h_create_call(self, request: Request, user_id: str) -> Response:
        agent = self._require_agent(user_id)
        call, dial = validate_create_call(parse_json(request.body))
        if dial is None:
            raise ApiError(
                400,
                "not.supported",
                "The fake platform places calls to a phone number only; {field} is not simulated",
                {"field": "callQueueId/callUserId/conversationIds/participants"},
                [FieldDetail("phoneNumber", "required")],
            )
        # Drawn for every call from its own stream, so it never shifts outcomes or timings.
        drawn = self._hangup_rng.random() < self.agent_hangup_rate
        pinned = self._hangups.get(dial.number)
        plan = plan_call(
            self._rng,
            self.timing,
            self.outcome_weights,
            forced=self._forced.get(dial.number),
            reachable=dial.reachable,
            # An Offline agent has no station for the platform to ring (see script.py).
            agent_available=agent.presence != _OFFLINE,
            agent_hangs_up=drawn if pinned is None else pinned == "agent",
        )
        parties = _new_parties(user_id, dial.number)
        style = self._call_style(call.call_from_queue_id, "outbound")
        started = self._clock.now()
        steps = call_script(plan, parties, self.timing, started, style)
        conversation = Conversation(
            parties,
            style,
            steps[0].body,
            started,
            plan,
            call.caller_id,
            engaged=plan.outcome is not Outcome.AGENT_UNAVAILABLE,
        )
        self._conversations[parties.conversation_id] = conversation
        # The agent is on the call from the moment the platform accepts it, so a REST
        # re-read right after the POST already counts it; the call events follow. Not so
        # when the agent's own leg never comes up: the agent never gets on that call.
        if conversation.engaged:
            load = CallLoad(style.acd, CallPhase.ACTIVE)
            await self._apply(change_call(agent, parties.conversation_id, load, started))
        self._task_group.start_soon(self._play_call, conversation, steps)
        emit(
            _log,
            "fake.call.placed",
            user_id=user_id,
            conversation_id=parties.conversation_id,
            outcome=plan.outcome.value,
            label=call.label,
        )
        conversation_id = parties.conversation_id
        return Response.json(
            200,
            {"id": conversation_id, "selfUri": f"/api/v2/conversations/calls/{conversation_id}"},
        )

    def _call_style(self, queue_id: str | None, direction: str) -> CallStyle:
        agent_purpose, far_purpose = purposes_for(self.purposes, queue_id)
        return CallStyle(
            agent_purpose=agent_purpose,
            far_purpose=far_purpose,
            direction="inbound" if direction == "inbound" else "outbound",
            queue_id=queue_id,
            wrapup_prompt=self.wrapup_prompt,
            wrapup_timeout_ms=self.wrapup_timeout_ms,
            disconnect_reasons=self.disconnect_reasons,
        )

    async def _play_call(self, conversation: Conversation, steps: Sequence[CallStep]) -> None:
        topic = f"v2.users.{conversation.parties.user_id}.conversations.calls"
        for step in steps:
            await anyio.sleep(step.delay)
            conversation.body = step.body
            self._notify()
            await self.publish(topic, step.body)
        emit(
            _log,
            "fake.call.ended",
            conversation_id=conversation.parties.conversation_id,
            outcome=conversation.plan.outcome.value if conversation.plan else None,
        )
        conversation.phase = _ENDING
        await self._after_call(conversation)

    async def _after_call(self, conversation: Conversation) -> None:
        """The agent leg has ended: an ACD call goes into after-call work, any other is over
        for the agent."""
        if not conversation.engaged:
            conversation.phase = _DONE
            self._notify()
            return
        parties = conversation.parties
        agent = self._agents[parties.user_id]
        now = self._clock.now()
        if conversation.style.acd:
            conversation.phase = _ACW
            load = CallLoad(True, CallPhase.ACW)
            await self._apply(change_call(agent, parties.conversation_id, load, now))
            self._task_group.start_soon(self._after_call_work, conversation)
        else:
            conversation.phase = _DONE
            await self._apply(change_call(agent, parties.conversation_id, None, now))

    async def _after_call_work(self, conversation: Conversation) -> None:
        """Wrap up for ``timing.wrapup`` seconds (longer while :meth:`hold_acw` holds the
        agent, shorter when :meth:`end_acw` ends it), then publish the terminated leg."""
        parties = conversation.parties
        began = anyio.current_time()
        with anyio.move_on_after(self.timing.wrapup):
            await self._until(lambda: conversation.acw_end is not None)
        await self._until(
            lambda: conversation.acw_end is not None or parties.user_id not in self._acw_held
        )
        agent_leg = next(
            p for p in conversation.body["participants"] if p["id"] == parties.agent_participant_id
        )
        # On the call's own timeline (its bodies carry planned times, not the clock's).
        started = datetime.fromisoformat(agent_leg.get("startAcwTime") or agent_leg["endTime"])
        end = started + timedelta(seconds=anyio.current_time() - began)
        code = conversation.acw_end or self.wrapup_code
        conversation.body = wrapup_done(conversation.body, parties, end, code)
        self._notify()
        await self.publish(f"v2.users.{parties.user_id}.conversations.calls", conversation.body)
        agent = self._agents[parties.user_id]
        await self._apply(change_call(agent, parties.conversation_id, None, self._clock.now()))
        conversation.phase = _DONE
        self._notify()
        emit(_log, "fake.call.wrapped_up", conversation_id=parties.conversation_id)

    async def _h_get_call(self, request: Request, conversation_id: str) -> Response:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise not_found("Conversation", "conversationId", conversation_id)
        return Response.json(200, conversation.body)

    def _record_call(self, user_id: str, request: Request, response: Response) -> None:
        try:
            payload: Any = json.loads(request.body) if request.body.strip() else None
        except ValueError:
            payload = request.body.decode("utf-8", "replace")
        conversation_id: str | None = None
        plan: CallPlan | None = None
        if response.status == 200:
            conversation_id = json.loads(response.body)["id"]
            plan = self._conversations[conversation_id].plan
        self.recorded.call_requests.append(
            RecordedCall(user_id, payload, conversation_id, response.status, plan)
        )
        self._notify()


def _new_parties(
    user_id: str, phone_number: str, conversation_id: str | None = None
) -> CallParties:
    return CallParties(
        conversation_id=conversation_id or str(uuid.uuid4()),
        user_id=user_id,
        phone_number=phone_number,
        agent_participant_id=str(uuid.uuid4()),
        customer_participant_id=str(uuid.uuid4()),
    )
