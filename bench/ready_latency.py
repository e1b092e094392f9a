"""Agent ready to dial request sent, for many agents: outdial's pacer against a bare client.

The platform server (``bench/servers/miniplatform.py --mode ready``, in its own
process) holds ``--agents`` agents, each with ``--contacts`` contacts in the
store. At start every agent is ``Away``, ``OFF_QUEUE`` and has an idle
conversation summary, so the startup refresh dials no one. Then the server
makes the agents ready one after another, ``--rate`` per second: a
``presence`` event ``Available`` with a fresh ``modifiedDate`` (trigger
**ready**). Each call placed plays out as the agent sees a direct call (``user``
and ``external`` legs): dialing and a conversation summary with one active
call, connected, and ``--call-seconds`` after the request both legs
disconnected (``endTime`` now, no wrap-up) and a summary with none. Once
``after_call`` has passed since that ``endTime`` the agent is ready again, with
no new presence event: the agent's next contact is dialed (trigger **call
end**), until its contacts run out.

Two clients, each against a fresh server with the same settings, in the same
run:

- **baseline**: bare ``websockets`` receive loops (the same topics on as many
  sockets as the platform requires, 1,000 topics each) that ``json.loads``
  each frame; for an ``Available`` presence they start one bare ``httpx`` POST
  of a CreateCallRequest in a task of its own, and for a call whose agent leg
  ended, a task that sleeps until its ``endTime`` + ``after_call`` and then
  POSTs (the least any dialer must do: no readiness, no store, no guards);
- **outdial**: the real daemon (``Daemon``: listener, handlers, readiness and
  pacer, guards, the pre-dial store operation in a temporary SQLite store,
  the Genesys REST client), one rule on ``outdial.users.{userId}.ready`` for
  every agent with ``contact = "next"``, guards permissive (calling window
  00:00-23:59, 100k calls/s), ``[readiness] after_call = --after-call``.

Latency runs from the arrival of the event that makes the agent ready at the
client (outdial: the listener's ``Event.received_at``; the presence event, or
the call event whose agent leg ended) to the moment the POST to
``/api/v2/conversations/calls/user/{id}`` for that agent is handed to httpx's
transport (a wrapping transport timestamps it), both on the client's
monotonic clock. For the call-end path ``after_call`` is subtracted: what is
left is the time the dialer adds to the rest it must wait. The request is
attributed to the agent's one trigger waiting for a dial.

The ratio of the call-end path compares with a timer's jitter (about 0 ms), so
the time outdial adds to the baseline is printed too.

Every trigger counts. One that is never followed by a dial (within the window:
until every trigger is dialed, or nothing has been dialed for a while) is
*undialed* and enters the percentiles as infinitely late; a p99 shown as
``undialed`` means more than 1% were. A ready event the server published that
never reached the handlers counts as undialed too. Dials no trigger explains,
triggers superseded before their dial, shed requests (baseline) and gaps are
printed when there are any.

With a REST client that cannot read the conversation summary after a gap
(readiness fails closed without one), ``--publish-summaries auto`` (default)
has the server publish each agent's summary once, as the platform would on
its next change, so that the pacer can be measured at all; the report says so.
``never`` shows what happens without it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
from websockets.asyncio.client import connect

from _common import header, percentile, valid_number, watch_handling
from latency import Driver, server_client
from outdial.app import Daemon
from outdial.clock import SystemClock
from outdial.config import Config
from outdial.events import Event
from outdial.platforms.genesys.bundle import genesys_bundle
from outdial.store import open_store
from outdial.store.base import ContactRow

CALL_PATH = "/api/v2/conversations/calls/user/"
#: The baseline drops a trigger rather than queue a request behind this many.
MAX_IN_FLIGHT = 64
#: Topics per notification channel (the platform's limit; outdial shards the same way).
TOPICS_PER_CHANNEL = 1000
READINESS_SUFFIXES = (".presence", ".routingStatus", ".conversationsummary", ".conversations.calls")
READY, CALL_END = "ready", "call end"
#: After the ramp, the window closes once nothing was dialed for this long (+ a call).
QUIET_SECONDS = 3.0
#: ... and at the latest this long after every contact could have been dialed: room for
#: a saturated daemon's backlog of several seconds, within a bounded run.
GRACE_SECONDS = 20.0


@dataclass
class Trigger:
    """One moment an agent became ready (or is expected to, after ``after_call``)."""

    kind: str
    user: str
    received: float
    sent: float | None = None


@dataclass
class Book:
    """Every trigger and every dial of one run, attributed per agent."""

    contacts: int
    after_call: float
    pending: dict[str, Trigger] = field(default_factory=dict)
    dialed: list[Trigger] = field(default_factory=list)
    undialed: list[Trigger] = field(default_factory=list)
    dials: Counter[str] = field(default_factory=Counter)
    unattributed: int = 0
    superseded: int = 0
    shed: int = 0
    last_dial: float = 0.0
    #: After the window: undialed triggers whose dial came late, and how late (seconds).
    closed: bool = False
    late: list[float] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)

    def trigger(self, kind: str, user: str, received: float) -> Trigger:
        """The agent became ready: the next dial of the agent answers this."""
        old = self.pending.get(user)
        if old is not None:
            self.superseded += 1
            self.undialed.append(old)
        trigger = self.pending[user] = Trigger(kind, user, received)
        self.seen[kind] += 1
        return trigger

    def dial(self, user: str, sent: float) -> None:
        """A call request for ``user`` was handed to the transport at ``sent``."""
        self.dials[user] += 1
        self.last_dial = sent
        if self.closed:
            late = [t for t in self.undialed if t.user == user and t.sent is None]
            if late:
                late[0].sent = sent  # counted undialed all the same: it came after the window
                self.late.append(sent - late[0].received)
            return
        trigger = self.pending.pop(user, None)
        if trigger is None:
            self.unattributed += 1
            return
        trigger.sent = sent
        self.dialed.append(trigger)

    def drop(self, user: str) -> None:
        """The client shed the agent's trigger (baseline, too many requests in flight)."""
        trigger = self.pending.pop(user, None)
        if trigger is not None:
            self.shed += 1
            self.undialed.append(trigger)

    def close(self) -> None:
        """The window is over: what still waits for a dial is undialed."""
        self.undialed.extend(self.pending.values())
        self.pending.clear()
        self.closed = True

    def late_dials(self) -> str:
        """How many undialed triggers were dialed after the window, and how late."""
        if not self.late:
            return "none dialed later"
        return f"{len(self.late):,} dialed later, up to {max(self.late):.1f} s after the trigger"

    def observe(self, topic: str, body: Mapping[str, Any], received: float) -> Trigger | None:
        """The trigger an event is, if it is one: an Available presence, or the end of a
        call after which the agent still has a contact to dial."""
        if self.closed:
            return None
        if topic.endswith(".presence"):
            definition = body.get("presenceDefinition")
            if isinstance(definition, dict) and definition.get("systemPresence") == "Available":
                return self.trigger(READY, topic.split(".")[2], received)
            return None
        if topic.endswith(".conversations.calls") and agent_leg_end(body) is not None:
            user = topic.split(".")[2]
            if self.dials[user] < self.contacts:
                return self.trigger(CALL_END, user, received)
        return None

    def latencies(self, kind: str, agents: int) -> tuple[list[float], int]:
        """Seconds from trigger to request of the dialed triggers of ``kind`` (``after_call``
        taken off for call ends), and how many of that kind were not dialed: undialed, and
        for ready, the agents whose ready event never reached the client."""
        rest = self.after_call if kind == CALL_END else 0.0
        values = [t.sent - t.received - rest for t in self.dialed if t.kind == kind and t.sent]
        missing = sum(1 for t in self.undialed if t.kind == kind)
        if kind == READY:
            missing += max(0, agents - self.seen[READY])
        return values, missing

    def unseen(self, contacts: int, agents: int) -> str:
        """Triggers expected but never seen (ready events lost; call ends of calls never
        placed or never ended), or an empty string."""
        ready = agents - self.seen[READY]
        ends = agents * (contacts - 1) - self.seen[CALL_END]
        if ready <= 0 and ends <= 0:
            return ""
        return (
            f"; never seen: {max(0, ready):,} ready events (counted undialed), "
            f"{max(0, ends):,} call ends (their call was not placed or did not end; not counted)"
        )


