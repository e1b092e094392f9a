"""OAuth tokens: refreshed before they expire, and once (only once) on a 401."""

from __future__ import annotations

import logging

import pytest

from outdial.clock import ManualClock
from outdial.fake import FakePlatform
from outdial.platforms.base import AuthError
from outdial.platforms.genesys import GenesysPlatform

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"


def _client(platform: FakePlatform, clock: ManualClock) -> GenesysPlatform:
    return GenesysPlatform(
        api_url=platform.api_url,
        login_url=platform.login_url,
        client_id=platform.client_id,
        client_secret=platform.client_secret,
        clock=clock,
    )


async def test_token_is_refreshed_before_it_expires() -> None:
    clock = ManualClock()
    async with FakePlatform([USER], token_lifetime=300, clock=clock) as platform:
        client = _client(platform, clock)
        try:
            await client.create_channel()
            clock.advance(200)  # still valid, far from expiry: reused
            await client.create_channel()
            assert len(platform.recorded.token_requests) == 1
            clock.advance(50)  # within a minute of expiry: refreshed before use
            await client.create_channel()
            assert [t.granted for t in platform.recorded.token_requests] == [True, True]
        finally:
            await client.aclose()


async def test_401_refreshes_once_and_retries() -> None:
    client_clock, platform_clock = ManualClock(), ManualClock()
    async with FakePlatform([USER], token_lifetime=300, clock=platform_clock) as platform:
        client = _client(platform, client_clock)
        try:
            await client.create_channel()
            platform_clock.advance(400)  # the platform expired it; the client cannot know
            channel = await client.create_channel()
            assert channel.id in platform.live_channels
            assert len(platform.recorded.token_requests) == 2
        finally:
            await client.aclose()


async def test_401_after_a_refresh_is_an_auth_error() -> None:
    async with FakePlatform([USER]) as platform:
        platform.fail_next(r"/notifications/channels$", 401, count=2)
        client = _client(platform, ManualClock())
        try:
            with pytest.raises(AuthError) as caught:
                await client.create_channel()
        finally:
            await client.aclose()
        assert caught.value.status == 401
        assert not caught.value.retryable
        assert len(platform.recorded.token_requests) == 2


async def test_no_token_or_secret_reaches_any_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, ours and the libraries'
    async with FakePlatform([USER]) as platform:
        client = _client(platform, ManualClock())
        try:
            await client.create_channel()
            token = client._token  # the test needs the value to look for it
        finally:
            await client.aclose()
    assert token
    text = "\n".join(r.getMessage() + repr(getattr(r, "outdial", "")) for r in caplog.records)
    assert platform.client_secret not in text
    assert token not in text
