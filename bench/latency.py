"""Event received to dial request sent, at a fixed event rate: outdial against a bare client.

A platform server runs in its own process with many agents and publishes
presence events at ``--rate`` per second; ``--trigger-share`` of them (all, by
default) are ``Available`` (round-robin over the agents: a dial trigger each),
the rest ``Away`` (parsed and matched, nothing to do). By default the server
is ``bench/servers/miniplatform.py`` (hand-written HTTP and pre-encoded
frames, cheap enough never to be the bottleneck); ``--server fake`` uses
outdial's ``FakePlatform`` instead (``bench/servers/fakedriver.py``), which is
itself saturated well below 1,000 calls/s.
Two clients, each against a fresh server with the same settings, in the same
run:

- **baseline**: a bare ``websockets`` receive loop that ``json.loads`` each
  frame and, for an Available presence, starts a bare ``httpx`` POST of a
  CreateCallRequest in a task of its own (the least any dialer must do; with
  64 requests in flight it sheds the trigger instead of queueing it);
- **outdial**: the real daemon (``Daemon``: listener, handlers, rule index,
  guards, idempotency claim in a temporary SQLite store, the Genesys REST
  client), one rule ``next-contact-when-available``, contacts per agent in
  the store, guards set permissive (calling window 00:00-23:59, 100k calls/s).

Latency is measured from the frame's arrival at the client (outdial: the
listener's ``Event.received_at``) to the moment the POST to
``/api/v2/conversations/calls/user/{id}`` is handed to httpx's transport (a
wrapping transport timestamps it; the bytes hit the loopback socket a few tens
of microseconds later). Both timestamps are taken in the client process, on
the same monotonic clock. The triggers of the first ``--warmup-seconds`` are
left out.

The percentiles cover **every** trigger of the measured window: one whose dial
request was not sent by the end of the run (the baseline's shed ones too)
counts as infinitely late, as in ``bench/ready_latency.py``; a p99 shown as
``undialed`` means more than 1 % were. The "of which" rows split the dialed
triggers' time only.

outdial also tracks every call it places: the server plays each call out
(three call events) and those go through the same queue and store as the
triggers. The baseline does none of that. ``--rate`` takes a list
(``--rate 50,100,1000``) to see where the daemon saturates.

Target (issue 6): p99 under 5 ms at 1,000 events/s on loopback.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.streams.buffered import BufferedByteReceiveStream
from websockets.asyncio.client import connect

from _common import (
    BENCH_DIR,
    Layout,
    header,
    percentile,
    pin,
    valid_number,
    watch_handling,
)
from outdial.app import Daemon
from outdial.clock import SystemClock
from outdial.config import Config
from outdial.events import Event
from outdial.loop import GC_THRESHOLDS, backend_options, tune_gc
from outdial.platforms.genesys import GenesysPlatform
from outdial.platforms.genesys.bundle import genesys_bundle
from outdial.store import open_store
from outdial.store.base import ContactRow
from outdial.store.timings import Timings

#: The trigger being handled in this task: (frame arrival, handling started), monotonic.
TRIGGER: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "TRIGGER", default=None
)
CALL_PATH = "/api/v2/conversations/calls/user/"
#: The baseline drops a trigger rather than queue a request behind this many.
MAX_IN_FLIGHT = 64
SERVERS = {
    "mini": "bench/servers/miniplatform.py (calls play out as 3 events, 20 ms apart)",
    "fake": "FakePlatform via bench/servers/fakedriver.py (calls play out in 60-210 ms)",
}


@dataclass
class Samples:
    """Per-trigger timings, seconds."""

    total: list[float] = field(default_factory=list)  # arrival -> request sent
    queued: list[float] = field(default_factory=list)  # arrival -> handling started
    handling: list[float] = field(default_factory=list)  # handling started -> request sent


class TimingTransport(httpx.AsyncBaseTransport):
    """Timestamps each call request as it is handed to the real transport."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.recording = False
        self.samples = Samples()
        self.call_requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record arrival -> now for a call request made while handling a trigger."""
        if request.method == "POST" and CALL_PATH in request.url.path:
            sent = time.monotonic()
            trigger = TRIGGER.get()
            if self.recording and trigger is not None:
                received, started = trigger
                self.call_requests += 1
                self.samples.total.append(sent - received)
                self.samples.queued.append(started - received)
                self.samples.handling.append(sent - started)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()


class Driver:
    """The platform process (``servers.miniplatform`` or ``servers.fakedriver``).

    Started, given commands on its standard input, stopped.
    """

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        assert process.stdin is not None
        self._out = BufferedByteReceiveStream(process.stdout)
        self._in = process.stdin
        self.info: dict[str, Any] = {}

    async def line(self) -> dict[str, Any]:
        """The next JSON line the driver prints."""
        raw = await self._out.receive_until(b"\n", 10_000_000)
        result: dict[str, Any] = json.loads(raw)
        return result

    async def send(self, command: str) -> None:
        """One command line."""
        await self._in.send(command.encode() + b"\n")

    @classmethod
    @asynccontextmanager
    async def running(
        cls, server: str, agents: int, seed: int, extra: Sequence[str] = ()
    ) -> AsyncIterator[Driver]:
        """Start the server process, wait until it is ready, stop it (that process only).

        ``extra`` are more arguments for the server (``--mode ready``, ...).
        """
        module = "servers.miniplatform" if server == "mini" else "servers.fakedriver"
        command = [sys.executable, "-m", module, "--agents", str(agents), "--seed", str(seed)]
        command += extra
        process = await anyio.open_process(command, cwd=BENCH_DIR, stderr=None)
        driver = cls(process)
        try:
            driver.info = await driver.line()
            yield driver
        finally:
            with anyio.CancelScope(shield=True):
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await driver.send("quit")
                with anyio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await process.aclose()


def _ms(value: float) -> str:
    return "undialed" if math.isinf(value) else f"{value * 1000:8.2f}"


def with_undialed(values: Sequence[float], undialed: int) -> list[float]:
    """Every trigger's latency: the dialed ones', and infinity for each undialed one."""
    return [*values, *([math.inf] * max(0, undialed))]


def _summary(label: str, values: Sequence[float], undialed: int = 0) -> str:
    """p50, p99, max over every trigger (undialed ones infinitely late), and the counts."""
    every = with_undialed(values, undialed)
    worst = max(every) if every else float("nan")
    counted = f"{len(values):,}/{len(every):,}"
    return (
        f"{label:<38} {_ms(percentile(every, 50)):>8} {_ms(percentile(every, 99)):>8} "
        f"{_ms(worst):>8} {counted:>13}"
    )


async def run_baseline(args: argparse.Namespace) -> tuple[Samples, dict[str, Any]]:
    """The bare client: websockets loop, json.loads, one bare httpx POST per trigger."""
    async with Driver.running(args.server, args.agents, args.seed) as driver:
        pin(driver.process.pid, args.layout.load)
        info = driver.info
        transport = TimingTransport()
        async with httpx.AsyncClient(
            transport=transport, base_url=info["api_url"], timeout=60.0
        ) as client:
            token = (
                await client.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(info["client_id"], info["client_secret"]),
                )
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            channel = (await client.post("/api/v2/notifications/channels", headers=auth)).json()
            topics = [{"id": f"v2.users.{u}.presence"} for u in info["agents"]]
            response = await client.put(
                f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
                json=topics,
                headers=auth,
            )
            response.raise_for_status()
            triggers = 0
            failures: list[int] = []
            in_flight = 0
            dropped = 0

            async def post(user: str, number: str) -> None:
                nonlocal in_flight
                try:
                    await client.post(
                        f"{CALL_PATH}{user}",
                        json={"phoneNumber": number, "callerId": "+441214999999"},
                        headers=auth,
                    )
                except httpx.HTTPError:
                    failures.append(1)
                finally:
                    in_flight -= 1

            async with (
                connect(channel["connectUri"], ping_interval=None, compression=None) as ws,
                anyio.create_task_group() as tg,
            ):
                await driver.send(f"go {args.rate} {args.events} {args.share}")
                with anyio.move_on_after(args.seconds + 30):
                    async for raw in ws:
                        received = time.monotonic()
                        message = json.loads(raw)
                        topic: str = message["topicName"]
                        body = message.get("eventBody", {})
                        presence = body.get("presenceDefinition", {}).get("systemPresence")
                        if not topic.endswith(".presence") or presence != "Available":
                            continue
                        triggers += 1
                        if in_flight >= MAX_IN_FLIGHT:
                            dropped += 1  # saturated: a bounded client sheds load
                        else:
                            in_flight += 1
                            transport.recording = triggers > args.warmup
                            TRIGGER.set((received, received))
                            tg.start_soon(post, topic.split(".")[2], valid_number(triggers))
                        if triggers == args.triggers:
                            break
            published = await driver.line()
            published["failed_requests"] = len(failures)
            published["dropped"] = dropped
            published["triggers_handled"] = triggers
    return transport.samples, published


#: A ``calls_per_second`` that never holds a dial back.
UNLIMITED = 100_000.0


def server_client(info: dict[str, Any], transport: httpx.AsyncBaseTransport) -> GenesysPlatform:
    """The Genesys REST client of a bench server, its requests through ``transport``.

    The bench server enforces no rate limit; Genesys's 300 requests a minute
    would cap dials at 5/s, far below the rates measured here, so the
    client's budget is out of the way.
    """
    return GenesysPlatform(
        api_url=info["api_url"],
        login_url=info["login_url"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        transport=transport,
        requests_per_minute=100_000_000,
    )


def daemon_config(info: dict[str, Any], calls_per_second: float) -> Config:
    """The daemon's config: one next-contact rule on Available presence, permissive guards
    (but ``calls_per_second``)."""
    return Config.model_validate(
        {
            "platform": {
                "api_url": info["api_url"],
                "login_url": info["login_url"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
            "listener": {"ping_interval": 10.0, "ping_timeout": 5.0},
            "guards": {
                "default_region": "GB",
                "calling_window": ["00:00", "23:59"],
                "calls_per_second": calls_per_second,
                "max_attempts": 3,
            },
            "rules": [
                {
                    "name": "next-contact-when-available",
                    "topic": "v2.users.{userId}.presence",
                    "users": info["agents"],
                    "when": {"presenceDefinition.systemPresence": "Available"},
                    "dial": {"user": "{userId}", "contact": "next", "caller_id": "+441214999999"},
                }
            ],
        }
    )


async def run_outdial(args: argparse.Namespace) -> tuple[Samples, dict[str, Any]]:
    """The daemon, as wired by ``outdial run``, against a fresh fake."""
    async with Driver.running(args.server, args.agents, args.seed) as driver:
        pin(driver.process.pid, args.layout.load)
        info = driver.info
        agents: list[str] = info["agents"]
        config = daemon_config(info, UNLIMITED)
        per_agent = args.triggers // len(agents) + 3  # + the startup refresh's dial
        rows = [
            ContactRow(user, valid_number(a * per_agent + i), f"c{a}-{i}", None, "Europe/London")
            for a, user in enumerate(agents)
            for i in range(per_agent)
        ]
        with tempfile.TemporaryDirectory(prefix="outdial-bench-") as tmp:
            async with open_store(f"sqlite:///{Path(tmp) / 'bench.db'}") as store:
                await store.import_contacts(rows)
                transport = TimingTransport()
                platform = server_client(info, transport)
                daemon = Daemon(
                    config,
                    platform=genesys_bundle(platform, config.listener, SystemClock()),
                    store=store,
                    clock=SystemClock(),
                )
                published = await _drive_daemon(daemon, driver, transport, args)
                await platform.aclose()
    return transport.samples, published


def _is_available(event: Event) -> bool:
    if not event.topic.endswith(".presence"):
        return False
    definition = event.body.get("presenceDefinition")
    return isinstance(definition, dict) and definition.get("systemPresence") == "Available"


async def _drive_daemon(
    daemon: Daemon, driver: Driver, transport: TimingTransport, args: argparse.Namespace
) -> dict[str, Any]:
    refresh = daemon.handlers.refresh_agents
    refreshed = anyio.Event()
    triggers = 0
    total = args.triggers

    def timed(event: Event) -> None:
        nonlocal triggers
        if _is_available(event):
            triggers += 1
            transport.recording = triggers > args.warmup
            TRIGGER.set((event.received_at, time.monotonic()))
        else:
            TRIGGER.set(None)

    async def watched_refresh(user_ids: Any) -> set[str]:
        unread = await refresh(user_ids)
        refreshed.set()
        return unread

    # Instance attributes shadow the methods the daemon calls: nothing else changes.
    watch_handling(daemon.handlers, before=timed)
    setattr(daemon.handlers, "refresh_agents", watched_refresh)  # noqa: B010
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        with anyio.fail_after(60):
            # Startup: subscribe, then the startup gap's refresh dials each Available
            # agent once; let those calls end before the measured stream starts.
            await refreshed.wait()
            while daemon.agents_reread_pending:  # re-read in batches: all of them  # noqa: ASYNC110
                await anyio.sleep(0.02)
            while await daemon.store.active_calls():  # noqa: ASYNC110
                await anyio.sleep(0.05)
        claims_before = list(daemon.store.claim_timings.counts)
        await driver.send(f"go {args.rate} {args.events} {args.share}")
        published = await driver.line()
        with anyio.move_on_after(10):
            while triggers < total:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        with anyio.move_on_after(2):
            # The last triggers' requests: until all are in, or none came for 0.3 s.
            seen = -1
            wanted = total - args.warmup
            while seen != transport.call_requests and transport.call_requests < wanted:
                seen = transport.call_requests
                await anyio.sleep(0.3)
        published["triggers_handled"] = triggers
        published["overflowed"] = daemon.listener.stats.overflowed
        published["claims"] = _claims_over(daemon.store.claim_timings, claims_before)
        tg.cancel_scope.cancel()
    return published


#: Bounds (seconds) a claim is counted as slow over: the buckets of outdial_store_claim_seconds.
SLOW_CLAIM = (0.002, 0.005, 0.01)


def _claims_over(timings: Timings, before: Sequence[int]) -> dict[str, int]:
    """Claims since ``before`` (a copy of the counts), and how many took over each bound."""
    counts = [now - then for now, then in zip(timings.counts, before, strict=True)]
    out = {"all": sum(counts)}
    for bound in SLOW_CLAIM:
        # Bucket i holds durations up to bounds[i]: those above ``bound`` are past its index.
        index = timings.bounds.index(bound)
        out[f"{bound * 1000:g} ms"] = sum(counts[index + 1 :])
    return out


async def measure_rate(args: argparse.Namespace) -> bool:
    """Baseline first, then outdial, at ``args.rate``; print both and the ratio."""
    label = f"{args.rate:,.0f}/s x {args.share:g}"
    print(f"  {label}: baseline ...", file=sys.stderr, flush=True)
    base, base_pub = await run_baseline(args)
    print(f"  {label}: outdial ...", file=sys.stderr, flush=True)
    ours, our_pub = await run_outdial(args)

    measured = args.triggers - args.warmup
    print(
        f"\n-- {args.rate:,.0f} events/s, {args.share:.0%} of them dial triggers "
        f"({args.rate * args.share:,.0f} triggers/s) for {args.seconds:g} s, {args.agents} agents"
    )
    print(
        f"server published at {base_pub['rate']:,.0f}/s (baseline run) and "
        f"{our_pub['rate']:,.0f}/s (outdial run); most late {our_pub['most_late'] * 1000:.1f} ms"
    )
    print(
        f"baseline: {base_pub['triggers_handled']:,} of {args.triggers:,} triggers received, "
        f"{base_pub['dropped']:,} shed ({MAX_IN_FLIGHT} requests in flight), "
        f"{base_pub['failed_requests']:,} requests failed"
    )
    print(
        f"outdial : {our_pub['triggers_handled']:,} of {args.triggers:,} triggers handled "
        f"(within 10 s of the last), {our_pub['overflowed']:,} events dropped by queue overflow"
    )
    # Every trigger of the measured window counts: one not dialed by the end is infinitely late.
    base_undialed = measured - len(base.total)
    our_undialed = measured - len(ours.total)
    print(
        f"{'event received -> dial request sent':<38} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'dialed/trig.':>13}"
    )
    print(_summary("baseline: websockets + json + httpx", base.total, base_undialed))
    print(_summary("outdial: full daemon", ours.total, our_undialed))
    print(_summary("  of which: waiting in the queue", ours.queued))
    print(_summary("  of which: handling to request", ours.handling))
    print(
        "(percentiles over every trigger of the window: an undialed one counts as infinitely "
        "late; 'of which' rows cover the dialed ones only)"
    )
    claims = our_pub["claims"]
    slow = ", ".join(f"over {bound}: {n:,}" for bound, n in claims.items() if bound != "all")
    print(
        f"outdial's claims during the stream: {claims['all']:,}; {slow} (lock wait and the "
        "disk's fsync included: a trigger is dialed only once its claim is on disk)"
    )
    ours_all = with_undialed(ours.total, our_undialed)
    base_all = with_undialed(base.total, base_undialed)
    p99_ms = percentile(ours_all, 99) * 1000 if ours_all else math.inf
    met = math.isfinite(p99_ms) and p99_ms < 5.0
    if base.total and ours.total:
        ratios = []
        for q in (50, 99):
            ours_q, base_q = percentile(ours_all, q), percentile(base_all, q)
            finite = math.isfinite(ours_q) and math.isfinite(base_q) and base_q > 0
            ratios.append(f"p{q} x{ours_q / base_q:.1f}" if finite else f"p{q} n/a")
        print(f"ratio outdial / baseline: {', '.join(ratios)}")
    p99_text = "undialed (over 1% of triggers)" if math.isinf(p99_ms) else f"{p99_ms:.2f} ms"
    print(
        f"target p99 < 5 ms at {args.rate:,.0f} events/s: {p99_text}, "
        f"{len(ours.total):,} of {measured:,} triggers dialed ({'met' if met else 'NOT met'})"
    )
    return met


async def measure(args: argparse.Namespace) -> int:
    """Each rate in turn."""
    for rate in args.rates:
        run = argparse.Namespace(**vars(args))
        run.rate = rate
        run.events = max(1, int(rate * (args.seconds + args.warmup_seconds)))
        run.triggers = int(run.events * args.share)
        run.warmup = int(rate * args.warmup_seconds * args.share)
        if run.triggers <= run.warmup:
            raise SystemExit(f"no trigger left to measure at {rate}/s x {args.share}")
        await measure_rate(run)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the header, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", default="1000", help="events per second (a comma-separated list)")
    parser.add_argument(
        "--trigger-share",
        dest="share",
        type=float,
        default=1.0,
        help="fraction of the events that are dial triggers (Available); the rest are Away",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured stream length")
    parser.add_argument("--agents", type=int, default=400, help="agents (and topics) in the fake")
    parser.add_argument(
        "--server",
        choices=("mini", "fake"),
        default="mini",
        help="mini: bench/servers/miniplatform.py (cheap); fake: FakePlatform (full fidelity)",
    )
    parser.add_argument(
        "--warmup-seconds", type=float, default=1.0, help="stream left out at the start"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 0.5 s, 20 agents, at most 100/s"
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the event loop, as outdial run's --loop (auto: uvloop when installed)",
    )
    args = parser.parse_args(argv)
    args.layout = Layout()
    pin(0, args.layout.measured)
    args.rates = [float(r) for r in str(args.rate).split(",") if r.strip()]
    if not 0 < args.share <= 1:
        parser.error("--trigger-share must be in (0, 1]")
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
        args.warmup_seconds = min(args.warmup_seconds, 0.2)
        args.agents = min(args.agents, 20)
        args.rates = [min(r, 100.0) for r in args.rates]
    print(
        header(
            "latency: event received -> dial request sent, at a fixed event rate",
            [
                f"{', '.join(f'{r:,.0f}' for r in args.rates)} presence events/s over "
                f"{args.agents} agents, {args.share:.0%} Available (dial triggers), "
                f"for {args.seconds:g} s after {args.warmup_seconds:g} s of warm-up",
                f"server: {SERVERS[args.server]}, in its own process; "
                "sent = handed to httpx's transport",
                f"runtime: as outdial run (--loop {args.loop}, collector thresholds "
                f"{', '.join(map(str, GC_THRESHOLDS))}); the baseline shares the process",
            ],
            args.layout,
        ),
        flush=True,
    )
    # The daemon's side runs as ``outdial run`` does: on uvloop when installed
    # (``--loop``), the collector tuned, pinned apart from the server.
    tune_gc()
    return anyio.run(measure, args, backend_options=backend_options(args.loop))


if __name__ == "__main__":
    sys.exit(main())
