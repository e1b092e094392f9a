"""The CLI on a CXone config: the offline check, its one extra rule, and the demo's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from outdial.cli import main
from outdial.exits import EXIT_USAGE

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "personal-dialing-cxone.toml"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLIENT_ID", "CLIENT_SECRET", "ACCESS_KEY_ID", "ACCESS_KEY_SECRET"):
        monkeypatch.setenv(f"CXONE_{name}", "x")


def test_the_cxone_example_passes_the_offline_check(
    secrets: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--config", str(EXAMPLE)]) == 0
    assert "ok (1 rules" in capsys.readouterr().out


def test_an_agent_without_a_skill_to_dial_with_is_named(
    tmp_path: Path, secrets: None, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.read_text().replace("skill_id = 4242", "")
    config = tmp_path / "cxone.toml"
    config.write_text(
        text.replace('[platform.agents."2718281"]', '[platform.agents."2718281"]\nskill_id = 7')
    )
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "agent 3141592 has no skill to dial with" in err
    assert "agent 1618033 has no skill to dial with" in err
    assert "2718281" not in err  # its own skill serves it


def test_the_demo_refuses_a_platform_its_config_is_not_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    genesys = EXAMPLE.with_name("personal-dialing.toml")
    assert main(["demo", "--platform", "cxone", "--config", str(genesys)]) == EXIT_USAGE
    assert "is a genesys config" in capsys.readouterr().err
