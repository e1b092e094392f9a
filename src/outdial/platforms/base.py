"""What every platform offers outdial, and how platform errors are classified.

The listener and the handlers talk to a platform only through :class:`Platform`;
``genesys.py`` (and later ``cxone.py``) implement it over their REST APIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "AgentState",
    "AmbiguousOutcome",
    "AuthError",
    "CallSnapshot",
    "ChannelGone",
    "ChannelInfo",
    "DialRequest",
    "FieldProblem",
    "OutboundCall",
    "PlacedCall",
    "Platform",
    "PlatformError",
    "RetryableError",
    "SubscriptionResult",
]


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One field the platform (or our own pre-check) found wrong."""

    field: str
    code: str
    message: str = ""


class PlatformError(Exception):
    """An error answer from the platform, with the platform's own fields.

    ``retryable`` tells the caller whether backing off and trying again can help
    (network trouble, 429, 5xx) or not (400 validation, 403, 404, 401 after a refresh).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Sequence[FieldProblem] = (),
        context_id: str | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.details = tuple(details)
        self.context_id = context_id
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.body = dict(body) if body else {}
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = f"{self.status} {self.code}: {self.message}" if self.status else self.message
        parts = [head]
        for detail in self.details:
            suffix = f" ({detail.message})" if detail.message else ""
            parts.append(f"field {detail.field}: {detail.code}{suffix}")
        if self.correlation_id:
            parts.append(f"correlation id {self.correlation_id}")
        if self.context_id and self.context_id != self.correlation_id:
            parts.append(f"context id {self.context_id}")
        return "; ".join(parts)


class RetryableError(PlatformError):
    """Network trouble, 429 (``retry_after`` set when the platform said) or 5xx."""

    retryable = True


class AuthError(PlatformError):
    """Credentials rejected (401 after one refresh) or not allowed (403): fix the config."""


class ChannelGone(PlatformError):
    """The notification channel no longer exists (expired or evicted): make a new one."""


class AmbiguousOutcome(PlatformError):
    """The request was sent but no answer came back: it may or may not have taken effect."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A notification channel: where to connect and when it expires."""

    id: str
    connect_uri: str
    expires: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriptionResult:
    """One topic's subscription state as the platform answered it."""

    topic: str
    permitted: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DialRequest:
    """A platform-neutral outbound call on behalf of an agent."""

    user_id: str
    phone_number: str
    caller_id: str | None = None
    caller_id_name: str | None = None
    queue_id: str | None = None
    label: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """The platform accepted a dial; ``conversation_id`` names the call from now on."""

    conversation_id: str


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """A call conversation read over REST (same body shape as its events)."""

    conversation_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutboundCall:
    """An outbound call an agent made, as the platform's conversation history lists it.

    What reconciling an ambiguous dial needs: which call (``conversation_id``),
    when it started (on the platform's clock), and the number it dialed exactly
    as the platform reports it (``tel:+44...``; the dialer normalizes it).
    ``ended_at`` is None while the call is still going.
    """

    conversation_id: str
    started_at: datetime
    phone_number: str | None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AgentState:
    """An agent's state read over REST, to refill a gap.

    ``presence`` is the platform's UserPresence body (it has more fields than
    the presence event body); ``routing_status`` is in the event's shape,
    ``{"status", "startTime"}``; ``conversation_summary`` is the body of the
    conversation summary (as its event carries it). Each is None when the
    platform had nothing to say about it. ``known`` is False when the platform
    does not know the user id at all (then every part is None).
    """

    user_id: str
    presence: Mapping[str, Any] | None
    routing_status: Mapping[str, Any] | None
    conversation_summary: Mapping[str, Any] | None = None
    known: bool = True


class Platform(Protocol):
    """The REST side of a contact-center platform, as outdial uses it."""

    async def create_channel(self) -> ChannelInfo:
        """Create a notification channel."""
        ...

    async def channel_exists(self, channel_id: str) -> bool:
        """True while the channel is valid; False once expired or evicted."""
        ...

    async def get_subscriptions(self, channel_id: str) -> list[str]:
        """The topics the channel carries now."""
        ...

    async def put_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """Replace the channel's topics with exactly ``topics``."""
        ...

    async def add_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """Add ``topics`` to what the channel carries, keeping the others."""
        ...

    async def place_call(self, request: DialRequest) -> PlacedCall:
        """Place an outbound call on behalf of ``request.user_id``."""
        ...

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        """The call as it is now, or None when the platform no longer knows it."""
        ...

    async def get_agent_state(self, user_id: str) -> AgentState:
        """The agent's presence and routing status, to re-read after a gap."""
        ...

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> list[AgentState]:
        """Every agent's state, one per distinct id in ``user_ids``, in their order.

        No agent is dropped: an agent the platform does not know comes back with
        ``known=False``; retryable failures are retried until ``give_up_after`` seconds
        have passed, then raised (a :class:`RetryableError`), as is any other error.
        """
        ...

    async def find_outbound_calls(
        self,
        user_id: str,
        since: datetime,
        until: datetime,
        phone_number: str | None = None,
    ) -> list[OutboundCall]:
        """The agent's outbound calls that started in ``[since, until)``, oldest first.

        Reconciles a dial whose answer never came: found, the call exists and
        must not be placed again. Ended calls are listed too. The platform's
        history may lag a few seconds behind, so "not listed" only means "not
        placed" once the caller has waited long enough. With ``phone_number``
        (E.164) the platform may be asked for calls to that number only; calls
        to other numbers may still be listed, so the caller checks the number.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
