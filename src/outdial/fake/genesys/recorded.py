"""What the fake Genesys platform records of what it was asked, for assertions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from outdial.fake.script import CallPlan

__all__ = ["Recorded", "RecordedCall", "RecordedToken", "SubscriptionChange"]


class RecordedToken(NamedTuple):
    """One ``POST /oauth/token``: which client asked, and whether a token was issued."""

    client_id: str | None
    granted: bool


class SubscriptionChange(NamedTuple):
    """One change to a channel's subscriptions (``PUT``, ``POST`` or ``DELETE``)."""

    channel_id: str
    method: str
    topics: tuple[str, ...]


class RecordedCall(NamedTuple):
    """One ``POST /api/v2/conversations/calls/user/{userId}``, accepted or not.

    ``payload`` is the decoded JSON body (or the raw text when it was not JSON);
    ``conversation_id`` and ``plan`` are set only when the call was accepted.
    """

    user_id: str
    payload: Any
    conversation_id: str | None
    status: int
    plan: CallPlan | None = None


@dataclass(slots=True)
class Recorded:
    """Everything the platform was asked to do, in order, for assertions."""

    token_requests: list[RecordedToken] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    subscription_changes: list[SubscriptionChange] = field(default_factory=list)
    call_requests: list[RecordedCall] = field(default_factory=list)

    @property
    def accepted_calls(self) -> list[RecordedCall]:
        """The call requests the platform accepted (HTTP 200)."""
        return [c for c in self.call_requests if c.status == 200]
