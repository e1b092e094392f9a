"""Phone numbers parsed once a dial: the guards, the calling window and the request check."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest

from outdial import phone
from outdial.domain import DialRequest
from outdial.handlers import guards
from outdial.platforms.genesys.client import CreateCallRequest


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every ``phonenumbers.parse`` from now on, with nothing remembered from before."""
    seen: list[tuple[str, Any]] = []
    real = phonenumbers.parse

    def counting(text: str, region: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append((text, region))
        return real(text, region, *args, **kwargs)

    monkeypatch.setattr(phonenumbers, "parse", counting)
    phone._facts.cache_clear()
    guards.normalize_number.cache_clear()
    guards._number_zones.cache_clear()
    return seen


def test_a_dials_number_is_parsed_once_by_its_guards_window_and_request(
    parses: list[tuple[str, Any]],
) -> None:
    number = guards.normalize_number("tel:+441212345601", "GB")
    assert number == guards.Allow("+441212345601")
    assert guards.zones_for("+441212345601") == ("Europe/London",)
    request = CreateCallRequest.from_dial(DialRequest("agent-1", "+441212345601"))
    assert request.phone_number == "+441212345601"
    assert parses == [("+441212345601", None)]


def test_national_formats_are_read_in_their_region_each() -> None:
    assert phone.number_facts("01212345601", "GB").e164 == "+441212345601"
    assert phone.number_facts("01212345601", "DE").e164 != "+441212345601"
    assert phone.number_facts("+441212345601", "DE").e164 == "+441212345601"


def test_what_is_not_a_valid_number_says_so_as_before() -> None:
    junk = phone.number_facts("not a number", "GB")
    assert junk.parsed is None
    assert junk.error
    assert not junk.valid
    unassigned = phone.number_facts("+44121", None)
    assert unassigned.parsed is not None
    assert not unassigned.valid
    assert unassigned.e164 is None
    assert guards.normalize_number("+44121", "GB") == guards.Deny(
        "number", "invalid_number: '+44121'"
    )
    with pytest.raises(ValueError, match="is not a valid number for its country code"):
        CreateCallRequest.from_dial(DialRequest("agent-1", "+44121"))
