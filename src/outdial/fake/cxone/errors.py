"""The fake CXone's error answers (pure), in a format that is a switch.

How CXone carries an error's identifier (``InvalidSkill``, ``SessionInProgress``,
...) is not public, so :data:`ERROR_FORMATS` offers three readings and a
client must survive each: ``json`` (the default) ``{"error", "error_description"}``
as OAuth-style APIs answer (plus ``problems`` for a body that failed
validation), ``text`` (the identifier alone as ``text/plain``) and ``empty``
(the status alone). The token endpoint always answers OAuth style.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from outdial.http import Response

__all__ = ["ERROR_FORMATS", "CxoneError", "error_response", "oauth_response"]

ERROR_FORMATS = ("json", "text", "empty")
"""How API errors are written (see the module docstring)."""

_GENERIC = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass(eq=False)
class CxoneError(Exception):
    """An error answer of the fake API; raise it from a handler.

    ``code`` is the platform's identifier (``InvalidSkill``); ``problems`` the
    lines of a body that failed validation; ``retry_after`` seconds for 429/503.
    """

    status: int
    code: str = ""
    description: str = ""
    problems: Sequence[str] = ()
    retry_after: float | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.code:
            self.code = _GENERIC.get(self.status, f"Http{self.status}")
        if not self.description:
            self.description = self.code

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.description}"


def error_response(error: CxoneError, fmt: str) -> Response:
    """``error`` as the API answers it in format ``fmt`` (one of :data:`ERROR_FORMATS`)."""
    headers = list(error.headers)
    if error.retry_after is not None:
        headers.append(("Retry-After", str(max(0, int(error.retry_after + 0.999)))))
    if fmt == "empty" or error.status == 304:
        return Response.empty(error.status, headers)
    if fmt == "text":
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return Response(error.status, error.code.encode(), headers)
    body: dict[str, Any] = {"error": error.code, "error_description": error.description}
    if error.problems:
        body["problems"] = list(error.problems)
    return Response.json(error.status, body, headers)


def oauth_response(status: int, error: str, description: str) -> Response:
    """An OAuth error of the token endpoint (``invalid_client``, ``invalid_grant``, ...)."""
    data = json.dumps({"error": error, "error_description": description}).encode()
    return Response(status, data, [("Content-Type", "application/json")])
