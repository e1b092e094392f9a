"""Bad files through the real command line: one line naming the file, the line and the cause;
exit 1 (the CLI's code for bad input); never a traceback, never part of a file imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from outdial.cli import main
from outdial.files import (
    MAX_DEPTH,
    MAX_LIST_BYTES,
    MAX_SETTINGS_BYTES,
    TextFileError,
    check_depth,
    decode_text,
    nesting_line,
)

EXIT_BAD_INPUT = 1

CONFIG = """\
[platform]
kind = "genesys"
region = "mypurecloud.ie"
client_id = "id"
client_secret = "secret"
"""

#: name -> (bytes of a bad TOML file, the line it names, words of the cause)
BAD_TOML: dict[str, tuple[bytes, int | None, str]] = {
    "utf-16 with bom": (CONFIG.encode("utf-16"), 1, "UTF-16 (little-endian)"),
    "utf-16 without bom": (CONFIG.encode("utf-16-le"), 1, "looks like UTF-16"),
    "latin-1": (CONFIG.replace('"id"', '"caf\u00e9"').encode("latin-1"), 4, "0xE9 is not UTF-8"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00", 1, "binary"),
    "xlsx": (b"PK\x03\x04\x14\x00\x06\x00", None, "ZIP archive"),
    "too large": (b"#" * (MAX_SETTINGS_BYTES + 1), None, "too large"),
    "nested arrays": (
        (CONFIG + "x = " + "[" * 3000 + "]" * 3000 + "\n").encode(),
        6,
        f"nested more than {MAX_DEPTH} levels",
    ),
    "nested dotted keys": (
        (CONFIG + "\n" + ".".join(["a"] * 5000) + " = 1\n").encode(),
        7,
        f"nested more than {MAX_DEPTH} levels",
    ),
    "toml syntax": ((CONFIG + "rules = = 1\n").encode(), 6, "not TOML"),
}


def _one_line(err: str, path: Path) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(str(path)), lines[0]
    return lines[0]


def _where(line: int | None) -> str:
    return f", line {line}" if line is not None else ":"


# -- the config --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD_TOML))
def test_a_bad_config_file_is_one_line_naming_file_line_and_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    data, line, cause = BAD_TOML[case]
    path = tmp_path / "outdial.toml"
    path.write_bytes(data)
    assert main(["check", "--config", str(path)]) == EXIT_BAD_INPUT
    shown = _one_line(capsys.readouterr().err, path)
    assert shown.startswith(f"{path}{_where(line)}"), shown
    assert cause in shown


def test_a_config_saved_with_a_utf8_bom_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outdial.toml"
    path.write_bytes(b"\xef\xbb\xbf" + CONFIG.encode())
    assert main(["check", "--config", str(path)]) == 0


def test_deep_toml_through_the_installed_command_is_no_traceback(tmp_path: Path) -> None:
    # A RecursionError deep in a parser is the case most likely to escape: a real process.
    path = tmp_path / "outdial.toml"
    path.write_text(CONFIG + "x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "outdial", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_BAD_INPUT
    shown = _one_line(done.stderr, path)
    assert f"{path}, line 6: nested more than {MAX_DEPTH} levels deep" == shown


# -- the pure helpers --------------------------------------------------------------------------


def test_decode_text_accepts_utf8_with_and_without_bom() -> None:
    assert decode_text("caf\u00e9\n".encode(), "f") == "caf\u00e9\n"
    assert decode_text(b"\xef\xbb\xbfid\n", "f") == "id\n"


def test_decode_text_names_the_line_and_column_of_a_bad_byte() -> None:
    with pytest.raises(TextFileError) as caught:
        decode_text(b"ok\nalso ok\nna\xefve\n", "f.csv")
    assert caught.value.line == 3
    assert caught.value.column == 3
    assert str(caught.value).startswith("f.csv, line 3, column 3: byte 0xEF is not UTF-8")


def test_nesting_line_skips_strings_and_comments() -> None:
    text = 'a = "[[[[[["  # [[[[[[\nb = [[[[[[1]]]]]]\n'
    assert nesting_line(text, 5) == 2
    assert nesting_line(text, 6) is None


def test_check_depth_measures_without_recursion() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(10_000):
        child: dict[str, object] = {}
        node["a"] = child
        node = child
    with pytest.raises(TextFileError, match="nested more than"):
        check_depth(deep, "", "f")
    check_depth({"a": [{"b": 1}]}, "", "f")


# -- contact lists -----------------------------------------------------------------------------

ROWS = [f"u{n % 3},+4412123456{n:02d},Contact {n}" for n in range(1, 13)]
GOOD_CSV = "\n".join(ROWS) + "\n"


def _with_line(n: int, text: str) -> str:
    rows = list(ROWS)
    rows[n - 1] = text
    return "\n".join(rows) + "\n"


#: name -> (bytes of a bad contact list, the line it names, words of the cause)
BAD_CSV: dict[str, tuple[bytes, int | None, str]] = {
    "excel utf-16": (GOOD_CSV.encode("utf-16"), 1, "UTF-16 (little-endian)"),
    "windows-1252": (_with_line(5, "u1,+441212345605,Ren\u00e9e").encode("cp1252"), 5, "0xE9"),
    "xlsx": (b"PK\x03\x04" + b"\x00" * 40, None, "Excel .xlsx"),
    "binary": (b"u1,+441212345601\n\x00\x01\x02", 2, "binary"),
    # The probe: "1 contacts ok" for these 12 lines; the quote on line 2 took the rest.
    "unbalanced quote": (_with_line(2, 'u2,+441212345602,"Ada').encode(), 2, "unbalanced quote"),
    "field over 128 KiB": (
        _with_line(4, "u1,+441212345604," + "x" * 200_000).encode(),
        4,
        "131,072",
    ),
}


@pytest.fixture
def import_config(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "outdial.db"
    config = tmp_path / "outdial.toml"
    config.write_text(
        CONFIG + f'\n[store]\nurl = "sqlite:///{db}"\n[guards]\ndefault_region = "GB"\n'
    )
    return config, db


def _stored(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(["contacts", "list", "--config", str(config)])
    captured = capsys.readouterr()
    if code == 5:  # no store at all (a read-only command never creates one): nothing stored
        assert "no store at" in captured.err
        return []
    assert code == 0
    return [line for line in captured.out.splitlines() if line.strip()]


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_a_bad_contact_list_is_one_line_and_nothing_is_imported(
    tmp_path: Path,
    import_config: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    config, _db = import_config
    data, line, cause = BAD_CSV[case]
    bad = tmp_path / "contacts.csv"
    bad.write_bytes(data)
    good = tmp_path / "good.csv"
    good.write_text("u9,+441212345699\n")
    # A good file in the same import is refused with it: all or nothing.
    assert main(["contacts", "import", "--config", str(config), str(good), str(bad)]) == 1
    shown = _one_line(capsys.readouterr().err, bad)
    assert shown.startswith(f"{bad}{_where(line)}"), shown
    assert cause in shown
    assert _stored(config, capsys) == []


def test_a_contact_list_over_the_size_cap_is_refused_unread(
    tmp_path: Path, import_config: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _db = import_config
    path = tmp_path / "contacts.csv"
    with path.open("wb") as handle:
        handle.truncate(MAX_LIST_BYTES + 1)  # sparse: the size is known without writing it
    assert main(["contacts", "import", "--config", str(config), str(path)]) == 1
    shown = _one_line(capsys.readouterr().err, path)
    assert shown == (
        f"{path}: too large: it is {MAX_LIST_BYTES + 1:,} bytes; "
        "a contact list may be at most 64 MiB"
    )
    assert _stored(config, capsys) == []


def test_a_quote_inside_an_unquoted_field_is_just_text(
    tmp_path: Path, import_config: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The csv module keeps a quote that does not open a field: no runaway, nothing refused.
    config, _db = import_config
    path = tmp_path / "contacts.csv"
    path.write_text(_with_line(9, 'u0,+441212345609,Grace "Amazing" Hopper'))
    assert main(["contacts", "import", "--config", str(config), str(path)]) == 0
    assert "imported 12 contacts" in capsys.readouterr().out
    assert any('Grace "Amazing" Hopper' in line for line in _stored(config, capsys))


def test_check_reports_the_unbalanced_quote_instead_of_a_short_ok(
    tmp_path: Path, import_config: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _db = import_config
    path = tmp_path / "contacts.csv"
    path.write_bytes(BAD_CSV["unbalanced quote"][0])
    assert main(["check", "--config", str(config), "--contacts", str(path)]) == 1
    captured = capsys.readouterr()
    assert "contacts ok" not in captured.out
    assert f"{path}, line 2: unbalanced quote" in captured.err
    assert "Traceback" not in captured.err


def test_an_excel_utf8_export_with_bom_and_crlf_imports(
    tmp_path: Path, import_config: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _db = import_config
    path = tmp_path / "contacts.csv"
    path.write_bytes(
        b"\xef\xbb\xbfuser_id,phone_number,name\r\n" + GOOD_CSV.replace("\n", "\r\n").encode()
    )
    assert main(["contacts", "import", "--config", str(config), str(path)]) == 0
    assert "imported 12 contacts" in capsys.readouterr().out
    assert len(_stored(config, capsys)) == 12


# -- the do-not-call list ----------------------------------------------------------------------

DNC = "# never call\n+44 121 234 5601\n0121 234 5602\n"

BAD_DNC: dict[str, tuple[bytes, int | None, str]] = {
    "utf-16": (DNC.encode("utf-16"), 1, "UTF-16 (little-endian)"),
    "windows-1252": ((DNC + "+441212345603  # Ren\u00e9e\n").encode("cp1252"), 4, "0xE9"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", 3, "binary"),  # after its two line breaks
}


def _dnc_config(tmp_path: Path, dnc: Path) -> Path:
    config = tmp_path / "outdial.toml"
    config.write_text(
        CONFIG + f'\n[store]\nurl = "sqlite:///{tmp_path / "outdial.db"}"\n'
        f'[guards]\ndefault_region = "GB"\ndo_not_call_file = "{dnc}"\n'
    )
    return config


@pytest.mark.parametrize("case", list(BAD_DNC))
def test_check_names_a_bad_do_not_call_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    data, line, cause = BAD_DNC[case]
    dnc = tmp_path / "dnc.txt"
    dnc.write_bytes(data)
    assert main(["check", "--config", str(_dnc_config(tmp_path, dnc))]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    problem = [line for line in err.splitlines() if str(dnc) in line]
    assert len(problem) == 1, err
    assert f"guards.do_not_call_file {dnc}{_where(line)}" in problem[0]
    assert cause in problem[0]


def test_run_stops_on_a_bad_do_not_call_file_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The list is read before the daemon connects: it never starts with half a list.
    dnc = tmp_path / "dnc.txt"
    dnc.write_bytes(BAD_DNC["utf-16"][0])
    assert main(["run", "--config", str(_dnc_config(tmp_path, dnc))]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    stopped = [line for line in err.splitlines() if line.startswith("outdial: stopped:")]
    assert stopped == [
        f"outdial: stopped: guards.do_not_call_file {dnc}, line 1: cannot read it: the file "
        "is UTF-16 (little-endian) text, not UTF-8: save it as UTF-8"
    ]


# -- a call request ----------------------------------------------------------------------------

CALL = '{\n  "phoneNumber": "+441212345601",\n  "callerIdName": "Acme"\n}\n'

BAD_JSON: dict[str, tuple[bytes, int | None, str]] = {
    "utf-16": (CALL.encode("utf-16"), 1, "UTF-16 (little-endian)"),
    "latin-1": (CALL.replace("Acme", "Acm\u00e9").encode("latin-1"), 3, "0xE9 is not UTF-8"),
    "binary": (b"\x00\x01\x02\x03", 1, "binary"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, 1, f"nested more than {MAX_DEPTH} levels"),
    "syntax": (CALL.replace('"Acme"', "Acme").encode(), 3, "not JSON"),
    "too large": (b" " * (MAX_SETTINGS_BYTES + 1), None, "a call request may be at most 1 MiB"),
}


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_check_call_names_a_bad_json_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    data, line, cause = BAD_JSON[case]
    path = tmp_path / "call.json"
    path.write_bytes(data)
    assert main(["check", "call", str(path)]) == EXIT_BAD_INPUT
    shown = _one_line(capsys.readouterr().err, path)
    assert shown.startswith(f"{path}{_where(line)}"), shown
    assert cause in shown


# -- the fake's scenario -----------------------------------------------------------------------

SCENARIO = 'seed = 7\nagents = ["a1"]\n[weights]\nanswered = 1.0\n'

BAD_SCENARIO: dict[str, tuple[bytes, int | None, str]] = {
    "utf-16": (SCENARIO.encode("utf-16"), 1, "UTF-16 (little-endian)"),
    "latin-1": ((SCENARIO + "# caf\u00e9\n").encode("latin-1"), 5, "0xE9 is not UTF-8"),
    "deep": (
        (SCENARIO + "x = " + "[" * 3000 + "]" * 3000 + "\n").encode(),
        5,
        f"nested more than {MAX_DEPTH} levels",
    ),
    "syntax": ((SCENARIO + "seed = = 1\n").encode(), 5, "not TOML"),
    "missing": (b"", None, "No such file"),
}


@pytest.mark.parametrize("case", list(BAD_SCENARIO))
def test_fake_server_names_a_bad_scenario_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    data, line, cause = BAD_SCENARIO[case]
    path = tmp_path / "scenario.toml"
    if case != "missing":
        path.write_bytes(data)
    assert main(["fake-server", "--port", "0", "--scenario", str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "platform is ready" not in captured.out  # refused before anything listens
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"outdial fake-server: scenario {path}{_where(line)}"), lines[0]
    assert cause in lines[0]


def test_demo_names_a_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.toml"
    path.write_bytes(BAD_TOML["nested arrays"][0])
    assert main(["demo", "--config", str(path), "--duration", "0"]) == EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"outdial demo: {path}, line 6: nested more than {MAX_DEPTH} levels deep"]
