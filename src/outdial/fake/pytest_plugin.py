"""pytest plugin (the ``pytest11`` entry point ``outdial``): test dialing rules against the fake.

Installed with outdial, it gives every test suite:

* ``fake_platform``: a running :class:`~outdial.fake.platform.FakePlatform`
  (seed 0, :data:`FAST_TIMING`, heartbeats every 0.5 s). An anyio async
  fixture: mark tests ``@pytest.mark.anyio``.
* ``fake_platform_factory``: ``fake_platform_factory(**options)`` builds a
  platform with the same fast defaults and your options (agents, seed,
  ``ws_proxy=True``, ...); use it as ``async with ... as platform``.
* ``fake_control``: an ``httpx.AsyncClient`` on ``fake_platform``'s control
  endpoints (``/fake/...``, see :mod:`outdial.fake.control`) that sends its
  control token; :func:`fake_control_client` makes one for any platform.

and helpers to run the real daemon in-process against it:

* :func:`fake_config` reads your ``outdial.toml`` (or a dict) and points it at
  the fake: its URLs and credentials, your store URL, a calling window that
  is open now, and every agent your rules name simulated by the fake.
* :func:`running_daemon` opens the store, imports contacts, runs the daemon
  for the body of an ``async with`` and stops it cleanly.

The platform's own helpers do the rest: ``publish_presence``,
``publish_call_event``, ``wait_for_subscription``, ``wait_for_calls``,
``recorded``, ``set_outcome`` and the fault controls. The fake's agents behave
as on the platform: they start ``Available`` and ``OFF_QUEUE``, and a call
never changes their presence (only ``set_presence``/``publish_presence`` do);
routing status and ``v2.users.{id}.conversationsummary`` follow their calls. To
put an agent in the situations a dialer must respect:

* an agent busy with a call outdial did not place (inbound, or dialed by
  hand): ``conversation_id = await fake_platform.start_foreign_call(user,
  phone_number="+44...", direction="inbound", queue_id=None)``, later
  ``await fake_platform.end_foreign_call(conversation_id, by="customer")``;
* an agent On Queue: ``await fake_platform.set_presence(user, "On Queue")``;
* an agent stuck in after-call work (calls placed with ``callFromQueueId``, or
  foreign calls with a ``queue_id``): ``fake_platform.hold_acw(user)``, then
  ``await fake_platform.end_acw(conversation_id)``;
* a bulk re-read missing an expand: ``fake_platform.drop_expand(user,
  "conversationSummary")``;
* the agent hanging up: ``fake_platform.set_hangup(number, "agent")``.

For NICE CXone, beside them:

* ``fake_cxone``: a running :class:`~outdial.fake.cxone.FakeCxone` (seed 0,
  :data:`FAST_TIMING`; agents ``3141592`` and ``2718281`` with the manual
  outbound skill 4242, Available).
* ``fake_cxone_factory``: ``fake_cxone_factory(**options)``, the same fast
  defaults with your options (``skills=``, ``dial_names_contact=True``, ...).
* ``fake_cxone_control``: an ``httpx.AsyncClient`` on its ``/fake/...``
  endpoints (:func:`fake_cxone_control_client` for any fake CXone).
* :func:`fake_cxone_config` points a config at it: ``[platform] kind =
  "cxone"``, its issuer and credentials, ``skill_id``, a station number per
  agent, and every agent your rules name simulated by the fake.

``fake_platform.conversation_summary(user)`` and ``agent_routing_status(user)``
say where an agent is now. Like the platform, the fake refuses a token's
301st request in a minute (429 with ``Retry-After``);
``fake_platform_factory(rate_limit=None)`` lifts that.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from outdial.fake.control import control_headers
from outdial.fake.cxone import FakeCxone
from outdial.fake.platform import FakePlatform
from outdial.fake.script import CallTiming

if TYPE_CHECKING:
    from outdial.app import Daemon
    from outdial.config import Config
    from outdial.store.base import ContactRow

__all__ = [
    "FAST_TIMING",
    "always_open_window",
    "fake_config",
    "fake_control",
    "fake_control_client",
    "fake_cxone",
    "fake_cxone_config",
    "fake_cxone_control",
    "fake_cxone_control_client",
    "fake_cxone_factory",
    "fake_platform",
    "fake_platform_factory",
    "running_daemon",
]

FAST_TIMING = CallTiming(ring=(0.02, 0.05), talk=(0.02, 0.05), wrapup=0.02, dial=0.01)
"""Call timing for tests: a whole call, wrap-up included, takes about a tenth of a second."""

_FAST_DEFAULTS: dict[str, Any] = {"seed": 0, "timing": FAST_TIMING, "heartbeat_interval": 0.5}


@pytest.fixture
async def fake_platform(anyio_backend: str) -> AsyncIterator[FakePlatform]:
    """A running :class:`FakePlatform` with two agents, seed 0 and :data:`FAST_TIMING`."""
    async with FakePlatform(**_FAST_DEFAULTS) as platform:
        yield platform


@pytest.fixture
def fake_platform_factory() -> Callable[..., FakePlatform]:
    """Build a :class:`FakePlatform` with the fixture's fast defaults overridden by yours.

    ::

        async with fake_platform_factory(agents=["u1"], seed=7, ws_proxy=True) as platform:
            ...
    """

    def make(**options: Any) -> FakePlatform:
        return FakePlatform(**{**_FAST_DEFAULTS, **options})

    return make


def fake_control_client(platform: FakePlatform, **options: Any) -> httpx.AsyncClient:
    """An HTTP client on ``platform``'s control endpoints that sends its control token.

    Paths are relative to ``/fake``: ``await client.get("/state")``. ``options``
    go to ``httpx.AsyncClient``. Use it as ``async with``.
    """
    headers = {**control_headers(platform), **dict(options.pop("headers", {}))}
    return httpx.AsyncClient(base_url=platform.control_url, headers=headers, **options)


@pytest.fixture
async def fake_control(fake_platform: FakePlatform) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`fake_control_client` on the ``fake_platform`` fixture's platform."""
    async with fake_control_client(fake_platform) as client:
        yield client


