"""Auth, discovery and the REST client against an in-memory CXone (httpx.MockTransport)."""

from __future__ import annotations

import logging

import httpx
import pytest
from cxone_mock import API, CLIENT_SECRET, KEY_SECRET, MockCxone, settings

from outdial.clock import ManualClock
from outdial.platforms.base import AmbiguousOutcome, AuthError, PlatformError, RetryableError
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.auth import jwt_claims
from outdial.platforms.cxone.client import CxoneClient

pytestmark = pytest.mark.anyio
AGENT = "3141592"


def client(mock: MockCxone, clock: ManualClock, **changes: object) -> CxoneClient:
    return CxoneClient(settings(**changes), clock, transport=mock.transport())


async def test_password_grant_then_discovery_then_the_versioned_api() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    sid = await api.start_session(AGENT)
    token, discovery, start = mock.requests
    assert token.url.path == "/auth/token"
    form = dict(httpx.QueryParams(token.content.decode()))
    assert form == {"grant_type": "password", "username": "key-id", "password": KEY_SECRET}
    assert discovery.url.params["tenantId"] == "tenant-1"  # from the id_token's claim
    assert "Authorization" not in discovery.headers
    assert str(start.url) == f"{API}/InContactAPI/services/v23.0/agent-sessions"
    assert start.headers["Authorization"] == f"Bearer {mock.tokens_issued[0]}"
    assert wire.StartSessionRequest.model_validate_json(start.content).as_agent_id == 3141592
    assert sid == mock.session_of(AGENT).ids[0]  # type: ignore[union-attr]
    await api.aclose()


async def test_the_configured_tenant_wins_and_a_missing_one_is_named() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock, tenant_id="other")
    with pytest.raises(PlatformError):
        await api.start_session(AGENT)  # discovery does not know "other": 404
    assert mock.requests[1].url.params["tenantId"] == "other"
    assert jwt_claims("not-a-jwt") == {}


async def test_refresh_ahead_of_expiry_and_fall_back_to_the_password_grant() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    await api.active_contacts(AGENT)
    clock.advance(3000)  # 10 minutes before the hour
    await api.active_contacts(AGENT)
    grants = [
        dict(httpx.QueryParams(r.content.decode()))["grant_type"]
        for r in mock.requests
        if r.url.path == "/auth/token"
    ]
    assert grants == ["password", "refresh_token"]
    mock.refresh_refused = True
    clock.advance(3000)
    await api.active_contacts(AGENT)
    grants = [
        dict(httpx.QueryParams(r.content.decode()))["grant_type"]
        for r in mock.requests
        if r.url.path == "/auth/token"
    ]
    assert grants == ["password", "refresh_token", "refresh_token", "password"]
    assert api.tokens.grants == 3


async def test_a_401_renews_once_and_retries_once_then_is_an_auth_error() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    await api.active_contacts(AGENT)
    mock.revoked.add(mock.tokens_issued[0])
    await api.active_contacts(AGENT)  # renewed, resent, fine
    assert len(mock.tokens_issued) == 2

    def always_401(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(401) if request.url.host != "issuer.test" else None

    mock.overrides.append(always_401)
    with pytest.raises(AuthError) as caught:
        await api.active_contacts(AGENT)
    assert caught.value.status == 401
    assert len(mock.tokens_issued) == 3  # one renewal only


async def test_refused_credentials_name_the_settings() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock, access_key_secret="wrong")
    with pytest.raises(AuthError) as caught:
        await api.active_contacts(AGENT)
    assert "platform.access_key_secret" in str(caught.value)


async def test_no_secret_or_token_reaches_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    await api.active_contacts(AGENT)
    clock.advance(3500)
    mock.revoked.update(mock.tokens_issued)
    await api.active_contacts(AGENT)
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for secret in [CLIENT_SECRET, KEY_SECRET, *mock.tokens_issued, "rt-"]:
        assert secret not in text


async def test_429_and_503_carry_retry_after_and_hold_the_budget() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    await api.active_contacts(AGENT)
    mock.overrides.append(
        lambda r: (
            httpx.Response(
                429, headers={"Retry-After": "7", "X-Request-Id": "req-9"}, text="slow down"
            )
            if r.url.path.endswith("/contacts/active")
            else None
        )
    )
    with pytest.raises(RetryableError) as caught:
        await api.active_contacts(AGENT)
    error = caught.value
    assert error.status == 429
    assert error.retry_after == 7.0
    assert error.correlation_id == "req-9"
    assert error.body == {"text": "slow down"}
    assert api.budget.wait() >= 7.0
    mock.overrides[:] = [lambda r: httpx.Response(503, json={"message": "down"})]
    clock.advance(10)
    with pytest.raises(RetryableError) as caught:
        await api.agent_state(AGENT)
    assert "down" in str(caught.value)


async def test_errors_keep_status_code_and_body() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    await api.start_session(AGENT)
    with pytest.raises(PlatformError) as caught:
        await api.start_session(AGENT)
    assert caught.value.status == 400
    assert caught.value.code == "SessionInProgress"
    assert not caught.value.retryable
    with pytest.raises(PlatformError) as caught:
        await api.start_session("not-a-number")
    assert "numbers" in str(caught.value)


async def test_get_next_event_tells_200_304_409_apart_and_keeps_headers() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    sid = await api.start_session(AGENT)
    mock.push(AGENT, {"_branch": "3"}, {"Type": "AgentState", "CurrentState": "Available"})
    answer = await api.get_next_event(sid, 30)
    assert answer.status == 200
    assert answer.session_id != sid
    assert answer.renewal
    assert answer.events == ({"Type": "AgentState", "CurrentState": "Available"},)
    assert mock.requests[-1].url.params["timeout"] == "30"
    mock.push(AGENT, "304")
    assert (await api.get_next_event(answer.session_id or "", 30)).status == 304
    mock.push(AGENT, "409")
    assert (await api.get_next_event(answer.session_id or "", 30)).status == 409


async def test_dial_phone_lost_after_sending_is_ambiguous_and_before_is_retryable() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    sid = await api.start_session(AGENT)
    body = wire.DialPhoneRequest(phoneNumber="+15551234567", skillId=4242)
    assert (await api.dial_phone(sid, body)).contact_id is None
    mock.dial_body = {"contactId": 700001}
    assert (await api.dial_phone(sid, body)).contact_id == "700001"

    def read_error(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    mock.overrides.append(lambda r: read_error(r) if r.url.path.endswith("dial-phone") else None)
    with pytest.raises(AmbiguousOutcome):
        await api.dial_phone(sid, body)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    mock.overrides[:] = [lambda r: refused(r) if r.url.path.endswith("dial-phone") else None]
    with pytest.raises(RetryableError):
        await api.dial_phone(sid, body)
    # A read is never ambiguous.
    mock.overrides[:] = [lambda r: read_error(r) if "contacts" in r.url.path else None]
    with pytest.raises(RetryableError):
        await api.active_contacts(AGENT)


async def test_reads_without_content_are_empty_and_unknown_agents_none() -> None:
    mock, clock = MockCxone(), ManualClock()
    api = client(mock, clock)
    assert await api.active_contacts(AGENT) == []
    assert await api.agent_state(AGENT) is None
    mock.agent_states[AGENT] = {"agentId": 3141592, "agentStateName": "Available"}
    state = await api.agent_state(AGENT)
    assert state is not None
    assert state.agent_state_name == "Available"
    await api.end_session("nope")  # already gone: fine
