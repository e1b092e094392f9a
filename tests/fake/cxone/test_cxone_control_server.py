"""The fake CXone's control endpoints, its standalone server and banner, and the plugin."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from cxone_helpers import api, drain, start_session

from outdial.config import CxonePlatformConfig
from outdial.fake import FakeCxone
from outdial.fake.cxone import cxone_banner, serve_cxone
from outdial.fake.pytest_plugin import fake_cxone_config, fake_cxone_control_client

pytestmark = pytest.mark.anyio

AGENT = "3141592"


async def test_control_needs_the_token_and_the_fakes_host(fake_cxone: FakeCxone) -> None:
    async with httpx.AsyncClient(base_url=fake_cxone.control_url) as bare:
        assert (await bare.get("/state")).status_code == 401
        wrong_host = await bare.get(
            "/state",
            headers={"Host": "evil.example", "Authorization": f"Bearer {fake_cxone.control_token}"},
        )
        assert wrong_host.status_code == 403
    # The control endpoints are not on the API port.
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{fake_cxone.api_url}/fake/state")).status_code == 404


async def test_control_drives_agents_faults_and_recordings(
    fake_cxone: FakeCxone, fake_cxone_control: httpx.AsyncClient
) -> None:
    control = fake_cxone_control
    async with api(fake_cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        set_state = await control.put(
            f"/agents/{AGENT}/state", json={"state": "Unavailable", "outReason": "Lunch"}
        )
        assert set_state.json() == {"agentId": AGENT, "state": "Unavailable"}
        assert (
            await control.put(f"/agents/{AGENT}/state", json={"state": "Dancing"})
        ).status_code == 400
        assert (
            await control.put("/agents/999/state", json={"state": "Available"})
        ).status_code == 404
        assert (await control.put(f"/agents/{AGENT}/acw", json={"hold": True})).status_code == 200
        started = await control.post(
            f"/agents/{AGENT}/contacts", json={"phoneNumber": "+441212345699"}
        )
        contact_id = started.json()["contactId"]
        ended = await control.post(f"/contacts/{contact_id}/end")
        assert ended.json() == {
            "contactId": contact_id,
            "status": "Disconnected",
            "finalState": False,
        }
        done = await control.post(f"/contacts/{contact_id}/acw/end")
        assert done.json()["finalState"] is True
        outcome = await control.put("/outcomes/+441212345601", json={"outcome": "busy"})
        assert outcome.json() == {"phoneNumber": "+441212345601", "outcome": "busy"}
        assert (await control.put("/outcomes/+4412", json={"outcome": "maybe"})).status_code == 400
        event = await control.post(f"/agents/{AGENT}/events", json={"Type": "UpdateSkills"})
        assert event.status_code == 200
        fault = await control.post("/faults/storm_304", json={"count": 1})
        assert fault.json() == {"kind": "storm_304", "applied": True}
        assert (
            await client.get(f"/agent-sessions/{session_id}/get-next-event?timeout=0")
        ).status_code == 304
        for kind, body in (
            ("fail_next", {"path": "contacts/active", "status": 503, "retryAfter": 3}),
            ("duplicate_events", {"copies": 2}),
            ("lose_dial", {}),
            ("drop_dial_answer", {"count": 1}),
            ("stall_polls", {"count": 1}),
        ):
            assert (await control.post(f"/faults/{kind}", json=body)).status_code == 200, kind
        refused = await client.get("/contacts/active")
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "3")
        assert (await control.post("/faults/no_such", json={})).status_code == 404
        assert (await control.post("/faults/proxy_freeze")).status_code == 400  # no proxy
        ended_session = await control.post("/faults/end_session", json={"agentId": AGENT})
        assert ended_session.json()["ended"] is True
        assert (await control.post("/faults/revoke_tokens")).json()["revoked"] == 1
        assert (await control.post("/clear")).json() == {"cleared": True}
        state = (await control.get("/state")).json()
        assert state["agents"][0]["state"] == "Unavailable"
        assert state["agents"][0]["sessionId"] is None
        assert state["duplicateEvents"] == 1
        recorded = (await control.get("/recorded")).json()
        assert recorded["token_requests"][0]["granted"] is True
        assert [s["action"] for s in recorded["sessions"]] == ["start", "ended_by_platform"]


async def test_serve_cxone_reports_ready_and_banner_names_everything() -> None:
    ready: list[FakeCxone] = []
    listening = anyio.Event()

    def on_ready(cxone: FakeCxone) -> None:
        ready.append(cxone)
        listening.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve_cxone(agents=["42"], seed=1, on_ready=on_ready))
        with anyio.fail_after(5):
            await listening.wait()
        text = cxone_banner(ready[0])
        tg.cancel_scope.cancel()
    for word in ("issuer", "api_endpoint", "control_token", "client_secret", "access_key_id"):
        assert word in text
    assert "agents            42" in text
    with pytest.raises(ValueError, match="allow-remote"):
        await serve_cxone(host="0.0.0.0")


def test_fake_server_command_prints_the_banner() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "outdial", "fake-server", "--platform", "cxone", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        lines = [first] + [proc.stdout.readline() for _ in range(11)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert lines[0].strip() == "outdial fake NICE CXone platform is ready"
    assert lines[-1].split() == ["agents", "3141592,", "3141593,", "3141594"]
    bad = subprocess.run(
        [sys.executable, "-m", "outdial", "fake-server", "--platform", "cxone", "--agent", "x1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "digits" in bad.stderr


async def test_fake_cxone_config_points_a_config_at_the_fake(
    fake_cxone_factory: Callable[..., FakeCxone], tmp_path: Path
) -> None:
    async with fake_cxone_factory(agents=[AGENT]) as cxone:
        config = fake_cxone_config(
            cxone,
            {
                "platform": {
                    "kind": "cxone",
                    "client_id": "x",
                    "client_secret": "y",
                    "access_key_id": "a",
                    "access_key_secret": "b",
                    "session": "join",
                },
                "rules": [
                    {
                        "name": "next",
                        "topic": "outdial.users.{userId}.ready",
                        "users": [AGENT, "2718281"],
                        "dial": {"user": "{userId}", "contact": "next"},
                    }
                ],
            },
            store_url=f"sqlite:///{tmp_path / 'store.db'}",
        )
        platform = config.platform
        assert isinstance(platform, CxonePlatformConfig)
        assert platform.issuer == cxone.issuer_url
        assert platform.client_id == cxone.client_id
        assert platform.access_key_secret.get_secret_value() == cxone.access_key_secret
        assert platform.session == "join"
        assert platform.skill_for(AGENT) == cxone.skill_id
        stations = {platform.station_for(a)[1] for a in (AGENT, "2718281")}
        assert len(stations) == 2  # one number each: the platform refuses a shared one
        assert cxone.agents == [AGENT, "2718281"]
        async with fake_cxone_control_client(cxone) as control:
            assert (await control.get("/state")).status_code == 200
