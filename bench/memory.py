"""Resident memory after 100k and 1M events: outdial's pipeline against a bare loop.

The stream server (``bench/servers/stream.py``) sends ``--events`` realistic frames
flat out on one connection. Each variant runs in a fresh child process, so one
does not inherit the other's heap:

- **bare loop** (the baseline): ``async for msg in ws`` + ``json.loads``;
- **outdial**: the real ``Listener`` (session, parse + validate, bounded queue)
  feeding ``RuleIndex.match`` (1,000 rules) and a no-op handler per match. No
  dials: nothing is written to a store.

RSS (``VmRSS`` from ``/proc/self/status``, after ``gc.collect()``) is read
after 10k events (start), after a tenth of ``--events`` and after all of them.
Memory is flat when the second interval adds (about) nothing: the first
interval includes filling the listener's bounded queue (10,000 events), which
is by design and does not grow further.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
from websockets.asyncio.client import connect

from _common import BENCH_DIR, StreamServer, StubPlatform, header, rss_kib, stream_users
from outdial.clock import SystemClock
from outdial.config import ListenerConfig
from outdial.events import Gap
from outdial.handlers.rules import RuleIndex
from outdial.listener import Listener
from outdial.platforms.genesys.sources import ChannelSources

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
    """RSS at the checkpoints of the listener -> rule index pipeline."""
    import throughput

    users = stream_users(USERS)
    index = RuleIndex.compile(throughput.make_rules(1000, users))
    settings = ListenerConfig(ping_interval=600.0, ping_timeout=60.0)
    listener = Listener(
        ChannelSources(StubPlatform(url), settings, SystemClock()),
        throughput.stream_topics(users),
        settings,
        SystemClock(),
    )
    marks = _checkpoints(events)
    rss: dict[int, int] = {}
    handled = 0
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.run)
        async for item in listener:
            if isinstance(item, Gap):
                continue
            for match in index.match(item):
                await throughput.noop(match)
            handled += 1
            seen = handled + listener.stats.overflowed
            # Overflow drops skip counts: take a checkpoint once it has been passed.
            due = [m for m in marks if m <= seen and m not in rss]
            for mark in due:
                rss[mark] = _rss_now()
            if seen >= events:
                tg.cancel_scope.cancel()
                break
    return {
        "rss": rss,
        "seconds": time.monotonic() - started,
        "dropped": listener.stats.overflowed,
    }


def run_child(variant: str, port: int, events: int) -> dict[str, Any]:
    """One variant in a fresh process; returns its JSON result."""
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "memory.py"),
            "--child",
            variant,
            "--port",
            str(port),
            "--events",
            str(events),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["rss"] = {int(k): v for k, v in result["rss"].items()}
    return result


def _mib(kib: float) -> str:
    return f"{kib / 1024:7.1f}"


def report(events: int, results: dict[str, dict[str, Any]]) -> bool:
    """Print the table; True when outdial's memory is flat."""
    marks = _checkpoints(events)
    names = {"bare": "bare loop + json.loads (baseline)", "outdial": "outdial listener pipeline"}
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
    print(
        f"\noutdial dropped {results['outdial']['dropped']:,} events on queue overflow "
        "(the consumer is slower than the socket at full speed; each drop is counted and gapped)"
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
    parser.add_argument("--events", type=int, default=1_000_000)
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
        url = f"ws://127.0.0.1:{args.port}/channels/mem?n={args.events}&users={USERS}"
        child = child_bare if args.child == "bare" else child_outdial
        print(json.dumps(anyio.run(child, url, args.events)))
        return 0
    print(
        header(
            "memory: resident set after 100k and 1M events",
            [
                f"{args.events:,} frames on one connection, {USERS} agents, "
                "half presence half call events; each variant in a fresh process",
                "outdial: Listener + RuleIndex.match (1,000 rules) + no-op handler; no dials",
            ],
        ),
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    with StreamServer.running() as server:
        for variant in ("bare", "outdial"):
            print(f"  {variant} ...", file=sys.stderr, flush=True)
            results[variant] = run_child(variant, server.port, args.events)
    flat = report(args.events, results)
    if args.quick:
        print("(quick run: too short to judge flatness; the exit status ignores it)")
        return 0
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
