"""Personal contact lists from CSV: ``user_id,phone_number[,name][,external_id][,timezone]``.

Numbers are normalized to E.164 with ``phonenumbers`` (national formats use the
configured default region) and time zones are checked against the IANA
database, so a bad row is reported with its line number before anything is
stored. A header row (first cell ``user_id``) is optional.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from outdial.store.base import ContactRow

__all__ = ["ContactListError", "RowProblem", "normalize_number", "parse_contacts", "read_contacts"]

COLUMNS = ("user_id", "phone_number", "name", "external_id", "timezone")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One thing wrong with one row of a contact list."""

    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.reason}"


class ContactListError(ValueError):
    """A contact list with problems; nothing from it was imported."""

    def __init__(self, source: str, problems: list[RowProblem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} problem(s)\n{shown}{more}")


def normalize_number(raw: str, default_region: str) -> str:
    """The E.164 form of ``raw``; raise ValueError saying why it is not a valid number."""
    text = raw.strip()
    if text.startswith("tel:"):
        text = text[4:]
    try:
        parsed = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{raw!r} is not a phone number ({exc._msg})") from None
    if not phonenumbers.is_valid_number(parsed):
        region = phonenumbers.region_code_for_number(parsed) or default_region
        raise ValueError(f"{raw!r} is not a valid number for {region}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_contacts(
    rows: Iterable[list[str]], *, source: str, default_region: str
) -> list[ContactRow]:
    """Validate CSV rows into :class:`ContactRow`; raise :class:`ContactListError` listing all."""
    contacts: list[ContactRow] = []
    problems: list[RowProblem] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if line == 1 and cells[0].lower() == "user_id":
            continue
        if len(cells) < 2 or len(cells) > len(COLUMNS):
            problems.append(
                RowProblem(line, "row", f"expected 2 to {len(COLUMNS)} columns, got {len(cells)}")
            )
            continue
        cells += [""] * (len(COLUMNS) - len(cells))
        user_id, number, name, external_id, timezone = cells
        if not user_id:
            problems.append(RowProblem(line, "user_id", "is empty"))
        try:
            e164 = normalize_number(number, default_region)
        except ValueError as exc:
            problems.append(RowProblem(line, "phone_number", str(exc)))
            continue
        if timezone:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(
                    RowProblem(line, "timezone", f"{timezone!r} is not an IANA time zone")
                )
        key = (user_id, e164)
        if key in seen:
            problems.append(
                RowProblem(line, "phone_number", f"{e164} is already on line {seen[key]}")
            )
            continue
        seen[key] = line
        contacts.append(
            ContactRow(
                user_id=user_id,
                phone_number=e164,
                name=name or None,
                external_id=external_id or None,
                timezone=timezone or None,
            )
        )
    if problems:
        raise ContactListError(source, problems)
    return contacts


def read_contacts(path: str | Path, *, default_region: str) -> list[ContactRow]:
    """Read and validate a contact list file."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return parse_contacts(
                csv.reader(handle), source=str(path), default_region=default_region
            )
    except OSError as exc:
        raise ContactListError(
            str(path), [RowProblem(0, "file", exc.strerror or str(exc))]
        ) from None