def agent_leg_end(body: Mapping[str, Any]) -> str | None:
    """The ``endTime`` of a call body's ended agent leg (``user`` or ``agent``), else None."""
    for participant in body.get("participants") or ():
        if participant.get("purpose") in ("user", "agent"):
            if participant.get("state") in ("disconnected", "terminated"):
                end = participant.get("endTime")
                return str(end) if end else ""
            return None
    return None


def _parse_time(value: str) -> datetime | None:
    """A platform time as an aware datetime (the baseline's own parse), or None."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class TimingTransport(httpx.AsyncBaseTransport):
    """Hands each call request's agent and send time to the book, then sends it."""

    def __init__(self, book: Book) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.book = book

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record the dial, then send it."""
        path = request.url.path
        if request.method == "POST" and path.startswith(CALL_PATH):
            self.book.dial(path[len(CALL_PATH) :], time.monotonic())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()


def readiness_topics(agents: Iterable[str]) -> list[str]:
    """What readiness needs of each agent (what outdial subscribes for a ready rule)."""
    return sorted(f"v2.users.{a}{suffix}" for a in agents for suffix in READINESS_SUFFIXES)


def server_args(args: argparse.Namespace) -> list[str]:
    """The ready mode of the mini platform, with this run's call length."""
    return ["--mode", "ready", "--call-seconds", str(args.call_seconds)]


