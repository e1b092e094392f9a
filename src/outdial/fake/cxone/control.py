"""Control endpoints of the fake CXone under ``/fake/`` on the issuer port.

The same security as the Genesys fake's (:func:`outdial.fake.common.control.control_refusal`):
the ``Host`` header must be the fake's, cross-site browser requests are
refused (403), and every request carries ``Authorization: Bearer
<control_token>`` (:attr:`FakeCxone.control_token
<outdial.fake.cxone.platform.FakeCxone.control_token>`, printed by ``outdial
fake-server --platform cxone``; 401 otherwise). Never failed, stalled or
recorded. Errors use the Genesys fake's error body (``message``, ``details``).

==========================================  =============================================
``GET  /fake/state``                        agents (state, ACW, contact), sessions,
                                            contacts, faults in force
``GET  /fake/recorded``                     tokens, sessions, dials, calls, polls,
                                            dispositions
``POST /fake/clear``                        end every fault
``POST /fake/faults/{kind}``                one fault now; body: its parameters (below)
``PUT  /fake/agents/{agentId}/state``       ``{"state", "outReason"?}``
``PUT  /fake/agents/{agentId}/acw``         ``{"hold": true|false}``
``POST /fake/agents/{agentId}/contacts``    a foreign contact: ``{"phoneNumber",
                                            "inbound"?: true, "skillId"?}`` ->
                                            ``{"contactId"}``
``POST /fake/agents/{agentId}/events``      queue any event on the agent's session
``POST /fake/contacts/{contactId}/end``     hang up a foreign contact
``POST /fake/contacts/{contactId}/acw/end`` end a contact's after-call work now
``PUT  /fake/outcomes/{phoneNumber}``       ``{"outcome": "busy"|...|null}``
==========================================  =============================================

Fault kinds (:data:`FAULT_KINDS`) and their bodies: ``stall_polls``
``{"count"?}``, ``release_stalls``, ``storm_304`` ``{"count"}``,
``end_session`` ``{"agentId"}``, ``revoke_tokens``, ``expire_tokens``,
``fail_next`` ``{"path", "status", "count"?, "retryAfter"?, "method"?}``,
``fail_rate`` ``{"status", "rate", "path"?, "method"?}``, ``stall_next``
``{"path", "seconds", "count"?, "method"?}``, ``lose_dial`` ``{"count"?}``,
``drop_dial_answer`` ``{"count"?}``, ``duplicate_events`` ``{"copies"}``,
``proxy_freeze``, ``proxy_thaw``, ``proxy_reset`` (with ``api_proxy``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from outdial.fake.common.control import (
    ControlEndpoints,
    ControlHandler,
    json_object,
    optional_field,
    required_field,
)
from outdial.fake.common.routes import Routes
from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.script import Outcome
from outdial.http import Request, Response

if TYPE_CHECKING:
    from outdial.fake.cxone.platform import FakeCxone

__all__ = ["FAULT_KINDS", "handle_control", "recorded_json", "state_json"]


def state_json(cxone: FakeCxone) -> dict[str, Any]:
    """What ``GET /fake/state`` answers."""
    agents = []
    for agent_id in cxone.agents:
        agent = cxone.agent(agent_id)
        agents.append(
            {
                "agentId": agent_id,
                "state": agent.current_state,
                "ownState": agent.state,
                "outReason": agent.out_reason,
                "isAcw": agent.acw,
                "contactId": agent.contact_id,
                "sessionId": cxone.current_session_id(agent_id),
                "skills": [dataclasses.asdict(s) for s in agent.skills],
            }
        )
    return {
        "issuerUrl": cxone.issuer_url,
        "apiUrl": cxone.api_url,
        "agents": agents,
        "contacts": [
            {
                "contactId": c.contact_id,
                "agentId": c.agent_id,
                "status": c.status,
                "finalState": c.final,
                "outcome": c.outcome.value if c.outcome else None,
                "dnis": c.dnis,
            }
            for c in cxone.contacts
        ],
        "stalledPolls": cxone.stalled_polls,
        "overlappingPolls": cxone.overlapping_polls,
        "duplicateEvents": cxone.duplicate_events,
    }


def recorded_json(cxone: FakeCxone) -> dict[str, Any]:
    """What ``GET /fake/recorded`` answers: every recording, as lists of objects."""
    recorded = cxone.recorded
    return {
        name: [item._asdict() for item in getattr(recorded, name)]
        for name in ("token_requests", "sessions", "dials", "calls", "polls", "dispositions")
    }


async def _state(cxone: FakeCxone, request: Request) -> dict[str, Any]:
    return state_json(cxone)


async def _recorded(cxone: FakeCxone, request: Request) -> dict[str, Any]:
    return recorded_json(cxone)


async def _clear(cxone: FakeCxone, request: Request) -> dict[str, Any]:
    cxone.clear_faults()
    return {"cleared": True}


def _count(body: dict[str, Any], default: int | None = 1) -> int | None:
    value = optional_field(body, "count", int, "a positive integer")
    return default if value is None else int(value)


async def _fault(cxone: FakeCxone, request: Request, kind: str) -> dict[str, Any]:
    body = json_object(request, required=False)
    number = (int, float)
    if kind == "stall_polls":
        cxone.stall_polls(_count(body, None))
    elif kind == "release_stalls":
        cxone.release_stalls()
    elif kind == "storm_304":
        cxone.storm_304(required_field(body, "count", int, "a positive integer"))
    elif kind == "end_session":
        agent_id = required_field(body, "agentId", str, "an agent id")
        cxone.agent(agent_id)
        return {"kind": kind, "ended": cxone.end_session(agent_id)}
    elif kind == "revoke_tokens":
        return {"kind": kind, "revoked": cxone.revoke_tokens()}
    elif kind == "expire_tokens":
        cxone.expire_tokens()
    elif kind == "fail_next":
        cxone.fail_next(
            required_field(body, "path", str, "a path regex"),
            required_field(body, "status", int, "an HTTP status"),
            _count(body) or 1,
            optional_field(body, "retryAfter", number, "seconds"),
            method=optional_field(body, "method", str, "an HTTP method"),
        )
    elif kind == "fail_rate":
        cxone.fail_rate(
            required_field(body, "status", int, "an HTTP status"),
            float(required_field(body, "rate", number, "a number from 0 to 1")),
            optional_field(body, "path", str, "a path regex"),
            method=optional_field(body, "method", str, "an HTTP method"),
        )
    elif kind == "stall_next":
        cxone.stall_next(
            required_field(body, "path", str, "a path regex"),
            float(required_field(body, "seconds", number, "seconds")),
            optional_field(body, "method", str, "an HTTP method"),
            _count(body) or 1,
        )
    elif kind == "lose_dial":
        cxone.lose_next_dial(_count(body) or 1)
    elif kind == "drop_dial_answer":
        cxone.drop_next_dial_answer(_count(body) or 1)
    elif kind == "duplicate_events":
        copies = required_field(body, "copies", int, "a positive integer")
        if copies < 1:
            raise ValueError("copies must be at least 1")
        cxone.duplicate_events = copies
    elif kind in ("proxy_freeze", "proxy_thaw", "proxy_reset"):
        proxy = cxone.api_proxy
        {"proxy_freeze": proxy.freeze, "proxy_thaw": proxy.thaw, "proxy_reset": proxy.reset}[kind]()
    else:
        raise KeyError(f"no fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
    return {"kind": kind, "applied": True}


async def _agent_state(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    body = json_object(request, required=False)
    state = required_field(body, "state", str, "Available, Unavailable or LoggedOut")
    reason = optional_field(body, "outReason", str, "a string") or ""
    cxone.set_agent_state(agent_id, state, reason)
    return {"agentId": agent_id, "state": cxone.agent_state(agent_id)}


async def _hold_acw(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    hold = required_field(json_object(request, required=False), "hold", bool, "true or false")
    cxone.hold_acw(agent_id, hold)
    return {"agentId": agent_id, "hold": hold}


async def _start_contact(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    body = json_object(request, required=False)
    inbound = optional_field(body, "inbound", bool, "true or false")
    contact_id = await cxone.start_foreign_contact(
        agent_id,
        phone_number=required_field(body, "phoneNumber", str, "an E.164 number"),
        inbound=True if inbound is None else inbound,
        skill_id=optional_field(body, "skillId", int, "a skill id"),
    )
    return {"contactId": contact_id}


async def _publish(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    event = json_object(request, required=False)
    cxone.publish_event(agent_id, event)
    return {"agentId": agent_id, "queued": True}


def _contact_json(contact: Any) -> dict[str, Any]:
    return {"contactId": contact.contact_id, "status": contact.status, "finalState": contact.final}


async def _end_contact(cxone: FakeCxone, request: Request, contact_id: str) -> dict[str, Any]:
    return _contact_json(await cxone.end_foreign_contact(contact_id))


async def _end_acw(cxone: FakeCxone, request: Request, contact_id: str) -> dict[str, Any]:
    return _contact_json(await cxone.end_acw(contact_id))


async def _outcome(cxone: FakeCxone, request: Request, number: str) -> dict[str, Any]:
    raw = json_object(request, required=False).get("outcome")
    try:
        outcome = None if raw is None else Outcome(raw)
        cxone.set_outcome(number, outcome)
    except ValueError:
        raise ApiError(
            400,
            "bad.request",
            "Invalid value for {field}: answered, busy, no_answer, failed or null",
            {"field": "outcome"},
            [FieldDetail("outcome", "invalid.value")],
        ) from None
    return {"phoneNumber": number, "outcome": None if outcome is None else outcome.value}


FAULT_KINDS = (
    "stall_polls",
    "release_stalls",
    "storm_304",
    "end_session",
    "revoke_tokens",
    "expire_tokens",
    "fail_next",
    "fail_rate",
    "stall_next",
    "lose_dial",
    "drop_dial_answer",
    "duplicate_events",
    "proxy_freeze",
    "proxy_thaw",
    "proxy_reset",
)
"""The faults ``POST /fake/faults/{kind}`` applies."""


def _routes() -> Routes[ControlHandler]:
    routes: Routes[ControlHandler] = Routes()
    routes.add("GET", "/fake/state", _state)
    routes.add("GET", "/fake/recorded", _recorded)
    routes.add("POST", "/fake/clear", _clear)
    routes.add("POST", "/fake/faults/{kind}", _fault)
    routes.add("PUT", "/fake/agents/{agent_id}/state", _agent_state)
    routes.add("PUT", "/fake/agents/{agent_id}/acw", _hold_acw)
    routes.add("POST", "/fake/agents/{agent_id}/contacts", _start_contact)
    routes.add("POST", "/fake/agents/{agent_id}/events", _publish)
    routes.add("POST", "/fake/contacts/{contact_id}/end", _end_contact)
    routes.add("POST", "/fake/contacts/{contact_id}/acw/end", _end_acw)
    routes.add("PUT", "/fake/outcomes/{number}", _outcome)
    return routes


# A TypeError from a control is a value of the wrong kind: the caller's mistake too.
_ENDPOINTS: ControlEndpoints[FakeCxone] = ControlEndpoints(
    _routes(), id_header="X-Request-Id", bad_request=(ValueError, RuntimeError, TypeError)
)


async def handle_control(cxone: FakeCxone, request: Request) -> Response:
    """Answer one ``/fake/...`` request, after the same checks as the Genesys fake's."""
    return await _ENDPOINTS.answer(
        cxone, request, token=cxone.control_token, control_url=cxone.control_url
    )
