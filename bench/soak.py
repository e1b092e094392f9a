"""Chaos soak: the daemon against the fake platform under a seeded schedule of every fault.

The real daemon (``Daemon``: listener, handlers, dialer, SQLite store, the
Genesys REST client) runs against ``FakePlatform`` with a fault proxy in front
of both its WebSocket and its REST API, for ``--duration`` seconds. Agents
dial their contact lists the whole time on the ready topic (the fake, like a
real org, leaves presence alone; each agent is ready again ``after_call``
after its last call), and a background stream of presence events (the agents
choosing Available again, each with its own ``modifiedDate``) adds traffic.
A seeded schedule starts every fault kind the fake knows at least once
(``--seed`` picks the order, times and lengths; the schedule is printed), in
the window between a warm-up and a quiet tail.

Then a report, with the invariants that must hold:

- events published on the daemon's topics, delivered to its handlers, missed
  inside a reported gap (allowed: the daemon re-reads state after a gap), and
  missed outside any gap (**must be 0**). An event counts as inside a gap when
  it was published between the gap's start (less the **in-flight allowance**:
  the longest publish -> arrival time seen in the run, since a gap starts at
  the last frame *received*) and its end. The report prints the allowance in
  seconds and how many misses count as inside only through it;
- Available events, call requests the fake accepted, and duplicate calls (**must
  be 0**): an accepted call the daemon's store does not track is a second call
  for one claim, unless its dial is still ``unknown`` (being reconciled);
- reconnects, rotations, the longest recovery; memory at start and end.

The exit status is 1 when an invariant breaks (or the daemon stopped), else 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from _common import (
    header,
    presence_body,
    rss_kib,
    stream_users,
    valid_number,
    watch_handling,
)
from outdial.app import Daemon
from outdial.clock import SystemClock
from outdial.config import Config
from outdial.events import Event, Gap
from outdial.fake import FAULT_KINDS, CallTiming, FakePlatform, Fault
from outdial.fake.schedule import DURABLE_KINDS, PROXY_KINDS
from outdial.platforms.genesys import GenesysPlatform
from outdial.platforms.genesys.bundle import genesys_bundle
from outdial.store import open_store
from outdial.store.base import ContactRow, Store

#: Kinds that need a REST proxy when they target it (chosen per fault, seeded).
_EITHER_PROXY = {"reset", "latency", "refuse", "slice", "bandwidth"}


#: The REST allowance of the soak's token, on the fake and in the daemon alike. The
#: soak dials ten agents' lists flat out (about 260 calls a minute, each with its
#: reads): at Genesys's default 300 a minute the budget, not the faults, would decide
#: when dials go out, and a dial waiting for it holds its worker. Rate limits have
#: their own tests (and a dial that waits for the budget holding its worker, so that the
#: agent's events wait too, is issue 13's to fix); here they would only hide what the
#: faults do.
SOAK_REQUESTS_PER_MINUTE = 6000


@dataclass
class Ledger:
    """What was published, delivered, and which gaps the listener reported."""

    topics: frozenset[str] = frozenset()
    counting_until: float = float("inf")
    published: dict[str, float] = field(default_factory=dict)  # identity -> first publish time
    publishes: int = 0
    delivered: dict[str, float] = field(default_factory=dict)  # identity -> first arrival
    gaps: list[Gap] = field(default_factory=list)
    triggers: int = 0
    refresh_triggers: int = 0


def build_schedule(seed: int, duration: float) -> tuple[list[Fault], float, float]:
    """Every fault kind once, in a seeded order and seeded times; returns (faults, start, end)."""
    rng = random.Random(seed)
    warm = min(5.0, 0.1 * duration)
    end = duration - min(15.0, 0.25 * duration)
    kinds = [k for k in FAULT_KINDS if k != "thaw"]  # a freeze ends on its own
    rng.shuffle(kinds)
    slot = (end - warm) / len(kinds)
    faults = []
    for index, kind in enumerate(kinds):
        params: dict[str, Any] = {"kind": kind, "at": round(warm + index * slot, 3)}
        if kind in DURABLE_KINDS:
            params["duration"] = round(max(0.2, rng.uniform(0.4, 0.9) * min(slot, 4.0)), 3)
        if kind in _EITHER_PROXY:
            params["proxy"] = rng.choice(["ws", "rest"])
        elif kind in PROXY_KINDS:
            params["proxy"] = "ws"
        if kind == "rest_errors":
            params["status"] = rng.choice([429, 500, 503])
            params["rate"] = round(rng.uniform(0.2, 0.6), 2)
        if kind == "stall":
            # Past the 5 s request timeout at times: an unknown dial to reconcile.
            params["seconds"] = round(rng.uniform(2.0, 8.0), 3)
        if kind == "closing_warning":
            params["seconds"] = 1.0
        faults.append(Fault.model_validate(params))
    return faults, warm, end


def _config(fake: FakePlatform, agents: Sequence[str]) -> Config:
    return Config.model_validate(
        {
            "platform": {
                "api_url": fake.api_url,
                "login_url": fake.login_url,
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "request_timeout": 5.0,
                "requests_per_minute": SOAK_REQUESTS_PER_MINUTE,
            },
            "listener": {
                "ping_interval": 2.0,
                "ping_timeout": 1.0,
                "backoff_base": 0.1,
                "backoff_cap": 2.0,
                "stable_after": 2.0,
                "connect_timeout": 3.0,
            },
            "guards": {
                "default_region": "GB",
                "calling_window": ["00:00", "23:59"],
                "calls_per_second": 1000,
            },
            "readiness": {"after_call": 0.2},
            "rules": [
                {
                    "name": "next-contact-when-ready",
                    "topic": "outdial.users.{userId}.ready",
                    "users": list(agents),
                    "dial": {"user": "{userId}", "contact": "next", "caller_id": "+441214999999"},
                }
            ],
        }
    )


def _is_available(event: Event) -> bool:
    definition = event.body.get("presenceDefinition")
    return (
        event.topic.endswith(".presence")
        and isinstance(definition, Mapping)
        and definition.get("systemPresence") == "Available"
    )


def _instrument(fake: FakePlatform, daemon: Daemon, ledger: Ledger) -> None:
    """Shadow a few bound methods with recording wrappers (instance attributes only)."""
    publish = fake.publish
    consume = daemon._consume

    async def recording_publish(topic: str, body: Mapping[str, Any]) -> int:
        now = time.monotonic()
        if topic in ledger.topics and now < ledger.counting_until:
            identity = Event(topic=topic, body=dict(body)).identity
            ledger.published.setdefault(identity, now)
            ledger.publishes += 1
        return await publish(topic, body)

    def recording(event: Event) -> None:
        ledger.delivered.setdefault(event.identity, event.received_at)
        ledger.triggers += _is_available(event)

    async def recording_consume(item: Event | Gap) -> None:
        if isinstance(item, Gap):
            ledger.gaps.append(item)
        await consume(item)

    setattr(fake, "publish", recording_publish)  # noqa: B010
    watch_handling(daemon.handlers, before=recording)
    setattr(daemon, "_consume", recording_consume)  # noqa: B010


async def _background(fake: FakePlatform, agents: Sequence[str], rate: float) -> None:
    """Presence traffic: agents choosing Available again, each body unique."""
    serial = 0
    start = anyio.current_time()
    while True:
        serial += 1
        delay = start + serial / rate - anyio.current_time()
        if delay > 0:
            await anyio.sleep(delay)
        user = agents[serial % len(agents)]
        await fake.publish(f"v2.users.{user}.presence", presence_body("Available", float(serial)))


@dataclass
class Calls:
    """The fake's accepted calls, checked against the store."""

    triggers: int
    refresh_triggers: int
    requests: int
    accepted: int
    tracked: int
    pending: int
    duplicates: int
    numbers_twice: int