def window_seconds(args: argparse.Namespace) -> float:
    """The longest a run may take after its ramp (every agent's contacts dialed, + grace)."""
    rest = float(args.call_seconds + args.after_call)
    return int(args.contacts - 1) * rest + float(args.call_seconds) + GRACE_SECONDS


async def drain(book: Book, args: argparse.Namespace) -> None:
    """After the window, while some triggers are undialed: do their dials come late?"""
    with anyio.move_on_after(args.drain_seconds):
        while any(t.sent is None for t in book.undialed):  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def until_done(book: Book, expected: int, args: argparse.Namespace) -> None:
    """Wait after the ramp until every expected trigger is dialed, or the window closes:
    at the latest when every contact could have been dialed (+ grace), earlier once
    nothing was dialed for a call's length and a few seconds more."""
    quiet = QUIET_SECONDS + args.call_seconds + args.after_call
    ramp_end = time.monotonic()
    with anyio.move_on_after(window_seconds(args)):
        while len(book.dialed) < expected:
            await anyio.sleep(0.02)
            if time.monotonic() - max(book.last_dial, ramp_end) > quiet:
                return


async def run_baseline(args: argparse.Namespace) -> tuple[Book, dict[str, Any]]:
    """Bare websockets loops, json.loads, one bare httpx POST per trigger."""
    book = Book(args.contacts, args.after_call)
    async with Driver.running("mini", args.agents, args.seed, server_args(args)) as driver:
        info = driver.info
        agents: list[str] = info["agents"]
        transport = TimingTransport(book)
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
            topics = readiness_topics(agents)
            uris = []
            for start in range(0, len(topics), TOPICS_PER_CHANNEL):
                channel = (await client.post("/api/v2/notifications/channels", headers=auth)).json()
                response = await client.put(
                    f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
                    json=[{"id": t} for t in topics[start : start + TOPICS_PER_CHANNEL]],
                    headers=auth,
                )
                response.raise_for_status()
                uris.append(channel["connectUri"])
            index = {user: i for i, user in enumerate(agents)}
            in_flight = 0
            failures = 0

            async def post(user: str) -> None:
                nonlocal in_flight, failures
                number = valid_number(index[user] * args.contacts + book.dials[user])
                try:
                    await client.post(
                        f"{CALL_PATH}{user}",
                        json={"phoneNumber": number, "callerId": "+441214999999"},
                        headers=auth,
                    )
                except httpx.HTTPError:
                    failures += 1
                finally:
                    in_flight -= 1

            async def post_after_rest(user: str, rested: datetime) -> None:
                nonlocal in_flight
                await anyio.sleep(max(0.0, (rested - datetime.now(UTC)).total_seconds()))
                if in_flight >= MAX_IN_FLIGHT:
                    book.drop(user)
                    return
                in_flight += 1
                await post(user)

            async def receive(uri: str, tg: anyio.abc.TaskGroup) -> None:
                nonlocal in_flight
                async with connect(uri, ping_interval=None, compression=None) as ws:
                    async for raw in ws:
                        received = time.monotonic()
                        message = json.loads(raw)
                        trigger = book.observe(
                            message["topicName"], message.get("eventBody", {}), received
                        )
                        if trigger is None:
                            continue
                        if trigger.kind == READY:
                            if in_flight >= MAX_IN_FLIGHT:
                                book.drop(trigger.user)  # saturated: a bounded client sheds
                                continue
                            in_flight += 1
                            tg.start_soon(post, trigger.user)
                        else:
                            end = agent_leg_end(message["eventBody"]) or ""
                            ended = _parse_time(end) or datetime.now(UTC)
                            rested = ended.timestamp() + args.after_call
                            tg.start_soon(
                                post_after_rest, trigger.user, datetime.fromtimestamp(rested, UTC)
                            )

            async with anyio.create_task_group() as tg:
                for uri in uris:
                    tg.start_soon(receive, uri, tg)
                await anyio.sleep(0.2)  # the sockets are open before anything is published
                await driver.send(f"ready {args.rate}")
                published = await driver.line()
                await until_done(book, expected_triggers(args), args)
                book.close()
                await drain(book, args)
                tg.cancel_scope.cancel()
            published["failed_requests"] = failures
            published["channels"] = len(uris)
    return book, published


