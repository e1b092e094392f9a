"""Recovery: half-open detection time against its bound, and reset-to-resubscribed time.

Everything runs against outdial's ``FakePlatform`` with ``ws_proxy=True``: every
channel's socket goes through a :class:`~outdial.fake.proxy.FaultProxy`, which
can freeze a connection (half-open: no data, no FIN, no RST) or reset it (RST
both ways). The fake, the proxy and the client share one event loop.

**Half-open detection** (``--trials``): the proxy freezes the connection at a
random moment; outdial's listener must declare the socket dead (log event
``socket.dead``) within ``ping_interval + ping_timeout`` of the last frame it
received. Baseline in the same run: a bare ``websockets`` client relying on
the library's own keepalive with the same interval and timeout, detecting the
freeze when its receive loop raises.

**Reset to resubscribed** (``--resets``, at least 50 by default): the proxy
resets the connection; measured from the reset to the listener's :class:`Gap`
``end`` (the monotonic time the new socket carried the topics again). Small
backoff settings, so the figure is the reconnect path, not a configured wait:
``backoff_base=0.05``, ``backoff_cap=0.5``, ``stable_after=0.2`` (each reset
comes 0.3 s after the previous recovery, so each is a first failure). Baseline
in the same run: a bare client that, on the reset, reconnects at once (no
backoff, no channel check) and PUTs its subscriptions with httpx.

Targets (issue 6): half-open detected within its bound plus 0.5 s; reset to
resubscribed p99 under 500 ms on loopback.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from _common import header, median, percentile, stream_users
from outdial.clock import SystemClock
from outdial.config import ListenerConfig
from outdial.events import Gap
from outdial.fake import FakePlatform
from outdial.listener import Listener
from outdial.platforms.genesys import GenesysPlatform
from outdial.platforms.genesys.sources import ChannelSources

USERS = stream_users(5, "rec")
TOPICS = [f"v2.users.{u}.{s}" for u in USERS for s in ("presence", "conversations.calls")]
BACKOFF_BASE, BACKOFF_CAP, STABLE_AFTER = 0.05, 0.5, 0.2
SETTLE = 0.3  # seconds after a recovery before the next fault (> stable_after)


class _DeadSockets(logging.Handler):
    """Times (monotonic) of the listener's ``socket.dead`` log events."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.times: list[float] = []
        self.changed = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = getattr(record, "outdial", {})
        if fields.get("event") == "socket.dead":
            self.times.append(time.monotonic())
            self.changed.set()


class _Watch:
    """The listener's items as they come, with a way to wait for the next gap."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.gaps: list[Gap] = []
        self.changed = anyio.Event()

    async def run(self) -> None:
        async for item in self.listener:
            if isinstance(item, Gap):
                self.gaps.append(item)
                self.changed.set()
                self.changed = anyio.Event()

    async def next_gap(self, after: int, within: float) -> Gap:
        with anyio.fail_after(within):
            while len(self.gaps) <= after:
                await self.changed.wait()
        return self.gaps[after]


def _settings(ping_interval: float, ping_timeout: float) -> ListenerConfig:
    return ListenerConfig(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        backoff_base=BACKOFF_BASE,
        backoff_cap=BACKOFF_CAP,
        stable_after=STABLE_AFTER,
    )


def _client(fake: FakePlatform) -> GenesysPlatform:
    return GenesysPlatform(
        api_url=fake.api_url,
        login_url=fake.login_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
    )


async def outdial_half_open(args: argparse.Namespace, rng: random.Random) -> list[float]:
    """Freeze -> ``socket.dead``, in seconds, for each trial."""
    settings = _settings(args.ping_interval, args.ping_timeout)
    dead = _DeadSockets()
    logger = logging.getLogger("outdial.listener")
    logger.addHandler(dead)
    results: list[float] = []
    try:
        async with FakePlatform(USERS, ws_proxy=True, seed=args.seed) as fake:
            client = _client(fake)
            listener = Listener(
                ChannelSources(client, settings, SystemClock(), random.Random(args.seed)),
                TOPICS,
                settings,
                SystemClock(),
            )
            watch = _Watch(listener)
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.run)
                tg.start_soon(watch.run)
                await watch.next_gap(0, 10)  # subscribed
                for _ in range(args.trials):
                    # A random phase against the keepalive schedule.
                    await anyio.sleep(rng.uniform(SETTLE, SETTLE + args.ping_interval))
                    seen = len(dead.times)
                    gaps = len(watch.gaps)
                    frozen_at = time.monotonic()
                    fake.ws_proxy.freeze()
                    with anyio.fail_after(args.ping_interval + args.ping_timeout + 10):
                        while len(dead.times) <= seen:
                            await dead.changed.wait()
                            dead.changed = anyio.Event()
                    results.append(dead.times[seen] - frozen_at)
                    fake.ws_proxy.thaw()
                    await watch.next_gap(gaps, 10)  # back and subscribed
                tg.cancel_scope.cancel()
            await client.aclose()
    finally:
        logger.removeHandler(dead)
    return results


async def _bare_channel(fake: FakePlatform, http: httpx.AsyncClient) -> tuple[str, str, str]:
    token = (
        await http.post(
            f"{fake.login_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(fake.client_id, fake.client_secret),
        )
    ).json()["access_token"]
    auth = f"Bearer {token}"
    channel = (
        await http.post(
            f"{fake.api_url}/api/v2/notifications/channels", headers={"Authorization": auth}
        )
    ).json()
    return auth, channel["id"], channel["connectUri"]


async def _bare_subscribe(
    fake: FakePlatform, http: httpx.AsyncClient, auth: str, channel_id: str
) -> None:
    response = await http.put(
        f"{fake.api_url}/api/v2/notifications/channels/{channel_id}/subscriptions",
        json=[{"id": t} for t in TOPICS],
        headers={"Authorization": auth},
    )
    response.raise_for_status()


async def _drain(ws: ClientConnection) -> float:
    """Receive until the connection fails; return when it did."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return time.monotonic()


