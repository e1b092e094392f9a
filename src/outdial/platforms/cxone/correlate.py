"""What the event sources share with call control: live session ids, and new contacts.

``dial-phone`` is asynchronous: its 202 means accepted, not placed, and may not
name the contact. So a dial is correlated with the **next new outbound
contact** on the agent's session after the request, to the number dialed:

1. before sending, :meth:`DialCorrelator.expect` registers the dial and
   remembers every contact of the agent seen so far;
2. the agent's event source feeds every event to :meth:`DialCorrelator.observe`
   *before* it is queued for the handlers, so the dial is resolved before any
   handler sees its call;
3. the first ``CallContactEvent`` of a contact never seen before, outbound, to
   the dial's number, resolves the oldest waiting dial to that number (each
   contact resolves one dial at most).

:class:`SessionRegistry` says which session id an agent's dial must use now
(the id changes on every poll answer).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from outdial.platforms.cxone import wire

__all__ = ["DialCorrelator", "PendingDial", "SessionRegistry", "same_number"]

#: Contacts remembered per agent (a day of calls many times over).
REMEMBERED_CONTACTS = 2048
_DIGITS = re.compile(r"\D")
#: Fewer digits than this never match by suffix (a national number has more).
_MIN_SUFFIX = 7


def same_number(dialed: str, reported: str) -> bool:
    """Whether the platform's ``reported`` number is the ``dialed`` one.

    Compared on digits, a trailing match allowed: the platform may write a
    number without ``+``, ``tel:``, or with a trunk prefix.
    """
    a, b = _DIGITS.sub("", dialed), _DIGITS.sub("", reported)
    if not a or not b:
        return False
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return len(short) >= _MIN_SUFFIX and long.endswith(short)


class SessionRegistry:
    """The live session id of each agent, as its event source last saw it."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def set(self, agent_id: str, session_id: str | None) -> None:
        """``agent_id``'s session is now ``session_id`` (None: it has none)."""
        if session_id is None:
            self._ids.pop(agent_id, None)
        else:
            self._ids[agent_id] = session_id

    def session_for(self, agent_id: str) -> str | None:
        """The id a request for ``agent_id``'s session must use now."""
        return self._ids.get(agent_id)


@dataclass(eq=False)
class PendingDial:
    """One dial waiting for its contact; ``contact_id`` once resolved."""

    agent_id: str
    number: str
    known_before: frozenset[str]
    contact_id: str | None = None
    resolved: anyio.Event = field(default_factory=anyio.Event)

    def resolve(self, contact_id: str) -> None:
        """The dial's contact is ``contact_id``."""
        if self.contact_id is None:
            self.contact_id = contact_id
            self.resolved.set()


class DialCorrelator:
    """Matches dials with the contacts their agent's session reports."""

    def __init__(self, remember: int = REMEMBERED_CONTACTS) -> None:
        self._remember = remember
        self._seen: dict[str, OrderedDict[str, None]] = {}
        self._agent_of: OrderedDict[str, str] = OrderedDict()
        self._pending: dict[str, list[PendingDial]] = {}
        self._claimed: OrderedDict[str, None] = OrderedDict()

    def known_contacts(self, agent_id: str) -> frozenset[str]:
        """Every contact of ``agent_id`` seen so far (within memory)."""
        return frozenset(self._seen.get(agent_id, ()))

    def agent_of(self, contact_id: str) -> str | None:
        """The agent whose session reported ``contact_id`` (None: never seen)."""
        return self._agent_of.get(contact_id)

    def claimed(self, contact_id: str) -> bool:
        """``contact_id`` already resolved a dial."""
        return contact_id in self._claimed

    def claim(self, contact_id: str) -> None:
        """``contact_id`` is a dial's (found by a re-read): no other dial may take it."""
        self._claimed[contact_id] = None
        while len(self._claimed) > self._remember:
            self._claimed.popitem(last=False)

    @contextmanager
    def expect(self, agent_id: str, number: str) -> Iterator[PendingDial]:
        """Register a dial for the duration of the block (withdrawn at its end)."""
        pending = PendingDial(agent_id, number, self.known_contacts(agent_id))
        waiting = self._pending.setdefault(agent_id, [])
        waiting.append(pending)
        try:
            yield pending
        finally:
            if pending in waiting:
                waiting.remove(pending)
            if not waiting:
                self._pending.pop(agent_id, None)

    def observe(self, agent_id: str, event: Mapping[str, Any]) -> None:
        """One event of ``agent_id``'s session, before it is queued for the handlers."""
        if wire.event_type(event) != "CallContactEvent":
            return
        contact = event.get("ContactID")
        if not isinstance(contact, str) or not contact:
            return
        seen = self._seen.setdefault(agent_id, OrderedDict())
        new = contact not in seen
        seen[contact] = None
        seen.move_to_end(contact)
        while len(seen) > self._remember:
            seen.popitem(last=False)
        self._agent_of[contact] = agent_id
        self._agent_of.move_to_end(contact)
        while len(self._agent_of) > self._remember * 8:
            self._agent_of.popitem(last=False)
        if not new or wire.is_true(event.get("IsInbound")) or self.claimed(contact):
            return
        dnis = event.get("DNIS")
        for pending in self._pending.get(agent_id, []):
            if (
                pending.contact_id is None
                and contact not in pending.known_before
                and isinstance(dnis, str)
                and same_number(pending.number, dnis)
            ):
                self.claim(contact)
                pending.resolve(contact)
                return
