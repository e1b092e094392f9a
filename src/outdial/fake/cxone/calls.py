"""How a fake CXone contact plays out (pure): its phases, its events and its REST shapes.

A dial's outcome and durations come from :func:`outdial.fake.script.plan_call`
(seeded, three draws per call whatever is forced, so replays line up); here
the plan becomes the ``Status`` steps of one ``CallContactEvent`` contact:

===========  ==================================================================
answered     Dialing -> Active -> Disconnected (``DisconnectCode`` of ANSWERED)
busy         Dialing -> Disconnected (BUSY's code)
no answer    Dialing -> Disconnected after ringing (NO_ANSWER's code)
failed       Dialing -> Disconnected (FAILED's code)
===========  ==================================================================

Every contact then goes through after-call work: ``Disconnected`` with
``FinalState`` False while ACW lasts, ``FinalState`` True once it is over (the
shell decides when: the skill's ACW timeout, a disposition, or a control).

``DisconnectCode`` values are not public. :data:`NAMED_DISCONNECT_CODES` (the
default) gives each unanswered outcome a name; :data:`BLANK_DISCONNECT_CODES`
leaves every one empty, so a client that must tell outcomes apart by
``Active`` alone can be tested too. The ``endReason`` of ``contacts/completed``
is likewise a switch (:data:`DEFAULT_END_REASONS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from outdial.fake.script import CallPlan, CallTiming, Outcome
from outdial.platforms.cxone.wire import (
    CallContactEvent,
    CompletedContact,
    RestActiveContact,
    format_time,
)

__all__ = [
    "BLANK_DISCONNECT_CODES",
    "DEFAULT_END_REASONS",
    "DIAL_OUTCOMES",
    "NAMED_DISCONNECT_CODES",
    "Contact",
    "Phase",
    "contact_event",
    "inbound_phases",
    "outbound_phases",
    "rest_active_contact",
    "rest_completed_contact",
]

DIAL_OUTCOMES = (Outcome.ANSWERED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED)
"""The outcomes a CXone dial can have in the fake (Genesys' agent-unavailable has no
counterpart: the agent's session is the proof the agent is logged in)."""

NAMED_DISCONNECT_CODES: Mapping[Outcome, str] = {
    Outcome.ANSWERED: "",
    Outcome.BUSY: "Busy",
    Outcome.NO_ANSWER: "NoAnswer",
    Outcome.FAILED: "Failed",
}
"""Default ``DisconnectCode`` per outcome (invented: the real values are not public; an
answered call's is empty, as in the shared fixture)."""

BLANK_DISCONNECT_CODES: Mapping[Outcome, str] = dict.fromkeys(DIAL_OUTCOMES, "")
"""Every ``DisconnectCode`` empty: outcomes then show only as Active or not."""

DEFAULT_END_REASONS: Mapping[Outcome, str] = {
    Outcome.ANSWERED: "Contact Hung Up",
    Outcome.BUSY: "Busy",
    Outcome.NO_ANSWER: "No Answer",
    Outcome.FAILED: "Failed",
}
"""``endReason`` of ``contacts/completed`` per outcome (invented, as the codes)."""

#: The event's own fields the platform always sends beside the documented ones.
_CONTACT_EXTRAS = {
    "OriginalState": "False",
    "IsLogging": "False",
    "AllowDispositions": "True",
    "Label": "",
    "IsLinked": "True",
}


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of a contact: ``delay`` seconds after the previous one it enters ``status``."""

    delay: float
    status: str
    ends_call: bool = False


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact (call leg) as the platform knows it now.

    ``outcome`` is None for a foreign contact (one outdial did not place);
    ``final`` turns True once after-call work is over.
    """

    contact_id: str
    agent_id: str
    skill_id: int
    dnis: str
    ani: str
    inbound: bool
    started: datetime
    changed: datetime
    status: str = "Dialing"
    final: bool = False
    disconnect_code: str = ""
    outcome: Outcome | None = None
    call_type: str = "Regular"
    ended: datetime | None = None

    @property
    def on_call(self) -> bool:
        """The call leg is up (not Disconnected yet)."""
        return self.status != "Disconnected"

    @property
    def in_acw(self) -> bool:
        """Disconnected, after-call work not over."""
        return self.status == "Disconnected" and not self.final

    def moved(self, status: str, now: datetime, code: str = "") -> Contact:
        """The contact in ``status`` from ``now``."""
        ended = now if status == "Disconnected" and self.ended is None else self.ended
        return replace(self, status=status, changed=now, disconnect_code=code, ended=ended)

    def finished(self, now: datetime) -> Contact:
        """After-call work over: ``FinalState`` True."""
        return replace(self, final=True, changed=now)


def outbound_phases(plan: CallPlan, timing: CallTiming) -> list[Phase]:
    """The phases of a dial with ``plan`` (the first one's delay is ``timing.dial``)."""
    if plan.outcome is Outcome.ANSWERED:
        return [
            Phase(timing.dial, "Dialing"),
            Phase(plan.ring, "Active"),
            Phase(plan.talk, "Disconnected", ends_call=True),
        ]
    return [Phase(timing.dial, "Dialing"), Phase(plan.ring, "Disconnected", ends_call=True)]


def inbound_phases() -> list[Phase]:
    """A foreign inbound call: it rings in, the agent takes it at once."""
    return [Phase(0.0, "Incoming"), Phase(0.0, "Active")]


def contact_event(contact: Contact, hosts: Mapping[str, str]) -> dict[str, Any]:
    """The ``CallContactEvent`` of the contact now (every value a string)."""
    event = CallContactEvent.model_validate(
        {
            "Type": "CallContactEvent",
            **hosts,
            "ContactID": contact.contact_id,
            "MasterID": contact.contact_id,
            "Status": contact.status,
            "CallType": contact.call_type,
            "DNIS": contact.dnis,
            "ANI": contact.ani,
            "Skill": str(contact.skill_id),
            "IsInbound": str(contact.inbound),
            "StartTimeUTC": format_time(contact.started),
            "LastStateChangeTimeUTC": format_time(contact.changed),
            "DisconnectCode": contact.disconnect_code,
            "FinalState": str(contact.final),
            **_CONTACT_EXTRAS,
        }
    )
    return event.model_dump(by_alias=True)


def rest_active_contact(contact: Contact) -> dict[str, Any]:
    """The contact in ``GET .../contacts/active`` (``activeContacts[]``)."""
    entry = RestActiveContact.model_validate(
        {
            "contactId": int(contact.contact_id),
            "masterContactId": int(contact.contact_id),
            "agentId": int(contact.agent_id),
            "skillId": contact.skill_id,
            "stateName": contact.status,
            "contactStateCategory": "With Agent",
            # The caller to the called, either way: ANI to DNIS.
            "fromAddress": contact.ani,
            "toAddress": contact.dnis,
            "isOutbound": not contact.inbound,
            "lastUpdateTime": format_time(contact.changed),
            "startDate": format_time(contact.started),
        }
    )
    return entry.model_dump(by_alias=True)


def rest_completed_contact(contact: Contact, end_reasons: Mapping[Outcome, str]) -> dict[str, Any]:
    """The contact in ``GET .../contacts/completed`` (``completedContacts[]``)."""
    reason = end_reasons.get(contact.outcome, "") if contact.outcome else "Contact Hung Up"
    entry = CompletedContact.model_validate(
        {
            "contactId": int(contact.contact_id),
            "masterContactId": int(contact.contact_id),
            "agentId": int(contact.agent_id),
            "skillId": contact.skill_id,
            "toAddress": contact.dnis,
            "fromAddress": contact.ani,
            "isOutbound": not contact.inbound,
            "endReason": reason,
            "contactStart": format_time(contact.started),
            "lastUpdateTime": format_time(contact.changed),
        }
    )
    return entry.model_dump(by_alias=True)