async def _check_calls(fake: FakePlatform, store: Store, ledger: Ledger) -> Calls:
    accepted = fake.recorded.accepted_calls
    unresolved = Counter(
        (claim.user_id, claim.phone_number)
        for claim in await store.open_claims()
        if claim.state == "unknown"
    )
    tracked = pending = duplicates = 0
    for call in accepted:
        assert call.conversation_id is not None
        if await store.get_call(call.conversation_id) is not None:
            tracked += 1
            continue
        number = call.payload.get("phoneNumber") if isinstance(call.payload, dict) else None
        if unresolved[(call.user_id, number)] > 0:
            unresolved[(call.user_id, number)] -= 1
            pending += 1
        else:
            duplicates += 1
    numbers = Counter(c.payload.get("phoneNumber") for c in accepted if isinstance(c.payload, dict))
    return Calls(
        triggers=ledger.triggers,
        refresh_triggers=ledger.refresh_triggers,
        requests=len(fake.recorded.call_requests),
        accepted=len(accepted),
        tracked=tracked,
        pending=pending,
        duplicates=duplicates,
        numbers_twice=sum(1 for n in numbers.values() if n > 1),
    )


@dataclass
class Missed:
    """How the published events fared."""

    delivered: int
    inside: int
    outside: int
    strict_outside: int  # outside when a gap starts exactly at its last frame received
    slack: float  # the longest publish -> arrival time seen
    lead: float  # the most a missed event inside a gap preceded that gap's reported start


