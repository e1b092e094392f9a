"""Small clients for the fake CXone in tests: log in, discover, start a session, poll."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from outdial.fake.cxone import FakeCxone
from outdial.fake.cxone.tokens import decode_jwt
from outdial.fake.script import CallTiming

FAST = CallTiming(ring=(0.02, 0.05), talk=(0.02, 0.05), wrapup=0.02, dial=0.01)

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cxone"

VERSION = "v23.0"


def fixture(name: str) -> Any:
    """One fixture file, decoded."""
    return json.loads((FIXTURES / name).read_text())


async def login(client: httpx.AsyncClient, cxone: FakeCxone) -> dict[str, Any]:
    """The password grant with the fake's access key; the token response."""
    response = await client.post(
        f"{cxone.issuer_url}/auth/token",
        data={
            "grant_type": "password",
            "username": cxone.access_key_id,
            "password": cxone.access_key_secret,
        },
        auth=(cxone.client_id, cxone.client_secret),
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@asynccontextmanager
async def api(cxone: FakeCxone) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose base URL is the discovered API, holding a bearer token."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        token = await login(client, cxone)
        claims = decode_jwt(token["id_token"])
        found = await client.get(
            f"{cxone.issuer_url}/.well-known/cxone-configuration",
            params={"tenantId": claims["tenantId"]},
        )
        found.raise_for_status()
        base = f"{found.json()['api_endpoint']}/InContactAPI/services/{VERSION}"
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10.0,
        ) as session_client:
            yield session_client


async def start_session(client: httpx.AsyncClient, agent_id: str) -> str:
    """Start a session for ``agent_id``; its first session id."""
    response = await client.post(
        "/agent-sessions",
        json={"stationId": "", "stationPhoneNumber": "+14155550100", "asAgentId": int(agent_id)},
    )
    assert response.status_code == 200, response.text
    session_id: str = response.json()["sessionId"]
    return session_id


async def poll(client: httpx.AsyncClient, session_id: str, wait: int = 1) -> httpx.Response:
    """One ``get-next-event``."""
    return await client.get(
        f"/agent-sessions/{session_id}/get-next-event", params={"timeout": wait}
    )


async def drain(
    client: httpx.AsyncClient, session_id: str, *, until: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Poll until a 304 (or a batch with an event of ``Type`` ``until``); the id to use next
    and every event seen.

    Without ``until`` each poll has timeout 0 (what is queued now); with it, up to
    a few seconds (it answers as soon as events come).
    """
    events: list[dict[str, Any]] = []
    for _ in range(50):
        response = await poll(client, session_id, 0 if until is None else 5)
        if response.status_code == 304:
            if until is None:
                return session_id, events
            continue
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["sessionId"] != session_id
        session_id = body["sessionId"]
        events += body["events"]
        if until is not None and any(e.get("Type") == until for e in body["events"]):
            return session_id, events
    raise AssertionError("the session never went quiet")
