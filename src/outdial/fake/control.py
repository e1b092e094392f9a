"""Control endpoints under ``/fake/`` on the fake's REST port, for driving a fake that runs in
another process (``outdial fake-server``) from any language or ``curl``.

They are never failed, stalled or slowed by REST faults, and are not
recorded. Errors use the platform's error body (``details`` names the
field). :attr:`FakePlatform.control_url
<outdial.fake.platform.FakePlatform.control_url>` is their base URL.

Anyone who can reach them can place calls and end them, so each request must
carry the platform's control token, ``Authorization: Bearer <token>``
(:func:`control_token`; ``outdial fake-server`` prints it as
``control_token``, :func:`control_headers` builds the header, the pytest
plugin's ``fake_control`` client sends it); without it the answer is 401.
Before the token, two checks keep a web page in the user's browser out (it
could otherwise POST here, or read answers through DNS rebinding), each a
403: the ``Host`` header must name a loopback address or ``localhost``, the
address the connection arrived at, or the host of ``control_url``; and a
request a browser marks as from elsewhere (an ``Origin`` other than the
fake's own, or ``Sec-Fetch-Site`` other than ``same-origin``/``none``) is
refused.

==============================================  ==================================================
``GET  /fake/state``                            agents (presence, routing status, call counts),
                                                channels, proxies' counters, pending faults
``GET  /fake/recorded``                         token requests, channels, subscription changes,
                                                calls
``POST /fake/faults/{kind}``                    apply one fault now; body: its parameters (JSON
                                                object, optional), ``duration`` to undo it later
``POST /fake/schedule``                         play a schedule; body ``{"faults": [{"at",
                                                "kind", ...}, ...]}``
``POST /fake/clear``                            end every fault
                                                (:meth:`FakePlatform.clear_faults`)
``POST /fake/publish``                          body ``{"topic", "body"}``; answer
                                                ``{"delivered"}``
``PUT  /fake/agents/{userId}/presence``         body ``{"systemPresence", "routingStatus"?}``
                                                (any case; routing only ``NOT_RESPONDING``)
``POST /fake/agents/{userId}/calls``            start a foreign call (inbound or dialed by
                                                hand); body ``{"phoneNumber", "direction"?:
                                                "inbound"|"outbound", "queueId"?}``; answer
                                                ``{"conversationId"}``
``POST /fake/calls/{conversationId}/end``       hang up a foreign call; body ``{"by"?:
                                                "customer"|"agent"}``; answer ``{"conversation"}``
``PUT  /fake/agents/{userId}/acw``              body ``{"hold": true|false}``: keep the agent in
                                                after-call work until ended
``POST /fake/calls/{conversationId}/wrapup``    end a call's after-call work now; body
                                                ``{"code"?, "name"?}``; answer
                                                ``{"conversation"}``
``PUT  /fake/expands/{expand}``                 leave ``presence``, ``routingStatus`` or
                                                ``conversationSummary`` out of users reads; body
                                                ``{"rate"?: 0..1, "single"?: bool, "userId"?}``
``PUT  /fake/outcomes/{phoneNumber}``           body ``{"outcome": "busy"|...|null}``
``PUT  /fake/hangups/{phoneNumber}``            who ends answered calls to the number: body
                                                ``{"by": "customer"|"agent"|null}``
==============================================  ==================================================
"""

from __future__ import annotations

import secrets
import uuid
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from outdial.config import is_loopback_host
from outdial.fake.errors import ApiError, FieldDetail, status_error
from outdial.fake.schedule import Fault
from outdial.fake.script import Outcome, WrapupCode
from outdial.fake.validation import parse_json
from outdial.http import Request, Response, Router

if TYPE_CHECKING:
    from outdial.fake.platform import FakePlatform, Recorded
    from outdial.fake.proxy import FaultProxy

__all__ = [
    "CONTROL_PREFIX",
    "control_headers",
    "control_refusal",
    "control_token",
    "handle_control",
    "proxy_json",
    "recorded_json",
]

CONTROL_PREFIX = "/fake"
"""Every control endpoint's path starts with this."""

_FAULTS = TypeAdapter(list[Fault])


