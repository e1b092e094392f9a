"""Session-free REST answers in the shape of the session events that would have said them.

A re-read after a gap is fed through the handlers like live events, so it must
read like them: an ``agents/{id}/states`` entry becomes an ``AgentState`` event,
an active contact a ``CallContactEvent``, a completed contact a final
``CallContactEvent`` (``Disconnected``, ``FinalState=True``). Every value is a
string, as in the events.
"""

from __future__ import annotations

from typing import Any

from outdial.platforms.cxone import wire

__all__ = ["active_contact_event", "agent_state_event", "completed_contact_event"]


def _bool(value: bool) -> str:
    return "True" if value else "False"


def _time(value: str) -> str:
    parsed = wire.parse_time(value)
    return wire.format_time(parsed) if parsed is not None else ""


def agent_state_event(state: wire.RestAgentState) -> dict[str, Any]:
    """``agents/{id}/states`` as an ``AgentState`` event."""
    return {
        "Type": "AgentState",
        "CurrentState": state.agent_state_name,
        "CurrentOutReason": state.out_state_description,
        "StartTimeUTC": _time(state.start_date),
        "IsAcw": _bool(state.is_acw),
    }


def active_contact_event(contact: wire.RestActiveContact) -> dict[str, Any]:
    """A ``contacts/active`` entry as a ``CallContactEvent`` (not final: it is active)."""
    return {
        "Type": "CallContactEvent",
        "ContactID": str(contact.contact_id),
        "MasterID": str(contact.master_contact_id or contact.contact_id),
        "Status": contact.state_name,
        "IsInbound": _bool(not contact.is_outbound),
        # For both directions the REST answer's "to" is what the event calls DNIS.
        "DNIS": contact.to_address,
        "ANI": contact.from_address,
        "Skill": str(contact.skill_id) if contact.skill_id is not None else "",
        "StartTimeUTC": _time(contact.start_date),
        "LastStateChangeTimeUTC": _time(contact.last_update_time),
        "DisconnectCode": "",
        "FinalState": "False",
    }


def completed_contact_event(contact: wire.CompletedContact) -> dict[str, Any]:
    """A ``contacts/completed`` entry as the final ``CallContactEvent`` of its call."""
    return {
        "Type": "CallContactEvent",
        "ContactID": str(contact.contact_id),
        "MasterID": str(contact.master_contact_id or contact.contact_id),
        "Status": "Disconnected",
        "IsInbound": _bool(not contact.is_outbound),
        "DNIS": contact.to_address,
        "ANI": contact.from_address,
        "Skill": str(contact.skill_id) if contact.skill_id is not None else "",
        "StartTimeUTC": _time(contact.contact_start),
        "LastStateChangeTimeUTC": _time(contact.last_update_time),
        "DisconnectCode": contact.end_reason,
        "FinalState": "True",
    }
