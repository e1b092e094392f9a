"""Resident memory over a long stream: the whole daemon against a bare loop.

The stream server (``bench/servers/stream.py``) sends ``--events`` realistic frames
on one connection at ``--rate`` per second (default 5,000: a pace the daemon
handles, so that the memory measured is that of events handled, not dropped;
``--rate 0`` streams flat out). Each variant runs in a fresh child process, so one
does not inherit the other's heap:

- **bare loop** (the baseline): ``async for msg in ws`` + ``json.loads``;
- **the daemon** (``outdial.app.Daemon``, what ``outdial run`` runs): the
  listener, its bounded queue, the workers and their queues, the handlers
  (call tracking, readiness, the rule index: one presence rule dialing the
  streamed agents' next contact) and a temporary SQLite store with its
  connection and page cache, configured as in ``bench/throughput.py``. The
  store holds no contacts, so no call is placed: every trigger goes down the
  dial path to its store read.

RSS (``VmRSS`` from ``/proc/self/status``, after ``gc.collect()``) is read
after 10k events (start), after a tenth of ``--events`` and after all of them
(handled or dropped: flat out the daemon drops most events on overflow; the
report says how many). Memory is flat when the second interval adds (about) nothing:
the first includes filling the listener's bounded queue (10,000 events) and
the workers' queues, which is by design and does not grow further. The
server runs pinned to one CPU and the children to another when there are two.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from websockets.asyncio.client import connect

from _common import (
    BENCH_DIR,
    Layout,
    StreamServer,
    header,
    pin,
    rss_kib,
    stream_users,
    watch_handling,
)
from outdial.app import Daemon
from outdial.events import Event
from outdial.store import open_store

USERS = 50
START_AT = 10_000
#: Growth from the 1/10 checkpoint to the end that still counts as flat.
FLAT_KIB = 4 * 1024


def _checkpoints(events: int) -> list[int]:
    return sorted({min(START_AT, events // 10 or 1), max(events // 10, 1), events})


def _rss_now() -> int:
    gc.collect()
    return rss_kib()


async def child_bare(url: str, events: int) -> dict[str, Any]:
    """RSS at the checkpoints of a bare loop."""
    marks = _checkpoints(events)
    rss: dict[int, int] = {}
    count = 0
    started = time.monotonic()
    async with connect(url, ping_interval=None, compression=None, close_timeout=1.0) as ws:
        async for message in ws:
            json.loads(message)
            count += 1
            if count in marks:
                rss[count] = _rss_now()
                if count == events:
                    break
    return {"rss": rss, "seconds": time.monotonic() - started, "dropped": 0}


async def child_outdial(url: str, events: int) -> dict[str, Any]:
    """RSS at the checkpoints of the whole daemon on the stream."""
    import throughput

    users = stream_users(USERS)
    config = throughput.daemon_config(users)
    marks = _checkpoints(events)
    rss: dict[int, int] = {}
    handled = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="outdial-bench-") as tmp:
        async with open_store(f"sqlite:///{Path(tmp) / 'bench.db'}") as store:
            daemon = Daemon(config, platform=throughput.stub_bundle(url, config), store=store)
            stats = daemon.listener.stats

            def counted(event: Event) -> None:
                nonlocal handled
                handled += 1

            watch_handling(daemon.handlers, after=counted)
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                while True:
                    seen = handled + stats.overflowed
                    # Overflow drops skip counts: take a checkpoint once it has been passed.
                    for mark in [m for m in marks if m <= seen and m not in rss]:
                        rss[mark] = _rss_now()
                    if seen >= events:
                        break
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
    return {
        "rss": rss,
        "seconds": time.monotonic() - started,
        "dropped": stats.overflowed,
        "handled": handled,
    }


def run_child(variant: str, port: int, args: argparse.Namespace, layout: Layout) -> dict[str, Any]:
    """One variant in a fresh process (pinned to the measured CPU); returns its JSON result."""
    cpus = layout.measured
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "memory.py"),
            "--child",
            variant,
            "--port",
            str(port),
            "--events",
            str(args.events),
            "--rate",
            str(args.rate),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        # Pinned from its first instruction: no allocation happens on the server's CPU.
        preexec_fn=(lambda: pin(0, cpus)) if cpus is not None else None,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["rss"] = {int(k): v for k, v in result["rss"].items()}
    return result


def _mib(kib: float) -> str:
    return f"{kib / 1024:7.1f}"


def report(events: int, results: dict[str, dict[str, Any]]) -> bool:
    """Print the table; True when outdial's memory is flat."""
    marks = _checkpoints(events)
    names = {"bare": "bare loop + json.loads (baseline)", "outdial": "the daemon (Daemon)"}
    cols = " ".join(f"{f'{m:,} ev':>10}" for m in marks)
    print(f"\n{'RSS, MiB':<36} {cols} {'late growth':>12} {'events/s':>9}")
    flat = True
    growth: dict[str, float] = {}
    for key, label in names.items():
        rss = results[key]["rss"]
        late = rss[marks[-1]] - rss[marks[-2]]
        growth[key] = rss[marks[-1]] - rss[marks[0]]
        rate = events / results[key]["seconds"]
        values = " ".join(f"{_mib(rss[m]):>10}" for m in marks)
        print(f"{label:<36} {values} {_mib(late):>9} MiB {rate:>9,.0f}")
        if key == "outdial":
            flat = late <= FLAT_KIB
    ours = results["outdial"]
    print(
        f"\nthe daemon handled {ours['handled']:,} events and dropped {ours['dropped']:,} on "
        "queue overflow (each drop is counted and gapped)"
    )
    print(
        f"growth start -> end: baseline {_mib(growth['bare']).strip()} MiB, "
        f"outdial {_mib(growth['outdial']).strip()} MiB "
        f"(outdial - baseline: {_mib(growth['outdial'] - growth['bare']).strip()} MiB)"
    )
    print(
        f"flat (growth from {marks[-2]:,} to {marks[-1]:,} events <= {FLAT_KIB // 1024} MiB): "
        f"{'yes' if flat else 'NO'}"
    )
    return flat