def expected_triggers(args: argparse.Namespace) -> int:
    """One ready event per agent, then one call end per contact after the first."""
    return int(args.agents * args.contacts)


def outdial_config(info: Mapping[str, Any], args: argparse.Namespace) -> Config:
    """One ready rule for every agent, permissive guards, a short ``after_call``."""
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
                "calls_per_second": 100_000,
                "max_attempts": 3,
            },
            "readiness": {"after_call": args.after_call},
            "rules": [
                {
                    "name": "next-contact-when-ready",
                    "topic": "outdial.users.{userId}.ready",
                    "users": list(info["agents"]),
                    "dial": {"user": "{userId}", "contact": "next", "caller_id": "+441214999999"},
                }
            ],
        }
    )


async def run_outdial(args: argparse.Namespace) -> tuple[Book, dict[str, Any]]:
    """The daemon, as ``outdial run`` wires it, against a fresh server."""
    book = Book(args.contacts, args.after_call)
    async with Driver.running("mini", args.agents, args.seed, server_args(args)) as driver:
        info = driver.info
        agents: list[str] = info["agents"]
        rows = [
            ContactRow(
                user, valid_number(a * args.contacts + i), f"c{a}-{i}", None, "Europe/London"
            )
            for a, user in enumerate(agents)
            for i in range(args.contacts)
        ]
        with tempfile.TemporaryDirectory(prefix="outdial-bench-") as tmp:
            async with open_store(f"sqlite:///{Path(tmp) / 'bench.db'}") as store:
                await store.import_contacts(rows)
                platform = server_client(info, TimingTransport(book))
                config = outdial_config(info, args)
                daemon = Daemon(
                    config,
                    platform=genesys_bundle(platform, config.listener, SystemClock()),
                    store=store,
                    clock=SystemClock(),
                )
                published = await _drive_daemon(daemon, driver, book, args)
                await platform.aclose()
    return book, published


