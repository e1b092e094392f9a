"""``outdial check call --platform cxone``: a dial-phone body, every wrong field named at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outdial.cli import main
from outdial.platforms.cxone.validation import (
    DialPhoneInvalid,
    dial_problems,
    validate_dial_phone,
)
from outdial.platforms.cxone.wire import DialPhoneRequest

FIXTURE = Path(__file__).parent / "fixtures" / "cxone" / "dial-phone-request.json"

GENESYS_STYLE = {
    "callerId": "+4930123456",
    "callee": "+491761234567",
    "user": {"id": "abc-123-def-456"},
}
GENERIC_STYLE = {
    "recipient": {"type": "phone", "address": "+15550199"},
    "initiator": {"id": "agent-456"},
}


def _check(tmp_path: Path, payload: object, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = tmp_path / "dial.json"
    path.write_text(json.dumps(payload))
    assert main(["check", "call", "--platform", "cxone", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: {len(err) - 1} problem(s)"
    return [line.strip() for line in err[1:]]


def test_the_platform_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "call", "--platform", "cxone", str(FIXTURE)]) == 0
    assert capsys.readouterr().out.strip() == f"{FIXTURE}: ok"
    # The option may come before the word "call" too.
    assert main(["check", "--platform", "cxone", "call", str(FIXTURE)]) == 0


def test_genesys_style_body_names_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _check(tmp_path, GENESYS_STYLE, capsys)
    assert lines == [
        "unknown field callee: the number goes in phoneNumber",
        "unknown field user: the agent is the session's (dial-phone is sent on the agent's"
        " session)",
        "missing phoneNumber",
        "missing skillId",
    ]


def test_generic_style_body_names_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _check(tmp_path, GENERIC_STYLE, capsys)
    assert lines == [
        "unknown field recipient: the number goes in phoneNumber",
        "unknown field initiator: the agent is the session's (dial-phone is sent on the"
        " agent's session)",
        "missing phoneNumber",
        "missing skillId",
    ]


def test_bad_values_are_each_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = {
        "phoneNumber": "555-0199",
        "skillId": "4242",
        "callerId": "+1",
        "parentContactId": True,
        "PhoneNumber": "+15551234567",
        "attributes": {},
    }
    lines = _check(tmp_path, body, capsys)
    assert lines == [
        "unknown field PhoneNumber: did you mean phoneNumber? (field names are case-sensitive)",
        "unknown field attributes: dial-phone takes only phoneNumber, skillId, parentContactId,"
        " callerId",
        "phoneNumber: '555-0199' is not a phone number in E.164 (such as +15551234567)",
        "skillId: must be an integer (a manual outbound skill's id such as 4242), not the"
        " string '4242'",
        "parentContactId: must be an integer (a contact id), not a boolean",
        "callerId: '+1' is not a phone number in E.164 (such as +15551234567)",
    ]


def test_not_an_object_and_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(tmp_path, ["+15551234567"], capsys) == [
        "the body must be a JSON object {phoneNumber, skillId}, not an array"
    ]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main(["check", "call", "--platform", "cxone", str(broken)]) == 1
    assert str(broken) in capsys.readouterr().err


def test_missing_file_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "call", "--platform", "cxone", str(tmp_path / "none.json")]) == 1
    assert main(["check", "call", "--platform", "cxone"]) == 2
    assert "usage" in capsys.readouterr().err


def test_the_validator_agrees_with_the_wire_model() -> None:
    body = json.loads(FIXTURE.read_text())
    assert dial_problems(body) == []
    assert validate_dial_phone(body) == DialPhoneRequest.model_validate(body)
    with pytest.raises(DialPhoneInvalid) as caught:
        validate_dial_phone(GENESYS_STYLE)
    assert [p.field for p in caught.value.problems] == ["callee", "user", "phoneNumber", "skillId"]
    assert [p.code for p in caught.value.problems] == ["unknown", "unknown", "missing", "missing"]


def test_genesys_check_is_still_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dial.json"
    path.write_text(FIXTURE.read_text())
    # A dial-phone body is not a Genesys CreateCallRequest: skillId is unknown there.
    assert main(["check", "call", str(path)]) == 1
    assert "skillId" in capsys.readouterr().err
