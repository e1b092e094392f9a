"""Events per second: the real daemon, and outdial's listener alone, against bare loops.

One server (``bench/servers/stream.py``, its own process) streams N realistic
notification frames (half presence, half call conversation bodies, shaped as
in ``tests/fixtures/genesys``) as fast as the socket takes them. In the same
run and against the same server this measures:

- **bare loop**: ``async for msg in ws`` and nothing else (bimodal on some
  machines: a ratio against it swings from run to run);
- **bare loop + json.loads** (the stable baseline: what any consumer must at
  least do); the ratios are against it, and against the bare loop beside;
- ``SocketSession`` alone: receive, parse + validate (pydantic), classify;
- **listener only** (labelled so: not the daemon): the real ``Listener``
  (session, bounded queue) feeding a consumer that runs ``RuleIndex.match``
  and awaits a no-op handler per match, with 1, 100 and 1,000 rules loaded.
  The extra rules are on other agents and topics;
- **the daemon** (``outdial.app.Daemon``, what ``outdial run`` runs): the
  listener, the hand-off to the workers, call tracking (a store read per
  call event), the rule index and, for each ``Available`` presence, the dial
  path up to its store read (the agent's due contacts: none here, so no call
  is placed), on a temporary SQLite store. Logging is off (``outdial run``
  writes a line per dial; here no dial is placed).

Events per second count the events *handled* (for the daemon: its handler
returned) from the first frame's arrival to the last event handled. An event
dropped on overflow is never counted as handled: the drops (the listener's
queue, ``listener.stats.overflowed``, and for the daemon its agents' full
lanes, ``lane_overflowed``) and gaps are printed beside the rate, with the
offered rate (handled + dropped). Each variant runs ``--repeats`` times,
interleaved; the median is reported with every run's figure. Then
``RuleIndex.match`` alone, on the same events, without a socket.

The server runs pinned to one CPU and this process (every measured client) to
another when the machine has two; the header prints the layout.

Targets (issue 6): the pipeline >= 50% of the bare loop; 1,000 rules cost at
most 10% more per event than 1 rule.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from websockets.asyncio.client import connect

from _common import (
    Layout,
    StreamServer,
    StubPlatform,
    header,
    median,
    pin,
    stream_frames,
    stream_users,
    watch_handling,
)
from outdial.app import Daemon
from outdial.clock import SystemClock
from outdial.config import Config, ListenerConfig, Rule
from outdial.events import Event, Gap, SocketClosing, parse_frame
from outdial.handlers.rules import Match, RuleIndex
from outdial.listener import Listener
from outdial.loop import GC_THRESHOLDS, backend_options, tune_gc
from outdial.platforms.base import ChannelInfo, PlatformBundle
from outdial.platforms.genesys.codec import GenesysCodec
from outdial.platforms.genesys.socket import SocketSession
from outdial.platforms.genesys.sources import ChannelSources
from outdial.store import open_store

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


@dataclass
class Run:
    """One run of a variant: events/s handled, events dropped on overflow, gaps."""

    rate: float
    handled: int
    dropped: int = 0
    gaps: int = 0
    offered: float = 0.0


def daemon_config(users: Sequence[str]) -> Config:
    """The daemon's config: one presence rule dialing each streamed agent's next contact.

    Guards are permissive (calling window all day, no rate limit to speak of), so
    a trigger goes down the whole dial path to its store read.
    """
    return Config.model_validate(
        {
            # Never contacted: the bundle below answers the platform's REST in memory.
            "platform": {
                "api_url": "http://127.0.0.1:9",
                "login_url": "http://127.0.0.1:9",
                "client_id": "bench",
                "client_secret": "bench",
            },
            "listener": {
                "ping_interval": QUIET.ping_interval,
                "ping_timeout": QUIET.ping_timeout,
            },
            "guards": {
                "default_region": "GB",
                "calling_window": ["00:00", "23:59"],
                "calls_per_second": 100_000,
            },
            "rules": [
                {
                    "name": "next-contact-when-available",
                    "topic": "v2.users.{userId}.presence",
                    "users": list(users),
                    "when": {"presenceDefinition.systemPresence": "Available"},
                    "dial": {"user": "{userId}", "contact": "next", "caller_id": "+441214999999"},
                }
            ],
        }
    )


def stub_bundle(url: str, config: Config) -> PlatformBundle:
    """The Genesys ports with REST answered in memory and channels on the stream server."""
    stub = StubPlatform(url)
    return PlatformBundle(
        kind="genesys",
        calls=stub,
        agents=stub,
        codec=GenesysCodec(),
        sources=ChannelSources(stub, config.listener, SystemClock()),
        aclose=stub.aclose,
    )


async def run_daemon(url: str, n: int, users: Sequence[str]) -> Run:
    """Events/s the real daemon handles on the stream, with its drops and gaps.

    The daemon's handler is wrapped (an instance attribute shadows the method it
    calls; nothing else changes) to count each live event once its handling
    returned. The run ends when every frame was handled or dropped.
    """
    config = daemon_config(users)
    handled = 0
    start = last = 0.0
    with tempfile.TemporaryDirectory(prefix="outdial-bench-") as tmp:
        async with open_store(f"sqlite:///{Path(tmp) / 'bench.db'}") as store:
            daemon = Daemon(config, platform=stub_bundle(url, config), store=store)

            def counted(event: Event) -> None:
                nonlocal handled, start, last
                if handled == 0:
                    start = event.received_at
                handled += 1
                last = time.monotonic()

            watch_handling(daemon.handlers, after=counted)
            stats = daemon.listener.stats
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                # Dropped frames never reach the handler (or its end, dropped from a
                # full lane): poll for handled + dropped.
                while handled + stats.overflowed + daemon.lane_overflowed < n:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
    seconds = max(last - start, 1e-9)
    # The startup gap (subscribed: re-read every agent) is not an overflow gap.
    gaps = max(0, daemon.gaps_handled - 1)
    dropped = stats.overflowed + daemon.lane_overflowed
    return Run((handled - 1) / seconds, handled, dropped, gaps, (n - 1) / seconds)


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


ROWS = (
    ("bare websockets loop", "bare"),
    ("bare loop + json.loads (baseline)", "bare+json"),
    ("SocketSession: parse+validate+classify", "session"),
    *((f"listener only, {c} rule(s) (not the daemon)", f"pipeline-{c}") for c in RULE_COUNTS),
    ("the daemon (outdial.app.Daemon), 1 rule", "daemon"),
)


async def measure(args: argparse.Namespace) -> int:
    """Run every variant ``repeats`` times, interleaved, and print the medians."""
    users = stream_users(USERS)
    topics = stream_topics(users)
    indexes = {c: RuleIndex.compile(make_rules(c, users)) for c in RULE_COUNTS}
    results: dict[str, list[Run]] = {}
    matches = 0
    layout: Layout = args.layout
    with StreamServer.running(layout.load) as server:
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
            for key, parse in (("bare", False), ("bare+json", True)):
                rate = await run_bare(url(), args.events, parse=parse)
                results.setdefault(key, []).append(Run(rate, args.events, offered=rate))
            rate = await run_session(url(), args.events)
            results.setdefault("session", []).append(Run(rate, args.events, offered=rate))
            for count, index in indexes.items():
                rate, matched, dropped = await run_pipeline(url(), args.events, index, topics)
                handled = args.events - dropped
                offered = rate * args.events / max(handled, 1)
                results.setdefault(f"pipeline-{count}", []).append(
                    Run(rate, handled, dropped, offered=offered)
                )
                matches = matched if count == 1 else matches
            results.setdefault("daemon", []).append(await run_daemon(url(), args.events, users))

    stable = median([r.rate for r in results["bare+json"]])
    bare = median([r.rate for r in results["bare"]])
    print()
    print(
        f"{'variant':<46} {'handled/s':>10} {'vs json':>7} {'vs bare':>7} {'us/event':>9} "
        f"{'dropped':>9} {'gaps':>5}  handled/s of each run"
    )
    for label, key in ROWS:
        runs = results[key]
        rate = median([r.rate for r in runs])
        run_dropped = median([r.dropped for r in runs])
        run_gaps = median([r.gaps for r in runs])
        spread = ", ".join(f"{r.rate:,.0f}" for r in runs)
        print(
            f"{label:<46} {rate:>10,.0f} {rate / stable:>7.0%} {rate / bare:>7.0%} "
            f"{1e6 / rate:>9.2f} {run_dropped:>9,.0f} {run_gaps:>5,.0f}  [{spread}]"
        )
    print(
        f"\n(dropped, gaps: medians per run of {args.events:,} frames; a dropped event is not "
        f"counted as handled. Listener-only rows: {matches:,} matches per run, a no-op "
        "handler awaited for each)"
    )
    daemon_runs = results["daemon"]
    print(
        "the daemon, each run: "
        + "; ".join(
            f"{r.handled:,} handled ({r.rate:,.0f}/s), {r.dropped:,} dropped "
            f"({r.dropped / args.events:.0%}), {r.gaps} gaps, offered {r.offered:,.0f}/s"
            for r in daemon_runs
        )
    )

    one = median([r.rate for r in results["pipeline-1"]])
    thousand = median([r.rate for r in results["pipeline-1000"]])
    pipeline_extra = one / thousand - 1.0
    ratio = one / bare
    print("\nRuleIndex.match alone (same events, no socket):")
    events = [e for f in stream_frames(users, 4) if isinstance(e := parse_frame(f), Event)]
    per_event = match_only(indexes, events, args.match_seconds)
    for count, ns in per_event.items():
        print(f"  {count:>5} rule(s): {ns:8.0f} ns/event  ({ns / per_event[1] - 1:+.1%} vs 1 rule)")
    match_extra = per_event[1000] / per_event[1] - 1.0

    daemon = median([r.rate for r in daemon_runs])
    print("\ntargets:")
    print(
        f"  the daemon vs bare loop + json.loads : {daemon / stable:.0%} "
        f"({daemon:,.0f} vs {stable:,.0f} events/s; "
        f"{median([r.dropped for r in daemon_runs]):,.0f} dropped per run)"
    )
    print(
        f"  listener only (1 rule) vs bare loop  : {ratio:.0%} "
        f"(target >= 50%: {'met' if ratio >= 0.5 else 'NOT met'}; the listener, not the daemon)"
    )
    print(
        f"  1,000 vs 1 rule, cost per event      : {pipeline_extra:+.1%} listener only, "
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
    parser.add_argument(
        "--no-pin", action="store_true", help="let the server and the clients share every CPU"
    )
    args = parser.parse_args(argv)
    args.layout = Layout(pinned=not args.no_pin)
    # The measured clients all run in this process: pinned away from the server's CPU.
    pin(0, args.layout.measured)
    args.match_seconds = 0.05 if args.quick else 3.0
    if args.quick:
        args.repeats = 1
    if args.events < 2:
        parser.error("--events must be at least 2")
    print(
        header(
            "throughput: events/s handled, the daemon (and the listener alone) vs bare loops",
            [
                f"{args.events:,} frames per run, {USERS} agents, half presence half call events; "
                f"median of {args.repeats} run(s)",
                "server: bench/servers/stream.py in its own process, pre-encoded frames, flat out",
                f"runtime: as outdial run (uvloop when installed, collector thresholds "
                f"{', '.join(map(str, GC_THRESHOLDS))}), for every row",
            ],
            args.layout,
        ),
        flush=True,
    )
    # Overflow warnings are expected at full speed; the table reports the drops.
    logging.getLogger("outdial").addHandler(logging.NullHandler())
    logging.getLogger("outdial").propagate = False
    # As ``outdial run`` runs (the bare loops share the process, and the loop).
    tune_gc()
    return anyio.run(measure, args, backend_options=backend_options("auto"))


if __name__ == "__main__":
    sys.exit(main())
