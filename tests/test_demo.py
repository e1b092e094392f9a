"""``outdial demo``: the ready-topic rule on the faithful fake, end to end, in process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from outdial.demo import run_demo

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "personal-dialing.toml"


@pytest.mark.anyio
async def test_the_demo_dials_each_contact_at_most_once_and_names_agents_alike(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await run_demo(EXAMPLE.read_text(), str(EXAMPLE), duration=4.0, seed=0)
    out = capsys.readouterr().out
    assert code == 0
    dials = re.findall(r"^\s*[\d.]+s\s+(agent-\d)\s+dial\s+(\+\d+)", out, re.M)
    numbers = [number for _, number in dials]
    # Every agent was dialed for, and no contact twice (none is due again this soon).
    assert {agent for agent, _ in dials} == {"agent-1", "agent-2", "agent-3"}
    assert len(numbers) == len(set(numbers))
    # The table names agents as the event lines do, and counts every dial.
    rows = dict(re.findall(r"^(agent-\d)\s+(\d+)\s", out, re.M))
    assert sorted(rows) == ["agent-1", "agent-2", "agent-3"]
    assert sum(int(placed) for placed in rows.values()) == len(dials)
    # Every contact is dialed once or still due; nothing is left in a call.
    done, due, dialing = map(
        int,
        re.search(r"contacts: (\d+) done, (\d+) still due, (\d+) in a call", out).groups(),  # type: ignore[union-attr]
    )
    assert (done + due, dialing) == (36, 0)


def test_a_second_ctrl_c_stops_the_drain_and_still_prints_the_summary() -> None:
    import signal
    import subprocess
    import sys

    demo = subprocess.Popen(
        [sys.executable, "-m", "outdial", "demo", "--config", str(EXAMPLE), "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    interrupted = False
    try:
        for line in demo.stdout:
            lines.append(line)
            if " dial " in line and not interrupted:  # calls are in flight now
                demo.send_signal(signal.SIGINT)
                interrupted = True
            if line.startswith("stopping: letting calls in flight finish"):
                demo.send_signal(signal.SIGINT)
                break
        rest, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
    out = "".join(lines) + rest
    assert demo.returncode == 0, out
    assert "stopping now" in out
    assert "Traceback" not in out
    assert re.search(r"^total\s+\d+", out, re.M), out
    assert re.search(r"contacts: \d+ done, \d+ still due, \d+ in a call", out)
