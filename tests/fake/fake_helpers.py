"""Small clients for talking to the fake platform in tests: REST login, channels, socket reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection

from outdial.fake import CallTiming, FakePlatform

FAST = CallTiming(ring=(0.02, 0.05), talk=(0.02, 0.05), wrapup=0.02, dial=0.01)

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"
"""The shared wire fixtures: the reference for every shape the fake answers."""


def fixture(name: str) -> Any:
    """One fixture file, decoded."""
    return json.loads((FIXTURES / name).read_text())


@asynccontextmanager
async def api(platform: FakePlatform) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the fake's API, already holding a bearer token."""
    async with httpx.AsyncClient(base_url=platform.api_url) as client:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(platform.client_id, platform.client_secret),
        )
        response.raise_for_status()
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


async def channel(client: httpx.AsyncClient, topics: Sequence[str] = ()) -> dict[str, Any]:
    """Create a channel and subscribe it to ``topics``; return the channel JSON."""
    response = await client.post("/api/v2/notifications/channels")
    response.raise_for_status()
    created: dict[str, Any] = response.json()
    if topics:
        put = await client.put(
            f"/api/v2/notifications/channels/{created['id']}/subscriptions",
            json=[{"id": t} for t in topics],
        )
        put.raise_for_status()
    return created


WAIT = 2.0
"""Seconds a test waits for a message before failing (never reached when all is well)."""


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next message on the socket, decoded."""
    with anyio.fail_after(WAIT):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def next_event(ws: ClientConnection, prefix: str = "v2.") -> dict[str, Any]:
    """The next message whose topic starts with ``prefix`` (heartbeats and pongs skipped)."""
    with anyio.fail_after(WAIT):
        while True:
            message = await recv(ws)
            if message["topicName"].startswith(prefix):
                return message


def customer(body: dict[str, Any]) -> dict[str, Any]:
    """The far end of a conversation body (purpose ``customer``, or ``external`` on a call
    without a queue)."""
    found: dict[str, Any] = next(
        p for p in body["participants"] if p["purpose"] in ("customer", "external")
    )
    return found


def agent(body: dict[str, Any]) -> dict[str, Any]:
    """The agent's own leg of a conversation body (purpose ``agent``, or ``user`` on a call
    without a queue)."""
    found: dict[str, Any] = next(
        p for p in body["participants"] if p["purpose"] in ("agent", "user")
    )
    return found


def agent_topics(user: str) -> list[str]:
    """The topics that say what an agent is doing: presence, routing status, summary, calls."""
    prefix = f"v2.users.{user}"
    return [f"{prefix}.{t}" for t in ("presence", "routingStatus", "conversationsummary")] + [
        f"{prefix}.conversations.calls"
    ]


Seen = tuple[str, Any]
"""An agent event in short: ``("presence", "Available")``, ``("routing", "IDLE")``,
``("summary", (ccActive, ccAcw, entActive, entAcw))``, ``("calls", agent leg state)``."""

IDLE: Seen = ("summary", (0, 0, 0, 0))
"""The summary of an agent with no call and no wrap-up."""


def describe(event: dict[str, Any]) -> Seen:
    """An agent event in short: what a user watching the agent would notice."""
    topic, body = event["topicName"], event["eventBody"]
    if topic.endswith(".presence"):
        return "presence", body["presenceDefinition"]["systemPresence"]
    if topic.endswith(".routingStatus"):
        return "routing", body["routingStatus"]["status"]
    if topic.endswith(".conversationsummary"):
        cc, ent = body["call"]["contactCenter"], body["call"]["enterprise"]
        return "summary", (cc["active"], cc["acw"], ent["active"], ent["acw"])
    return "calls", agent(body)["state"]


async def seen_until(ws: ClientConnection, last: Seen) -> list[Seen]:
    """Agent events, described, up to and including ``last``."""
    seen: list[Seen] = []
    while not seen or seen[-1] != last:
        seen.append(describe(await next_event(ws)))
    return seen
