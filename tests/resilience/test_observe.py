"""The daemon's [observe] endpoint against the fake, over real sockets: metrics move as
things happen (a dial, a skip, a reconnect and its gap), health answers, and
``outdial status`` prints what the status page shows.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from daemon_harness import daemon_for, ready_config, sqlite
from listener_harness import USER
from prometheus_client.parser import text_string_to_metric_families

from outdial import cli
from outdial.config import Config, ObserveConfig
from outdial.exits import EXIT_OK
from outdial.fake import FakePlatform, Outcome
from outdial.fake.pytest_plugin import FAST_TIMING
from outdial.observe import METRIC_NAMES

pytestmark = pytest.mark.anyio

NUMBER = "+441212345601"
RULE = "next-contact-when-ready"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def observed(config: Config, port: int = 0) -> Config:
    return config.model_copy(update={"observe": ObserveConfig(listen=f"127.0.0.1:{port}")})


async def scrape(base: str) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/metrics")
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(base: str, ok: Callable[[Samples], bool], wait: float = 15.0) -> Samples:
    """Scrape until ``ok`` holds (a condition, not a deadline: fails only after ``wait``)."""
    with anyio.fail_after(wait):
        while True:
            samples = await scrape(base)
            if ok(samples):
                return samples
            await anyio.sleep(0.05)


async def answered(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    """GET ``url`` until it answers ``status`` (fails after 10 s)."""
    with anyio.fail_after(10):
        while True:
            response = await client.get(url)
            if response.status_code == status:
                return response
            await anyio.sleep(0.05)


def base_url(address: tuple[str, int] | None) -> str:
    assert address is not None
    return f"http://{address[0]}:{address[1]}"


async def test_metrics_count_a_dial_a_skip_a_reconnect_and_the_length_of_its_gap(
    tmp_path: Path,
) -> None:
    async with FakePlatform([USER], timing=FAST_TIMING, seed=3, ws_proxy=True) as platform:
        platform.set_outcome(NUMBER, Outcome.ANSWERED)
        config = observed(ready_config(platform, sqlite(tmp_path)))
        async with daemon_for(config, contacts=[(USER, NUMBER)]) as run:
            base = base_url(run.daemon.observatory.address)
            await run.until("call.ended")
            # The one contact called, the agent is ready again with nothing to call: a skip.
            samples = await until(
                base, lambda s: value(s, "outdial_dial_skips_total", guard="contacts") >= 1
            )
            assert value(samples, "outdial_dials_total", rule=RULE, status="placed") == 1
            assert value(samples, "outdial_event_to_dial_seconds_count") == 1
            # The dial's one claim, timed with its commit: every claim is in a bucket.
            assert value(samples, "outdial_store_claim_seconds_count") == 1
            assert value(samples, "outdial_store_claim_seconds_bucket", le="+Inf") == 1
            assert 0 < value(samples, "outdial_store_claim_seconds_sum") < 10
            assert value(samples, "outdial_channel_state", shard="shard-0", state="subscribed") == 1
            assert value(samples, "outdial_channel_reconnects_total", shard="shard-0") == 0
            assert value(samples, "outdial_gap_seconds_count", reason="startup") == 1
            calls = "v2.users.{id}.conversations.calls"
            assert value(samples, "outdial_events_total", topic=calls) >= 1
            assert value(samples, "outdial_rest_responses_total", status="200") >= 1
            assert value(samples, "outdial_rest_budget_remaining") > 0
            assert value(samples, "outdial_agents_tracked") == 1
            assert value(samples, "outdial_listener_queue_capacity") == config.listener.queue_size
            assert value(samples, "outdial_ready") == 1
            families = {name for name, _ in samples}
            for name in METRIC_NAMES:
                assert any(f.startswith(name) for f in families), name

            # A reset of every socket: a reconnect, and a gap whose length is observed.
            platform.ws_proxy.reset()
            samples = await until(
                base,
                lambda s: (
                    value(s, "outdial_gap_seconds_count", reason="socket") >= 1
                    and value(s, "outdial_channel_state", shard="shard-0", state="subscribed") == 1
                ),
            )
            assert value(samples, "outdial_channel_reconnects_total", shard="shard-0") == 1
            assert value(samples, "outdial_gaps_total") == 2
            assert value(samples, "outdial_gap_seconds_sum", reason="socket") > 0

            # A 429 is counted, and the budget holds every request back while it lasts.
            platform.fail_next("^/api/v2/", 429, retry_after=0.5, method="GET")
            await run.daemon.handlers.refresh([USER])
            samples = await scrape(base)
            assert value(samples, "outdial_rest_rate_limited_total") == 1
            assert value(samples, "outdial_rest_responses_total", status="429") == 1


async def test_health_answers_live_and_ready_and_not_ready_while_the_channel_is_down(
    tmp_path: Path,
) -> None:
    async with FakePlatform([USER], timing=FAST_TIMING, seed=3, ws_proxy=True) as platform:
        config = observed(ready_config(platform, sqlite(tmp_path)))
        async with daemon_for(config) as run, httpx.AsyncClient() as client:
            base = base_url(run.daemon.observatory.address)
            assert (await client.get(f"{base}/livez")).status_code == 200
            await until(base, lambda s: value(s, "outdial_ready") == 1)
            assert (await client.get(f"{base}/readyz")).text == "ready\n"
            platform.ws_proxy.refuse()
            platform.ws_proxy.reset()
            response = await answered(client, f"{base}/readyz", 503)
            assert "shard-0 is" in response.text
            assert (await client.get(f"{base}/livez")).status_code == 200
            platform.ws_proxy.refuse(False)
            await until(base, lambda s: value(s, "outdial_ready") == 1)
            assert (await client.get(f"{base}/nothing")).status_code == 404


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_outdial_status_prints_channels_agents_and_the_call_placed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakePlatform([USER], timing=FAST_TIMING, seed=3) as platform:
        platform.set_outcome(NUMBER, Outcome.ANSWERED)
        config = observed(ready_config(platform, sqlite(tmp_path)), free_port())
        assert config.observe.listen is not None
        path = tmp_path / "outdial.toml"
        path.write_text(
            f'[platform]\nregion = "mypurecloud.com"\nclient_id = "x"\nclient_secret = "y"\n'
            f'[observe]\nlisten = "{config.observe.listen}"\n'
        )
        async with daemon_for(config, contacts=[(USER, NUMBER)]) as run:
            await run.until("call.ended")
            await until(base_url(run.daemon.observatory.address), lambda s: s != {})
            code = await anyio.to_thread.run_sync(cli.main, ["status", "--config", str(path)])
        out = capsys.readouterr().out
    assert code == EXIT_OK
    assert out.startswith("outdial: ready\n")
    assert "shard-0" in out
    assert "subscribed" in out
    assert USER in out
    assert "recent outcomes (1)" in out
    assert "answered" in out
    assert NUMBER not in out  # masked
    assert NUMBER[:3] in out
    assert NUMBER[-3:] in out


def test_outdial_status_says_when_nothing_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outdial.toml"
    path.write_text(
        '[platform]\nregion = "mypurecloud.com"\nclient_id = "x"\nclient_secret = "y"\n'
        f'[observe]\nlisten = "127.0.0.1:{free_port()}"\n'
    )
    assert cli.main(["status", "--config", str(path), "--timeout", "2"]) == cli.EXIT_PROBLEMS
    assert "is the daemon running?" in capsys.readouterr().err
    path.write_text(
        '[platform]\nregion = "mypurecloud.com"\nclient_id = "x"\nclient_secret = "y"\n'
    )
    assert cli.main(["status", "--config", str(path)]) == cli.EXIT_PROBLEMS
    assert "no [observe] listen" in capsys.readouterr().out
