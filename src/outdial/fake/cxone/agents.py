"""The fake CXone's agents (pure): skills, state as the platform keeps it, and its wire shapes.

**The agent's state is the agent's.** A test (or a user) sets it with
:func:`set_state` (``Available``, ``Unavailable`` with an out reason,
``LoggedOut``); the platform itself only moves it the way CXone does: on a
contact the agent is ``OutboundContact`` / ``InboundContact``
(:func:`begin_contact`), after it the agent is back in the state from before
the contact with after-call work on (:func:`begin_acw`, ``IsAcw`` True), and
when ACW ends, the same state with ``IsAcw`` False (:func:`end_acw`). A call
never makes an Available agent Unavailable or the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from outdial.platforms.cxone.wire import (
    AgentSkill,
    AgentSkillsResponse,
    AgentStateEvent,
    RestAgentState,
    format_time,
)

__all__ = [
    "DEFAULT_SKILL_ID",
    "SETTABLE_STATES",
    "Agent",
    "Skill",
    "agent_state_event",
    "begin_acw",
    "begin_contact",
    "end_acw",
    "new_agent",
    "rest_agent_state",
    "set_state",
    "skills_body",
]

DEFAULT_SKILL_ID = 4242
"""The manual outbound phone skill every fake agent has unless told otherwise."""

SETTABLE_STATES = ("Available", "Unavailable", "LoggedOut")
"""States a test sets; the contact states are the platform's to set."""

#: ``mediaTypeId`` of phone calls on CXone.
PHONE_MEDIA = 4


@dataclass(frozen=True, slots=True)
class Skill:
    """One skill of an agent: a manual outbound phone skill unless said otherwise."""

    skill_id: int
    name: str = ""
    outbound: bool = True
    strategy: str = "Manual"
    media_type_id: int = PHONE_MEDIA

    @property
    def dials_by_hand(self) -> bool:
        """``dial-phone`` may use it: an outbound phone skill, Manual or SmartReach."""
        return (
            self.outbound
            and self.media_type_id == PHONE_MEDIA
            and self.strategy.lower() in ("manual", "smartreach")
        )

    @classmethod
    def inbound(cls, skill_id: int, name: str = "") -> Skill:
        """An inbound phone skill (``dial-phone`` on it is ``InvalidSkill``)."""
        return cls(skill_id, name or f"Inbound {skill_id}", outbound=False, strategy="")


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent as the platform keeps it.

    ``state``/``out_reason`` are the agent's own choice; ``contact_state`` is
    the platform's while the agent is on a contact (None otherwise);
    ``acw`` says after-call work is on; ``since`` is when the current state
    began and ``updated`` when anything last changed (``agents/states?updatedSince``).
    """

    agent_id: str
    skills: tuple[Skill, ...]
    state: str = "Available"
    out_reason: str = ""
    contact_state: str | None = None
    acw: bool = False
    acw_timeout: int = 0
    contact_id: str | None = None
    since: datetime | None = None
    updated: datetime | None = None
    name: str = ""
    history: tuple[str, ...] = field(default=())

    @property
    def current_state(self) -> str:
        """``CurrentState`` as the platform reports it now."""
        return self.contact_state or self.state

    @property
    def busy(self) -> bool:
        """On a contact or in its after-call work: no new dial now."""
        return self.contact_state is not None or self.acw

    def skill(self, skill_id: int) -> Skill | None:
        """The agent's skill with this id (None: not assigned)."""
        return next((s for s in self.skills if s.skill_id == skill_id), None)


def _moved(agent: Agent, now: datetime, **changes: Any) -> Agent:
    updated = replace(agent, **changes, updated=now)
    if updated.current_state != agent.current_state or updated.acw != agent.acw:
        updated = replace(updated, since=now)
    return replace(updated, history=(*agent.history, updated.current_state))