async def _drive_daemon(
    daemon: Daemon, driver: Driver, book: Book, args: argparse.Namespace
) -> dict[str, Any]:
    refresh = daemon.handlers.refresh_agents
    refreshed = anyio.Event()
    refresh_seconds: list[float] = []
    pacer = daemon.handlers.pacer
    agents = sorted(pacer.tracked)
    reread: set[str] = set()

    def timed(event: Event) -> None:
        book.observe(event.topic, event.body, event.received_at)

    async def watched_refresh(user_ids: Any) -> set[str]:
        users = list(user_ids)
        started = time.monotonic()
        unread = await refresh(users)
        refresh_seconds.append(time.monotonic() - started)
        reread.update(set(users) - unread)
        if reread.issuperset(agents):
            refreshed.set()  # every agent re-read (one refresh per shard's startup gap)
        return unread

    # Instance attributes shadow the methods the daemon calls: nothing else changes.
    watch_handling(daemon.handlers, before=timed)
    setattr(daemon.handlers, "refresh_agents", watched_refresh)  # noqa: B010
    result: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        started = time.monotonic()
        await tg.start(daemon.run)
        with anyio.fail_after(120):
            await refreshed.wait()
            while daemon.agents_reread_pending:  # re-read in batches: all of them  # noqa: ASYNC110
                await anyio.sleep(0.02)
        result["startup_seconds"] = time.monotonic() - started
        result["refreshes"] = len(refresh_seconds)
        result["refresh_seconds"] = sum(refresh_seconds)
        await driver.send("stats")
        result["startup_requests"] = (await driver.line())["requests"]
        unknown = [u for u in agents if pacer.facts[u].active_calls is None]
        result["summary_unknown"] = len(unknown)
        result["summaries_published"] = 0
        if args.publish_summaries == "always" or (unknown and args.publish_summaries == "auto"):
            await driver.send("summaries")
            result["summaries_published"] = (await driver.line())["summaries"]
            with anyio.move_on_after(10):
                while any(pacer.facts[u].active_calls is None for u in agents):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
        result["summary_unknown_at_ramp"] = sum(
            1 for u in agents if pacer.facts[u].active_calls is None
        )
        result["startup_dials"] = sum(book.dials.values())
        result["startup_unattributed"] = book.unattributed
        book.unattributed = 0
        gaps_before = daemon.gaps_handled
        result.update(await _ramp(driver, args))
        await until_done(book, expected_triggers(args), args)
        book.close()

        def verdict(user: str) -> str:
            seen = pacer.verdicts.get(user)
            return seen.reason if seen is not None else "never looked at"

        # The verdicts as the window closed, before any late dial changes them.
        result["undialed_reasons"] = Counter(verdict(t.user) for t in book.undialed)
        result["never_dialed"] = [(u, verdict(u)) for u in agents if book.dials[u] == 0]
        await drain(book, args)
        result["never_dialed_after_drain"] = sum(1 for u in agents if book.dials[u] == 0)
        result["gaps"] = daemon.gaps_handled - gaps_before
        result["overflowed"] = daemon.listener.stats.overflowed
        tg.cancel_scope.cancel()
    return result


async def _ramp(driver: Driver, args: argparse.Namespace) -> dict[str, Any]:
    await driver.send(f"ready {args.rate}")
    published: dict[str, Any] = await driver.line()
    return published


def _ms(value: float) -> str:
    return "undialed" if math.isinf(value) else f"{value * 1000:8.2f}"


def _row(label: str, values: Sequence[float], undialed: int) -> str:
    everything = [*values, *([math.inf] * undialed)]
    p50 = percentile(everything, 50)
    p99 = percentile(everything, 99)
    worst = max(everything) if everything else math.nan
    counted = f"{len(values):,}/{len(everything):,}"
    return f"{label:<44} {_ms(p50):>8} {_ms(p99):>8} {_ms(worst):>8} {counted:>13}"


def _p(values: Sequence[float], undialed: int, q: float) -> float:
    return percentile([*values, *([math.inf] * undialed)], q)


def _ratio(ours: float, base: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(base)) or base <= 0:
        return "n/a"
    return f"x{ours / base:.1f}"


def _added(ours: float, base: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(base)):
        return "n/a"
    return f"{(ours - base) * 1000:+.1f} ms"


