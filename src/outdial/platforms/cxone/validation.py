"""Validate a ``dial-phone`` body and name *every* wrong field at once.

One validator for three users: the fake CXone server (its 400 lists the
problems), ``outdial check call --platform cxone FILE.json``, and the client,
which may check a body before it is sent. A body that passes here also passes
:class:`~outdial.platforms.cxone.wire.DialPhoneRequest`.

``dial-phone`` is sent *on the agent's session*
(``POST .../agent-sessions/{sessionId}/dial-phone``), so the body never names
the agent, and it dials one number on one skill: ``{phoneNumber, skillId,
parentContactId?, callerId?}``. Bodies written for another platform (a Genesys
``CreateCallRequest``, a generic ``recipient``/``initiator`` shape) are the
common mistake, so an unknown field is explained by where its content belongs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from pydantic import ValidationError

from outdial.phone import number_facts
from outdial.platforms.cxone.wire import DialPhoneRequest

__all__ = [
    "DIAL_PHONE_FIELDS",
    "DialPhoneInvalid",
    "DialProblem",
    "check_phone_number",
    "dial_problems",
    "validate_dial_phone",
]

#: The fields ``dial-phone`` takes, as the platform spells them.
DIAL_PHONE_FIELDS: tuple[str, ...] = tuple(
    info.alias or name for name, info in DialPhoneRequest.model_fields.items()
)

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

_NUMBER_HINT = "the number goes in phoneNumber"
_AGENT_HINT = "the agent is the session's (dial-phone is sent on the agent's session)"
_SKILL_HINT = "the skill goes in skillId (a manual outbound skill's id, an integer)"
_CALLER_HINT = "the caller id goes in callerId"

# Where the content of a field from another platform's (or a made-up) body belongs,
# by the field's name folded to lower case without separators.
_HINTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "callee",
            "to",
            "phone",
            "number",
            "phonenumber",
            "destination",
            "recipient",
            "toaddress",
            "address",
            "dnis",
            "target",
            "dial",
            "dialstring",
            "pointofcontact",
        ),
        _NUMBER_HINT,
    ),
    **dict.fromkeys(
        (
            "user",
            "userid",
            "agent",
            "agentid",
            "asagentid",
            "initiator",
            "caller",
            "employee",
            "sessionid",
            "calluserid",
        ),
        _AGENT_HINT,
    ),
    **dict.fromkeys(
        ("skill", "skillid", "queue", "queueid", "callfromqueueid", "campaign", "campaignid"),
        _SKILL_HINT,
    ),
    **dict.fromkeys(("from", "ani", "fromaddress", "callerid", "calleridnumber"), _CALLER_HINT),
}


@dataclass(frozen=True, slots=True)
class DialProblem:
    """One wrong field of a ``dial-phone`` body.

    ``field`` names it (``body`` for the body as a whole), ``code`` is a short
    machine-readable kind (``unknown``, ``missing``, ``invalid``) and
    :attr:`text` the line a person reads.
    """

    field: str
    code: str
    message: str

    @property
    def text(self) -> str:
        """The problem as one line, such as ``missing skillId``."""
        return self.message

    def __str__(self) -> str:
        return self.message


class DialPhoneInvalid(ValueError):
    """A ``dial-phone`` body with problems; :attr:`problems` lists every one."""

    def __init__(self, problems: list[DialProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.text for p in problems))


def check_phone_number(value: object, field: str) -> DialProblem | None:
    """Why ``value`` is not a number outdial may dial (E.164 the numbering plan allows)."""
    if not isinstance(value, str):
        return DialProblem(
            field, "invalid", f"{field}: must be a string in E.164, not {_kind(value)}"
        )
    if not value.strip():
        return DialProblem(field, "missing", f"missing {field} (it is empty)")
    possible = False
    if _E164.match(value):
        parsed = number_facts(value, None).parsed  # parsed once a dial (outdial.phone)
        possible = parsed is not None and bool(phonenumbers.is_possible_number(parsed))
    if not possible:
        return DialProblem(
            field,
            "invalid",
            f"{field}: {value!r} is not a phone number in E.164 (such as +15551234567)",
        )
    return None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _integer(body: Mapping[str, Any], field: str, what: str) -> DialProblem | None:
    value = body[field]
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value > 0 else DialProblem(field, "invalid", f"{field}: must be positive")
    if isinstance(value, str) and value.strip().isdigit():
        return DialProblem(
            field,
            "invalid",
            f"{field}: must be an integer ({what}), not the string {value!r}",
        )
    return DialProblem(
        field, "invalid", f"{field}: must be an integer ({what}), not {_kind(value)}"
    )


def _unknown(key: str) -> DialProblem:
    folded = re.sub(r"[\s_\-.]", "", key).lower()
    exact = next((f for f in DIAL_PHONE_FIELDS if f.lower() == folded), None)
    if exact is not None:
        # Field names are case-sensitive: ``PhoneNumber`` is not ``phoneNumber``.
        hint = f"did you mean {exact}? (field names are case-sensitive)"
    else:
        hint = _HINTS.get(folded) or ("dial-phone takes only " + ", ".join(DIAL_PHONE_FIELDS))
    return DialProblem(key, "unknown", f"unknown field {key}: {hint}")


def dial_problems(body: object) -> list[DialProblem]:
    """Every problem of a decoded ``dial-phone`` body, in a stable order (empty: valid).

    Unknown fields first (in the body's order), then the missing required
    fields, then the values of the known ones.
    """
    if not isinstance(body, Mapping):
        return [
            DialProblem(
                "body",
                "invalid",
                f"the body must be a JSON object {{phoneNumber, skillId}}, not {_kind(body)}",
            )
        ]
    problems = [_unknown(str(key)) for key in body if key not in DIAL_PHONE_FIELDS]
    for required in ("phoneNumber", "skillId"):
        if required not in body or body[required] is None:
            problems.append(DialProblem(required, "missing", f"missing {required}"))
    if body.get("phoneNumber") is not None:
        found = check_phone_number(body["phoneNumber"], "phoneNumber")
        if found is not None:
            problems.append(found)
    if body.get("skillId") is not None:
        found = _integer(body, "skillId", "a manual outbound skill's id such as 4242")
        if found is not None:
            problems.append(found)
    if body.get("parentContactId") is not None:
        found = _integer(body, "parentContactId", "a contact id")
        if found is not None:
            problems.append(found)
    if body.get("callerId") is not None:
        found = check_phone_number(body["callerId"], "callerId")
        if found is not None:
            problems.append(found)
    if not problems:
        # Anything the model refuses that the checks above missed is still named.
        try:
            DialPhoneRequest.model_validate(body)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "body"
                problems.append(DialProblem(where, "invalid", f"{where}: {error['msg']}"))
    return problems


def validate_dial_phone(body: object) -> DialPhoneRequest:
    """The body as a :class:`DialPhoneRequest`; :class:`DialPhoneInvalid` listing every problem."""
    problems = dial_problems(body)
    if problems:
        raise DialPhoneInvalid(problems)
    return DialPhoneRequest.model_validate(body)