def new_agent(
    agent_id: str,
    now: datetime,
    *,
    skills: Iterable[Skill] = (Skill(DEFAULT_SKILL_ID, "Manual Outbound"),),
    state: str = "Available",
    out_reason: str = "",
    name: str = "",
) -> Agent:
    """An agent in ``state`` since ``now``."""
    if state not in SETTABLE_STATES:
        raise ValueError(f"state must be one of {', '.join(SETTABLE_STATES)}, not {state!r}")
    if not agent_id.isdigit():
        raise ValueError(f"a CXone agent id is digits, not {agent_id!r}")
    return Agent(
        agent_id,
        tuple(skills),
        state,
        out_reason if state == "Unavailable" else "",
        since=now,
        updated=now,
        name=name or f"Agent {agent_id}",
        history=(state,),
    )


def set_state(agent: Agent, state: str, now: datetime, out_reason: str = "") -> Agent:
    """The agent picks ``state`` (with ``out_reason`` when Unavailable).

    On a contact or in ACW the choice applies once the contact is over (as
    CXone's "next state"): the reported state does not move until then.
    """
    if state not in SETTABLE_STATES:
        raise ValueError(f"state must be one of {', '.join(SETTABLE_STATES)}, not {state!r}")
    return _moved(agent, now, state=state, out_reason=out_reason if state == "Unavailable" else "")


def begin_contact(agent: Agent, contact_id: str, now: datetime, *, inbound: bool) -> Agent:
    """The agent is on a contact: ``InboundContact`` or ``OutboundContact``."""
    state = "InboundContact" if inbound else "OutboundContact"
    return _moved(agent, now, contact_state=state, contact_id=contact_id, acw=False)


def begin_acw(agent: Agent, now: datetime, acw_timeout: int) -> Agent:
    """The contact ended: back in the agent's own state, after-call work on."""
    return _moved(agent, now, contact_state=None, acw=True, acw_timeout=acw_timeout)


def end_acw(agent: Agent, now: datetime) -> Agent:
    """After-call work is over: the agent's own state, nothing on."""
    return _moved(agent, now, contact_state=None, acw=False, acw_timeout=0, contact_id=None)


def agent_state_event(agent: Agent, hosts: dict[str, str]) -> dict[str, Any]:
    """The ``AgentState`` event for the agent now (every value a string)."""
    event = AgentStateEvent.model_validate(
        {
            "Type": "AgentState",
            **hosts,
            "CurrentState": agent.current_state,
            "CurrentOutReason": agent.out_reason if agent.contact_state is None else "",
            "StartTimeUTC": format_time(agent.since) if agent.since else "",
            "IsAcw": str(agent.acw),
            "AcwTimeout": str(agent.acw_timeout if agent.acw else 0),
            "NextStates": [],
            "NextIsAcw": "False",
        }
    )
    return event.model_dump(by_alias=True)


def rest_agent_state(agent: Agent) -> dict[str, Any]:
    """The agent in ``GET .../agents/{id}/states`` (``agentStates[]``)."""
    state = RestAgentState.model_validate(
        {
            "agentId": int(agent.agent_id),
            "agentStateName": agent.current_state,
            "startDate": format_time(agent.since) if agent.since else "",
            "outStateDescription": agent.out_reason if agent.contact_state is None else "",
            "contactId": int(agent.contact_id) if agent.contact_id else None,
            "isACW": agent.acw,
            "lastUpdateTime": format_time(agent.updated) if agent.updated else "",
        }
    )
    return state.model_dump(by_alias=True)


def skills_body(agent: Agent, now: datetime) -> dict[str, Any]:
    """``GET .../agents/{id}/skills`` for the agent."""
    assignments = [
        AgentSkill.model_validate(
            {
                "agentId": int(agent.agent_id),
                "skillId": s.skill_id,
                "skillName": s.name or f"Skill {s.skill_id}",
                "mediaTypeId": s.media_type_id,
                "mediaTypeName": "Phone Call" if s.media_type_id == PHONE_MEDIA else "Other",
                "isOutbound": s.outbound,
                "outboundStrategy": s.strategy,
                "isActive": True,
            }
        )
        for s in agent.skills
    ]
    body = AgentSkillsResponse.model_validate(
        {"lastPollTime": format_time(now), "agentSkillAssignments": assignments}
    )
    return body.model_dump(by_alias=True)
