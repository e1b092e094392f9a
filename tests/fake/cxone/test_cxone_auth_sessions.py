"""Auth, discovery and agent sessions of the fake CXone."""

from __future__ import annotations

import anyio
import httpx
import pytest
from cxone_helpers import FAST, VERSION, api, drain, login, poll, start_session

from outdial.clock import ManualClock
from outdial.fake.cxone import FakeCxone, decode_jwt
from outdial.platforms.cxone.wire import CxoneConfiguration, OpenIdConfiguration, TokenResponse

pytestmark = pytest.mark.anyio

AGENT = "3141592"


async def test_password_grant_id_token_and_discovery() -> None:
    async with FakeCxone([AGENT], token_lifetime=900) as cxone, httpx.AsyncClient() as client:
        openid = OpenIdConfiguration.model_validate(
            (await client.get(f"{cxone.issuer_url}/.well-known/openid-configuration")).json()
        )
        assert openid.token_endpoint == f"{cxone.issuer_url}/auth/token"
        token = TokenResponse.model_validate(await login(client, cxone))
        assert token.expires_in == 900
        assert token.id_token is not None
        claims = decode_jwt(token.id_token)
        assert claims["tenantId"] == cxone.tenant_id
        assert {"icAgentId", "icBUId", "icClusterId", "sub", "name"} <= set(claims)
        found = await client.get(
            f"{cxone.issuer_url}/.well-known/cxone-configuration",
            params={"tenantId": claims["tenantId"]},
        )
        config = CxoneConfiguration.model_validate(found.json())
        assert config.api_endpoint == cxone.api_url != cxone.issuer_url
        missing = await client.get(f"{cxone.issuer_url}/.well-known/cxone-configuration")
        assert missing.status_code == 400
        other = await client.get(
            f"{cxone.issuer_url}/.well-known/cxone-configuration", params={"tenantId": "nope"}
        )
        assert other.status_code == 404
        # The API lives only where discovery says: not on the issuer.
        wrong = await client.get(
            f"{cxone.issuer_url}/InContactAPI/services/{VERSION}/agents/states"
        )
        assert wrong.status_code == 404
        # A refresh grant trades the refresh token once.
        form = {"grant_type": "refresh_token", "refresh_token": token.refresh_token or ""}
        auth = (cxone.client_id, cxone.client_secret)
        refreshed = await client.post(f"{cxone.issuer_url}/auth/token", data=form, auth=auth)
        assert refreshed.status_code == 200
        assert refreshed.json()["access_token"] != token.access_token
        again = await client.post(f"{cxone.issuer_url}/auth/token", data=form, auth=auth)
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
        grants = [(t.grant_type, t.granted) for t in cxone.recorded.token_requests]
        assert grants == [("password", True), ("refresh_token", True), ("refresh_token", False)]


async def test_token_refusals() -> None:
    async with FakeCxone([AGENT]) as cxone, httpx.AsyncClient() as client:
        url = f"{cxone.issuer_url}/auth/token"
        form = {"grant_type": "password", "username": cxone.access_key_id, "password": "x"}
        wrong_key = await client.post(url, data=form, auth=(cxone.client_id, cxone.client_secret))
        assert (wrong_key.status_code, wrong_key.json()["error"]) == (400, "invalid_grant")
        wrong_app = await client.post(url, data=form, auth=(cxone.client_id, "nope"))
        assert (wrong_app.status_code, wrong_app.json()["error"]) == (401, "invalid_client")
        form["grant_type"] = "client_credentials"
        grant = await client.post(url, data=form, auth=(cxone.client_id, cxone.client_secret))
        assert grant.json()["error"] == "unsupported_grant_type"


async def test_the_api_needs_a_live_bearer_token() -> None:
    clock = ManualClock()
    async with FakeCxone([AGENT], clock=clock, token_lifetime=60) as cxone, api(cxone) as client:
        assert (await client.get("/agents/states")).status_code == 200
        bare = await client.get("/agents/states", headers={"Authorization": ""})
        assert bare.status_code == 401
        assert "WWW-Authenticate" in bare.headers
        clock.advance(61)
        assert (await client.get("/agents/states")).status_code == 401
    async with FakeCxone([AGENT]) as cxone, api(cxone) as client:
        cxone.revoke_tokens()
        assert (await client.get("/agents/states")).status_code == 401
    async with FakeCxone([AGENT]) as cxone, api(cxone) as client:
        cxone.expire_tokens()
        assert (await client.get("/agents/states")).status_code == 401
        # Any vNN.N works; anything else is not an API path.
        assert (
            await client.get(
                f"{cxone.api_url}/InContactAPI/services/v33.0/agents/states", headers=client.headers
            )
        ).status_code == 401
        bad = await client.get(f"{cxone.api_url}/InContactAPI/services/latest/agents/states")
        assert bad.status_code == 404


