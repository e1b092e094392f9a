"""The cost of a store operation: the SQLite store as it is, against itself as it was.

No server and no daemon: one task in one process drives ``SqliteStore`` on a
temporary file (WAL mode, as ``outdial run`` opens it) through the mix a dial
costs the daemon, one dial after another, round-robin over ``--agents``
agents with contacts due:

- ``due_contacts`` (the dialer's read of the agent's next contacts),
- ``claim_for_dial`` of the first one (durable: the claim is on disk before a
  dial would be sent),
- ``record_placed`` (the claim placed, its call tracked),
- three call events, each as the call tracker handles it: one
  ``advance_call`` (read, decide, write: connected, then ended with the
  contact's outcome counted; the first event, dialing, changes nothing the
  store keeps and is read only). The baseline handles them as the tracker
  did before: ``get_call``, then ``record_call_progress`` when it changes.

Two variants, each on a fresh file with the same contacts, run ``--rounds``
times interleaved in the same process:

- **baseline**: ``SqliteStore(..., fast_path=False)``, the store as it was:
  every operation in a worker thread (``anyio.to_thread``), every commit
  ``synchronous=FULL``;
- **now**: the default store: reads and call-state writes inline on the event
  loop (``synchronous=NORMAL`` for the latter), claims FULL, inline too
  once the file's claims are seen to commit fast.

Per operation kind: microseconds per call (wall time around the ``await``,
median over the rounds), and the ratio baseline / now (above 1: faster now).
Per dial: wall and CPU microseconds (user + system of the whole process, the
worker thread included), store operations a dial, and what 100 dials/s (the
daemon's load at 10,000 events/s, issue 13) would cost in a core. The file
sits in the system's temporary directory: its fsyncs are that disk's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio

from _common import cpu_seconds, header, median
from outdial.store import CallRecord, ContactRow, SqliteStore
from outdial.store.base import CallChange, ContactOutcome

_T = TypeVar("_T")

KINDS = (
    "due_contacts",
    "claim_for_dial",
    "record_placed",
    "get_call",
    "record_call_progress",
    "advance_call",
)
#: How many of each kind one dial makes (baseline, now).
PER_DIAL = {
    "due_contacts": (1, 1),
    "claim_for_dial": (1, 1),
    "record_placed": (1, 1),
    "get_call": (3, 0),
    "record_call_progress": (2, 0),
    "advance_call": (0, 3),
}
VARIANTS = ("baseline", "now")
#: Dials per second at 10,000 events/s in issue 13's measurement.
DIALS_PER_SECOND = 100


class Timings:
    """Wall nanoseconds per operation kind, and how many calls."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    async def time(self, kind: str, op: Awaitable[_T]) -> _T:
        """Await ``op``, adding its wall time to ``kind``."""
        started = time.perf_counter_ns()
        result = await op
        self.ns[kind] += time.perf_counter_ns() - started
        self.calls[kind] += 1
        return result

    def us_per_op(self, kind: str) -> float:
        """Microseconds per call of ``kind``."""
        return self.ns[kind] / self.calls[kind] / 1000 if self.calls[kind] else float("nan")


def always(change: CallChange) -> Callable[[CallRecord], CallChange]:
    """What the tracker's decision would be for each call event, whatever is stored."""
    return lambda stored: change


def _agents(n: int) -> list[str]:
    return [f"agent-{i:03d}" for i in range(n)]


def _contacts(agents: Sequence[str], per_agent: int) -> list[ContactRow]:
    return [
        ContactRow(agent, f"+44121{a:03d}{i:04d}", name=f"Contact {a}-{i}")
        for a, agent in enumerate(agents)
        for i in range(per_agent)
    ]


