"""The outdial command line: errors that name the field, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outdial.cli import main
from outdial.exits import EXIT_USAGE

VALID_CONFIG = """
[platform]
kind = "genesys"
region = "mypurecloud.ie"
client_id = "${CLIENT_ID}"
client_secret = "${CLIENT_SECRET}"

[[rules]]
name = "next"
topic = "v2.users.{userId}.presence"
users = ["3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"]
when = { "presenceDefinition.systemPresence" = "Available" }
dial = { user = "{userId}", contact = "next" }
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_ID", "id")
    monkeypatch.setenv("CLIENT_SECRET", "secret")


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _check_call(tmp_path: Path, payload: object, capsys: pytest.CaptureFixture[str]) -> str:
    path = _write(tmp_path, "call.json", json.dumps(payload))
    assert main(["check", "call", path]) == 1
    return capsys.readouterr().err


def test_check_call_accepts_the_platform_example(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = Path(__file__).parent / "fixtures" / "genesys" / "create-call-request.json"
    assert main(["check", "call", str(fixture)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("key", ["callee", "recipient"])
def test_check_call_names_an_unknown_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    err = _check_call(tmp_path, {"phoneNumber": "+441212345601", key: "x"}, capsys)
    assert f"{key}: Extra inputs are not permitted" in err


def test_check_call_names_a_missing_phone_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _check_call(tmp_path, {"callerId": "+441212345601"}, capsys)
    assert "phoneNumber: Field required" in err


def test_check_call_rejects_a_national_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _check_call(tmp_path, {"phoneNumber": "0121 234 5601"}, capsys)
    assert "phoneNumber" in err
    assert "E.164" in err


def test_check_call_rejects_a_number_invalid_for_its_country(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _check_call(tmp_path, {"phoneNumber": "+4412"}, capsys)
    assert "phoneNumber" in err


def test_check_call_lists_every_problem_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _check_call(tmp_path, {"callee": "+441212345601", "priority": "high"}, capsys)
    assert "3 problem(s)" in err
    for field in ("phoneNumber", "callee", "priority"):
        assert field in err


def test_check_config_ok(tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", _write(tmp_path, "ok.toml", VALID_CONFIG)]) == 0
    assert "ok (1 rules, 2 topics)" in capsys.readouterr().out


def test_check_config_lists_each_problem_with_its_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CLIENT_SECRET", raising=False)
    monkeypatch.setenv("CLIENT_ID", "id")
    bad = (
        VALID_CONFIG.replace("mypurecloud.ie", "mypurecloud.xx").replace(
            'contact = "next"', 'contact = "next", phone_number = "+441212345601"'
        )
        + "\n[listener]\nping_intreval = 3\n"
    )
    assert main(["check", "--config", _write(tmp_path, "bad.toml", bad)]) == 1
    err = capsys.readouterr().err
    # The offline check never calls the platform: its secrets need not be set (run needs them).
    assert "CLIENT_SECRET" not in err
    assert "platform.region" in err
    assert "unknown region 'mypurecloud.xx'" in err
    assert "rules[0].dial" in err
    assert "listener.ping_intreval" in err


def test_check_config_reports_bad_when_patterns(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = VALID_CONFIG.replace('= "Available" }', '= { "prefixx" = "Av" } }')
    assert main(["check", "--config", _write(tmp_path, "bad.toml", bad)]) == 1
    err = capsys.readouterr().err
    assert "next" in err
    assert "prefixx" in err


def test_check_contacts_reports_each_bad_row_with_its_line(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, "ok.toml", VALID_CONFIG)
    contacts = _write(
        tmp_path,
        "contacts.csv",
        "user_id,phone_number,name,external_id,timezone\n"
        "u1,+441212345601,Ada,,Europe/London\n"
        "u1,12345,Bob\n"
        "u1,+441212345602,Cy,,Mars/Olympus\n"
        "u1,+441212345601,Ada again\n",
    )
    assert main(["check", "--config", config, "--contacts", contacts]) == 1
    err = capsys.readouterr().err
    assert "line 3, phone_number" in err
    assert "line 4, timezone: 'Mars/Olympus' is not an IANA time zone" in err
    assert "line 5, phone_number: +441212345601 is already on line 2" in err


def test_contacts_import_normalizes_and_refuses_a_bad_file_whole(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "outdial.db"
    config = _write(
        tmp_path,
        "c.toml",
        VALID_CONFIG + f'\n[store]\nurl = "sqlite:///{db}"\n[guards]\ndefault_region = "GB"\n',
    )
    good = _write(tmp_path, "good.csv", "u1,0121 234 5601,Ada\nu2,+14155550123\n")
    bad = _write(tmp_path, "bad.csv", "u1,+441212345603\nu1,not a number\n")

    assert main(["contacts", "import", "--config", config, bad]) == 1
    assert "line 2, phone_number" in capsys.readouterr().err
    assert main(["contacts", "import", "--config", config, good]) == 0
    assert "imported 2 contacts" in capsys.readouterr().out
    assert main(["contacts", "list", "--config", config]) == 0
    listed = capsys.readouterr().out
    assert "+441212345601" in listed
    assert "+441212345603" not in listed  # nothing from the refused file


def test_unreadable_config_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "missing.toml" in capsys.readouterr().err


def test_run_on_uvloop_without_uvloop_installed_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from outdial import loop

    monkeypatch.setattr(loop, "uvloop_installed", lambda: False)
    assert loop.backend_options("auto") == {}, "auto falls back to asyncio's loop"
    config = tmp_path / "outdial.toml"
    config.write_text(VALID_CONFIG)
    assert main(["run", "--config", str(config), "--loop", "uvloop"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "outdial: --loop uvloop: uvloop is not installed; pip install 'outdial[speed]', "
        "or run with --loop asyncio"
    ]
