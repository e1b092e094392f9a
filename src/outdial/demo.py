"""``outdial demo``: the real daemon against the in-process fake platform.

The fake is the platform the config's ``[platform] kind`` names: Genesys
Cloud (``examples/personal-dialing.toml``) or NICE CXone
(``examples/personal-dialing-cxone.toml``, ``outdial demo --platform cxone``).
Three simulated agents, a few dozen contacts on their personal lists, the rules
of ``examples/personal-dialing.toml`` (the ready topic: each agent works through
the list one call at a time, ``after_call`` apart, on a fake that, like a real
org, never changes presence because of a call). Every readiness, dial and call
state change is printed as it happens; after ``--duration`` seconds (or Ctrl-C) dialing stops,
the calls in flight are allowed to finish, and a per-agent summary is printed.
"""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import anyio

from outdial.app import Daemon, platform_from_config
from outdial.cli import format_summary
from outdial.clock import SystemClock
from outdial.config import Config, ConfigError, parse_config
from outdial.fake import CallTiming, FakeCxone, FakePlatform
from outdial.store import open_store
from outdial.store.base import ContactRow

__all__ = ["demo_contacts", "run_demo"]

#: How long to let calls in flight finish once dialing has stopped.
DRAIN_TIMEOUT = 30.0


class _DemoPrinter(logging.Handler):
    """Prints, one line each, the dials and call changes a person watching cares about."""

    def __init__(self, agents: list[str]) -> None:
        super().__init__(logging.INFO)
        self.started = time.monotonic()
        self.names = {user: f"agent-{i + 1}" for i, user in enumerate(agents)}
        self.numbers: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = getattr(record, "outdial", {})
        line = self._describe(fields.get("event"), fields)
        if line is None:
            return
        at = time.monotonic() - self.started
        agent = self.names.get(str(fields.get("user")), str(fields.get("user") or ""))
        print(f"{at:6.1f}s  {agent:<8} {line}", flush=True)

    def _describe(self, name: object, f: dict[str, Any]) -> str | None:
        conversation = str(f.get("conversation") or "")
        short = conversation[:8]
        if name == "dial.placed":
            self.numbers[conversation] = str(f.get("number"))
            return f"dial       {f.get('number'):<16} call {short}"
        number = self.numbers.get(conversation, "")
        if name == "call.state" and f.get("state") != "ended":
            return f"{f.get('state'):<10} {number:<16} call {short}"
        if name == "call.ended":
            return f"ended      {number:<16} call {short}  {f.get('outcome')}"
        if name == "agent.ready":
            return "ready"
        if name in ("dial.skipped", "dial.failed", "dial.unknown"):
            reason = f.get("reason") or f.get("error") or f.get("guard")
            return f"{name.split('.')[1]:<10} {reason}"
        if name in ("listener.gap", "channel.rotated") and f.get("reason") != "startup":
            return f"{name} {f.get('reason', '')}"
        return None


def demo_contacts(agents: list[str], per_agent: int = 12) -> list[ContactRow]:
    """Valid, fictional numbers spread over the agents (UK and US formats)."""
    rows = []
    for a, user_id in enumerate(agents):
        for i in range(per_agent):
            n = a * per_agent + i
            number = f"+4412123456{n:02d}" if n % 3 else f"+1415555{n:04d}"
            tz = "Europe/London" if n % 3 else "America/Los_Angeles"
            rows.append(ContactRow(user_id, number, f"Contact {n + 1}", f"ext-{n + 1}", tz))
    return rows


def _demo_config(
    data: dict[str, Any], source: str, platform: FakePlatform, store_url: str
) -> Config:
    data = dict(data)
    env = {"GENESYS_CLIENT_ID": platform.client_id, "GENESYS_CLIENT_SECRET": platform.client_secret}
    data["platform"] = {
        **data.get("platform", {}),
        "region": None,
        "api_url": platform.api_url,
        "login_url": platform.login_url,
    }
    data["platform"] = {k: v for k, v in data["platform"].items() if v is not None}
    data["store"] = {"url": store_url}
    # The demo must show calls whatever the hour: open the calling window all day.
    data["guards"] = {**data.get("guards", {}), "calling_window": ["00:00", "23:59"]}
    return parse_config(data, source, env)