def always_open_window(now: datetime | None = None) -> tuple[str, str]:
    """A calling window open, in every time zone, for the next few minutes after ``now``.

    A window always has a closed minute; this one puts it at a minute of the
    hour that no zone's clock shows now or in the next six minutes (zone
    offsets are whole quarter hours), so a test never meets it.
    """
    now = now or datetime.now(UTC)
    closed = (now + timedelta(minutes=7)).minute
    start = f"00:{(closed + 1) % 60:02d}"
    end = f"00:{closed:02d}"
    # 00:MM+1 to 00:MM wraps midnight: open all day except local 00:MM to 00:MM+1.
    return (start, end) if closed != 59 else ("01:00", "00:59")


def fake_config(
    platform: FakePlatform,
    config: str | Path | Mapping[str, Any],
    *,
    store_url: str,
    calling_window: tuple[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    add_agents: bool = True,
) -> Config:
    """Your config, pointed at ``platform``: a TOML file path or an already parsed mapping.

    ``[platform]`` gets the fake's URLs and credentials (``region`` is
    dropped), ``[store]`` gets ``store_url``, and ``[guards] calling_window``
    becomes ``calling_window`` (default: :func:`always_open_window`, so a test
    passes at any hour; pass your own to test the window). ``${VARS}`` in the
    file are expanded from ``env`` (default ``os.environ``). With
    ``add_agents`` every user your rules list becomes an agent of the fake, so
    it accepts their calls and you can publish their presence.
    """
    from outdial.config import parse_config
    from outdial.files import load_toml

    if isinstance(config, str | Path):
        source = str(config)
        data: dict[str, Any] = load_toml(config, what="a config file")
    else:
        source, data = "<test config>", dict(config)
    settings = {
        k: v for k, v in dict(data.get("platform", {})).items() if k not in ("region", "api_url")
    }
    settings.update(
        api_url=platform.api_url,
        login_url=platform.login_url,
        client_id=platform.client_id,
        client_secret=platform.client_secret,
    )
    guards = dict(data.get("guards", {}))
    guards["calling_window"] = list(calling_window or always_open_window())
    data = {**data, "platform": settings, "store": {"url": store_url}, "guards": guards}
    parsed = parse_config(data, source, os.environ if env is None else env)
    if add_agents:
        for rule in parsed.rules:
            for user in rule.users:
                platform.add_agent(user)
    return parsed


_FAST_CXONE_DEFAULTS: dict[str, Any] = {"seed": 0, "timing": FAST_TIMING}


@pytest.fixture
async def fake_cxone(anyio_backend: str) -> AsyncIterator[FakeCxone]:
    """A running :class:`FakeCxone` with two agents, seed 0 and :data:`FAST_TIMING`."""
    async with FakeCxone(**_FAST_CXONE_DEFAULTS) as cxone:
        yield cxone


@pytest.fixture
def fake_cxone_factory() -> Callable[..., FakeCxone]:
    """Build a :class:`FakeCxone` with the fixture's fast defaults overridden by yours.

    ::

        async with fake_cxone_factory(agents=["42"], dial_names_contact=True) as cxone:
            ...
    """

    def make(**options: Any) -> FakeCxone:
        return FakeCxone(**{**_FAST_CXONE_DEFAULTS, **options})

    return make


def fake_cxone_control_client(cxone: FakeCxone, **options: Any) -> httpx.AsyncClient:
    """An HTTP client on ``cxone``'s control endpoints (paths relative to ``/fake``)."""
    headers = {"Authorization": f"Bearer {cxone.control_token}"}
    headers.update(dict(options.pop("headers", {})))
    return httpx.AsyncClient(base_url=cxone.control_url, headers=headers, **options)


@pytest.fixture
async def fake_cxone_control(fake_cxone: FakeCxone) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`fake_cxone_control_client` on the ``fake_cxone`` fixture's fake."""
    async with fake_cxone_control_client(fake_cxone) as client:
        yield client


#: The station numbers :func:`fake_cxone_config` gives agents that have none (one each:
#: the platform refuses a second session on a number in use).
_STATION_BASE = 14155550100


def fake_cxone_config(
    cxone: FakeCxone,
    config: str | Path | Mapping[str, Any],
    *,
    store_url: str,
    calling_window: tuple[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    add_agents: bool = True,
) -> Config:
    """Your config pointed at the fake CXone ``cxone`` (a TOML path or a parsed mapping).

    ``[platform]`` becomes ``kind = "cxone"`` with the fake's issuer, app
    credentials and access key (your ``session``, ``api_version``,
    ``poll_timeout``... stay); ``skill_id`` defaults to the fake's manual
    outbound skill, and every agent your rules name without a station number
    gets one of its own. ``[store]`` and ``[guards] calling_window`` are as in
    :func:`fake_config`. With ``add_agents`` every agent your rules name (CXone
    agent ids: digits) becomes an agent of the fake.
    """
    from outdial.config import parse_config
    from outdial.files import load_toml

    if isinstance(config, str | Path):
        source = str(config)
        data: dict[str, Any] = load_toml(config, what="a config file")
    else:
        source, data = "<test config>", dict(config)
    environ = os.environ if env is None else env
    settings = dict(data.get("platform", {}))
    for key in ("region", "api_url", "login_url"):
        settings.pop(key, None)  # Genesys keys: a CXone config has none
    settings.update(
        kind="cxone",
        issuer=cxone.issuer_url,
        client_id=cxone.client_id,
        client_secret=cxone.client_secret,
        access_key_id=cxone.access_key_id,
        access_key_secret=cxone.access_key_secret,
    )
    settings.setdefault("skill_id", cxone.skill_id)
    guards = dict(data.get("guards", {}))
    guards["calling_window"] = list(calling_window or always_open_window())
    data = {**data, "platform": settings, "store": {"url": store_url}, "guards": guards}
    users = [user for rule in parse_config(data, source, environ).rules for user in rule.users]
    if not settings.get("station_phone_number") and not settings.get("station_id"):
        agents = {k: dict(v) for k, v in dict(settings.get("agents", {})).items()}
        for n, user in enumerate(dict.fromkeys(users)):
            own = agents.setdefault(user, {})
            if not own.get("station_phone_number") and not own.get("station_id"):
                own["station_phone_number"] = f"+{_STATION_BASE + n + 1}"
        settings["agents"] = agents
    parsed = parse_config(data, source, environ)
    if add_agents:
        for user in users:
            cxone.add_agent(user)
    return parsed


@asynccontextmanager
async def running_daemon(
    config: Config,
    *,
    contacts: Iterable[ContactRow | tuple[str, str]] = (),
) -> AsyncIterator[Daemon]:
    """Run the daemon for ``config`` (see :func:`fake_config`) for the body of the block.

    The store at ``config.store.url`` is opened and ``contacts`` imported into
    it first (``ContactRow`` or ``(user_id, phone_number)`` pairs); the daemon
    has connected its listener when the block starts, and is cancelled, its
    client closed, when the block ends.
    """
    from outdial.app import Daemon, platform_from_config
    from outdial.store import open_store
    from outdial.store.base import ContactRow

    rows = [row if isinstance(row, ContactRow) else ContactRow(*row) for row in contacts]
    async with open_store(config.store.url, config.store.settings()) as store:
        if rows:
            await store.import_contacts(rows)
        client = platform_from_config(config)
        try:
            daemon = Daemon(config, platform=client, store=store)
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                yield daemon
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()