def report(
    args: argparse.Namespace,
    base: Book,
    base_pub: dict[str, Any],
    ours: Book,
    our_pub: dict[str, Any],
) -> None:
    """Both clients' figures, what was counted, and the ratios."""
    print(
        f"\n-- {args.agents:,} agents made ready at {args.rate:,.0f}/s, {args.contacts} contacts "
        f"each, calls of {args.call_seconds:g} s, after_call {args.after_call:g} s"
    )
    print(
        f"server ramp: {base_pub['rate']:,.0f}/s (baseline run), {our_pub['rate']:,.0f}/s "
        f"(outdial run), most late {our_pub['most_late'] * 1000:.1f} ms; ready events delivered "
        f"{base_pub['delivered']:,} / {our_pub['delivered']:,} of {args.agents:,}"
    )
    requests = our_pub["startup_requests"]
    reads = ", ".join(f"{k} {v:,}" for k, v in sorted(requests.items()) if k != "call.place")
    print(
        f"outdial startup: {our_pub['startup_seconds']:.2f} s until every agent was re-read "
        f"({our_pub['refreshes']} refreshes, {our_pub['refresh_seconds']:.2f} s in all; REST "
        f"reads: {reads or 'none'}); {our_pub['startup_dials']:,} dials before the ramp"
    )
    if our_pub["summary_unknown"]:
        print(
            f"NOTE: after the startup refresh the conversation summary was unknown for "
            f"{our_pub['summary_unknown']:,} of {args.agents:,} agents (the client's "
            "get_agent_states did not read it; readiness fails closed without it)"
        )
    if our_pub["summaries_published"]:
        print(
            f"      so the server published each agent's summary once before the ramp "
            f"({our_pub['summaries_published']:,} events, --publish-summaries "
            f"{args.publish_summaries}); still unknown at the ramp: "
            f"{our_pub['summary_unknown_at_ramp']:,}"
        )
    print(
        f"baseline: {len(base.dialed):,} triggers dialed, {len(base.undialed):,} undialed "
        f"({base.shed:,} shed at {MAX_IN_FLIGHT} in flight; {base.late_dials()}), "
        f"{base_pub['failed_requests']:,} requests failed, {base.unattributed:,} dials without "
        f"a trigger, {base_pub['channels']} sockets{base.unseen(args.contacts, args.agents)}"
    )
    print(
        f"outdial : {len(ours.dialed):,} triggers dialed, {len(ours.undialed):,} undialed "
        f"({ours.late_dials()}), {ours.unattributed:,} dials without a trigger, "
        f"{ours.superseded:,} triggers superseded; {our_pub['gaps']} gaps, "
        f"{our_pub['overflowed']:,} events dropped by queue overflow"
        f"{ours.unseen(args.contacts, args.agents)}"
    )
    never = our_pub["never_dialed"]
    if never:
        reasons = Counter(reason for _, reason in never).most_common(3)
        print(
            f"outdial : {len(never):,} agents not dialed in the window "
            f"({our_pub['never_dialed_after_drain']:,} never); their verdicts then: "
            + "; ".join(f"{n:,} x {r!r}" for r, n in reasons)
            + f" (first: {never[0][0]})"
        )
    if ours.undialed:
        reasons = our_pub["undialed_reasons"].most_common(3)
        print(
            "outdial : undialed triggers, the agent's verdict as the window closed: "
            + "; ".join(f"{n:,} x {r!r}" for r, n in reasons)
        )
    print(
        f"{'':<44} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'dialed/trig.':>13}"
        "\nready (presence Available received) -> dial request sent"
    )
    b_ready, b_ready_missing = base.latencies(READY, args.agents)
    o_ready, o_ready_missing = ours.latencies(READY, args.agents)
    b_end, b_end_missing = base.latencies(CALL_END, args.agents)
    o_end, o_end_missing = ours.latencies(CALL_END, args.agents)
    print(_row("  baseline: websockets + json + httpx", b_ready, b_ready_missing))
    print(_row("  outdial: full daemon (readiness, pacer)", o_ready, o_ready_missing))
    print(f"call end (agent leg ended) -> next dial, minus after_call ({args.after_call:g} s)")
    print(_row("  baseline: sleep to endTime + after_call", b_end, b_end_missing))
    print(_row("  outdial: full daemon (pacer's timer)", o_end, o_end_missing))
    pairs = {
        "ready -> dial": ((o_ready, o_ready_missing), (b_ready, b_ready_missing)),
        "call end -> next dial": ((o_end, o_end_missing), (b_end, b_end_missing)),
    }
    ratios, added = [], []
    for label, (ours_, base_) in pairs.items():
        p50 = (_p(*ours_, 50), _p(*base_, 50))
        p99 = (_p(*ours_, 99), _p(*base_, 99))
        ratios.append(f"{label} p50 {_ratio(*p50)}, p99 {_ratio(*p99)}")
        added.append(f"{label} p50 {_added(*p50)}, p99 {_added(*p99)}")
    # The call-end baseline is a timer's jitter (about 0): its ratio says less than the time added.
    print(f"ratio outdial / baseline: {'; '.join(ratios)}")
    print(f"outdial adds to baseline: {'; '.join(added)}")


