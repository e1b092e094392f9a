"""Personal contact lists from CSV: ``user_id,phone_number[,name][,external_id][,timezone]``.

Numbers are normalized to E.164 with ``phonenumbers`` (national formats use the
configured default region) and time zones are checked against the IANA
database, so a bad row is reported with its line number before anything is
stored. A header row (first cell ``user_id``) is optional.

A list is imported whole or not at all. What the ``csv`` module would get
wrong without a word is refused with one line naming the place: a file that
is not UTF-8 text (an Excel export in UTF-16 or a legacy code page), one
larger than :data:`~outdial.files.MAX_LIST_BYTES`, a field over the module's
128 KiB limit, and a quote that is never closed on its line, which would
otherwise swallow the rest of the file into one field (no contact field
spans lines, so a row that does is always that mistake).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from outdial.files import MAX_LIST_BYTES, TextFileError, read_text_file
from outdial.store.base import ContactRow

__all__ = [
    "ContactListError",
    "RowProblem",
    "csv_rows",
    "normalize_number",
    "parse_contacts",
    "read_contacts",
]

#: The advice for a list in another encoding: where spreadsheets hide UTF-8.
SAVE_AS = "save it as UTF-8 (in Excel: Save As, CSV UTF-8)"

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
    """A contact list with problems; nothing from it was imported.

    Problems with rows are listed one a line under a count; a problem with
    the file as a whole (``column == "file"``: unreadable, not UTF-8, a
    broken quote) is the one line ``FILE, line N: cause``.
    """

    def __init__(self, source: str, problems: list[RowProblem]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1 and problems[0].column == "file":
            where = f", line {problems[0].line}" if problems[0].line else ""
            super().__init__(f"{source}{where}: {problems[0].reason}")
            return
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} problem(s)\n{shown}{more}")

    @classmethod
    def whole_file(cls, source: str, reason: str, line: int = 0) -> ContactListError:
        """The error for a file that cannot be read as a list at all (``line`` 0: no line)."""
        return cls(source, [RowProblem(line, "file", reason)])


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


def csv_rows(text: str, *, source: str) -> list[list[str]]:
    """The rows of CSV ``text``, one per line; :class:`ContactListError` where that fails.

    Refused, with the line: a field over the ``csv`` module's limit, and a
    quoted field that runs over more than one line (an unbalanced quote:
    the line named is where it opened).
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            if reader.line_num > start:
                raise ContactListError.whole_file(
                    source,
                    f"a quote opened on this line is not closed before line "
                    f"{reader.line_num} (and the field grew past the csv limit): "
                    "close it, or remove the stray quote",
                    start,
                ) from None
            if "field limit" in str(exc):
                limit = csv.field_size_limit()
                raise ContactListError.whole_file(
                    source,
                    f"a field is longer than {limit:,} characters (the csv module's limit)",
                    start,
                ) from None
            raise ContactListError.whole_file(source, f"not CSV: {exc}", start) from None
        if reader.line_num > start:
            opened, end = _quote_line(row, start), reader.line_num
            raise ContactListError.whole_file(
                source,
                f"unbalanced quote: the quoted field opened on this line runs on to line {end}, "
                f"taking {end - opened} more line(s) with it; close the quote, or remove it",
                opened,
            )
        rows.append(row)


def _quote_line(row: list[str], start: int) -> int:
    # The line where the field holding a line break began: start plus the
    # line breaks in the fields before it.
    line = start
    for cell in row:
        if "\n" in cell or "\r" in cell:
            return line
        line += cell.count("\n")
    return start


def read_contacts(path: str | Path, *, default_region: str) -> list[ContactRow]:
    """Read and validate a contact list file (all of it, or :class:`ContactListError`)."""
    source = str(path)
    try:
        text = read_text_file(path, limit=MAX_LIST_BYTES, what="a contact list", save_as=SAVE_AS)
    except TextFileError as exc:
        raise ContactListError.whole_file(source, exc.cause, exc.line or 0) from None
    rows = csv_rows(text, source=source)
    return parse_contacts(rows, source=source, default_region=default_region)
