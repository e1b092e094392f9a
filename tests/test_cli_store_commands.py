"""``outdial calls`` and ``outdial contacts remove|reset`` through ``outdial.cli.main``,
on a SQLite store seeded directly (read-only commands need no platform secrets)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from outdial.cli import main
from outdial.store import CallRecord, ContactRow, SqliteStore, Store

CONFIG = """
[platform]
kind = "genesys"
region = "mypurecloud.ie"
client_id = "${{UNSET_CLIENT_ID_XYZ}}"
client_secret = "${{UNSET_CLIENT_SECRET_XYZ}}"

[store]
url = "sqlite:///{db}"

[guards]
default_region = "GB"

[[rules]]
name = "next"
topic = "v2.users.{{userId}}.presence"
users = ["agent-1"]
dial = {{ user = "{{userId}}", contact = "next" }}
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outdial.db"


@pytest.fixture
def config(tmp_path: Path, db: Path) -> str:
    path = tmp_path / "outdial.toml"
    path.write_text(CONFIG.format(db=db))
    return str(path)


def _seed(db: Path, work: Callable[[Store], Awaitable[None]]) -> None:
    async def run() -> None:
        store = SqliteStore(db)
        try:
            await work(store)
        finally:
            await store.aclose()

    anyio.run(run)


def _call(cid: str, user: str, outcome: str | None, at: datetime) -> CallRecord:
    state = "ended" if outcome else "connected"
    return CallRecord(cid, user, None, "+441212345601", state, outcome, at, at if outcome else None)


def _calls_json(config: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["calls", "--config", config, "--format", "json", *extra]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_calls_as_json_has_per_agent_counts_and_active_calls(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)

    async def work(store: Store) -> None:
        await store.upsert_call(_call("c1", "agent-1", "answered", now))
        await store.upsert_call(_call("c2", "agent-1", "busy", now))
        await store.upsert_call(_call("c3", "agent-2", None, now))

    _seed(db, work)
    out = _calls_json(config, capsys)
    assert out["since"] is None
    agents = {row["user_id"]: row for row in out["agents"]}
    assert (agents["agent-1"]["placed"], agents["agent-1"]["answered"]) == (2, 1)
    assert (agents["agent-1"]["busy"], agents["agent-1"]["active"]) == (1, 0)
    assert (agents["agent-2"]["placed"], agents["agent-2"]["active"]) == (1, 1)
    active = out["active"]
    assert isinstance(active, list)
    assert [call["conversation_id"] for call in active] == ["c3"]


def test_calls_since_leaves_out_an_old_call(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)

    async def work(store: Store) -> None:
        await store.upsert_call(_call("old", "agent-1", "busy", now - timedelta(days=3)))
        await store.upsert_call(_call("new", "agent-1", "answered", now - timedelta(minutes=5)))
        await store.upsert_call(_call("older", "agent-9", "busy", now - timedelta(days=3)))

    _seed(db, work)
    every = _calls_json(config, capsys)
    assert {row["user_id"] for row in every["agents"]} == {"agent-1", "agent-9"}
    recent = _calls_json(config, capsys, "--since", "1h")
    assert recent["since"] is not None
    (row,) = recent["agents"]
    assert (row["user_id"], row["placed"], row["answered"], row["busy"]) == ("agent-1", 1, 1, 0)
    # The table shows the same counts.
    assert main(["calls", "--config", config, "--since", "1h"]) == 0
    table = capsys.readouterr().out
    assert "agent-9" not in table
    assert "agent-1" in table


def test_calls_with_a_bad_since_is_one_line(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls", "--config", config, "--since", "yesterday"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "outdial calls: --since 'yesterday': want an age such as 90m, 12h, 7d or an ISO date"
        " such as 2024-05-01 or 2024-05-01T08:00"
    ]


def test_calls_sorts_agents_naturally(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    users = ["agent-10", "agent-2", "agent-1"]

    async def work(store: Store) -> None:
        for n, user in enumerate(users):
            await store.upsert_call(_call(f"c{n}", user, "answered", now))
            await store.upsert_call(_call(f"a{n}", user, None, now))

    _seed(db, work)
    out = _calls_json(config, capsys)
    assert [row["user_id"] for row in out["agents"]] == ["agent-1", "agent-2", "agent-10"]
    assert [c["user_id"] for c in out["active"]] == ["agent-1", "agent-2", "agent-10"]
    assert main(["calls", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    firsts = [line.split()[0] for line in lines if line.startswith("agent-")]
    assert firsts == ["agent-1", "agent-2", "agent-10"]


def _contacts(db: Path) -> list[tuple[str, str, str, int]]:
    got: list[tuple[str, str, str, int]] = []

    async def work(store: Store) -> None:
        got.extend((c.user_id, c.phone_number, c.state, c.attempts) for c in await store.contacts())

    _seed(db, work)
    return got


def test_contacts_remove_deletes_the_given_number_of_that_agent_only(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def work(store: Store) -> None:
        await store.import_contacts(
            [
                ContactRow("agent-1", "+441212345601"),
                ContactRow("agent-1", "+441212345602"),
                ContactRow("agent-2", "+441212345601"),
            ]
        )

    _seed(db, work)
    # A national number is normalized with guards.default_region, as on import.
    assert (
        main(["contacts", "remove", "--config", config, "--user", "agent-1", "0121 234 5601"]) == 0
    )
    assert capsys.readouterr().out.strip() == "removed 1 contacts of agent-1"
    assert [(u, n) for u, n, _, _ in _contacts(db)] == [
        ("agent-1", "+441212345602"),
        ("agent-2", "+441212345601"),
    ]
    assert main(["contacts", "remove", "--config", config, "--user", "agent-1"]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 contacts of agent-1"
    assert [u for u, _, _, _ in _contacts(db)] == ["agent-2"]


def test_contacts_remove_refuses_a_number_that_is_not_one(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def work(store: Store) -> None:
        await store.import_contacts([ContactRow("agent-1", "+441212345601")])

    _seed(db, work)
    code = main(["contacts", "remove", "--config", config, "--user", "agent-1", "not a number"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("outdial contacts:")
    assert len(_contacts(db)) == 1


def test_contacts_reset_makes_dialed_contacts_due_again(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)

    async def work(store: Store) -> None:
        await store.import_contacts(
            [ContactRow("agent-1", "+441212345601"), ContactRow("agent-2", "+441212345602")]
        )
        for contact in await store.contacts():
            await store.record_outcome(contact.id, "answered", now, None)

    _seed(db, work)
    assert main(["contacts", "reset", "--config", config, "--user", "agent-1"]) == 0
    assert capsys.readouterr().out.strip() == "reset 1 contacts"
    assert [(u, s, a) for u, _, s, a in _contacts(db)] == [
        ("agent-1", "due", 0),
        ("agent-2", "done", 1),
    ]
    assert main(["contacts", "reset", "--config", config]) == 0
    assert capsys.readouterr().out.strip() == "reset 2 contacts"
    assert {(s, a) for _, _, s, a in _contacts(db)} == {("due", 0)}


def test_contacts_reset_of_numbers_needs_a_user(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contacts", "reset", "--config", config, "+441212345601"]) == 2
    assert capsys.readouterr().err.strip() == "outdial contacts reset: numbers need --user"


def test_contacts_commands_on_a_missing_store_create_nothing(
    db: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contacts", "reset", "--config", config]) == 5
    assert main(["contacts", "remove", "--config", config, "--user", "agent-1"]) == 5
    assert f"no store at {db}" in capsys.readouterr().err
    assert not db.exists()