async def measure(args: argparse.Namespace) -> int:
    """Each rate in turn: baseline first, then outdial; print both and the ratios."""
    for rate in args.rates:
        run = argparse.Namespace(**vars(args))
        run.rate = rate
        if run.call_seconds is None:
            run.call_seconds = max(0.1, run.agents / rate)
        print(f"  {rate:,.0f}/s: baseline ...", file=sys.stderr, flush=True)
        base, base_pub = await run_baseline(run)
        print(f"  {rate:,.0f}/s: outdial ...", file=sys.stderr, flush=True)
        ours, our_pub = await run_outdial(run)
        report(run, base, base_pub, ours, our_pub)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the header, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=1000, help="agents in the server")
    parser.add_argument(
        "--rate", default="200", help="agents made ready per second (a comma-separated list)"
    )
    parser.add_argument(
        "--contacts", type=int, default=2, help="contacts per agent (dials per agent), >= 1"
    )
    parser.add_argument(
        "--call-seconds",
        type=float,
        default=None,
        help="call request to call end (default: agents / rate, so the second wave of "
        "dials follows the first at the same rate)",
    )
    parser.add_argument(
        "--after-call", type=float, default=0.2, help="[readiness] after_call, seconds"
    )
    parser.add_argument(
        "--publish-summaries",
        choices=("auto", "always", "never"),
        default="auto",
        help="have the server publish each agent's conversation summary once before the ramp "
        "(auto: when the startup refresh left some unknown)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="after the window, how long to watch whether undialed triggers get a late dial",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="a short run: at most 50 agents at 100/s"
    )
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in str(args.rate).split(",") if r.strip()]
    if args.contacts < 1 or args.agents < 1 or not args.rates or min(args.rates) <= 0:
        parser.error("--agents, --contacts and --rate must be positive")
    if args.quick:
        args.agents = min(args.agents, 50)
        args.rates = [min(r, 100.0) for r in args.rates]
        args.drain_seconds = min(args.drain_seconds, 1.0)
    calls = (
        f"calls last {args.call_seconds:g} s"
        if args.call_seconds is not None
        else "calls last agents / rate seconds"
    )
    print(
        header(
            "ready latency: agent ready -> dial request sent, and call end -> next dial",
            [
                f"{args.agents:,} agents made ready (presence Available) at "
                f"{', '.join(f'{r:,.0f}' for r in args.rates)}/s, {args.contacts} contacts "
                f"each; {calls}, after_call {args.after_call:g} s",
                "server: bench/servers/miniplatform.py --mode ready, in its own process; "
                "sent = handed to httpx's transport; undialed triggers count as infinitely late",
                # Other work on the machine moves these figures far more than the code does.
                "load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            ],
        ),
        flush=True,
    )
    return anyio.run(measure, args)


if __name__ == "__main__":
    sys.exit(main())
