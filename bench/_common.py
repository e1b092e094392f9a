"""Shared pieces of the benchmarks: machine banner, statistics, realistic frames, servers.

Every benchmark prints the machine it ran on and the exact command, measures a
baseline in the same run, and reports a ratio against it. Nothing here is a
test: the figures are for people, the smoke tests only check the scripts run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outdial.platforms.base import (
    AgentState,
    CallSnapshot,
    ChannelInfo,
    DialRequest,
    OutboundCall,
    PlacedCall,
    SubscriptionResult,
)

__all__ = [
    "BENCH_DIR",
    "FIXTURES",
    "REPO",
    "Layout",
    "StreamServer",
    "StubPlatform",
    "call_bodies",
    "cpu_seconds",
    "header",
    "is_trigger",
    "iso_now",
    "median",
    "percentile",
    "pin",
    "presence_body",
    "rss_kib",
    "stream_frames",
    "stream_users",
    "summary_body",
    "user_call_bodies",
    "valid_number",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
FIXTURES = REPO / "tests" / "fixtures" / "genesys"


# -- reporting --------------------------------------------------------------------------------


if TYPE_CHECKING:
    from outdial.events import Event
    from outdial.handlers.dispatch import Handlers

EventHook = Callable[["Event"], None]


def watch_handling(
    handlers: Handlers, *, before: EventHook | None = None, after: EventHook | None = None
) -> None:
    """Call ``before(event)`` as the daemon starts handling a live event, ``after(event)``
    once its handling is done, the part run in the agent's lane included.

    ``handlers.prepare`` (what the daemon's workers call, and ``handle`` too) is
    shadowed by an instance attribute: nothing else changes.
    """
    prepare = handlers.prepare

    async def watched(event: Event) -> Callable[[], Awaitable[None]] | None:
        if before is not None:
            before(event)
        rest = await prepare(event)
        if rest is None:
            if after is not None:
                after(event)
            return None

        async def then() -> None:
            await rest()
            if after is not None:
                after(event)

        return then

    setattr(handlers, "prepare", watched)  # noqa: B010


def header(title: str, notes: Sequence[str] = (), layout: Layout | None = None) -> str:
    """The machine, the software and the exact command, so a figure can be reproduced.

    ``layout`` adds where the load generator and the measured side ran.
    """
    versions = []
    for package in ("outdial", "websockets", "anyio", "pydantic", "httpx"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} ?")
    cpu = _cpu_model() or platform.processor() or platform.machine()
    lines = [
        f"== {title}",
        f"machine : {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"python  : {platform.python_implementation()} {platform.python_version()}",
        f"packages: {', '.join(versions)}",
        f"command : {shlex.join([Path(sys.executable).name, *sys.argv])}",
    ]
    if layout is not None:
        lines.append(f"layout  : {layout.describe()}")
    lines += [f"note    : {n}" for n in notes]
    return "\n".join(lines)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


class Layout:
    """Which CPUs the load generator and the measured side run on.

    With two or more CPUs available the load (servers, publishers) is pinned
    to the first and the measured side (the daemon, the bare client) to the
    second, so neither steals the other's core and the measured side's CPU
    time is its own. With one CPU nothing is pinned, and the layout says so.
    """

    def __init__(self, *, pinned: bool = True) -> None:
        try:
            available = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux: no affinity to set
            available = []
        self.available = available
        if pinned and len(available) >= 2:
            self.load: set[int] | None = {available[0]}
            self.measured: set[int] | None = {available[1]}
        else:
            self.load = self.measured = None

    @property
    def pinned(self) -> bool:
        """True when the two sides run on separate, pinned CPUs."""
        return self.measured is not None

    def describe(self) -> str:
        """One line for the header."""
        if self.load is not None and self.measured is not None:
            return (
                f"load generator pinned to CPU {min(self.load)}, measured side to CPU "
                f"{min(self.measured)} (os.sched_setaffinity; {len(self.available)} CPUs usable)"
            )
        if len(self.available) < 2:
            return f"not pinned: {len(self.available) or '?'} CPU(s) usable, all share them"
        return f"not pinned (asked): every process shares the {len(self.available)} CPUs"


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin process ``pid`` (0: this one) to ``cpus``; nothing when ``cpus`` is None."""
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


def median(values: Sequence[float]) -> float:
    """The median (the benchmarks repeat each measurement and report this)."""
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; ``values`` need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def rss_kib(pid: int | None = None) -> int:
    """Resident set size of a process (``VmRSS`` in /proc/PID/status), in KiB; default this one."""
    where = "self" if pid is None else str(pid)
    for line in Path(f"/proc/{where}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{where}/status")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds a process has used; default this one (``os.times()``).

    For another process, its ``utime`` and ``stime`` from /proc/PID/stat (the same
    counters ``os.times()`` and ``resource`` read, in clock ticks).
    """
    if pid is None:
        times = os.times()
        return times.user + times.system
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_ticks(cpu: int | None) -> tuple[int, int]:
    """(stolen, all) clock ticks of one CPU (``cpuN`` in /proc/stat), or of all when None.

    "Stolen" is the time a virtual machine's host ran something else while
    this CPU had work: on a shared VM it makes the same code take longer, and
    a run with much of it is a noisy run. (0, 0) where /proc/stat is missing.
    """
    name = "cpu" if cpu is None else f"cpu{cpu}"
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] == name:
            ticks = [int(v) for v in fields[1:]]
            # user nice system idle iowait irq softirq steal (guest ticks are in user)
            return (ticks[7] if len(ticks) > 7 else 0), sum(ticks[:8])
    return 0, 0


# -- realistic frames (shapes from tests/fixtures/genesys) -------------------------------------


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


_PRESENCE = _fixture("presence-available.json")
_CALL_SEQUENCE = _fixture("call-answered-sequence.json")
_USER_CALL_SEQUENCE = _fixture("call-nonacd-agent-hangs-up-sequence.json")
_SUMMARY = _fixture("conversation-summary-sequence.json")[0]["eventBody"]
_PRESENCE_IDS = {
    "Available": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
    "Busy": "31fe3bac-dea6-44b7-bed7-47f91660a1a0",
    "Away": "5e5c5c66-ea97-4e7f-ac41-6424784829f2",
}
_BASE_TIME = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _iso(offset: float) -> str:
    return (_BASE_TIME + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_now() -> str:
    """The wall clock now as the platform writes times (``2026-11-23T09:16:41.010Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stream_users(count: int, prefix: str = "a") -> list[str]:
    """Agent user ids shaped like the platform's (UUIDs), deterministic."""
    return [str(uuid.UUID(int=(hash_prefix(prefix) << 64) + i)) for i in range(count)]


def hash_prefix(prefix: str) -> int:
    """A stable 64-bit number for a prefix (``hash()`` is salted per process)."""
    return int.from_bytes(prefix.encode().ljust(8, b"_")[:8], "big")


def presence_body(system_presence: str, offset: float = 0.0) -> dict[str, Any]:
    """A ``v2.users.{id}.presence`` body as in ``presence-available.json``."""
    body: dict[str, Any] = copy.deepcopy(_PRESENCE["eventBody"])
    body["presenceDefinition"]["systemPresence"] = system_presence
    body["presenceDefinition"]["id"] = _PRESENCE_IDS.get(system_presence, str(uuid.uuid4()))
    body["modifiedDate"] = _iso(offset)
    return body


def call_bodies(user_id: str, conversation_id: str, number: str) -> list[dict[str, Any]]:
    """The three ``conversations.calls`` bodies of ``call-answered-sequence.json`` for one call."""
    bodies = []
    for step in _CALL_SEQUENCE:
        body: dict[str, Any] = copy.deepcopy(step["eventBody"])
        body["id"] = conversation_id
        for participant in body["participants"]:
            if participant.get("purpose") == "agent":
                participant["user"]["id"] = user_id
            else:
                participant["address"] = f"tel:{number}"
        bodies.append(body)
    return bodies


def user_call_bodies(
    user_id: str, conversation_id: str, number: str, *, at: str
) -> list[dict[str, Any]]:
    """The three bodies of ``call-nonacd-agent-hangs-up-sequence.json`` for one call.

    The agent leg has purpose ``user`` and the customer's ``external`` (a call placed
    for a user, not from a queue); the last body ends both legs, ``wrapupRequired``
    false. Every time in them is ``at``; the caller rewrites the end times when the
    call really ends.
    """
    bodies = []
    for step in _USER_CALL_SEQUENCE:
        body: dict[str, Any] = copy.deepcopy(step["eventBody"])
        body["id"] = conversation_id
        for participant in body["participants"]:
            for key in ("startTime", "connectedTime", "endTime"):
                if key in participant:
                    participant[key] = at
            if participant.get("purpose") == "user":
                participant["user"]["id"] = user_id
            else:
                participant["address"] = f"tel:{number}"
        bodies.append(body)
    return bodies


def summary_body(user_id: str, active: int) -> dict[str, Any]:
    """A ``v2.users.{id}.conversationsummary`` body: ``active`` non-ACD calls, no ACW."""
    body: dict[str, Any] = copy.deepcopy(_SUMMARY)
    body["userId"] = user_id
    body["call"]["enterprise"]["active"] = active
    return body


def envelope(topic: str, body: Mapping[str, Any], correlation: str) -> str:
    """One notification frame, as the platform sends it."""
    return json.dumps(
        {
            "topicName": topic,
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": correlation},
        },
        separators=(",", ":"),
    )


def valid_number(index: int) -> str:
    """A distinct valid E.164 number (UK, Birmingham 0121 range) for ``index`` < 10**6."""
    return f"+44121{400_0000 + index:07d}"


def stream_frames(users: Sequence[str], rounds: int) -> list[str]:
    """``rounds`` rounds of an agent's day per user: half presence, half call events.

    Per user and round: Available, call dialing, Busy, call connected, call
    disconnected by the peer, Available. Conversation and correlation ids vary.
    """
    frames: list[str] = []
    serial = 0
    for r in range(rounds):
        for u, user in enumerate(users):
            conversation = str(uuid.UUID(int=(r << 32) + u + 1))
            dialing, connected, ended = call_bodies(user, conversation, valid_number(u))
            presence = f"v2.users.{user}.presence"
            calls = f"v2.users.{user}.conversations.calls"
            steps: list[tuple[str, Mapping[str, Any]]] = [
                (presence, presence_body("Available", r * 10.0)),
                (calls, dialing),
                (presence, presence_body("Busy", r * 10.0 + 1)),
                (calls, connected),
                (calls, ended),
                (presence, presence_body("Available", r * 10.0 + 9)),
            ]
            for topic, body in steps:
                serial += 1
                frames.append(envelope(topic, body, str(uuid.UUID(int=serial))))
    return frames


def is_trigger(index: int, share: float) -> bool:
    """Whether event ``index`` of a paced stream is a dial trigger (``share`` of them are).

    Spread evenly: the first ``n`` events hold exactly ``floor(n * share)`` triggers.
    """
    return math.floor((index + 1) * share) > math.floor(index * share)


# -- servers --------------------------------------------------------------------------------------


class StreamServer:
    """``bench/servers/stream.py`` in its own process: streams pre-encoded frames flat out.

    Its own process, so that producing frames never competes with the client
    under test for the event loop (and, on two or more CPUs, not for a core).
    """

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    def url(self, channel: str, **params: object) -> str:
        """A ``ws://`` URL whose connection gets the stream described by ``params``."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ws://127.0.0.1:{self.port}/channels/{channel}?{query}"

    @classmethod
    @contextmanager
    def running(cls, cpus: set[int] | None = None) -> Iterator[StreamServer]:
        """Start the server process (pinned to ``cpus``), yield it, stop it (that process only)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "servers.stream"],
            cwd=BENCH_DIR,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            pin(proc.pid, cpus)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("PORT "):
                raise RuntimeError(f"stream server did not start: {line!r}")
            yield cls(proc, int(line.split()[1]))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class StubPlatform:
    """The REST side of the platform, answered in memory: channels point at a stream URL.

    Lets the real :class:`~outdial.listener.Listener` run against
    :class:`StreamServer` without an HTTP server in the measurement.
    """

    def __init__(self, connect_uri: str) -> None:
        self.connect_uri = connect_uri
        self.channels = 0

    async def create_channel(self) -> ChannelInfo:
        """A new channel id; every channel connects to ``connect_uri``."""
        self.channels += 1
        return ChannelInfo(f"bench-{self.channels}", self.connect_uri, None)

    async def channel_exists(self, channel_id: str) -> bool:
        """Channels never expire here."""
        return True

    async def get_subscriptions(self, channel_id: str) -> list[str]:
        """Nothing subscribed yet: the listener PUTs its topics."""
        return []

    async def put_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """Every topic permitted."""
        return [SubscriptionResult(t, True) for t in topics]

    async def add_subscriptions(
        self, channel_id: str, topics: Sequence[str]
    ) -> list[SubscriptionResult]:
        """Every topic permitted."""
        return [SubscriptionResult(t, True) for t in topics]

    async def find_outbound_calls(
        self,
        user_id: str,
        since: datetime,
        until: datetime,
        phone_number: str | None = None,
    ) -> list[OutboundCall]:
        """No calls are ever placed here."""
        return []

    async def place_call(self, request: DialRequest) -> PlacedCall:
        """Not used by these benchmarks."""
        raise NotImplementedError

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        """Not used by these benchmarks."""
        return None

    async def get_agent_state(self, user_id: str) -> AgentState:
        """Nothing known: a gap refresh re-reads nothing."""
        return AgentState(user_id, None, None)

    async def get_agent_states(
        self, user_ids: Sequence[str], *, give_up_after: float = 60.0
    ) -> list[AgentState]:
        """Nothing known, for each of them."""
        return [AgentState(u, None, None) for u in dict.fromkeys(user_ids)]

    async def aclose(self) -> None:
        """Nothing to close."""


def now() -> float:
    """``time.monotonic()``: the clock :class:`~outdial.clock.SystemClock` reads too."""
    return time.monotonic()
