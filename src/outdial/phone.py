"""Phone numbers parsed once: what ``phonenumbers`` says of a number, remembered.

A dial reads its number in three places: the guards normalize it, the calling
window looks up its zones, and the platform's request model checks it is a
valid E.164 number before it is sent. ``phonenumbers.parse`` and
``is_valid_number`` cost about 40 us a number here (pure Python), more than the
rest of those steps; each place parsing it again was three parses a dial.
:func:`number_facts` parses a number once and remembers the answer for the
next few thousand numbers, whoever asks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import phonenumbers

__all__ = ["NumberFacts", "number_facts"]

#: Numbers remembered: the dials of the last few minutes at a busy site.
_NUMBERS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What ``phonenumbers`` makes of a text: ``parsed`` is None when it is no number
    at all (``error`` says why, in the library's words)."""

    parsed: phonenumbers.PhoneNumber | None
    error: str | None
    valid: bool
    #: The number as E.164 when it is a valid one, else None.
    e164: str | None


def number_facts(text: str, region: str | None) -> NumberFacts:
    """What ``text`` is as a phone number, national formats read in ``region``.

    A text that starts with ``+`` reads the same in every region, so it is
    remembered once (the guards read it with the default region, a platform's
    request check with none). The ``parsed`` number is shared: never modify it.
    """
    return _facts(text, None if text.startswith("+") else region)


@functools.lru_cache(maxsize=_NUMBERS_KEPT)
def _facts(text: str, region: str | None) -> NumberFacts:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return NumberFacts(None, str(exc), False, None)
    if not phonenumbers.is_valid_number(parsed):
        return NumberFacts(parsed, None, False, None)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return NumberFacts(parsed, None, True, e164)
