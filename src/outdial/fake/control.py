"""Control endpoints under ``/fake/`` on the fake Genesys platform's REST port, for driving
a fake that runs in another process (``outdial fake-server``) from any language or ``curl``.

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
refused. Those checks are shared with the fake CXone
(:mod:`outdial.fake.common.control`); the handlers are in
:mod:`outdial.fake.genesys.control`.

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

from outdial.fake.common.control import CONTROL_PREFIX, control_refusal
from outdial.fake.genesys.control import (
    control_headers,
    control_token,
    handle_control,
    proxy_json,
    recorded_json,
)

__all__ = [
    "CONTROL_PREFIX",
    "control_headers",
    "control_refusal",
    "control_token",
    "handle_control",
    "proxy_json",
    "recorded_json",
]
