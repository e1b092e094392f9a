"""The CXone wire: request and answer bodies as the platform sends them, in one place.

Client, fake and ``outdial check`` all read and write these shapes, so the
three cannot drift apart. Field names and nesting follow NICE's agent SDK and
the DEVone API specifications (see ``CXONE.md``).

Two conventions of the platform shape everything here:

* **Every event value is a string**, booleans included (``"True"``/``"False"``)
  and times as ISO-8601 UTC. :func:`is_true` and :func:`parse_time` read them.
* **Events are open**: the platform adds types and fields over time, so an
  event model allows extra fields, and an event of an unknown ``Type`` is
  passed through as a plain mapping (:func:`event_type` names it).

Request bodies the platform validates (``dial-phone``, starting a session) are
closed: an unknown field there is a mistake worth naming.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACTIVE_AGENT_STATES",
    "BRANCH_HEADER",
    "BRANCH_RENEWAL",
    "ActiveContactsResponse",
    "AgentLegEvent",
    "AgentSessionStartEvent",
    "AgentSkill",
    "AgentSkillsResponse",
    "AgentStateEvent",
    "AgentStatesResponse",
    "CallContactEvent",
    "CompletedContact",
    "CompletedContactsResponse",
    "CxoneConfiguration",
    "DialPhoneRequest",
    "DialPhoneResponse",
    "JoinSessionRequest",
    "NextEventResponse",
    "OpenIdConfiguration",
    "RestActiveContact",
    "RestAgentState",
    "StartSessionRequest",
    "StartSessionResponse",
    "TokenResponse",
    "event_type",
    "format_time",
    "is_true",
    "parse_time",
]

#: The response header that marks a ``get-next-event`` batch as a state renewal.
BRANCH_HEADER = "icBranchValue"
#: Its value for "these events renew the whole state after missed events".
BRANCH_RENEWAL = "3"

#: ``CurrentState`` values in which the agent is on a contact (not free for the next one).
ACTIVE_AGENT_STATES = frozenset(
    {"InboundContact", "OutboundContact", "InboundConsult", "OutboundConsult", "Dialer"}
)


def is_true(value: object) -> bool:
    """A CXone boolean: the string ``"True"`` (any case); real booleans are accepted too."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 UTC time as CXone writes it (``2026-11-23T10:00:02.000Z``); None if absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(when: datetime) -> str:
    """``when`` as CXone writes times: UTC, milliseconds, a ``Z``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def event_type(event: Mapping[str, Any]) -> str:
    """An event's ``Type`` (``""`` when it has none)."""
    value = event.get("Type")
    return value if isinstance(value, str) else ""