async def bare_half_open(args: argparse.Namespace, rng: random.Random) -> list[float]:
    """Freeze -> the bare client's receive loop ending, with websockets' own keepalive."""
    results: list[float] = []
    async with (
        FakePlatform(USERS, ws_proxy=True, seed=args.seed) as fake,
        httpx.AsyncClient() as http,
    ):
        auth, channel_id, uri = await _bare_channel(fake, http)
        await _bare_subscribe(fake, http, auth, channel_id)
        for _ in range(args.trials):
            async with connect(
                uri,
                ping_interval=args.ping_interval,
                ping_timeout=args.ping_timeout,
                close_timeout=0.1,
            ) as ws:
                await anyio.sleep(rng.uniform(SETTLE, SETTLE + args.ping_interval))
                frozen_at = time.monotonic()
                fake.ws_proxy.freeze()
                with anyio.fail_after(args.ping_interval + args.ping_timeout + 10):
                    ended = await _drain(ws)
                results.append(ended - frozen_at)
                fake.ws_proxy.thaw()
    return results


async def outdial_resets(args: argparse.Namespace) -> list[float]:
    """Reset -> the listener's gap end (resubscribed), in seconds, for each reset."""
    settings = _settings(10.0, 5.0)
    results: list[float] = []
    async with FakePlatform(USERS, ws_proxy=True, seed=args.seed) as fake:
        client = _client(fake)
        listener = Listener(
            ChannelSources(client, settings, SystemClock(), random.Random(args.seed)),
            TOPICS,
            settings,
            SystemClock(),
        )
        watch = _Watch(listener)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.run)
            tg.start_soon(watch.run)
            await watch.next_gap(0, 10)
            for _ in range(args.resets):
                await anyio.sleep(SETTLE)
                gaps = len(watch.gaps)
                reset_at = time.monotonic()
                fake.ws_proxy.reset()
                gap = await watch.next_gap(gaps, 10)
                results.append(gap.end - reset_at)
            tg.cancel_scope.cancel()
        await client.aclose()
    return results


async def bare_resets(args: argparse.Namespace) -> list[float]:
    """Reset -> a bare client reconnected and re-PUT its subscriptions, at once."""
    results: list[float] = []
    async with (
        FakePlatform(USERS, ws_proxy=True, seed=args.seed) as fake,
        httpx.AsyncClient() as http,
    ):
        auth, channel_id, uri = await _bare_channel(fake, http)
        await _bare_subscribe(fake, http, auth, channel_id)
        ws = await connect(uri, ping_interval=None, close_timeout=0.1)
        try:
            for _ in range(args.resets):
                await anyio.sleep(SETTLE)
                reset_at = time.monotonic()
                fake.ws_proxy.reset()
                with anyio.fail_after(10):
                    await _drain(ws)
                ws = await connect(uri, ping_interval=None, close_timeout=0.1)
                await _bare_subscribe(fake, http, auth, channel_id)
                results.append(time.monotonic() - reset_at)
        finally:
            ws.transport.abort()
    return results


