"""Each benchmark in ``bench/`` runs in a tiny configuration and exits 0.

These check that the scripts still work against the current code, not how
fast anything is: the figures are printed by the scripts themselves (see the
README's Performance section), never asserted in a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

RUNS = {
    "throughput": ["throughput.py", "--events", "200", "--quick"],
    "latency": ["latency.py", "--quick"],
    "ready_latency": ["ready_latency.py", "--quick"],
    "memory": ["memory.py", "--quick"],
    "recovery": ["recovery.py", "--quick"],
    "scale": ["scale.py", "--quick"],
    "decode": ["decode.py", "--quick"],
    "store_ops": ["store_ops.py", "--quick"],
    "ratelimited": ["ratelimited.py", "--quick"],
    "soak": ["soak.py", "--duration", "4"],
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_bench_script_runs(name: str) -> None:
    script, *args = RUNS[name]
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    # Every script says where it ran and how to reproduce it.
    assert "machine :" in done.stdout
    assert "command :" in done.stdout