def _missed(ledger: Ledger) -> Missed:
    flight = [ledger.delivered[i] - t for i, t in ledger.published.items() if i in ledger.delivered]
    slack = max(flight, default=0.0)
    result = Missed(0, 0, 0, 0, slack, 0.0)
    for identity, at in ledger.published.items():
        if identity in ledger.delivered:
            result.delivered += 1
            continue
        if any(g.start <= at <= g.end for g in ledger.gaps):
            result.inside += 1
            continue
        result.strict_outside += 1
        leads = [g.start - at for g in ledger.gaps if g.start - slack <= at <= g.end]
        if leads:
            result.inside += 1
            result.lead = max(result.lead, min(leads))
        else:
            result.outside += 1
    return result


async def soak(args: argparse.Namespace) -> int:
    """Run the daemon under the schedule, then check the invariants and print the report."""
    agents = stream_users(args.agents, "soak")
    faults, window_start, window_end = build_schedule(args.seed, args.duration)
    print(f"\nfault schedule (seed {args.seed}, {len(faults)} faults):")
    for fault in faults:
        extra = fault.model_dump(exclude_none=True, exclude={"at", "kind"})
        print(f"  {fault.at:7.2f}s  {fault.kind:<16} {json.dumps(extra) if extra else ''}")
    timing = CallTiming(ring=(0.3, 1.0), talk=(0.5, 1.5), wrapup=0.5)
    ledger = Ledger()
    per_agent = int(args.duration) + 5  # more than an agent can dial in the run
    rows = [
        ContactRow(user, valid_number(a * per_agent + i), None, None, "Europe/London")
        for a, user in enumerate(agents)
        for i in range(per_agent)
    ]
    stopped: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="outdial-soak-") as tmp:
        async with (
            FakePlatform(
                agents,
                seed=args.seed,
                timing=timing,
                heartbeat_interval=5.0,
                rate_limit=SOAK_REQUESTS_PER_MINUTE,
                ws_proxy=True,
                rest_proxy=True,
            ) as fake,
            open_store(f"sqlite:///{Path(tmp) / 'soak.db'}") as store,
        ):
            await store.import_contacts(rows)
            config = _config(fake, agents)
            client = GenesysPlatform(
                api_url=fake.api_url,
                login_url=fake.login_url,
                client_id=fake.client_id,
                client_secret=fake.client_secret,
                timeout=config.platform.request_timeout,
                requests_per_minute=SOAK_REQUESTS_PER_MINUTE,
            )
            daemon = Daemon(
                config,
                platform=genesys_bundle(client, config.listener, SystemClock()),
                store=store,
                clock=SystemClock(),
                rng=random.Random(args.seed),
            )
            ledger.topics = daemon.listener.topics
            _instrument(fake, daemon, ledger)
            started = time.monotonic()
            ledger.counting_until = started + args.duration - min(5.0, 0.15 * args.duration)
            rss_start = 0
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(daemon.run)
                    tg.start_soon(_background, fake, agents, args.rate)
                    with anyio.fail_after(30):
                        while not ledger.gaps:  # noqa: ASYNC110 (the startup gap: subscribed)
                            await anyio.sleep(0.05)
                    rss_start = rss_kib()
                    run = fake.run_schedule(faults)
                    await anyio.sleep(max(0.0, started + args.duration - time.monotonic()))
                    run.cancel()
                    tg.cancel_scope.cancel()
            except Exception as exc:  # the daemon stopped on its own: an invariant broke
                stopped = exc
            rss_end = rss_kib()
            fake.clear_faults()
            calls = await _check_calls(fake, store, ledger)
            steps = [e for e in run.log if e.error] if "run" in locals() else []
            await client.aclose()

    stats = [s.stats for s in daemon.listener.supervisors]
    missed = _missed(ledger)
    print("\nreport")
    print(
        f"  events published    {len(ledger.published):>8,}  (distinct, on the daemon's topics, "
        f"before the last {args.duration - (ledger.counting_until - started):g} s)"
    )
    print(f"  events delivered    {missed.delivered:>8,}")
    print(f"  missed, in a gap    {missed.inside:>8,}  ({len(ledger.gaps)} gaps reported)")
    print(f"  missed, outside     {missed.outside:>8,}  must be 0")
    print(
        f"    in-flight allowance: {missed.slack:.3f} s (the longest publish -> arrival time "
        "seen in this run); a missed event published up to that long before a gap's "
        "reported start counts as inside the gap"
    )
    print(
        f"    of the in-gap ones, counted inside only through that allowance: "
        f"{missed.strict_outside - missed.outside:,} (by up to {missed.lead * 1000:.0f} ms "
        f"before the gap's start: in flight when the socket died); inside without it: "
        f"{missed.inside - (missed.strict_outside - missed.outside):,}"
    )
    print(
        f"  Available events    {calls.triggers:>8,}  (+{calls.refresh_triggers:,} re-read "
        "after gaps)"
    )
    print(f"  call requests       {calls.requests:>8,}")
    print(
        f"  calls placed        {calls.accepted:>8,}  ({calls.tracked:,} tracked by the store, "
        f"{calls.pending:,} still being reconciled)"
    )
    print(f"  duplicate calls     {calls.duplicates:>8,}  must be 0")
    print(f"  numbers called 2x+  {calls.numbers_twice:>8,}  (a failed agent leg allows a redial)")
    print(f"  reconnects          {sum(s.reconnects for s in stats):>8,}")
    print(f"  rotations           {sum(s.rotations for s in stats):>8,}")
    print(f"  longest recovery    {max(s.longest_recovery for s in stats):>8.3f} s")
    print(
        f"  memory (RSS)        {rss_start / 1024:>8.1f} MiB at start, {rss_end / 1024:.1f} MiB "
        f"at end ({(rss_end - rss_start) / 1024:+.1f} MiB)"
    )
    if steps:
        print(f"  fault steps that could not run: {[(s.kind, s.error) for s in steps]}")
    failures = []
    if stopped is not None:
        failures.append(f"the daemon stopped: {type(stopped).__name__}: {stopped}")
    if missed.outside:
        failures.append(f"{missed.outside} event(s) missed outside any reported gap")
    if calls.duplicates:
        failures.append(f"{calls.duplicates} duplicate call(s)")
    print(f"\nwindow of faults: {window_start:g}-{window_end:g} s of {args.duration:g} s")
    if failures:
        print("INVARIANTS BROKEN: " + "; ".join(failures))
        return 1
    print("invariants hold: no event missed outside a reported gap, no duplicate call")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the header, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule's seed")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="background events per second")
    parser.add_argument("--quick", action="store_true", help="a 10 s run")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 10.0)
    if args.duration < 4:
        parser.error("--duration must be at least 4 s")
    # The faults make the daemon log warnings by design; the report says what matters.
    logging.getLogger("outdial").addHandler(logging.NullHandler())
    logging.getLogger("outdial").propagate = False
    print(
        header(
            f"soak: the daemon against the fake platform for {args.duration:g} s of faults",
            [
                f"{args.agents} agents dialing their lists, {args.rate:g} background events/s; "
                "FakePlatform(ws_proxy=True, rest_proxy=True) in this process",
            ],
        ),
        flush=True,
    )
    return anyio.run(soak, args)


if __name__ == "__main__":
    sys.exit(main())