def _ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:8.0f}"


async def measure(args: argparse.Namespace) -> int:
    """Both parts, baseline and outdial each; print the tables and the verdicts."""
    rng = random.Random(args.seed)
    bound = args.ping_interval + args.ping_timeout
    print(f"  half-open x{args.trials}: baseline ...", file=sys.stderr, flush=True)
    bare_ho = await bare_half_open(args, rng)
    print(f"  half-open x{args.trials}: outdial ...", file=sys.stderr, flush=True)
    ours_ho = await outdial_half_open(args, rng)
    print(f"  resets x{args.resets}: baseline ...", file=sys.stderr, flush=True)
    bare_rs = await bare_resets(args)
    print(f"  resets x{args.resets}: outdial ...", file=sys.stderr, flush=True)
    ours_rs = await outdial_resets(args)

    print(
        f"\nhalf-open detection, freeze -> declared dead "
        f"(ping_interval {args.ping_interval:g} s + ping_timeout {args.ping_timeout:g} s "
        f"= bound {bound:g} s)"
    )
    print(f"{'':<42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'trials':>6}")
    for label, values in (
        ("baseline: websockets' own keepalive", bare_ho),
        ("outdial: Liveness (socket.dead)", ours_ho),
    ):
        print(
            f"{label:<42} {_ms(values, 50)} {_ms(values, 99)} "
            f"{max(values) * 1000:8.0f} {len(values):6d}"
        )
    ratio_ho = median(ours_ho) / median(bare_ho)
    worst = max(ours_ho)
    print(f"ratio outdial / baseline (median): x{ratio_ho:.2f}")
    ho_met = worst <= bound + 0.5
    print(
        f"target: detected within bound + 0.5 s = {bound + 0.5:g} s: worst {worst:.3f} s "
        f"({'met' if ho_met else 'NOT met'})"
    )

    print(
        "\nreset -> resubscribed "
        f"(backoff_base {BACKOFF_BASE:g} s, backoff_cap {BACKOFF_CAP:g} s, "
        f"stable_after {STABLE_AFTER:g} s)"
    )
    print(f"{'':<42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'resets':>6}")
    for label, values in (
        ("baseline: reconnect + PUT at once", bare_rs),
        ("outdial: listener gap end", ours_rs),
    ):
        print(
            f"{label:<42} {_ms(values, 50)} {_ms(values, 99)} "
            f"{max(values) * 1000:8.0f} {len(values):6d}"
        )
    ratio_rs = median(ours_rs) / median(bare_rs)
    p99 = percentile(ours_rs, 99)
    rs_met = p99 < 0.5
    print(f"ratio outdial / baseline (median): x{ratio_rs:.2f}")
    print(
        f"target: reset to resubscribed p99 < 500 ms: {p99 * 1000:.0f} ms "
        f"({'met' if rs_met else 'NOT met'})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the header, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=10, help="half-open trials")
    parser.add_argument("--resets", type=int, default=50, help="connection resets")
    parser.add_argument("--ping-interval", type=float, default=1.0)
    parser.add_argument("--ping-timeout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--quick", action="store_true", help="1 half-open trial at 0.3 + 0.2 s, 2 resets"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.resets = min(args.trials, 1), min(args.resets, 2)
        args.ping_interval, args.ping_timeout = 0.3, 0.2
    # Warnings (socket.dead, reconnects) are expected here: keep them off the report.
    logging.getLogger("outdial").addHandler(logging.NullHandler())
    logging.getLogger("outdial").propagate = False
    print(
        header(
            "recovery: half-open detection and reset-to-resubscribed",
            [
                "FakePlatform(ws_proxy=True) in this process; faults from its FaultProxy",
                f"listener backoff: base {BACKOFF_BASE:g} s, cap {BACKOFF_CAP:g} s, "
                f"stable_after {STABLE_AFTER:g} s; {SETTLE:g} s between faults",
            ],
        ),
        flush=True,
    )
    return anyio.run(measure, args)


if __name__ == "__main__":
    sys.exit(main())
