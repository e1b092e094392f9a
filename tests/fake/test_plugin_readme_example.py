"""The README's "Testing your rules with pytest" example, verbatim below the marker, so it runs.

The fixture above the marker plays the user's project: an ``outdial.toml`` with
their rules in the working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

RULES = """
[platform]
kind = "genesys"
region = "mypurecloud.ie"
client_id = "${GENESYS_CLIENT_ID}"
client_secret = "${GENESYS_CLIENT_SECRET}"

[[rules]]
name = "next-contact-when-available"
topic = "v2.users.{userId}.presence"
users = ["3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"]
when = { "presenceDefinition.systemPresence" = "Available" }
dial = { user = "{userId}", contact = "next", caller_id = "+442071838750" }
"""


@pytest.fixture(autouse=True)
def users_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outdial.toml").write_text(RULES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)


# --- README example starts here ------------------------------------------------------------

from outdial.fake import FakePlatform  # noqa: E402
from outdial.fake.pytest_plugin import fake_config, running_daemon  # noqa: E402

AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"


@pytest.mark.anyio
async def test_available_agent_dials_their_next_contact(
    fake_platform: FakePlatform, tmp_path: Path
) -> None:
    config = fake_config(fake_platform, "outdial.toml", store_url=f"sqlite:///{tmp_path}/t.db")
    async with running_daemon(config, contacts=[(AGENT, "+441212345601")]):
        await fake_platform.wait_for_subscription(f"v2.users.{AGENT}.presence")
        await fake_platform.publish_presence(AGENT, "Available")
        [call] = await fake_platform.wait_for_calls(1)
    assert call.user_id == AGENT
    assert call.payload["phoneNumber"] == "+441212345601"
    assert call.payload["callerId"] == "+442071838750"