def _router() -> Router:
    router = Router()
    router.add("GET", "/fake/state", "state")
    router.add("GET", "/fake/recorded", "recorded")
    router.add("POST", "/fake/faults/{kind}", "fault")
    router.add("POST", "/fake/schedule", "schedule")
    router.add("POST", "/fake/clear", "clear")
    router.add("POST", "/fake/publish", "publish")
    router.add("PUT", "/fake/agents/{user_id}/presence", "presence")
    router.add("POST", "/fake/agents/{user_id}/calls", "start_call")
    router.add("POST", "/fake/calls/{conversation_id}/end", "end_call")
    router.add("PUT", "/fake/agents/{user_id}/acw", "hold_acw")
    router.add("POST", "/fake/calls/{conversation_id}/wrapup", "wrapup")
    router.add("PUT", "/fake/expands/{expand}", "expand")
    router.add("PUT", "/fake/outcomes/{number}", "outcome")
    router.add("PUT", "/fake/hangups/{number}", "hangup")
    return router


_ROUTER = _router()

# One token per platform, made the first time it is asked for (the banner asks
# at start); kept beside the platform rather than on it, and gone with it.
_TOKENS: weakref.WeakKeyDictionary[FakePlatform, str] = weakref.WeakKeyDictionary()

#: ``Sec-Fetch-Site`` values a browser sends for the fake's own pages or a typed URL.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def control_token(platform: FakePlatform) -> str:
    """The token ``platform``'s control endpoints require (random, one per platform)."""
    token = _TOKENS.get(platform)
    if token is None:
        token = _TOKENS[platform] = secrets.token_urlsafe(24)
    return token


def control_headers(platform: FakePlatform) -> dict[str, str]:
    """The header that authorizes a request to ``platform``'s control endpoints."""
    return {"Authorization": f"Bearer {control_token(platform)}"}


def control_refusal(
    request: Request, *, token: str, own_hosts: frozenset[str] = frozenset()
) -> ApiError | None:
    """Why ``request`` may not use the control endpoints (None when it may).

    ``own_hosts``: host names the fake is reached by besides loopback and the
    address the connection arrived at (``request.local_host``). Checked in
    order: the ``Host`` header (403), a cross-site browser request (403), the
    token (401).
    """
    host = request.header("host")
    if not host or not _own_host(host, request.local_host, own_hosts):
        return ApiError(
            403,
            "host.not.allowed",
            "Host {host} is not an address of the fake: use its control_url",
            {"host": host or "(none)"},
            [FieldDetail("Host", "not.allowed")],
        )
    origin = request.header("origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        return ApiError(
            403,
            "cross.site.request",
            "Requests from {origin} may not use the control endpoints",
            {"origin": origin},
            [FieldDetail("Origin", "not.allowed")],
        )
    site = request.header("sec-fetch-site")
    if site is not None and site.lower() not in _OWN_FETCH_SITES:
        return ApiError(
            403,
            "cross.site.request",
            "A {site} request may not use the control endpoints",
            {"site": site},
            [FieldDetail("Sec-Fetch-Site", "not.allowed")],
        )
    scheme, _, given = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return ApiError(
            401,
            "bad.credentials",
            "The control endpoints need Authorization: Bearer <control_token> "
            "(outdial fake-server prints it)",
            {},
            [FieldDetail("Authorization", "required")],
        )
    return None


def _own_host(header: str, local_host: str | None, own_hosts: frozenset[str]) -> bool:
    # Only names that cannot be re-pointed by someone else's DNS: loopback,
    # the address dialled, or a name the fake itself was started with.
    try:
        parts = urlsplit(f"//{header}")
        name, _port = parts.hostname, parts.port
    except ValueError:
        return False
    if not name:
        return False
    if is_loopback_host(name) or name in own_hosts:
        return True
    return local_host is not None and name == local_host.lower()