async def run_variant(variant: str, dials: int, agents: int, directory: Path) -> dict[str, Any]:
    """One variant on a fresh file: ``dials`` dials; per-kind timings, wall and CPU per dial."""
    names = _agents(agents)
    path = directory / f"{variant}-{time.monotonic_ns()}.db"
    store = SqliteStore(path, fast_path=variant != "baseline")
    try:
        await store.import_contacts(_contacts(names, dials // agents + 1))
        now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        timings = Timings()
        answered = ContactOutcome("answered", counted=True, retry_at=None, max_attempts=3)
        cpu, wall = cpu_seconds(), time.perf_counter()
        for n in range(dials):
            agent = names[n % agents]
            now += timedelta(milliseconds=10)
            due = await timings.time("due_contacts", store.due_contacts(agent, now, 5))
            contact = due.contacts[0]
            key = f"dial-{n}"
            claimed = await timings.time(
                "claim_for_dial",
                store.claim_for_dial(key, "next-contact", agent, now, contact=contact.id),
            )
            if claimed.claim is None:
                raise RuntimeError(f"dial {n}: not claimed ({claimed.refused})")
            conversation = f"conv-{n}"
            call = CallRecord(
                conversation, agent, contact.id, contact.phone_number, "dialing", None, now
            )
            await timings.time("record_placed", store.record_placed(key, call))
            for state in ("dialing", "connected", "ended"):
                change: CallChange = None  # dialing changes nothing stored: read only
                if state != "dialing":
                    ended = now if state == "ended" else None
                    written = CallRecord(
                        conversation,
                        agent,
                        contact.id,
                        contact.phone_number,
                        state,
                        "answered" if ended else None,
                        now,
                        ended,
                    )
                    change = (written, answered if ended else None)
                tracked: object
                if variant == "baseline":
                    tracked = await timings.time("get_call", store.get_call(conversation))
                    if change is not None:
                        await timings.time(
                            "record_call_progress",
                            store.record_call_progress(change[0], contact_outcome=change[1]),
                        )
                else:
                    tracked = await timings.time(
                        "advance_call", store.advance_call(conversation, always(change))
                    )
                if tracked is None:
                    raise RuntimeError(f"dial {n}: call not tracked")
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    finally:
        await store.aclose()
    return {
        "us": {kind: timings.us_per_op(kind) for kind in KINDS},
        "wall_us_per_dial": wall / dials * 1e6,
        "cpu_us_per_dial": cpu / dials * 1e6,
        "ops_per_dial": sum(timings.calls.values()) / dials,
    }


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """The table: per kind, then per dial; medians over the rounds."""

    def med(variant: str, field: str, kind: str | None = None) -> float:
        return median(
            [float(r[field][kind] if kind is not None else r[field]) for r in results[variant]]
        )

    print(f"{'operation':<22}{'per dial':>9}{'baseline us/op':>16}{'now us/op':>11}{'ratio':>8}")
    for kind in KINDS:
        base, new = med("baseline", "us", kind), med("now", "us", kind)
        shown = f"{base / new:>7.2f}x" if base == base and new == new else f"{'-':>8}"
        counts = "/".join(str(c) for c in PER_DIAL[kind])
        print(f"{kind:<22}{counts:>9}{base:>16.1f}{new:>11.1f}{shown}")
    print()
    print(f"{'per dial':<31}{'baseline':>16}{'now':>11}{'ratio':>8}")
    rows = [
        ("wall us/dial", "wall_us_per_dial", False),
        ("CPU us/dial (all threads)", "cpu_us_per_dial", False),
        ("store operations a dial", "ops_per_dial", False),
    ]
    for label, field, higher_better in rows:
        base, new = med("baseline", field), med("now", field)
        ratio = new / base if higher_better else base / new
        print(f"{label:<31}{base:>16,.1f}{new:>11,.1f}{ratio:>7.2f}x")
    base_cpu, new_cpu = med("baseline", "cpu_us_per_dial"), med("now", "cpu_us_per_dial")
    print(
        f"at {DIALS_PER_SECOND} dials/s the store's operations cost "
        f"{base_cpu * DIALS_PER_SECOND / 1e4:.1f}% of a core as it was, "
        f"{new_cpu * DIALS_PER_SECOND / 1e4:.1f}% now"
    )
    for variant in VARIANTS:
        runs = ", ".join(f"{r['wall_us_per_dial']:,.0f}" for r in results[variant])
        print(f"  {variant}: wall us/dial per round: {runs}")


async def measure(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Every round runs both variants, interleaved, each on a fresh file."""
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="outdial-bench-store-") as tmp:
        # A short warm-up of each: imports, caches and the thread pool's first thread.
        for variant in VARIANTS:
            await run_variant(variant, min(50, args.dials), args.agents, Path(tmp))
        for round_ in range(args.rounds):
            print(f"  round {round_ + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
            for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                results[variant].append(
                    await run_variant(variant, args.dials, args.agents, Path(tmp))
                )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run both variants, print the header and the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dials", type=int, default=3000, help="dials per variant and round")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.dials, args.rounds = min(args.dials, 100), 1
    args.agents = max(1, min(args.agents, args.dials))
    print(
        header(
            "store: a dial's store operations, SQLite inline against the thread hop",
            [
                f"{args.dials:,} dials per variant and round, {args.rounds} rounds interleaved, "
                f"{args.agents} agents; one task, one operation at a time",
                "per dial: due_contacts, claim_for_dial, record_placed, "
                "3 x get_call, 2 x record_call_progress",
                "baseline: SqliteStore(fast_path=False), every operation in the worker "
                "thread, every commit FULL; now: the default store",
                f"temporary file in {tempfile.gettempdir()} (its fsyncs are that disk's)",
            ],
        ),
        flush=True,
    )
    report(anyio.run(measure, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
