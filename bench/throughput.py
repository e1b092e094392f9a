"""Events per second: outdial's full receive pipeline against a bare ``websockets`` loop.

One server (``bench/servers/stream.py``, its own process) streams N realistic
notification frames (half presence, half call conversation bodies, shaped as
in ``tests/fixtures/genesys``) as fast as the socket takes them. In the same
run and against the same server this measures:

- **bare loop** (the baseline): ``async for msg in ws`` and nothing else;
- bare loop + ``json.loads`` (what any consumer must at least do);
- ``SocketSession`` alone: receive, parse + validate (pydantic), classify;
- the **full pipeline**: the real ``Listener`` (session, bounded queue) feeding a
  consumer that runs ``RuleIndex.match`` and awaits a no-op handler per match,
  with 1, 100 and 1,000 rules loaded. The extra rules are on other agents and
  topics, as most rules in a big config are for any one event.

Events per second count from the first frame's arrival to the last event
handled. Each variant runs ``--repeats`` times, interleaved; the median is
reported. Then ``RuleIndex.match`` alone, on the same events, without a socket.

Targets (issue 6): full pipeline >= 50% of the bare loop; 1,000 rules cost at
most 10% more per event than 1 rule.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import anyio
from websockets.asyncio.client import connect

from _common import (
    StreamServer,
    StubPlatform,
    header,
    median,
    stream_frames,
    stream_users,
)
from outdial.clock import SystemClock
from outdial.config import ListenerConfig, Rule
from outdial.events import Event, Gap, SocketClosing, parse_frame
from outdial.handlers.rules import Match, RuleIndex
from outdial.listener import Listener
from outdial.platforms.base import ChannelInfo
from outdial.platforms.genesys.socket import SocketSession
from outdial.platforms.genesys.sources import ChannelSources

USERS = 50
RULE_COUNTS = (1, 100, 1000)
# Keepalive never fires during a run: nothing but events crosses the socket.
QUIET = ListenerConfig(ping_interval=600.0, ping_timeout=60.0)


def make_rules(count: int, users: Sequence[str]) -> list[Rule]:
    """One rule on the streamed agents' presence, plus ``count - 1`` on other agents."""
    rules = [
        Rule.model_validate(
            {
                "name": "next-contact-when-available",
                "topic": "v2.users.{userId}.presence",
                "users": list(users),
                "when": {"presenceDefinition.systemPresence": "Available"},
                "dial": {"user": "{userId}", "contact": "next"},
            }
        )
    ]
    shapes = [
        ("v2.users.{userId}.presence", {"presenceDefinition.systemPresence": ["Available"]}),
        ("v2.users.{userId}.routingStatus", {"routingStatus.status": "IDLE"}),
        (
            "v2.users.{userId}.conversations.calls",
            {"participants.purpose": "customer", "participants.disconnectType": "peer"},
        ),
    ]
    for i in range(1, count):
        topic, when = shapes[i % len(shapes)]
        rules.append(
            Rule.model_validate(
                {
                    "name": f"other-{i}",
                    "topic": topic,
                    "users": stream_users(10, prefix=f"r{i}"),
                    "when": when,
                    "dial": {"user": "{userId}", "contact": "next"},
                }
            )
        )
    return rules


def stream_topics(users: Sequence[str]) -> list[str]:
    """What the listener subscribes: the streamed agents' presence and calls topics."""
    return [f"v2.users.{u}.{s}" for u in users for s in ("presence", "conversations.calls")]


async def run_bare(url: str, n: int, *, parse: bool) -> float:
    """Events/s of ``async for msg in ws`` (optionally with ``json.loads``)."""
    import json

    count = 0
    start = 0.0
    async with connect(
        url, ping_interval=None, compression=None, max_size=2**22, close_timeout=1.0
    ) as ws:
        async for message in ws:
            if count == 0:
                start = time.monotonic()
            if parse:
                json.loads(message)
            count += 1
            if count == n:
                break
        end = time.monotonic()
    return (n - 1) / (end - start)


async def run_session(url: str, n: int) -> float:
    """Events/s of ``SocketSession`` alone: receive, parse, validate, classify."""
    count = 0
    start = 0.0
    done = anyio.Event()

    def on_event(event: Event) -> None:
        nonlocal count, start
        if count == 0:
            start = event.received_at
        count += 1
        if count == n:
            done.set()

    def on_closing(warning: SocketClosing) -> None:
        pass

    session = SocketSession(
        ChannelInfo("bench", url, None),
        clock=SystemClock(),
        on_event=on_event,
        on_closing=on_closing,
        ping_interval=QUIET.ping_interval,
        ping_timeout=QUIET.ping_timeout,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.run)
        await done.wait()
        end = time.monotonic()
        tg.cancel_scope.cancel()
    return (n - 1) / (end - start)


async def noop(match: Match) -> None:
    """The handler: does nothing, so what is measured is getting the match to it."""


async def run_pipeline(
    url: str,
    n: int,
    index: RuleIndex,
    topics: Sequence[str],
    handler: Callable[[Match], Awaitable[None]] = noop,
) -> tuple[float, int, int]:
    """Events/s through Listener -> bounded queue -> RuleIndex.match -> handler.

    Returns (events/s, matches, events dropped by queue overflow).
    """
    listener = Listener(
        ChannelSources(StubPlatform(url), QUIET, SystemClock()), topics, QUIET, SystemClock()
    )
    count = matched = 0
    start = end = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.run)
        async for item in listener:
            if isinstance(item, Gap):
                continue
            if count == 0:
                start = item.received_at
            for match in index.match(item):
                matched += 1
                await handler(match)
            count += 1
            if count + listener.stats.overflowed >= n:
                end = time.monotonic()
                tg.cancel_scope.cancel()
                break
    return (count - 1) / (end - start), matched, listener.stats.overflowed


