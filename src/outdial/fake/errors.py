"""Error answers in the platform's own shapes (pure: values in, JSON-ready dicts out).

The API answers errors with the Genesys ``ErrorBody`` (``message``, ``code``,
``status``, ``messageWithParams``, ``messageParams``, ``contextId``,
``details[{errorCode, fieldName}]``, ``errors``); the login host answers OAuth
style (``{"error", "description", "error_description"}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "FieldDetail", "oauth_error", "status_error"]


@dataclass(frozen=True, slots=True)
class FieldDetail:
    """One ``details[]`` entry: which field, and what is wrong with it."""

    field_name: str
    error_code: str

    def to_json(self) -> dict[str, str]:
        """The wire shape, ``{"errorCode", "fieldName"}``."""
        return {"errorCode": self.error_code, "fieldName": self.field_name}


@dataclass(eq=False)
class ApiError(Exception):
    """An error answer the fake API gives; raise it from a handler or return its body.

    ``message_with_params`` is the template with ``{name}`` placeholders and
    ``message_params`` the values; ``message`` is the template filled in.
    """

    status: int
    code: str
    message_with_params: str
    message_params: Mapping[str, str] = field(default_factory=dict)
    details: Sequence[FieldDetail] = ()
    retry_after: float | None = None

    @property
    def message(self) -> str:
        """The template with its parameters filled in."""
        text = self.message_with_params
        for name, value in self.message_params.items():
            text = text.replace("{" + name + "}", value)
        return text

    def body(self, context_id: str) -> dict[str, Any]:
        """The platform's ``ErrorBody`` for this error; ``context_id`` is the correlation id."""
        return {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "messageWithParams": self.message_with_params,
            "messageParams": dict(self.message_params),
            "contextId": context_id,
            "details": [d.to_json() for d in self.details],
            "errors": [],
        }


_GENERIC: dict[int, tuple[str, str]] = {
    400: (
        "bad.request",
        "The request could not be understood by the server due to malformed syntax.",
    ),
    401: ("bad.credentials", "Invalid login credentials."),
    403: ("missing.permissions", "You are not authorized to perform the requested action."),
    404: ("not.found", "The requested resource was not found."),
    405: ("method.not.allowed", "The requested method is not allowed on this resource."),
    408: ("request.timeout", "The request timed out."),
    409: ("conflict", "The request conflicts with the current state of the resource."),
    413: ("request.entity.too.large", "The request is too large."),
    429: (
        "too.many.requests",
        "Rate limit exceeded the maximum. Retry the request in [{retryAfter}] seconds",
    ),
    500: ("internal.server.error", "The server encountered an unexpected condition."),
    502: ("bad.gateway", "The server received an invalid response from an upstream server."),
    503: ("service.unavailable", "Service Unavailable - The server is currently unavailable."),
    504: (
        "gateway.timeout",
        "The server did not receive a timely response from an upstream server.",
    ),
}


def status_error(status: int, *, retry_after: float | None = None) -> ApiError:
    """The platform's generic error for an HTTP status (used by injected failures)."""
    code, template = _GENERIC.get(status, ("error", f"HTTP {status}"))
    params: dict[str, str] = {}
    if "{retryAfter}" in template:
        params["retryAfter"] = _seconds(retry_after if retry_after is not None else 1.0)
    return ApiError(status, code, template, params, retry_after=retry_after)


def oauth_error(error: str, description: str) -> dict[str, str]:
    """An OAuth-style error body, as the login host answers."""
    return {"error": error, "description": description, "error_description": description}


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
