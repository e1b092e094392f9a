"""outdial end to end, as a user runs it: the fake server and the daemon in two processes.

``outdial fake-server`` in one process, ``outdial contacts import`` and
``outdial run`` in others, talking over real sockets, for Genesys and for
NICE CXone (``--platform cxone``). The tests wait on conditions (the store's
call records), never on a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

AGENTS = ["3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60", "8d2f7a10-6c3b-4e9d-a1f2-0b3c4d5e6f70"]
CXONE_AGENTS = ["3141592", "2718281"]


def _outdial(*args: str) -> list[str]:
    return [sys.executable, "-m", "outdial", *args]


class _Lines:
    """Collects a process's output lines in a thread, so reads never block the test."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{text!r} not seen; got:\n" + "\n".join(self.lines))
                self._cond.wait(left)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        "heartbeat_interval = 1.0\n"
        "[timing]\nring = [0.1, 0.3]\ntalk = [0.2, 0.5]\nwrapup = 0.2\n"
        "[weights]\nanswered = 1.0\n"
    )
    args = ["fake-server", "--port", "0", "--seed", "3", "--scenario", str(scenario)]
    for agent in AGENTS:
        args += ["--agent", agent]
    proc = subprocess.Popen(
        _outdial(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = _Lines(proc.stdout)
    try:
        # The ready banner: "  <name>   <value>" lines after its first line.
        out.wait_for("platform is ready", timeout=20)
        api_url = out.wait_for("  api_url ", timeout=5).split()[-1]
        login_url = out.wait_for("  login_url ", timeout=5).split()[-1]
        client_id = out.wait_for("  client_id ", timeout=5).split()[-1]
        client_secret = out.wait_for("  client_secret ", timeout=5).split()[-1]
        yield {
            "api_url": api_url,
            "login_url": login_url,
            "client_id": client_id,
            "client_secret": client_secret,
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def fake_cxone_server() -> Iterator[dict[str, str]]:
    """``outdial fake-server --platform cxone``: its banner's values, the fake running."""
    args = ["fake-server", "--platform", "cxone", "--port", "0", "--seed", "3"]
    for agent in CXONE_AGENTS:
        args += ["--agent", agent]
    proc = subprocess.Popen(
        _outdial(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = _Lines(proc.stdout)
    try:
        out.wait_for("platform is ready", timeout=20)
        names = ["issuer", "control_url", "control_token", "client_id", "client_secret"]
        names += ["access_key_id", "access_key_secret", "skill_id"]
        yield {name: out.wait_for(f"  {name} ", timeout=5).split()[1] for name in names}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ended_calls(db: Path) -> list[tuple[str, str, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute(
                "SELECT user_id, phone_number, outcome FROM calls WHERE outcome IS NOT NULL"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_fake_server_and_daemon_place_and_finish_calls(
    tmp_path: Path, fake_server: dict[str, str]
) -> None:
    db = tmp_path / "outdial.db"
    config = tmp_path / "outdial.toml"
    config.write_text(
        f"""
[platform]
kind = "genesys"
api_url = "{fake_server["api_url"]}"
login_url = "{fake_server["login_url"]}"
client_id = "${{TEST_CLIENT_ID}}"
client_secret = "${{TEST_CLIENT_SECRET}}"

[listener]
ping_interval = 2.0
ping_timeout = 2.0

[store]
url = "sqlite:///{db}"

[guards]
default_region = "GB"
calling_window = ["00:00", "23:59"]

[readiness]
after_call = 0.2

[[rules]]
name = "next-contact-when-ready"
topic = "outdial.users.{{userId}}.ready"
users = {AGENTS!r}
dial = {{ user = "{{userId}}", contact = "next", caller_id = "+442071838750" }}
""".replace("'", '"')
    )
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "user_id,phone_number,name\n"
        f"{AGENTS[0]},0121 234 5601,Ada\n"
        f"{AGENTS[0]},0121 234 5602,Grace\n"
        f"{AGENTS[1]},+441212345603,Alan\n"
    )
    env = {
        **os.environ,
        "TEST_CLIENT_ID": fake_server["client_id"],
        # The fake accepts only its own secret; the daemon gets it from the environment.
        "TEST_CLIENT_SECRET": fake_server["client_secret"],
    }
    imported = subprocess.run(
        _outdial("contacts", "import", "--config", str(config), str(contacts)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported 3 contacts" in imported.stdout

    daemon = subprocess.Popen(
        _outdial("--log-level", "debug", "run", "--config", str(config)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = _Lines(daemon.stdout)
    try:
        deadline = time.monotonic() + 30
        while len(_ended_calls(db)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = _ended_calls(db)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)

    assert sorted(number for _, number, _ in ended) == [
        "+441212345601",
        "+441212345602",
        "+441212345603",
    ]
    assert {outcome for _, _, outcome in ended} == {"answered"}
    assert code == 0, "\n".join(log.lines)
    log.wait_for("daemon.stopped", timeout=5)
    secret = fake_server["client_secret"]
    leaked = [line for line in log.lines if secret in line]
    assert not leaked, leaked


def test_fake_cxone_server_and_daemon_place_and_finish_calls(
    tmp_path: Path, fake_cxone_server: dict[str, str]
) -> None:
    """The same on NICE CXone: one contact per agent, each called once and answered.

    The standalone fake takes no scenario, so its calls last seconds (its default
    timing); the outcomes are pinned through its control endpoint, as a user would.
    """
    fake = fake_cxone_server
    numbers = {CXONE_AGENTS[0]: "+441212345601", CXONE_AGENTS[1]: "+441212345603"}
    control = httpx.Client(
        base_url=fake["control_url"], headers={"Authorization": f"Bearer {fake['control_token']}"}
    )
    with control:
        for number in numbers.values():
            answer = control.put(f"/outcomes/{number}", json={"outcome": "answered"})
            assert answer.status_code == 200, answer.text
    db = tmp_path / "outdial.db"
    config = tmp_path / "outdial.toml"
    stations = "".join(
        f'[platform.agents."{agent}"]\nstation_phone_number = "+1415555010{n + 1}"\n'
        for n, agent in enumerate(CXONE_AGENTS)
    )
    config.write_text(
        f"""
[platform]
kind = "cxone"
issuer = "{fake["issuer"]}"
client_id = "${{TEST_CLIENT_ID}}"
client_secret = "${{TEST_CLIENT_SECRET}}"
access_key_id = "${{TEST_ACCESS_KEY_ID}}"
access_key_secret = "${{TEST_ACCESS_KEY_SECRET}}"
skill_id = {fake["skill_id"]}
poll_timeout = 2.0

{stations}
[store]
url = "sqlite:///{db}"

[guards]
default_region = "GB"
calling_window = ["00:00", "23:59"]

[readiness]
after_call = 0.2

[[rules]]
name = "next-contact-when-ready"
topic = "outdial.users.{{userId}}.ready"
users = {CXONE_AGENTS!r}
dial = {{ user = "{{userId}}", contact = "next" }}
""".replace("'", '"')
    )
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "user_id,phone_number,name\n"
        + "".join(f"{agent},{number},Contact\n" for agent, number in numbers.items())
    )
    env = {
        **os.environ,
        "TEST_CLIENT_ID": fake["client_id"],
        "TEST_CLIENT_SECRET": fake["client_secret"],
        "TEST_ACCESS_KEY_ID": fake["access_key_id"],
        "TEST_ACCESS_KEY_SECRET": fake["access_key_secret"],
    }
    imported = subprocess.run(
        _outdial("contacts", "import", "--config", str(config), str(contacts)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 contacts" in imported.stdout

    daemon = subprocess.Popen(
        _outdial("--log-level", "debug", "run", "--config", str(config)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = _Lines(daemon.stdout)
    try:
        deadline = time.monotonic() + 30
        while len(_ended_calls(db)) < len(numbers) and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = _ended_calls(db)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)

    assert sorted((agent, number) for agent, number, _ in ended) == sorted(numbers.items())
    assert {outcome for _, _, outcome in ended} == {"answered"}
    assert code == 0, "\n".join(log.lines)
    log.wait_for("daemon.stopped", timeout=5)
    for secret in (fake["client_secret"], fake["access_key_secret"]):
        leaked = [line for line in log.lines if secret in line]
        assert not leaked, leaked