async def handle_control(platform: FakePlatform, request: Request) -> Response:
    """Answer one ``/fake/...`` request (after :func:`control_refusal` lets it through)."""
    correlation = str(uuid.uuid4())
    headers = [("ININ-Correlation-Id", correlation)]
    own = urlsplit(platform.control_url).hostname
    refusal = control_refusal(
        request, token=control_token(platform), own_hosts=frozenset({own} if own else ())
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
        payload = await handler(platform, request, **match.params)
    except ApiError as error:
        return Response.json(error.status, error.body(correlation), headers)
    except KeyError as exc:  # an agent the platform does not simulate
        refusal = ApiError(404, "not.found", "{reason}", {"reason": str(exc).strip("'\"")})
        return Response.json(404, refusal.body(correlation), headers)
    except (ValueError, RuntimeError) as exc:
        # Refusals from the platform's controls: a bad value, or a fault that
        # needs a proxy the platform was created without.
        refusal = ApiError(400, "bad.request", "{reason}", {"reason": str(exc)})
        return Response.json(400, refusal.body(correlation), headers)
    return Response.json(200, payload, headers)


def _object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = parse_json(request.body)
    if body is None and not required:
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


def _optional(body: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """``body[key]`` when present and of ``kind`` (None when absent); a 400 naming it else."""
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be " + what,
            {"field": key},
            [FieldDetail(key, "invalid.value")],
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
    body = _object(request, required=False)
    try:
        fault = Fault.model_validate({**body, "kind": kind})
    except ValidationError as exc:
        raise _validation_error(exc) from None
    await platform.apply_fault(fault)
    return {"applied": fault.model_dump(exclude_none=True)}


async def _schedule(platform: FakePlatform, request: Request) -> dict[str, Any]:
    body = _object(request)
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
    body = _object(request)
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
    body = _object(request)
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
    body = _object(request)
    conversation_id = await platform.start_foreign_call(
        user_id,
        phone_number=_text(body, "phoneNumber"),
        direction=_optional(body, "direction", str, "'inbound' or 'outbound'") or "inbound",
        queue_id=_optional(body, "queueId", str, "a queue id (a string)"),
    )
    return {"conversationId": conversation_id}


async def _end_call(
    platform: FakePlatform, request: Request, conversation_id: str
) -> dict[str, Any]:
    body = _object(request, required=False)
    by = _optional(body, "by", str, "'customer' or 'agent'") or "customer"
    return {"conversation": await platform.end_foreign_call(conversation_id, by=by)}


async def _hold_acw(platform: FakePlatform, request: Request, user_id: str) -> dict[str, Any]:
    body = _object(request)
    hold = _optional(body, "hold", bool, "true or false")
    if hold is None:
        raise ApiError(
            400,
            "bad.request",
            "The field {field} is required (true or false)",
            {"field": "hold"},
            [FieldDetail("hold", "required")],
        )
    platform.hold_acw(user_id, hold)
    return {"userId": user_id, "hold": hold}


async def _wrapup(platform: FakePlatform, request: Request, conversation_id: str) -> dict[str, Any]:
    body = _object(request, required=False)
    code = _optional(body, "code", str, "a wrap-up code id (a string)")
    name = _optional(body, "name", str, "a wrap-up code name (a string)")
    chosen = None
    if code is not None or name is not None:
        default = platform.wrapup_code
        chosen = WrapupCode(code or default.code, name or default.name)
    return {"conversation": await platform.end_acw(conversation_id, chosen)}


async def _expand(platform: FakePlatform, request: Request, expand: str) -> dict[str, Any]:
    body = _object(request, required=False)
    rate = body.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ApiError(
            400,
            "bad.request",
            "The field {field} must be a number from 0 to 1",
            {"field": "rate"},
            [FieldDetail("rate", "invalid.value")],
        )
    single = bool(_optional(body, "single", bool, "true or false"))
    user_id = _optional(body, "userId", str, "a user id (a string)")
    platform.drop_expand(user_id, expand, float(rate), single=single)
    return {"expand": expand, "userId": user_id, "rate": rate, "single": single}


async def _hangup(platform: FakePlatform, request: Request, number: str) -> dict[str, Any]:
    body = _object(request)
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
    body = _object(request)
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


_HANDLERS: dict[str, Any] = {
    "state": _state,
    "recorded": _recorded,
    "fault": _fault,
    "schedule": _schedule,
    "clear": _clear,
    "publish": _publish,
    "presence": _presence,
    "start_call": _start_call,
    "end_call": _end_call,
    "hold_acw": _hold_acw,
    "wrapup": _wrapup,
    "outcome": _outcome,
    "hangup": _hangup,
    "expand": _expand,
}