async def test_session_start_errors() -> None:
    async with FakeCxone([AGENT, "2718281"]) as cxone, api(cxone) as client:

        async def start(body: dict[str, object]) -> tuple[int, str]:
            response = await client.post("/agent-sessions", json=body)
            return response.status_code, response.json().get("error", "")

        phone = "+14155550100"
        assert await start({"stationPhoneNumber": phone, "asAgentId": 42}) == (
            400,
            "InvalidAgentId",
        )
        assert await start({"asAgentId": int(AGENT)}) == (400, "InvalidPhoneNumberOrStation")
        assert await start({"stationPhoneNumber": "12", "asAgentId": int(AGENT)}) == (
            400,
            "InvalidPhoneNumberOrStation",
        )
        assert await start({"stationPhoneNumber": phone, "asAgentId": int(AGENT), "x": 1}) == (
            400,
            "InvalidRequest",
        )
        await start_session(client, AGENT)
        assert await start({"stationPhoneNumber": phone, "asAgentId": int(AGENT)}) == (
            400,
            "SessionInProgress",
        )
        assert await start({"stationPhoneNumber": phone, "asAgentId": 2718281}) == (
            400,
            "PhoneNumberInUse",
        )
        assert (await start({"stationId": "st-1", "asAgentId": 2718281}))[0] == 200
        errors = [s.error for s in cxone.recorded.sessions if s.action == "start"]
        assert errors == [
            "InvalidAgentId",
            "InvalidPhoneNumberOrStation",
            "InvalidPhoneNumberOrStation",
            "InvalidRequest",
            None,
            "SessionInProgress",
            "PhoneNumberInUse",
            None,
        ]


async def test_join_needs_impersonation_and_shares_the_session() -> None:
    async with FakeCxone([AGENT], impersonation=False) as cxone, api(cxone) as client:
        refused = await client.post("/agent-sessions/join", json={"asAgentId": int(AGENT)})
        assert (refused.status_code, refused.json()["error"]) == (400, "ImpersonateNotEnabled")
    async with FakeCxone([AGENT, "2718281"]) as cxone, api(cxone) as client:
        joined = await client.post("/agent-sessions/join", json={"asAgentId": int(AGENT)})
        assert joined.status_code == 200
        again = await client.post("/agent-sessions/join", json={"asAgentId": int(AGENT)})
        assert again.json()["sessionId"] == joined.json()["sessionId"]
        cxone.set_agent_state("2718281", "LoggedOut")
        out = await client.post("/agent-sessions/join", json={"asAgentId": 2718281})
        assert out.json()["error"] == "AgentNotLoggedIn"
        # Ending a joined session leaves the agent logged in.
        ended = await client.delete(f"/agent-sessions/{joined.json()['sessionId']}")
        assert ended.status_code == 202
        assert cxone.agent_state(AGENT) == "Available"


async def test_ending_a_started_session_logs_the_agent_out() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        cxone.set_agent_state(AGENT, "LoggedOut")
        session_id = await start_session(client, AGENT)
        assert cxone.agent_state(AGENT) == "Available"  # the login state
        session_id, _ = await drain(client, session_id)
        assert (await client.delete(f"/agent-sessions/{session_id}")).status_code == 202
        assert cxone.agent_state(AGENT) == "LoggedOut"
        assert (await poll(client, session_id, 0)).status_code == 409
        assert (await client.delete(f"/agent-sessions/{session_id}")).status_code == 409
        assert (await poll(client, "s-never-issued", 0)).status_code == 404
        assert (await poll(client, session_id, 61)).status_code == 400


async def test_one_poll_per_session_a_newer_one_supersedes() -> None:
    async with FakeCxone([AGENT], timing=FAST) as cxone, api(cxone) as client:
        session_id, _ = await drain(client, await start_session(client, AGENT))
        results: list[httpx.Response] = []
        first_answered = anyio.Event()

        async def one_poll() -> None:
            results.append(await poll(client, session_id, 30))
            first_answered.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(one_poll)
            await cxone.wait_for(lambda: cxone.polls_waiting(AGENT) == 1)
            tg.start_soon(one_poll)
            # The second poll takes over: the first is answered 304 at once.
            with anyio.fail_after(5):
                await first_answered.wait()
            assert results[0].status_code == 304
            assert cxone.overlapping_polls == 1
            cxone.set_agent_state(AGENT, "Unavailable", "Break")
        second = results[1]
        assert second.status_code == 200
        assert second.json()["events"][0]["CurrentState"] == "Unavailable"