def main(argv: Sequence[str] | None = None) -> int:
    """Parent: start the server, run each variant in a child; child: one variant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument(
        "--rate", type=float, default=5000.0, help="frames per second (0: flat out)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run (at most 5,000 events), never fails"
    )
    parser.add_argument("--child", choices=("bare", "outdial"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 5_000)
    # Overflow warnings are expected at full speed; the report counts the drops.
    logging.getLogger("outdial").addHandler(logging.NullHandler())
    logging.getLogger("outdial").propagate = False
    if args.child:
        url = (
            f"ws://127.0.0.1:{args.port}/channels/mem?n={args.events}&users={USERS}"
            f"&rate={args.rate}"
        )
        child = child_bare if args.child == "bare" else child_outdial
        print(json.dumps(anyio.run(child, url, args.events)))
        return 0
    layout = Layout()
    print(
        header(
            "memory: resident set of the whole daemon over a long stream",
            [
                f"{args.events:,} frames on one connection at "
                f"{f'{args.rate:,.0f}/s' if args.rate > 0 else 'full speed'}, {USERS} agents, "
                "half presence half call events; each variant in a fresh process",
                "outdial: the whole Daemon (listener, workers, handlers, SQLite store), one "
                "presence rule, no contacts (no call placed)",
            ],
            layout,
        ),
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    with StreamServer.running(layout.load) as server:
        for variant in ("bare", "outdial"):
            print(f"  {variant} ...", file=sys.stderr, flush=True)
            results[variant] = run_child(variant, server.port, args, layout)
    flat = report(args.events, results)
    if args.quick:
        print("(quick run: too short to judge flatness; the exit status ignores it)")
        return 0
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