def match_only(
    indexes: Mapping[int, RuleIndex], events: Sequence[Event], seconds: float
) -> dict[int, float]:
    """Nanoseconds per event of ``RuleIndex.match`` alone, per index.

    Short passes over the events, the indexes taking turns, for ``seconds``;
    the fastest pass of each counts. Taking turns gives every index the same
    share of whatever else the machine was doing.
    """
    best = dict.fromkeys(indexes, float("inf"))
    deadline = time.perf_counter() + seconds
    while True:
        for count, index in indexes.items():
            t0 = time.perf_counter()
            for event in events:
                index.match(event)
            best[count] = min(best[count], (time.perf_counter() - t0) / len(events))
        if time.perf_counter() > deadline:
            return {count: ns * 1e9 for count, ns in best.items()}


async def measure(args: argparse.Namespace) -> int:
    """Run every variant ``repeats`` times, interleaved, and print the medians."""
    users = stream_users(USERS)
    topics = stream_topics(users)
    indexes = {c: RuleIndex.compile(make_rules(c, users)) for c in RULE_COUNTS}
    results: dict[str, list[float]] = {}
    overflow: dict[str, int] = {}
    matches: dict[str, int] = {}
    with StreamServer.running() as server:
        serial = 0

        def url() -> str:
            nonlocal serial
            serial += 1
            return server.url(f"c{serial}", n=args.events, users=USERS)

        def warm_url() -> str:
            return server.url("warm", n=1000, users=USERS)

        # One untimed pass warms the server's frame cache and the client's imports.
        await run_bare(warm_url(), 1000, parse=False)
        for rep in range(args.repeats):
            print(f"  repeat {rep + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
            results.setdefault("bare", []).append(await run_bare(url(), args.events, parse=False))
            results.setdefault("bare+json", []).append(
                await run_bare(url(), args.events, parse=True)
            )
            results.setdefault("session", []).append(await run_session(url(), args.events))
            for count, index in indexes.items():
                key = f"pipeline-{count}"
                rate, matched, dropped = await run_pipeline(url(), args.events, index, topics)
                results.setdefault(key, []).append(rate)
                overflow[key] = overflow.get(key, 0) + dropped
                matches[key] = matched

    bare = median(results["bare"])
    rows = [
        ("bare websockets loop (baseline)", "bare"),
        ("bare loop + json.loads", "bare+json"),
        ("SocketSession: parse+validate+classify", "session"),
        *((f"full pipeline, {c} rule(s)", f"pipeline-{c}") for c in RULE_COUNTS),
    ]
    print()
    print(f"{'variant':<42} {'events/s':>10} {'vs bare':>8} {'us/event':>9}  runs")
    for label, key in rows:
        rate = median(results[key])
        spread = ", ".join(f"{r:,.0f}" for r in results[key])
        print(f"{label:<42} {rate:>10,.0f} {rate / bare:>7.0%} {1e6 / rate:>9.2f}  [{spread}]")
    dropped = sum(overflow.values())
    print(
        f"\nqueue overflow drops: {dropped} "
        f"(matches per run: {matches.get('pipeline-1', 0)}, no-op handler awaited for each)"
    )

    one = median(results["pipeline-1"])
    thousand = median(results["pipeline-1000"])
    pipeline_extra = one / thousand - 1.0
    ratio = one / bare
    print("\nRuleIndex.match alone (same events, no socket):")
    events = [e for f in stream_frames(users, 4) if isinstance(e := parse_frame(f), Event)]
    per_event = match_only(indexes, events, args.match_seconds)
    for count, ns in per_event.items():
        print(f"  {count:>5} rule(s): {ns:8.0f} ns/event  ({ns / per_event[1] - 1:+.1%} vs 1 rule)")
    match_extra = per_event[1000] / per_event[1] - 1.0

    print("\ntargets:")
    print(
        f"  full pipeline (1 rule) vs bare loop : {ratio:.0%} "
        f"(target >= 50%: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    print(
        f"  1,000 vs 1 rule, cost per event     : {pipeline_extra:+.1%} in the pipeline, "
        f"{match_extra:+.1%} in match alone "
        f"(target <= +10%: {'met' if max(pipeline_extra, match_extra) <= 0.10 else 'NOT met'})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the header, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000, help="frames per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (median)")
    parser.add_argument("--quick", action="store_true", help="one run each, short match test")
    args = parser.parse_args(argv)
    args.match_seconds = 0.05 if args.quick else 3.0
    if args.quick:
        args.repeats = 1
    if args.events < 2:
        parser.error("--events must be at least 2")
    print(
        header(
            "throughput: events/s, outdial's pipeline vs a bare websockets loop",
            [
                f"{args.events:,} frames per run, {USERS} agents, half presence half call events; "
                f"median of {args.repeats} run(s)",
                "server: bench/servers/stream.py in its own process, pre-encoded frames, flat out",
            ],
        ),
        flush=True,
    )
    # Overflow warnings are expected at full speed; the table reports the drops.
    logging.getLogger("outdial").addHandler(logging.NullHandler())
    logging.getLogger("outdial").propagate = False
    return anyio.run(measure, args)


if __name__ == "__main__":
    sys.exit(main())
