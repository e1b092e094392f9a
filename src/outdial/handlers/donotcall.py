"""The do-not-call file: one number per line, read at startup into the store.

Format (``guards.do_not_call_file``)::

    # numbers we must never dial
    +44 121 234 5601
    0121 234 5602          # national format: read in guards.default_region
    tel:+4930123456

Blank lines and everything after ``#`` are ignored. Every number is normalized
to E.164 (as the dialer normalizes what it dials) so the dial-time check is an
exact match. A line that is not a valid number stops the daemon from starting:
a list that silently lost an entry would let that number be called; so does
a file that is not UTF-8 text or is larger than
:data:`~outdial.files.MAX_LIST_BYTES` (one line naming the file, the line and
the cause). The file only adds to the store's list; removing a number from the
file does not make it callable again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from outdial.files import MAX_LIST_BYTES, TextFileError, read_text_file
from outdial.handlers import guards

__all__ = [
    "BadLine",
    "DoNotCallFileError",
    "load_do_not_call_file",
    "parse_do_not_call",
    "read_do_not_call_text",
]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line of the file that is not a phone number."""

    line: int
    text: str
    reason: str


class DoNotCallFileError(Exception):
    """The do-not-call file cannot be read or has lines that are not numbers."""

    def __init__(
        self,
        path: str,
        problems: list[BadLine],
        *,
        unreadable: str | None = None,
        line: int | None = None,
    ):
        self.path = path
        self.problems = problems
        self.line = line
        if unreadable is not None:
            where = f", line {line}" if line else ""
            message = f"guards.do_not_call_file {path}{where}: cannot read it: {unreadable}"
        else:
            lines = "\n".join(f"  line {p.line}: {p.text!r}: {p.reason}" for p in problems)
            message = (
                f"guards.do_not_call_file {path}: {len(problems)} line(s) are not "
                f"valid phone numbers\n{lines}"
            )
        super().__init__(message)


def parse_do_not_call(text: str, default_region: str) -> tuple[list[str], list[BadLine]]:
    """The E.164 numbers in a do-not-call file's text, and the lines that are not numbers."""
    numbers: dict[str, None] = {}
    bad: list[BadLine] = []
    for index, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        decision = guards.normalize_number(entry, default_region)
        if isinstance(decision, guards.Deny) or not decision.value:
            reason = decision.reason if isinstance(decision, guards.Deny) else "invalid_number"
            bad.append(BadLine(index, entry, reason))
        else:
            numbers[decision.value] = None
    return list(numbers), bad


def read_do_not_call_text(path: str | Path) -> str:
    """The file's text; :class:`DoNotCallFileError` (one line) when it is not usable text."""
    try:
        return read_text_file(path, limit=MAX_LIST_BYTES, what="a do-not-call list")
    except TextFileError as exc:
        raise DoNotCallFileError(str(path), [], unreadable=exc.cause, line=exc.line) from None


async def load_do_not_call_file(path: str | Path, default_region: str) -> list[str]:
    """Read and parse the file; raise :class:`DoNotCallFileError` naming every bad line."""
    text = await anyio.to_thread.run_sync(read_do_not_call_text, path)
    numbers, bad = parse_do_not_call(text, default_region)
    if bad:
        raise DoNotCallFileError(str(path), bad)
    return numbers
