"""Control endpoints of the fake CXone under ``/fake/`` on the issuer port.

The same security as the Genesys fake's (:func:`outdial.fake.control.control_refusal`):
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
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from outdial.fake.control import control_refusal
from outdial.fake.errors import ApiError, FieldDetail, status_error
from outdial.fake.script import Outcome
from outdial.fake.validation import parse_json
from outdial.http import Request, Response, Router

if TYPE_CHECKING:
    from outdial.fake.cxone.platform import FakeCxone

__all__ = ["FAULT_KINDS", "handle_control", "recorded_json", "state_json"]

_Handler = Callable[..., Awaitable[dict[str, Any]]]


def _router() -> Router:
    router = Router()
    router.add("GET", "/fake/state", "state")
    router.add("GET", "/fake/recorded", "recorded")
    router.add("POST", "/fake/clear", "clear")
    router.add("POST", "/fake/faults/{kind}", "fault")
    router.add("PUT", "/fake/agents/{agent_id}/state", "agent_state")
    router.add("PUT", "/fake/agents/{agent_id}/acw", "hold_acw")
    router.add("POST", "/fake/agents/{agent_id}/contacts", "start_contact")
    router.add("POST", "/fake/agents/{agent_id}/events", "publish")
    router.add("POST", "/fake/contacts/{contact_id}/end", "end_contact")
    router.add("POST", "/fake/contacts/{contact_id}/acw/end", "end_acw")
    router.add("PUT", "/fake/outcomes/{number}", "outcome")
    return router


_ROUTER = _router()


async def handle_control(cxone: FakeCxone, request: Request) -> Response:
    """Answer one ``/fake/...`` request, after the same checks as the Genesys fake's."""
    correlation = str(uuid.uuid4())
    headers = [("X-Request-Id", correlation)]
    own = urlsplit(cxone.control_url).hostname
    refusal = control_refusal(
        request, token=cxone.control_token, own_hosts=frozenset({own} if own else ())
    )
    if refusal is not None:
        if refusal.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="outdial fake control"'))
        return Response.json(refusal.status, refusal.body(correlation), headers)
    match = _ROUTER.resolve(request.method, request.path)
    try:
        if isinstance(match, int):
            raise status_error(match)
        handler = _HANDLERS[match.route.name]
        payload = await handler(cxone, request, **match.params)
    except ApiError as error:
        return Response.json(error.status, error.body(correlation), headers)
    except KeyError as exc:
        refusal = ApiError(404, "not.found", "{reason}", {"reason": str(exc).strip("'\"")})
        return Response.json(404, refusal.body(correlation), headers)
    except (ValueError, RuntimeError, TypeError) as exc:
        refusal = ApiError(400, "bad.request", "{reason}", {"reason": str(exc)})
        return Response.json(400, refusal.body(correlation), headers)
    return Response.json(200, payload, headers)


def _object(request: Request) -> dict[str, Any]:
    body = parse_json(request.body)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "bad.request",
            "The request body must be a JSON object",
            {},
            [FieldDetail("body", "invalid.value")],
        )
    return body


