"""Everyday mistakes through the real command line: one line naming the cause, an exit code
by kind (outdial.exits), never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from outdial.cli import build_parser, main
from outdial.exits import EXIT_AUTH, EXIT_CONFIG, EXIT_STORE, EXIT_UNREACHABLE, EXIT_USAGE
from outdial.log import mask_number

PLATFORM = """\
[platform]
kind = "genesys"
api_url = "{api}"
login_url = "{login}"
client_id = "{cid}"
client_secret = "{secret}"
"""
AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
RULE = """
[[rules]]
name = "next"
topic = "{topic}"
users = [{users}]
dial = {{ user = "{{userId}}", contact = "next" }}
"""


def _config(tmp_path: Path, store: str, *, extra: str = "", **platform: str) -> str:
    values = {"api": "http://127.0.0.1:1", "login": "http://127.0.0.1:1", "cid": "id"}
    values |= {"secret": "secret", **platform}
    path = tmp_path / "outdial.toml"
    path.write_text(PLATFORM.format(**values) + f'[store]\nurl = "{store}"\n' + extra)
    return str(path)


def _rule(topic: str = "v2.users.{userId}.presence", users: list[str] | None = None) -> str:
    listed = ", ".join(f'"{u}"' for u in (users or [AGENT]))
    return RULE.format(topic=topic, users=listed)


def _stopped(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("outdial: stopped:")]


def test_a_store_in_a_missing_folder_stops_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "sqlite:///missing/dir/x.db", extra=_rule())
    assert main(["run", "--config", config]) == EXIT_STORE
    (line,) = _stopped(capsys.readouterr().err)
    assert "missing/dir/x.db" in line
    assert "check store.url" in line


def test_check_names_a_store_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "sqlite:///missing/dir/x.db", extra=_rule())
    assert main(["check", "--config", config]) == EXIT_CONFIG
    assert "store.url: the folder" in capsys.readouterr().err


def test_an_unreachable_postgresql_stops_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "postgresql://u@127.0.0.1:1/db", extra=_rule())
    assert main(["run", "--config", config]) == EXIT_STORE
    (line,) = _stopped(capsys.readouterr().err)
    assert "127.0.0.1" in line
    assert "check store.url" in line


def test_check_refuses_a_sqlite_url_with_two_slashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "sqlite://x.db", extra=_rule())
    assert main(["check", "--config", config]) == EXIT_CONFIG
    assert "store.url" in capsys.readouterr().err


def test_too_many_topics_at_start_is_one_line_naming_the_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = [f"user-{i}" for i in range(21_000)]
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", extra=_rule(users=users))
    assert main(["run", "--config", config]) == EXIT_CONFIG
    (line,) = _stopped(capsys.readouterr().err)
    assert line.startswith("outdial: stopped: rules[].users:")
    assert "channels" in line


def test_a_platform_never_reached_stops_after_give_up_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = "[listener]\ngive_up_after = 0.5\nbackoff_base = 0.05\n" + _rule()
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", extra=extra)
    assert main(["run", "--config", config]) == EXIT_UNREACHABLE
    (line,) = _stopped(capsys.readouterr().err)
    assert "listener.give_up_after" in line
    assert "platform.region" in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_fake_server_on_a_port_in_use_is_one_line(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fake-server", "--port", str(busy_port)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "outdial fake-server: cannot listen on 127.0.0.1: the port is in use (another"
        " fake-server?); pick another --port, or 0 for any"
    ]


@pytest.mark.parametrize(
    ("host", "words"), [("nosuchhost.invalid", "no such host"), ("192.0.2.1", "no such address")]
)
def test_fake_server_on_a_bad_host_is_one_line(
    host: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fake-server", "--host", host, "--allow-remote", "--port", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert words in err
    assert "--host" in err


def test_check_reports_every_rule_and_offline_problem_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = (
        _rule(topic="v2.users.{userId}.presence")
        + _rule(topic="v2.users.{userId}.bad}x").replace('"next"', '"second"', 1)
        + RULE.format(topic="v2.analytics.queues.x.observations", users="").replace(
            '"next"', '"third"', 1
        )
    )
    extra = '[guards]\ndefault_region = "uk"\n' + rules
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", extra=extra)
    assert main(["check", "--config", config]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "guards.default_region" in err
    assert "GB" in err


def test_check_names_dial_placeholders_nothing_fills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = RULE.format(topic="v2.routing.queues.q1.conversations", users="")
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", extra=extra)
    assert main(["check", "--config", config]) == EXIT_CONFIG
    assert "nothing fills {userId}" in capsys.readouterr().err


def test_check_refuses_an_invalid_caller_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = _rule().replace('contact = "next"', 'contact = "next", caller_id = "+4412"')
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", extra=extra)
    assert main(["check", "--config", config]) == EXIT_CONFIG
    assert "caller_id" in capsys.readouterr().err


def test_offline_check_needs_no_secrets_and_creates_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "sqlite:///rel.db", extra=_rule(), secret="${UNSET_SECRET_XYZ}")
    assert main(["check", "--config", config]) == 0
    assert main(["calls", "--config", config]) == EXIT_STORE
    err = capsys.readouterr().err
    # The relative path is the config file's folder's, whatever the working directory.
    assert f"no store at {tmp_path / 'rel.db'}" in err
    assert not (tmp_path / "rel.db").exists()


def test_global_options_are_accepted_after_the_subcommand() -> None:
    args = build_parser().parse_args(["run", "--config", "x", "--log-format", "json"])
    assert (args.log_format, args.log_level) == ("json", "info")
    args = build_parser().parse_args(["--log-level", "debug", "calls", "--config", "x"])
    assert args.log_level == "debug"


def test_help_lists_the_exit_codes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "outdial", "--help"], capture_output=True, text=True, check=True
    )
    for code in (EXIT_CONFIG, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_STORE):
        assert f"  {code}  " in done.stdout


def test_numbers_are_masked_as_documented() -> None:
    assert mask_number("+441212345601") == "+4412123***01"


def test_check_reports_schema_rule_and_offline_problems_all_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two schema problems (guards.default_region, a caller_id) used to hide the rules'
    # own: the first rule's unknown `when` operator, the second's unfilled {userId}.
    first = _rule().replace('"next"', '"first"', 1) + (
        'when = { "presenceDefinition.systemPresence" = { "prefixx" = "Av" } }\n'
    )
    second = RULE.format(topic="v2.routing.queues.q1.conversations", users="").replace(
        '"next"', '"second"', 1
    )
    third = (
        _rule()
        .replace('"next"', '"third"', 1)
        .replace('contact = "next"', 'contact = "next", caller_id = "+4412"')
    )
    extra = '[guards]\ndefault_region = "uk"\n' + first + second + third
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", extra=extra)
    assert main(["check", "--config", config]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0] == f"{config}: 4 problem(s)"
    problems = [line.strip() for line in lines[1:]]
    assert len(problems) == 4
    assert any(
        p.startswith("guards.default_region:") and "(the United Kingdom is GB)" in p
        for p in problems
    )
    assert any(p.startswith("rules[2].dial.caller_id:") and "'+4412'" in p for p in problems)
    assert any(
        p.startswith("rule 'first', when.presenceDefinition.systemPresence:")
        and "unknown operator 'prefixx'" in p
        for p in problems
    )
    assert any(
        p.startswith("rules[1] ('second').dial.user: nothing fills {userId}") for p in problems
    )
