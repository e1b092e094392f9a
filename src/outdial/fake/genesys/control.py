"""The fake Genesys platform's control endpoints (``/fake/...``), listed in
:mod:`outdial.fake.control`.

The security checks and the request cycle are the common ones
(:mod:`outdial.fake.common.control`); here are the Genesys handlers, the
route table, and the control token of each platform.
"""

from __future__ import annotations

import secrets
import weakref
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from outdial.fake.common.control import (
    ControlEndpoints,
    ControlHandler,
    json_object,
    optional_field,
    required_field,
)
from outdial.fake.common.routes import Routes
from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.schedule import Fault
from outdial.fake.script import Outcome, WrapupCode
from outdial.http import Request, Response

if TYPE_CHECKING:
    from outdial.fake.genesys.platform import FakePlatform
    from outdial.fake.genesys.recorded import Recorded
    from outdial.fake.proxy import FaultProxy

__all__ = ["control_headers", "control_token", "handle_control", "proxy_json", "recorded_json"]

_FAULTS = TypeAdapter(list[Fault])

# One token per platform, made the first time it is asked for (the banner asks
# at start); kept beside the platform rather than on it, and gone with it.
_TOKENS: weakref.WeakKeyDictionary[FakePlatform, str] = weakref.WeakKeyDictionary()


def control_token(platform: FakePlatform) -> str:
    """The token ``platform``'s control endpoints require (random, one per platform)."""
    token = _TOKENS.get(platform)
    if token is None:
        token = _TOKENS[platform] = secrets.token_urlsafe(24)
    return token


def control_headers(platform: FakePlatform) -> dict[str, str]:
    """The header that authorizes a request to ``platform``'s control endpoints."""
    return {"Authorization": f"Bearer {control_token(platform)}"}


async def handle_control(platform: FakePlatform, request: Request) -> Response:
    """Answer one ``/fake/...`` request: the common checks
    (:func:`~outdial.fake.common.control.control_refusal`), then its handler."""
    return await _ENDPOINTS.answer(
        platform, request, token=control_token(platform), control_url=platform.control_url
    )


def _validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    name = f"{prefix}{where}" if prefix else where
    return ApiError(
        400,
        "bad.request",
        "Invalid value for {field}: {reason}",
        {"field": name, "reason": first["msg"]},
        [FieldDetail(name, "invalid.value")],
    )


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} is required (a string)",
            {"field": key},
            [FieldDetail(key, "required")],
        )
    return value


async def _state(platform: FakePlatform, request: Request) -> dict[str, Any]:
    return {
        "agents": [
            {
                "userId": user,
                "presence": platform.agent_presence(user),
                "routingStatus": platform.agent_routing_status(user),
                "calls": platform.conversation_summary(user)["call"],
            }
            for user in platform.agents
        ],
        "channels": [
            {
                "id": channel_id,
                "connected": channel_id in platform.connected_channels,
                "topics": platform.channel_topics(channel_id),
            }
            for channel_id in platform.live_channels
        ],
        "proxies": {name: proxy_json(proxy) for name, proxy in platform.proxies.items()},
        "heartbeatsEnabled": platform.heartbeats_enabled,
        "answerPings": platform.answer_pings,
        "pingsReceived": platform.pings_received,
        "stalledRequests": platform.stalled_requests,
        "eventsPending": platform.events_pending,
    }


def proxy_json(proxy: FaultProxy) -> dict[str, Any]:
    """A proxy's address and counters, as ``GET /fake/state`` shows them."""
    return {
        "port": proxy.port,
        "frozen": proxy.frozen,
        "activeConnections": proxy.active_connections,
        "connectionsAccepted": proxy.connections_accepted,
        "connectionsRefused": proxy.connections_refused,
        "connectionsReset": proxy.connections_reset,
        "bytesToTarget": proxy.bytes_to_target,
        "bytesToClient": proxy.bytes_to_client,
        "bytesDiscarded": proxy.bytes_discarded,
    }


def recorded_json(recorded: Recorded) -> dict[str, Any]:
    """What the platform recorded, as ``GET /fake/recorded`` answers it."""
    return {
        "tokenRequests": [
            {"clientId": t.client_id, "granted": t.granted} for t in recorded.token_requests
        ],
        "channels": list(recorded.channels),
        "subscriptionChanges": [
            {"channelId": c.channel_id, "method": c.method, "topics": list(c.topics)}
            for c in recorded.subscription_changes
        ],
        "callRequests": [
            {
                "userId": c.user_id,
                "payload": c.payload,
                "status": c.status,
                "conversationId": c.conversation_id,
                "outcome": c.plan.outcome.value if c.plan is not None else None,
            }
            for c in recorded.call_requests
        ],
    }


async def _recorded(platform: FakePlatform, request: Request) -> dict[str, Any]:
    return recorded_json(platform.recorded)


async def _fault(platform: FakePlatform, request: Request, kind: str) -> dict[str, Any]:
    body = json_object(request, required=False)
    try:
        fault = Fault.model_validate({**body, "kind": kind})
    except ValidationError as exc:
        raise _validation_error(exc) from None
    await platform.apply_fault(fault)
    return {"applied": fault.model_dump(exclude_none=True)}


async def _schedule(platform: FakePlatform, request: Request) -> dict[str, Any]:
    body = json_object(request)
    try:
        faults = _FAULTS.validate_python(body.get("faults"))
    except ValidationError as exc:
        raise _validation_error(exc, "faults.") from None
    run = platform.run_schedule(faults)
    return {"steps": len(run.steps)}


