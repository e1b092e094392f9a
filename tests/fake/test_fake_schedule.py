"""Fault schedules: the pure model and expansion, the seeded generator, scenario files, and
running a schedule on a platform."""

from __future__ import annotations

import tomllib
from pathlib import Path

import anyio
import pytest
from fake_helpers import api, channel
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from outdial.fake import (
    FAULT_KINDS,
    FakePlatform,
    Fault,
    Scenario,
    ScenarioError,
    load_scenario,
    platform_from_scenario,
    random_schedule,
    serve,
)
from outdial.fake.schedule import DURABLE_KINDS, PROXY_KINDS, Step, expand

pytestmark = pytest.mark.anyio

USER = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"


async def drain(ws: ClientConnection) -> None:
    while True:
        await ws.recv()


def test_faults_accept_only_their_own_parameters() -> None:
    Fault(at=1.0, kind="rest_errors", status=429, rate=0.3, path="/calls", duration=2.0)
    with pytest.raises(ValidationError, match="'rate' does not apply to a 'freeze' fault"):
        Fault(kind="freeze", rate=0.5)
    with pytest.raises(ValidationError, match="has no duration"):
        Fault(kind="reset", duration=1.0)
    with pytest.raises(ValidationError, match="kind"):
        Fault.model_validate({"kind": "meteor"})
    assert Fault(kind="freeze").proxy_name == "ws"
    assert Fault(kind="reset", proxy="rest").proxy_name == "rest"
    assert Fault(kind="malformed").proxy_name is None


def test_expand_orders_starts_and_ends() -> None:
    freeze = Fault(at=1.0, kind="freeze", duration=2.0)
    reset = Fault(at=3.0, kind="reset")
    early = Fault(at=0.5, kind="malformed")
    assert expand([freeze, reset, early]) == [
        Step(0.5, early),
        Step(1.0, freeze),
        Step(3.0, freeze, end=True),  # an end runs before a start at the same time
        Step(3.0, reset),
    ]


def test_random_schedule_is_seeded_and_well_formed() -> None:
    schedule = random_schedule(7, 600.0, mean_gap=5.0)
    assert schedule == random_schedule(7, 600.0, mean_gap=5.0)
    assert schedule != random_schedule(8, 600.0, mean_gap=5.0)
    assert 60 <= len(schedule) <= 240
    assert {f.kind for f in schedule} >= {"freeze", "reset", "rest_errors"}
    ends: dict[str, float] = {}
    for fault in schedule:
        assert 0 <= fault.at < 600.0
        assert fault.kind != "thaw"
        if fault.kind in DURABLE_KINDS:
            assert fault.duration is not None
            assert fault.at + fault.duration <= 600.0 + 1e-9
            assert fault.at >= ends.get(fault.kind, 0.0)  # one kind never overlaps itself
            ends[fault.kind] = fault.at + fault.duration
    only = random_schedule(1, 100.0, ["malformed", "stall"], mean_gap=1.0)
    assert {f.kind for f in only} == {"malformed", "stall"}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        random_schedule(1, 10.0, ["meteor"])


def test_scenario_with_agents_seed_and_faults(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        f"""
agents = ["{USER}"]
seed = 11

[outcomes]
"+441212345601" = "busy"

[[faults]]
at = 1.5
kind = "freeze"
duration = 2.0

[[faults]]
at = 4.0
kind = "rest_errors"
status = 429
rate = 0.25
duration = 5.0
""",
        encoding="utf-8",
    )
    scenario = load_scenario(path)
    assert scenario.agents == [USER]
    assert scenario.seed == 11
    assert [f.kind for f in scenario.faults] == ["freeze", "rest_errors"]
    assert scenario.needs_ws_proxy
    assert not scenario.needs_rest_proxy
    platform = platform_from_scenario(scenario, port=0)
    assert platform.agents == [USER]

    path.write_text('[[faults]]\nkind = "freeze"\nrate = 0.5\n', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"faults\.0.*'rate' does not apply"):
        load_scenario(path)


