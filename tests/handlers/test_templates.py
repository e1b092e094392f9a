"""Dial templates: topic placeholders, body paths, errors that name rule and field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from outdial.config import DialSpec
from outdial.handlers.templates import DialTemplate, Template, TemplateError


def render(source: str, body: Mapping[str, Any], **bindings: str) -> str:
    return Template.parse(source, "r", "f").render("r", "f", bindings, body, {})


def test_placeholders_and_paths() -> None:
    body = {"participants": [{"purpose": "agent"}, {"address": "+1", "n": 3, "ok": True}]}
    assert render("{userId}", {}, userId="u1") == "u1"
    # Through a list with no matched element: the first element having the field.
    assert render("tel {participants.address}", body) == "tel +1"
    assert render("{participants.n}/{participants.ok}", body) == "3/true"
    assert render("{{literal}} {userId}", {}, userId="u") == "{literal} u"
    assert render("plain", {}) == "plain"


def test_matched_element_wins() -> None:
    body = {"p": [{"a": "first"}, {"a": "second"}]}
    template = Template.parse("{p.a}", "r", "f")
    assert template.render("r", "f", {}, body, {"p": body["p"][1]}) == "second"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{userId", "unclosed"),
        ("x}", "unmatched"),
        ("{}", "bad placeholder"),
        ("{a b}", "bad placeholder"),
    ],
)
def test_bad_syntax(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as info:
        Template.parse(source, "rule-x", "phone_number")
    assert (info.value.rule, info.value.field) == ("rule-x", "phone_number")


def test_missing_and_non_scalar_fields() -> None:
    with pytest.raises(TemplateError, match=r"no field 'caller\.number'") as info:
        render("{caller.number}", {"caller": {}})
    assert info.value.field == "f"
    with pytest.raises(TemplateError, match="object or list"):
        render("{caller}", {"caller": {"a": 1}})


def test_dial_template() -> None:
    spec = DialSpec(
        user="{userId}",
        phone_number="{participants.address}",
        caller_id="+4930123456",
        attributes={"from": "{participants.address}", "src": "{source}"},
    )
    dial = DialTemplate.compile("cb", spec).render(
        {"userId": "u1"}, {"participants": [{"address": "+44"}], "source": "web"}, {}
    )
    assert (dial.user_id, dial.phone_number, dial.caller_id) == ("u1", "+44", "+4930123456")
    assert dial.attributes == {"from": "+44", "src": "web"}
    assert dial.target == "+44"
    with pytest.raises(TemplateError, match=r"dial\.attributes\.src"):
        DialTemplate.compile("cb", spec).render(
            {"userId": "u1"}, {"participants": [{"address": "+44"}]}, {}
        )