class _Closed(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Open(BaseModel):
    """An answer or an event: the platform adds fields over time."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- auth and discovery --------------------------------------------------------


class TokenResponse(_Open):
    """``POST {issuer}/auth/token`` (password grant with an access key)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int = 3600
    refresh_token: str | None = None
    id_token: str | None = None


class OpenIdConfiguration(_Open):
    """``GET {issuer}/.well-known/openid-configuration``: where the token endpoint is."""

    issuer: str = ""
    token_endpoint: str


class CxoneConfiguration(_Open):
    """``GET {issuer}/.well-known/cxone-configuration?tenantId=``: where the tenant lives."""

    api_endpoint: str
    auth_endpoint: str | None = None
    area: str | None = None
    cluster: str | None = None
    domain: str | None = None
    tenant_id: str | None = Field(default=None, alias="tenantId")


# -- agent sessions ------------------------------------------------------------


class StartSessionRequest(_Closed):
    """``POST .../agent-sessions``: start a session (for another agent with ``asAgentId``)."""

    station_id: str | None = Field(default=None, alias="stationId")
    station_phone_number: str | None = Field(default=None, alias="stationPhoneNumber")
    as_agent_id: int | None = Field(default=None, alias="asAgentId")
    inactivity_timeout: int | None = Field(default=None, alias="inactivityTimeout")
    inactivity_force_logout: bool | None = Field(default=None, alias="inactivityForceLogout")


class JoinSessionRequest(_Closed):
    """``POST .../agent-sessions/join``: join the agent's own session (needs impersonation)."""

    as_agent_id: int = Field(alias="asAgentId")


class StartSessionResponse(_Open):
    """The answer to starting or joining a session."""

    session_id: str = Field(alias="sessionId")


class NextEventResponse(_Open):
    """A 200 of ``get-next-event``: the events and the session id the next poll must use."""

    session_id: str = Field(alias="sessionId")
    events: list[dict[str, Any]] = Field(default_factory=list)


# -- events (every value a string) ------------------------------------------------


class AgentStateEvent(_Open):
    """``Type: AgentState``: the agent's state and whether after-call work is on."""

    type: str = Field(default="AgentState", alias="Type")
    current_state: str = Field(alias="CurrentState")
    current_out_reason: str = Field(default="", alias="CurrentOutReason")
    start_time_utc: str = Field(default="", alias="StartTimeUTC")
    is_acw: str = Field(default="False", alias="IsAcw")
    acw_timeout: str = Field(default="0", alias="AcwTimeout")

    @property
    def in_acw(self) -> bool:
        """After-call work is on."""
        return is_true(self.is_acw)


class CallContactEvent(_Open):
    """``Type: CallContactEvent``: one leg of a call (``ContactID``) as it is now."""

    type: str = Field(default="CallContactEvent", alias="Type")
    contact_id: str = Field(alias="ContactID")
    master_id: str = Field(default="", alias="MasterID")
    status: str = Field(alias="Status")
    call_type: str = Field(default="", alias="CallType")
    is_inbound: str = Field(default="False", alias="IsInbound")
    dnis: str = Field(default="", alias="DNIS")
    ani: str = Field(default="", alias="ANI")
    skill: str = Field(default="", alias="Skill")
    disconnect_code: str = Field(default="", alias="DisconnectCode")
    start_time_utc: str = Field(default="", alias="StartTimeUTC")
    last_state_change_time_utc: str = Field(default="", alias="LastStateChangeTimeUTC")
    final_state: str = Field(default="False", alias="FinalState")

    @property
    def inbound(self) -> bool:
        """The customer called in."""
        return is_true(self.is_inbound)

    @property
    def final(self) -> bool:
        """The contact is over, after-call work included."""
        return is_true(self.final_state)


class AgentLegEvent(_Open):
    """``Type: AgentLeg``: the agent's own voice path to their station."""

    type: str = Field(default="AgentLeg", alias="Type")
    agent_leg_id: str = Field(default="", alias="AgentLegId")
    status: str = Field(default="", alias="Status")
    final_state: str = Field(default="False", alias="FinalState")


class AgentSessionStartEvent(_Open):
    """``Type: AgentSessionStart``: first in a session, and first in a snapshot."""

    type: str = Field(default="AgentSessionStart", alias="Type")
    agent_id: str = Field(default="", alias="AgentId")
    session_id: str = Field(default="", alias="SessionId")
    station_phone_number: str = Field(default="", alias="StationPhoneNumber")


# -- dialing -----------------------------------------------------------------------


class DialPhoneRequest(_Closed):
    """``POST .../agent-sessions/{sid}/dial-phone``: a manual outbound call from the agent."""

    phone_number: str = Field(alias="phoneNumber", min_length=1)
    skill_id: int = Field(alias="skillId")
    parent_contact_id: int | None = Field(default=None, alias="parentContactId")
    caller_id: str | None = Field(default=None, alias="callerId")


class DialPhoneResponse(_Open):
    """A 202 of ``dial-phone``; whether it names the contact is not settled (often empty)."""

    contact_id: str | None = Field(default=None, alias="contactId")


# -- session-free reads ----------------------------------------------------------------


class RestActiveContact(_Open):
    """One entry of ``GET .../contacts/active``."""

    contact_id: int = Field(alias="contactId")
    master_contact_id: int | None = Field(default=None, alias="masterContactId")
    agent_id: int | None = Field(default=None, alias="agentId")
    skill_id: int | None = Field(default=None, alias="skillId")
    state_name: str = Field(default="", alias="stateName")
    from_address: str = Field(default="", alias="fromAddress")
    to_address: str = Field(default="", alias="toAddress")
    is_outbound: bool = Field(default=False, alias="isOutbound")
    last_update_time: str = Field(default="", alias="lastUpdateTime")
    start_date: str = Field(default="", alias="startDate")


class ActiveContactsResponse(_Open):
    """``GET .../contacts/active?agentId=``."""

    last_poll_time: str = Field(default="", alias="lastPollTime")
    active_contacts: list[RestActiveContact] = Field(default_factory=list, alias="activeContacts")


class CompletedContact(_Open):
    """One entry of ``GET .../contacts/completed``."""

    contact_id: int = Field(alias="contactId")
    master_contact_id: int | None = Field(default=None, alias="masterContactId")
    agent_id: int | None = Field(default=None, alias="agentId")
    skill_id: int | None = Field(default=None, alias="skillId")
    to_address: str = Field(default="", alias="toAddress")
    from_address: str = Field(default="", alias="fromAddress")
    is_outbound: bool = Field(default=False, alias="isOutbound")
    end_reason: str = Field(default="", alias="endReason")
    contact_start: str = Field(default="", alias="contactStart")
    last_update_time: str = Field(default="", alias="lastUpdateTime")


class CompletedContactsResponse(_Open):
    """``GET .../contacts/completed``."""

    completed_contacts: list[CompletedContact] = Field(
        default_factory=list, alias="completedContacts"
    )


class RestAgentState(_Open):
    """One agent's state from ``GET .../agents/{id}/states`` (or ``agents/states``)."""

    agent_id: int = Field(alias="agentId")
    agent_state_name: str = Field(default="", alias="agentStateName")
    start_date: str = Field(default="", alias="startDate")
    out_state_description: str = Field(default="", alias="outStateDescription")
    contact_id: int | None = Field(default=None, alias="contactId")
    is_acw: bool = Field(default=False, alias="isACW")


class AgentStatesResponse(_Open):
    """``GET .../agents/{id}/states`` and ``GET .../agents/states?updatedSince=``."""

    last_poll_time: str = Field(default="", alias="lastPollTime")
    agent_states: list[RestAgentState] = Field(default_factory=list, alias="agentStates")


class AgentSkill(_Open):
    """One skill of ``GET .../agents/{id}/skills``: what it is and whether it dials out by hand."""

    agent_id: int | None = Field(default=None, alias="agentId")
    skill_id: int = Field(alias="skillId")
    skill_name: str = Field(default="", alias="skillName")
    media_type_id: int | None = Field(default=None, alias="mediaTypeId")
    media_type_name: str = Field(default="", alias="mediaTypeName")
    is_outbound: bool = Field(default=False, alias="isOutbound")
    outbound_strategy: str = Field(default="", alias="outboundStrategy")
    is_active: bool = Field(default=True, alias="isActive")

    @property
    def dials_by_hand(self) -> bool:
        """An outbound phone skill ``dial-phone`` may use (Manual or SmartReach strategy)."""
        return (
            self.is_outbound
            and self.media_type_id in (None, 4)
            and self.outbound_strategy.strip().lower() in ("manual", "smartreach")
        )


class AgentSkillsResponse(_Open):
    """``GET .../agents/{id}/skills``."""

    last_poll_time: str = Field(default="", alias="lastPollTime")
    agent_skill_assignments: list[AgentSkill] = Field(
        default_factory=list, alias="agentSkillAssignments"
    )
