"""Reading the files a user hands outdial: UTF-8 text of a sane size, or one line saying why.

Every file the CLI reads (the config, contact lists, the do-not-call list,
a call request, the fake's scenario) goes through :func:`read_text_file`, so
the same mistakes get the same answer: a :class:`TextFileError` whose text
is one line, ``FILE, line N: cause``. The causes seen in practice: a
spreadsheet saved as UTF-16 or in a legacy code page, a binary file passed by
mistake, a file far larger than any real one, and structures nested deeper
than any real config (which would otherwise end in a ``RecursionError``).
The decoding and depth checks are pure (:func:`decode_text`,
:func:`check_depth`); only :func:`read_text_file` touches the disk.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_LIST_BYTES",
    "MAX_SETTINGS_BYTES",
    "SAVE_AS_UTF8",
    "TextFileError",
    "check_depth",
    "decode_text",
    "load_json",
    "load_toml",
    "nesting_line",
    "read_text_file",
]

MAX_SETTINGS_BYTES = 1024 * 1024
"""The largest config, scenario or call request file read (real ones are a few KiB)."""

MAX_LIST_BYTES = 64 * 1024 * 1024
"""The largest contact or do-not-call list read (about a million rows); split larger ones."""

MAX_DEPTH = 32
"""How deeply tables and arrays may nest in a config, scenario or call request (real: < 6)."""


class TextFileError(ValueError):
    """A file that is not usable text; ``str()`` is one line naming the file, line and cause."""

    def __init__(
        self, path: str, cause: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        self.path = path
        self.cause = cause
        self.line = line
        self.column = column
        super().__init__(f"{path}{self.where}: {cause}")

    @property
    def where(self) -> str:
        """``", line N"`` (and ``", column C"``) when the cause has a place, else empty."""
        if self.line is None:
            return ""
        return f", line {self.line}" + (f", column {self.column}" if self.column else "")


# Byte-order marks, longest first (UTF-32-LE's begins with UTF-16-LE's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)

# What a binary file passed by mistake usually is, by its first bytes.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an Office document (an Excel .xls workbook?)"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
)

SAVE_AS_UTF8 = "save it as UTF-8"
"""The advice for text in another encoding; lists a spreadsheet exports add how (``save_as``)."""


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_text(data: bytes, path: str, *, save_as: str = SAVE_AS_UTF8) -> str:
    """``data`` as text: UTF-8, with or without a BOM; :class:`TextFileError` saying what else.

    ``save_as`` is the advice for text in another encoding.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise TextFileError(path, f"the file is {name} text, not UTF-8: {save_as}", line=1)
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise TextFileError(path, f"the file is {what}, not text")
    nul = data.find(b"\x00")
    if nul >= 0:
        # Every other byte NUL near the start: UTF-16 whose BOM was dropped.
        head = data[:200]
        if len(head) >= 4 and (
            head[1::2].count(0) > len(head) // 4 or head[::2].count(0) > len(head) // 4
        ):
            raise TextFileError(
                path, f"the file looks like UTF-16 text, not UTF-8: {save_as}", line=1
            )
        raise TextFileError(
            path, "a NUL byte: the file is binary, not text", line=_line_of(data, nul)
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start]
        raise TextFileError(
            path,
            f"byte 0x{byte:02X} is not UTF-8 (a legacy code page such as Windows-1252?): {save_as}",
            line=line,
            column=column,
        ) from None
    return text.removeprefix("\ufeff")


def read_text_file(
    path: str | Path, *, limit: int, what: str = "the file", save_as: str = SAVE_AS_UTF8
) -> str:
    """The text of ``path`` (see :func:`decode_text`), read only up to ``limit`` bytes.

    Raises :class:`TextFileError` for a file that cannot be opened, is
    larger than ``limit`` (``what`` names it: "a contact list may be at
    most ..."), or is not UTF-8 text.
    """
    name = str(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # A regular file says its size; a device or a pipe does not, so read
            # one byte past the limit to know.
            data = b"" if size > limit else handle.read(limit + 1)
    except OSError as exc:
        raise TextFileError(name, exc.strerror or str(exc)) from None
    if size > limit or len(data) > limit:
        actual = f"it is {size:,} bytes" if size > limit else "it is larger"
        mib = f"{limit / (1024 * 1024):g} MiB"
        raise TextFileError(name, f"too large: {actual}; {what} may be at most {mib}")
    return decode_text(data, name, save_as=save_as)


def nesting_line(text: str, limit: int) -> int | None:
    """The first line where brackets, braces or a dotted key nest deeper than ``limit``.

    A locator for an error already known to be about depth, not a parser: it
    skips strings (TOML's and JSON's quoting) and ``#`` comments well enough
    to point at the right line.
    """
    depth = dots = 0
    line = 1
    quote = ""
    escaped = comment = False
    for char in text:
        if char == "\n":
            line += 1
            dots = 0
            comment = False
            continue
        if comment:
            continue
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == ".":
            dots += 1
        elif char in "=,":
            dots = 0
        if depth + dots > limit:
            return line
    return None


def _depth(value: Any) -> int:
    # Iterative, so a value too deep for recursion can still be measured.
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_depth(value: Any, text: str, path: str, *, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`TextFileError` when ``value`` (parsed from ``text``) nests beyond ``limit``."""
    if _depth(value) > limit:
        raise _too_deep(text, path, limit)


def _too_deep(text: str, path: str, limit: int) -> TextFileError:
    return TextFileError(
        path, f"nested more than {limit} levels deep", line=nesting_line(text, limit)
    )


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_toml(
    path: str | Path, *, limit: int = MAX_SETTINGS_BYTES, what: str = "the file"
) -> dict[str, Any]:
    """Read and parse a TOML file; every problem is a one-line :class:`TextFileError`."""
    name = str(path)
    text = read_text_file(path, limit=limit, what=what)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT.search(message)
        if at is None:
            raise TextFileError(name, f"not TOML: {message}") from None
        cause = message[: at.start()]
        raise TextFileError(
            name, f"not TOML: {cause}", line=int(at.group(1)), column=int(at.group(2))
        ) from None
    except RecursionError:
        raise _too_deep(text, name, MAX_DEPTH) from None
    check_depth(data, text, name)
    return data


def load_json(path: str | Path, *, limit: int = MAX_SETTINGS_BYTES, what: str = "the file") -> Any:
    """Read and parse a JSON file; every problem is a one-line :class:`TextFileError`."""
    name = str(path)
    text = read_text_file(path, limit=limit, what=what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TextFileError(
            name, f"not JSON: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from None
    except RecursionError:
        raise _too_deep(text, name, MAX_DEPTH) from None
    check_depth(data, text, name)
    return data