def _demo_cxone_config(
    data: dict[str, Any], source: str, cxone: FakeCxone, store_url: str
) -> Config:
    data = dict(data)
    env = {
        "CXONE_CLIENT_ID": cxone.client_id,
        "CXONE_CLIENT_SECRET": cxone.client_secret,
        "CXONE_ACCESS_KEY_ID": cxone.access_key_id,
        "CXONE_ACCESS_KEY_SECRET": cxone.access_key_secret,
    }
    data["platform"] = {**data.get("platform", {}), "issuer": cxone.issuer_url}
    data["store"] = {"url": store_url}
    data["guards"] = {**data.get("guards", {}), "calling_window": ["00:00", "23:59"]}
    return parse_config(data, source, env)


def _agents_from(data: dict[str, Any]) -> list[str]:
    agents: list[str] = []
    for rule in data.get("rules", []):
        agents += [u for u in rule.get("users", []) if u not in agents]
    return agents or ["agent-1", "agent-2", "agent-3"]


async def run_demo(config_text: str, source: str, duration: float, seed: int) -> int:
    """Run the demo with the rules in ``config_text``; returns the process exit code."""
    data = tomllib.loads(config_text)
    agents = _agents_from(data)
    printer = _DemoPrinter(agents)
    root = logging.getLogger("outdial")
    # The demo shows its own lines; the usual log stream keeps only warnings.
    for handler in root.handlers:
        handler.setLevel(logging.WARNING)
    root.addHandler(printer)
    # The printer reads INFO events, whatever level the caller's logging left.
    level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory(prefix="outdial-demo-") as tmp:
            store_url = f"sqlite:///{Path(tmp) / 'demo.db'}"
            timing = CallTiming(ring=(1.0, 3.0), talk=(2.0, 6.0), wrapup=1.0)
            cxone = data.get("platform", {}).get("kind") == "cxone"
            fake: FakePlatform | FakeCxone = (
                FakeCxone(agents=agents, seed=seed, timing=timing)
                if cxone
                else FakePlatform(agents=agents, seed=seed, timing=timing)
            )
            async with fake:
                try:
                    if isinstance(fake, FakeCxone):
                        config = _demo_cxone_config(data, source, fake, store_url)
                        where = f"fake CXone at {fake.issuer_url}"
                    else:
                        config = _demo_config(data, source, fake, store_url)
                        where = f"fake platform at {fake.api_url}"
                except ConfigError as exc:
                    print(exc, file=sys.stderr)
                    return 1
                print(
                    f"{where} with {len(agents)} agents; "
                    f"dialing for {duration:.0f}s (Ctrl-C to stop early)\n",
                    flush=True,
                )
                async with open_store(store_url) as store:
                    await store.import_contacts(demo_contacts(agents))
                    bundle = platform_from_config(config)
                    daemon = Daemon(config, platform=bundle, store=store, clock=SystemClock())
                    try:
                        await _dial_then_drain(daemon, duration)
                    finally:
                        await bundle.aclose()
                    summary = await store.call_summary()
                    contacts = await store.contacts_summary()
    finally:
        root.removeHandler(printer)
        root.setLevel(level)
    print()
    print(format_summary(summary, printer.names))
    print(
        f"\ncontacts: {contacts.done} done, {contacts.due} still due, {contacts.dialing} in a call"
    )
    return 0


async def _dial_then_drain(daemon: Daemon, duration: float) -> None:
    """Dial for ``duration`` (or until Ctrl-C), then let the calls in flight finish.

    A second Ctrl-C while they finish stops waiting at once: the summary is
    printed all the same, with the calls still going counted as in a call.
    """
    stopping = anyio.Event()
    drain = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    if not stopping.is_set():
                        print(
                            "\nstopping: letting calls in flight finish"
                            " (Ctrl-C again to stop now) ...",
                            flush=True,
                        )
                        stopping.set()
                    else:
                        print("\nstopping now", flush=True)
                        drain.cancel()

        tg.start_soon(on_signals)
        with anyio.move_on_after(duration):
            await stopping.wait()
        stopping.set()
        # Stop placing calls; keep tracking the ones in flight until they end.
        daemon.handlers.dialing_enabled = False
        with drain, anyio.move_on_after(DRAIN_TIMEOUT):
            # The store is where call state lives (and may be shared), so poll it.
            while await daemon.store.active_calls():  # noqa: ASYNC110
                await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