async def test_run_schedule_starts_and_ends_faults_on_time() -> None:
    async with FakePlatform(seed=0, ws_proxy=True) as platform:
        run = platform.run_schedule(
            [
                Fault(at=0.0, kind="stop_heartbeats", duration=0.03),
                Fault(at=0.0, kind="freeze", duration=0.03),
                Fault(at=0.01, kind="rest_errors", status=500, rate=1.0, duration=0.02),
            ]
        )
        await platform.ws_proxy.wait_for(lambda: platform.ws_proxy.frozen)
        assert not platform.heartbeats_enabled
        await run.wait(2.0)
        assert run.done
        assert not platform.ws_proxy.frozen
        assert platform.heartbeats_enabled
        assert [(e.kind, e.end, e.error) for e in run.log] == [
            ("stop_heartbeats", False, None),
            ("freeze", False, None),
            ("rest_errors", False, None),
            ("stop_heartbeats", True, None),
            ("freeze", True, None),
            ("rest_errors", True, None),
        ]
        async with api(platform) as client:  # the 500s ended with the fault
            assert (await client.get(f"/api/v2/users/{USER}/routingstatus")).status_code == 200


async def test_proxy_faults_need_the_proxy() -> None:
    async with FakePlatform(seed=0) as platform:
        with pytest.raises(RuntimeError, match="ws_proxy=True"):
            platform.run_schedule([Fault(kind="reset")])
        with pytest.raises(RuntimeError, match="rest_proxy=True"):
            await platform.apply_fault(Fault(kind="latency", proxy="rest"))


async def test_apply_fault_undoes_it_after_its_duration() -> None:
    async with FakePlatform(seed=0, ws_proxy=True) as platform:
        await platform.apply_fault(Fault(kind="freeze", duration=0.02))
        assert platform.ws_proxy.frozen
        await platform.ws_proxy.wait_for(lambda: not platform.ws_proxy.frozen)


async def test_every_kind_runs_cleanly_against_a_live_socket() -> None:
    faults = [
        Fault(kind=kind, duration=0.01 if kind in DURABLE_KINDS else None)  # type: ignore[arg-type]
        for kind in FAULT_KINDS
        if kind not in ("reset", "expire_channel", "evict", "kick_socket", "drop_sockets")
    ]
    # The socket-ending kinds go last, so every other kind meets a live socket.
    ending = ["kick_socket", "drop_sockets", "reset", "evict", "expire_channel"]
    faults += [Fault(at=0.05, kind=kind) for kind in ending]  # type: ignore[arg-type]
    faults.append(Fault(at=0.05, kind="reset", proxy="rest"))
    async with (
        FakePlatform(seed=0, ws_proxy=True, rest_proxy=True) as platform,
        api(platform) as client,
    ):
        created = await channel(client)
        await channel(client)
        async with connect(created["connectUri"], max_size=None) as ws:
            await platform.wait_for(lambda: bool(platform.connected_channels))
            run = platform.run_schedule(faults)
            await run.wait(5.0)
            assert [e for e in run.log if e.error] == []
            assert {e.kind for e in run.log} == set(FAULT_KINDS)
            with anyio.fail_after(2), pytest.raises(ConnectionClosed):
                await drain(ws)  # everything the faults sent, then the end of the socket
    assert set(PROXY_KINDS) <= set(FAULT_KINDS)


async def test_serve_plays_the_scenario() -> None:
    ready: list[FakePlatform] = []
    started = anyio.Event()

    def on_ready(platform: FakePlatform) -> None:
        ready.append(platform)
        started.set()

    scenario = Scenario.model_validate(
        tomllib.loads(
            f'agents = ["{USER}"]\n[outcomes]\n"+441212345601" = "busy"\n'
            '[[faults]]\nkind = "freeze"\nduration = 0.02\n'
        )
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(agents=["ignored"], scenario=scenario, on_ready=on_ready))
        with anyio.fail_after(5):
            await started.wait()
        platform = ready[0]
        assert platform.agents == [USER]
        await platform.ws_proxy.wait_for(lambda: not platform.ws_proxy.frozen)
        tg.cancel_scope.cancel()
