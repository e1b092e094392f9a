"""Cost per event of decoding agent bodies: the codec's hand-written path against the models.

No socket, no server: one process decodes N prebuilt events per kind through
``GenesysCodec.decode`` (the hand-written readers of presence, routing status
and conversation summary bodies, falling back to the models for anything
unusual) and through ``decode_with_models`` (the pydantic models alone, what
``decode`` did before: the baseline, measured in the same run). The bodies are
shaped as in ``tests/fixtures/genesys`` (``presence-available.json``,
``routing-status.json``, ``conversation-summary-sequence.json``), with varied
presences, statuses, counts and times, so no result is cached anywhere.

Each variant runs ``--repeats`` times, interleaved (fast, model, fast, ...);
the median microseconds per event is reported with the ratio fast / model.
Before timing, both paths decode every event and must agree (the tests hold
them to that on every body; this only guards the figures).

Layout: one process, one thread; nothing else runs (no load generator), so the
measured side is not pinned unless ``--cpu`` is given.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from _common import FIXTURES, header, median, presence_body, stream_users, summary_body
from outdial.domain import Decoded
from outdial.events import Event
from outdial.platforms.genesys.codec import GenesysCodec, decode_with_models

Decode = Callable[[Event, datetime], Decoded]

_PRESENCES = ("Available", "Busy", "Away", "Available", "Meal")
_STATUSES = ("IDLE", "OFF_QUEUE", "INTERACTING", "NOT_RESPONDING", "idle")
_OBSERVED = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
_ROUTING = json.loads((FIXTURES / "routing-status.json").read_text())


def routing_body(user_id: str, status: str, offset: int) -> dict[str, Any]:
    """A ``v2.users.{id}.routingStatus`` body as in ``routing-status.json``."""
    body: dict[str, Any] = copy.deepcopy(_ROUTING["eventBody"])
    body["id"] = user_id
    body["routingStatus"]["status"] = status
    body["routingStatus"]["startTime"] = f"2026-11-23T08:{offset // 60 % 60:02d}:{offset % 60:02d}Z"
    return body


def events(kind: str, count: int) -> list[Event]:
    """``count`` events of one kind (``presence``, ``routing``, ``summary``) for varied agents."""
    users = stream_users(min(count, 1000))
    made = []
    for i in range(count):
        user = users[i % len(users)]
        if kind == "presence":
            topic, body = f"v2.users.{user}.presence", presence_body(_PRESENCES[i % 5], i * 0.25)
        elif kind == "routing":
            topic, body = f"v2.users.{user}.routingStatus", routing_body(user, _STATUSES[i % 5], i)
        else:
            topic, body = f"v2.users.{user}.conversationsummary", summary_body(user, i % 3)
        made.append(Event(topic, body, "2", None, "bench", float(i)))
    return made


def timed(decode: Decode, batch: Sequence[Event]) -> float:
    """Microseconds per event to decode the whole batch once."""
    start = time.perf_counter()
    for event in batch:
        decode(event, _OBSERVED)
    return (time.perf_counter() - start) / len(batch) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Decode each kind with both paths, interleaved; print us/event and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per kind")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    parser.add_argument("--quick", action="store_true", help="a short run (1,000 events, 2 runs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeats = min(args.events, 1_000), 2
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    pinned = f"pinned to CPU {args.cpu}" if args.cpu is not None else "not pinned"
    print(
        header(
            "decode: us per event, hand-written agent bodies against the pydantic models",
            [
                f"{args.events:,} events per kind, {args.repeats} interleaved runs each, median",
                "fast: GenesysCodec.decode; model: decode_with_models (the baseline)",
            ],
        )
    )
    print(f"layout  : one process, no load generator; {pinned}")
    codec = GenesysCodec()
    variants: dict[str, Decode] = {"fast": codec.decode, "model": decode_with_models}
    print(f"{'kind':<10}{'fast us':>10}{'model us':>10}{'fast/model':>12}   runs (fast | model)")
    for kind in ("presence", "routing", "summary"):
        batch = events(kind, args.events)
        for event in batch:
            fast, model = codec.decode(event, _OBSERVED), decode_with_models(event, _OBSERVED)
            if fast != model:
                print(f"paths disagree on {event.body!r}: {fast} != {model}", file=sys.stderr)
                return 1
        runs: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, decode in variants.items():
                runs[name].append(timed(decode, batch))
        fast_us, model_us = median(runs["fast"]), median(runs["model"])
        figures = " ".join(f"{v:.2f}" for v in runs["fast"])
        figures += " | " + " ".join(f"{v:.2f}" for v in runs["model"])
        print(f"{kind:<10}{fast_us:>10.2f}{model_us:>10.2f}{fast_us / model_us:>12.2f}   {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