def _field(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``body[key]`` (None when absent); a 400 naming it when it is not ``kind``."""
    value = body.get(key)
    # A JSON true is a Python int too: only a bool field takes it.
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if value is not None and wrong:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be " + what,
            {"field": key},
            [FieldDetail(key, "invalid.value")],
        )
    return value


def _required(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = _field(body, key, kind, what)
    if value is None:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} is required (" + what + ")",
            {"field": key},
            [FieldDetail(key, "required")],
        )
    return value


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
    value = _field(body, "count", int, "a positive integer")
    return default if value is None else int(value)


async def _fault(cxone: FakeCxone, request: Request, kind: str) -> dict[str, Any]:
    body = _object(request)
    number = (int, float)
    if kind == "stall_polls":
        cxone.stall_polls(_count(body, None))
    elif kind == "release_stalls":
        cxone.release_stalls()
    elif kind == "storm_304":
        cxone.storm_304(_required(body, "count", int, "a positive integer"))
    elif kind == "end_session":
        agent_id = _required(body, "agentId", str, "an agent id")
        cxone.agent(agent_id)
        return {"kind": kind, "ended": cxone.end_session(agent_id)}
    elif kind == "revoke_tokens":
        return {"kind": kind, "revoked": cxone.revoke_tokens()}
    elif kind == "expire_tokens":
        cxone.expire_tokens()
    elif kind == "fail_next":
        cxone.fail_next(
            _required(body, "path", str, "a path regex"),
            _required(body, "status", int, "an HTTP status"),
            _count(body) or 1,
            _field(body, "retryAfter", number, "seconds"),
            method=_field(body, "method", str, "an HTTP method"),
        )
    elif kind == "fail_rate":
        cxone.fail_rate(
            _required(body, "status", int, "an HTTP status"),
            float(_required(body, "rate", number, "a number from 0 to 1")),
            _field(body, "path", str, "a path regex"),
            method=_field(body, "method", str, "an HTTP method"),
        )
    elif kind == "stall_next":
        cxone.stall_next(
            _required(body, "path", str, "a path regex"),
            float(_required(body, "seconds", number, "seconds")),
            _field(body, "method", str, "an HTTP method"),
            _count(body) or 1,
        )
    elif kind == "lose_dial":
        cxone.lose_next_dial(_count(body) or 1)
    elif kind == "drop_dial_answer":
        cxone.drop_next_dial_answer(_count(body) or 1)
    elif kind == "duplicate_events":
        copies = _required(body, "copies", int, "a positive integer")
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
    body = _object(request)
    state = _required(body, "state", str, "Available, Unavailable or LoggedOut")
    reason = _field(body, "outReason", str, "a string") or ""
    cxone.set_agent_state(agent_id, state, reason)
    return {"agentId": agent_id, "state": cxone.agent_state(agent_id)}


async def _hold_acw(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    hold = _required(_object(request), "hold", bool, "true or false")
    cxone.hold_acw(agent_id, hold)
    return {"agentId": agent_id, "hold": hold}


async def _start_contact(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    body = _object(request)
    inbound = _field(body, "inbound", bool, "true or false")
    contact_id = await cxone.start_foreign_contact(
        agent_id,
        phone_number=_required(body, "phoneNumber", str, "an E.164 number"),
        inbound=True if inbound is None else inbound,
        skill_id=_field(body, "skillId", int, "a skill id"),
    )
    return {"contactId": contact_id}


async def _publish(cxone: FakeCxone, request: Request, agent_id: str) -> dict[str, Any]:
    event = _object(request)
    cxone.publish_event(agent_id, event)
    return {"agentId": agent_id, "queued": True}


def _contact_json(contact: Any) -> dict[str, Any]:
    return {"contactId": contact.contact_id, "status": contact.status, "finalState": contact.final}


async def _end_contact(cxone: FakeCxone, request: Request, contact_id: str) -> dict[str, Any]:
    return _contact_json(await cxone.end_foreign_contact(contact_id))


async def _end_acw(cxone: FakeCxone, request: Request, contact_id: str) -> dict[str, Any]:
    return _contact_json(await cxone.end_acw(contact_id))


async def _outcome(cxone: FakeCxone, request: Request, number: str) -> dict[str, Any]:
    raw = _object(request).get("outcome")
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

_HANDLERS: dict[str, _Handler] = {
    "state": _state,
    "recorded": _recorded,
    "clear": _clear,
    "fault": _fault,
    "agent_state": _agent_state,
    "hold_acw": _hold_acw,
    "start_contact": _start_contact,
    "publish": _publish,
    "end_contact": _end_contact,
    "end_acw": _end_acw,
    "outcome": _outcome,
}
