"""The ``fake_platform`` fixture the package's pytest plugin provides."""

from __future__ import annotations

import pytest
from fake_helpers import api

from outdial.fake import FakePlatform

pytestmark = pytest.mark.anyio


async def test_fixture_gives_a_running_platform(fake_platform: FakePlatform) -> None:
    async with api(fake_platform) as client:
        user = fake_platform.agents[0]
        response = await client.post(
            f"/api/v2/conversations/calls/user/{user}", json={"phoneNumber": "+441212345601"}
        )
        assert response.status_code == 200
    [call] = await fake_platform.wait_for_calls(1)
    await fake_platform.wait_for(
        lambda: (
            fake_platform.conversation(call.conversation_id or "") is not None
            and fake_platform.agent_presence(user) == "Available"
        ),
    )