async def _clear(platform: FakePlatform, request: Request) -> dict[str, Any]:
    platform.clear_faults()
    return {"cleared": True}


async def _publish(platform: FakePlatform, request: Request) -> dict[str, Any]:
    body = json_object(request)
    topic = _text(body, "topic")
    event = body.get("body", {})
    if not isinstance(event, dict):
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be a JSON object",
            {"field": "body"},
            [FieldDetail("body", "invalid.value")],
        )
    return {"delivered": await platform.publish(topic, event)}


async def _presence(platform: FakePlatform, request: Request, user_id: str) -> dict[str, Any]:
    body = json_object(request)
    presence = _text(body, "systemPresence")
    routing = body.get("routingStatus")
    if routing is not None and not isinstance(routing, str):
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be a string",
            {"field": "routingStatus"},
            [FieldDetail("routingStatus", "invalid.value")],
        )
    await platform.set_presence(user_id, presence, routing)
    return {
        "userId": user_id,
        "presence": platform.agent_presence(user_id),
        "routingStatus": platform.agent_routing_status(user_id),
    }


async def _start_call(platform: FakePlatform, request: Request, user_id: str) -> dict[str, Any]:
    body = json_object(request)
    conversation_id = await platform.start_foreign_call(
        user_id,
        phone_number=_text(body, "phoneNumber"),
        direction=optional_field(body, "direction", str, "'inbound' or 'outbound'") or "inbound",
        queue_id=optional_field(body, "queueId", str, "a queue id (a string)"),
    )
    return {"conversationId": conversation_id}


async def _end_call(
    platform: FakePlatform, request: Request, conversation_id: str
) -> dict[str, Any]:
    body = json_object(request, required=False)
    by = optional_field(body, "by", str, "'customer' or 'agent'") or "customer"
    return {"conversation": await platform.end_foreign_call(conversation_id, by=by)}


async def _hold_acw(platform: FakePlatform, request: Request, user_id: str) -> dict[str, Any]:
    hold = required_field(json_object(request), "hold", bool, "true or false")
    platform.hold_acw(user_id, hold)
    return {"userId": user_id, "hold": hold}


async def _wrapup(platform: FakePlatform, request: Request, conversation_id: str) -> dict[str, Any]:
    body = json_object(request, required=False)
    code = optional_field(body, "code", str, "a wrap-up code id (a string)")
    name = optional_field(body, "name", str, "a wrap-up code name (a string)")
    chosen = None
    if code is not None or name is not None:
        default = platform.wrapup_code
        chosen = WrapupCode(code or default.code, name or default.name)
    return {"conversation": await platform.end_acw(conversation_id, chosen)}


async def _expand(platform: FakePlatform, request: Request, expand: str) -> dict[str, Any]:
    body = json_object(request, required=False)
    rate = body.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be a number from 0 to 1",
            {"field": "rate"},
            [FieldDetail("rate", "invalid.value")],
        )
    single = bool(optional_field(body, "single", bool, "true or false"))
    user_id = optional_field(body, "userId", str, "a user id (a string)")
    platform.drop_expand(user_id, expand, float(rate), single=single)
    return {"expand": expand, "userId": user_id, "rate": rate, "single": single}


async def _hangup(platform: FakePlatform, request: Request, number: str) -> dict[str, Any]:
    body = json_object(request)
    by = body.get("by")
    if by not in (None, "customer", "agent"):
        raise ApiError(
            400,
            "bad.request",
            "Invalid value for {field}: 'customer', 'agent' or null",
            {"field": "by"},
            [FieldDetail("by", "invalid.value")],
        )
    platform.set_hangup(number, by)
    return {"phoneNumber": number, "by": by}


async def _outcome(platform: FakePlatform, request: Request, number: str) -> dict[str, Any]:
    body = json_object(request)
    raw = body.get("outcome")
    try:
        outcome = None if raw is None else Outcome(raw)
    except ValueError:
        raise ApiError(
            400,
            "bad.request",
            "Invalid value for {field}: one of {allowed} or null",
            {"field": "outcome", "allowed": ", ".join(o.value for o in Outcome)},
            [FieldDetail("outcome", "invalid.value")],
        ) from None
    platform.set_outcome(number, outcome)
    return {"phoneNumber": number, "outcome": None if outcome is None else outcome.value}


def _routes() -> Routes[ControlHandler]:
    routes: Routes[ControlHandler] = Routes()
    routes.add("GET", "/fake/state", _state)
    routes.add("GET", "/fake/recorded", _recorded)
    routes.add("POST", "/fake/faults/{kind}", _fault)
    routes.add("POST", "/fake/schedule", _schedule)
    routes.add("POST", "/fake/clear", _clear)
    routes.add("POST", "/fake/publish", _publish)
    routes.add("PUT", "/fake/agents/{user_id}/presence", _presence)
    routes.add("POST", "/fake/agents/{user_id}/calls", _start_call)
    routes.add("POST", "/fake/calls/{conversation_id}/end", _end_call)
    routes.add("PUT", "/fake/agents/{user_id}/acw", _hold_acw)
    routes.add("POST", "/fake/calls/{conversation_id}/wrapup", _wrapup)
    routes.add("PUT", "/fake/expands/{expand}", _expand)
    routes.add("PUT", "/fake/outcomes/{number}", _outcome)
    routes.add("PUT", "/fake/hangups/{number}", _hangup)
    return routes


_ENDPOINTS: ControlEndpoints[FakePlatform] = ControlEndpoints(
    _routes(), id_header="ININ-Correlation-Id"
)
