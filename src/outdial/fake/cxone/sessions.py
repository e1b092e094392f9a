"""The fake CXone's agent sessions (pure): ids that rotate, one event queue each, who may poll.

One session per agent at a time. Each ``get-next-event`` 200 hands out a new
session id which the next poll must use (:meth:`AgentSession.rotate`); the
ids handed out before stay known, so a poll with one of them is recognised as
*stale* (the client missed a batch) and answered with a snapshot by the shell.
An ended session's ids are *ended* (409); an id never handed out is *unknown*.

Events wait in the session's queue until a poll takes them all (one batch).
Only one poll is served at a time: a newer poll supersedes the one in flight
(:meth:`AgentSession.new_poll`), which the shell then answers 304 at once, so
a client that gave up on a poll and sent the next one loses no event.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["AgentSession", "IdKind", "SessionBook"]

IdKind = Literal["current", "stale", "ended", "unknown"]
"""What a session id in a poll is: the one to use, an older one, of an ended session, or none."""


@dataclass(slots=True, eq=False)
class AgentSession:
    """One agent session: its ids, its queue of events and its poll in flight."""

    agent_id: str
    mode: Literal["start", "join"]
    prefix: str
    station_phone_number: str = ""
    station_id: str = ""
    counter: int = 0
    ended: bool = False
    ended_by: str = ""
    issued: list[str] = field(default_factory=list)
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    poll_ticket: int = 0
    polls_in_flight: int = 0

    @property
    def current(self) -> str:
        """The id the next poll must use."""
        return self.issued[-1]

    @property
    def first_id(self) -> str:
        """The id the session was started (or joined) with."""
        return self.issued[0]

    def rotate(self) -> str:
        """Hand out the next session id (every 200 of ``get-next-event`` carries a new one)."""
        self.counter += 1
        new = f"{self.prefix}-{self.counter:04d}"
        self.issued.append(new)
        return new

    def push(self, events: Iterable[dict[str, Any]], copies: int = 1) -> None:
        """Queue events for the next poll (each ``copies`` times: a duplicated delivery)."""
        for event in events:
            for _ in range(max(1, copies)):
                self.queue.append(dict(event))

    def take(self) -> list[dict[str, Any]]:
        """Every queued event, oldest first, as one batch."""
        batch = list(self.queue)
        self.queue.clear()
        return batch

    def new_poll(self) -> int:
        """Register a poll; the ticket it holds (older tickets are superseded)."""
        self.poll_ticket += 1
        return self.poll_ticket


@dataclass(slots=True)
class SessionBook:
    """Every session the fake has started, by agent and by each id it handed out."""

    _by_id: dict[str, AgentSession] = field(default_factory=dict)
    _live: dict[str, AgentSession] = field(default_factory=dict)
    sessions: list[AgentSession] = field(default_factory=list)

    def live(self, agent_id: str) -> AgentSession | None:
        """The agent's session now (None: none)."""
        return self._live.get(agent_id)

    def open(
        self,
        agent_id: str,
        mode: Literal["start", "join"],
        *,
        station_phone_number: str = "",
        station_id: str = "",
    ) -> AgentSession:
        """A new session for the agent, with its first id (the caller checked there is none)."""
        session = AgentSession(
            agent_id,
            mode,
            f"s-{secrets.token_hex(4)}",
            station_phone_number=station_phone_number,
            station_id=station_id,
        )
        self._issue(session)
        self._live[agent_id] = session
        self.sessions.append(session)
        return session

    def rotate(self, session: AgentSession) -> str:
        """The session's next id, now known as one of its ids."""
        return self._issue(session)

    def _issue(self, session: AgentSession) -> str:
        new = session.rotate()
        self._by_id[new] = session
        return new

    def find(self, session_id: str) -> tuple[AgentSession | None, IdKind]:
        """The session an id belongs to, and what kind of id it is."""
        session = self._by_id.get(session_id)
        if session is None:
            return None, "unknown"
        if session.ended:
            return session, "ended"
        return session, "current" if session_id == session.current else "stale"

    def end(self, session: AgentSession, by: str) -> None:
        """End the session (``by``: ``client`` for a DELETE, ``platform`` otherwise)."""
        session.ended = True
        session.ended_by = by
        session.queue.clear()
        if self._live.get(session.agent_id) is session:
            del self._live[session.agent_id]

    @property
    def live_sessions(self) -> list[AgentSession]:
        """The sessions not ended, oldest first."""
        return [s for s in self.sessions if not s.ended]
