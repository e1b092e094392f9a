"""What the fake CXone was asked and did, in order, for a test's assertions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "Recorded",
    "RecordedCall",
    "RecordedDial",
    "RecordedDisposition",
    "RecordedPoll",
    "RecordedRequest",
    "RecordedSession",
    "RecordedToken",
]


class RecordedToken(NamedTuple):
    """One ``POST /auth/token``: the grant, the app, the access key id, and the answer."""

    grant_type: str
    client_id: str | None
    username: str | None
    granted: bool


class RecordedSession(NamedTuple):
    """One start, join or end of an agent session (``status`` the HTTP answer)."""

    action: str
    agent_id: str | None
    session_id: str | None
    status: int
    error: str | None = None


class RecordedDial(NamedTuple):
    """One ``dial-phone``: on whose session, the body, and what came of it.

    ``verdict`` is ``place`` (played out), ``lose`` (202, never placed) or
    ``drop`` (placed, answer lost); None when refused (``error`` says why).
    """

    agent_id: str | None
    session_id: str
    payload: Any
    status: int
    error: str | None = None
    contact_id: str | None = None
    outcome: str | None = None
    verdict: str | None = None


class RecordedCall(NamedTuple):
    """One call the platform placed (a dial whose contact appears)."""

    contact_id: str
    agent_id: str
    phone_number: str
    skill_id: int
    outcome: str


class RecordedPoll(NamedTuple):
    """One ``get-next-event``: the id it used, what kind that id was, and the answer.

    ``next_session_id`` is the id the answer handed out (None unless 200);
    ``events`` the ``Type`` of each event; ``renewal`` whether it carried
    ``icBranchValue: 3``.
    """

    agent_id: str | None
    session_id: str
    id_kind: str
    timeout: int | None
    status: int
    next_session_id: str | None = None
    events: tuple[str, ...] = ()
    renewal: bool = False


class RecordedDisposition(NamedTuple):
    """One ``POST interactions/{contactId}/disposition``."""

    contact_id: str
    payload: Any
    status: int


class RecordedRequest(NamedTuple):
    """Every request the API and the issuer answered (control endpoints excepted)."""

    method: str
    path: str
    status: int


@dataclass(slots=True)
class Recorded:
    """Everything the fake was asked to do, in order."""

    token_requests: list[RecordedToken] = field(default_factory=list)
    sessions: list[RecordedSession] = field(default_factory=list)
    dials: list[RecordedDial] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    polls: list[RecordedPoll] = field(default_factory=list)
    dispositions: list[RecordedDisposition] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def accepted_dials(self) -> list[RecordedDial]:
        """The dials the platform accepted (202, or placed with the answer lost)."""
        return [d for d in self.dials if d.verdict is not None]
