"""``outdial run`` stopped by the platform, through the real CLI in a process of its own:
against ``outdial fake-server`` (another process), wrong credentials and a rejected
subscription are each one line naming what to fix, exit 3, no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outdial.exits import EXIT_AUTH

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
CONFIG = """\
[platform]
kind = "genesys"
api_url = "{api_url}"
login_url = "{login_url}"
client_id = "{client_id}"
client_secret = "{client_secret}"

[store]
url = "sqlite:///{db}"

[[rules]]
name = "next"
topic = "{topic}"
users = ["{agent}"]
dial = {{ user = "{{userId}}", contact = "next" }}
"""


def _outdial(*args: str) -> list[str]:
    return [sys.executable, "-m", "outdial", *args]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[dict[str, str]]:
    """``outdial fake-server`` on free ports; its ready banner's values by name."""
    proc = subprocess.Popen(
        _outdial("fake-server", "--port", "0", "--agent", AGENT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("  agents "):  # the banner's last line
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(timeout=20), "\n".join(lines)
        banner = dict(line.split()[:2] for line in lines if line.startswith("  "))
        yield banner
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(
    tmp_path: Path, fake: dict[str, str], *options: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    values = {
        "api_url": fake["api_url"],
        "login_url": fake["login_url"],
        "client_id": fake["client_id"],
        "client_secret": fake["client_secret"],
        "topic": "v2.users.{userId}.presence",
        "agent": AGENT,
        "db": str(tmp_path / "outdial.db"),
        **overrides,
    }
    config = tmp_path / "outdial.toml"
    config.write_text(CONFIG.format(**values))
    started = time.monotonic()
    done = subprocess.run(
        _outdial("run", "--config", str(config), *options),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # A fatal stop, not a retry loop that happened to end.
    assert time.monotonic() - started < 30
    return done


def _stopped(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("outdial: stopped:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_run_with_a_wrong_secret_stops_with_one_line_naming_the_keys(
    tmp_path: Path, fake_server: dict[str, str]
) -> None:
    done = _run(tmp_path, fake_server, client_secret="not-the-secret")
    line = _stopped(done)
    assert done.returncode == EXIT_AUTH, done.stderr
    assert "401" in line
    assert "platform.client_id" in line
    assert "platform.client_secret" in line
    assert "not-the-secret" not in done.stderr


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_on_either_event_loop_says_which_and_stops_the_same_way(
    tmp_path: Path, fake_server: dict[str, str], loop: str
) -> None:
    """``--loop``: uvloop (outdial[speed]) or asyncio's own; the daemon behaves the same."""
    done = _run(tmp_path, fake_server, "--loop", loop, client_secret="not-the-secret")
    assert done.returncode == EXIT_AUTH, done.stderr
    assert "platform.client_secret" in _stopped(done)
    [start] = [line for line in done.stderr.splitlines() if "daemon.start" in line]
    assert f"loop={loop}" in start


def test_run_with_a_wrong_client_id_stops_the_same_way(
    tmp_path: Path, fake_server: dict[str, str]
) -> None:
    done = _run(tmp_path, fake_server, client_id="nobody")
    line = _stopped(done)
    assert done.returncode == EXIT_AUTH, done.stderr
    assert "platform.client_id" in line


def test_run_with_a_rejected_subscription_stops_with_one_line_naming_the_topic(
    tmp_path: Path, fake_server: dict[str, str]
) -> None:
    done = _run(tmp_path, fake_server, topic="v2.users.{userId}.bogus")
    line = _stopped(done)
    assert done.returncode == EXIT_AUTH, done.stderr
    assert "rejected" in line
    assert f"v2.users.{AGENT}.bogus" in line
