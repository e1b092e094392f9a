"""The fake's control endpoints answer only their token, on the fake's own addresses, and never a
web page from elsewhere in the user's browser; the fake listens beyond loopback only when asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from outdial.cli import main
from outdial.fake import FakePlatform, serve
from outdial.fake.control import control_headers, control_refusal, control_token
from outdial.fake.pytest_plugin import fake_control_client
from outdial.fake.server import remote_bind_refusal
from outdial.http import Request

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
TOKEN = "t0ken"


def _request(**headers: str) -> Request:
    return Request("GET", "/fake/state", headers={k.lower(): v for k, v in headers.items()})


def _error_shape(body: dict[str, object]) -> None:
    # The platform's ErrorBody, as every other error of the fake.
    assert set(body) >= {"message", "code", "status", "messageWithParams", "contextId", "details"}


async def test_without_the_token_nothing_is_done_and_the_answer_says_what_to_send() -> None:
    async with FakePlatform([USER], seed=0) as platform:
        async with httpx.AsyncClient(base_url=platform.control_url) as anonymous:
            response = await anonymous.put(
                f"/agents/{USER}/presence", json={"systemPresence": "Offline"}
            )
            assert response.status_code == 401
            _error_shape(response.json())
            assert "Authorization: Bearer" in response.json()["message"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = await anonymous.get("/state", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        assert platform.agent_presence(USER) == "Available"
        async with fake_control_client(platform) as control:
            response = await control.put(
                f"/agents/{USER}/presence", json={"systemPresence": "Offline"}
            )
            assert response.status_code == 200
        assert platform.agent_presence(USER) == "Offline"


async def test_each_platform_has_its_own_token() -> None:
    async with FakePlatform([USER]) as one, FakePlatform([USER]) as two:
        assert control_token(one) != control_token(two)
        assert len(control_token(one)) >= 32
        async with httpx.AsyncClient(headers=control_headers(one)) as client:
            assert (await client.get(f"{one.control_url}/state")).status_code == 200
            assert (await client.get(f"{two.control_url}/state")).status_code == 401


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 403),  # DNS rebinding: a name someone else points at 127.0.0.1
        ("evil.example:{port}", 403),
        ("localhost:{port}", 200),
        ("127.0.0.1:{port}", 200),
    ],
)
async def test_the_host_header_must_name_the_fake(host: str, status: int) -> None:
    async with FakePlatform([USER]) as platform, fake_control_client(platform) as control:
        port = str(platform.control_url.split(":")[-1].split("/")[0])
        response = await control.get("/state", headers={"Host": host.format(port=port)})
        assert response.status_code == status
        if status == 403:
            _error_shape(response.json())
            assert response.json()["code"] == "host.not.allowed"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
        ({"Origin": "http://localhost:1"}, 403),  # another local web app
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),  # another port of localhost
        ({"Sec-Fetch-Site": "same-origin"}, 200),
        ({"Sec-Fetch-Site": "none"}, 200),  # the URL typed into the address bar
        ({"Origin": "{own}"}, 200),
    ],
)
async def test_cross_site_browser_requests_are_refused(
    headers: dict[str, str], status: int
) -> None:
    async with FakePlatform([USER]) as platform, fake_control_client(platform) as control:
        own = platform.control_url.removesuffix("/fake")
        sent = {k: v.format(own=own) for k, v in headers.items()}
        response = await control.post("/clear", headers=sent)
        assert response.status_code == status
        if status == 403:
            _error_shape(response.json())
            assert response.json()["code"] == "cross.site.request"


def _status(request: Request) -> int | None:
    refusal = control_refusal(request, token=TOKEN)
    return None if refusal is None else refusal.status


def test_refusal_order_and_host_forms() -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _status(_request(Host="[::1]:8080", **auth)) is None
    assert _status(_request(Host="LOCALHOST", **auth)) is None
    # The address the connection arrived at (a fake started with --allow-remote).
    remote = _request(Host="192.0.2.7:8080", **auth)
    assert _status(Request(remote.method, remote.path, headers=remote.headers)) == 403
    assert (
        _status(Request(remote.method, remote.path, headers=remote.headers, local_host="192.0.2.7"))
        is None
    )
    for bad in ({}, {"Host": ""}, {"Host": "127.0.0.1:port"}, {"Host": "192.0.2.7"}):
        assert _status(_request(**bad, **auth)) == 403, bad
    # The host is judged before the token: a foreign page learns nothing either way.
    assert _status(_request(Host="evil.example")) == 403
    assert _status(_request(Host="localhost", Authorization=f"Basic {TOKEN}")) == 401
    assert _status(_request(Host="localhost", Authorization=f"bearer {TOKEN}")) is None


@pytest.fixture
def fake_server() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "outdial", "fake-server", "--port", "0", "--agents", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        banner: dict[str, str] = {}
        for line in proc.stdout:
            parts = line.split()
            if len(parts) >= 2 and line.startswith("  "):
                banner[parts[0]] = parts[1]
            if "agents" in banner:
                break
        yield banner
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_fake_server_prints_the_token_and_requires_it(fake_server: dict[str, str]) -> None:
    url, token = fake_server["control_url"], fake_server["control_token"]
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/state")).status_code == 401
        authorized = await client.get("/state", headers={"Authorization": f"Bearer {token}"})
        assert authorized.status_code == 200
        assert len(authorized.json()["agents"]) == 1


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.7", "fake.example"])
def test_fake_server_refuses_to_listen_beyond_loopback(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fake-server", "--host", host, "--port", "0"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "--allow-remote" in lines[0]
    assert "platform is ready" not in captured.out


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_flag(host: str) -> None:
    assert remote_bind_refusal(host, allow_remote=False) is None


def test_allow_remote_is_the_explicit_way_out() -> None:
    assert remote_bind_refusal("0.0.0.0", allow_remote=True) is None


async def test_serve_itself_refuses_a_remote_host() -> None:
    with pytest.raises(ValueError, match="--allow-remote"):
        await serve(host="0.0.0.0", on_ready=None)
