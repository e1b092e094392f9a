"""The ``outdial`` command line: run | demo | fake-server | check | calls | contacts."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from outdial import __version__
from outdial.config import Config, ConfigError, GuardsConfig, load_config
from outdial.contacts import ContactListError, read_contacts
from outdial.files import TextFileError, load_json, load_toml
from outdial.log import mask_url

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the structured fields of ``outdial.log.emit``."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "outdial", {"event": record.getMessage()})
        return json.dumps(
            {"ts": round(record.created, 3), "level": record.levelname.lower(), **fields},
            default=str,
        )


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr, as text (``name key=value``) or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    root = logging.getLogger("outdial")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _load(path: str) -> Config:
    return load_config(path)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    from outdial.app import run_until_signalled
    from outdial.handlers.donotcall import DoNotCallFileError
    from outdial.listener import ListenerFatal

    config = _load(args.config)
    fatal: list[BaseException] = []
    try:
        anyio.run(run_until_signalled, config, args.config)
    except* (ListenerFatal, DoNotCallFileError) as group:
        fatal.extend(group.exceptions)
    for exc in fatal:
        print(f"outdial: stopped: {exc}", file=sys.stderr)
    return EXIT_PROBLEMS if fatal else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the daemon against the in-process fake platform and print a summary."""
    from outdial.demo import run_demo

    path = Path(args.config)
    if not path.is_file():
        print(
            f"outdial demo: {path} not found (run it from the repository root, or pass --config)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        # Checked here, so a file that is not UTF-8 TOML is one line like every config.
        load_toml(path, what="a config file")
    except TextFileError as exc:
        print(f"outdial demo: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    return anyio.run(
        run_demo, path.read_text(encoding="utf-8"), str(path), args.duration, args.seed
    )


def cmd_fake_server(args: argparse.Namespace) -> int:
    """Serve the fake platform until Ctrl-C."""
    from outdial.fake import serve
    from outdial.fake.scenario import Scenario, ScenarioError, load_scenario
    from outdial.fake.server import remote_bind_refusal

    refusal = remote_bind_refusal(args.host, allow_remote=args.allow_remote)
    if refusal is not None:
        print(f"outdial fake-server: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    scenario: Scenario | None = None
    if args.scenario is not None:
        # Read before anything listens: a bad file is one line, not a traceback.
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            print(f"outdial fake-server: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
    agents = args.agent or [f"agent-{i + 1}" for i in range(args.agents)]
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(
            lambda: serve(
                port=args.port,
                ws_port=args.ws_port,
                agents=agents,
                seed=args.seed,
                host=args.host,
                scenario=scenario,
                allow_remote=args.allow_remote,
            )
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config (rules, templates, contact lists) or a call request, offline."""
    if args.what and args.what[0] == "call":
        if len(args.what) != 2:
            print("usage: outdial check call FILE.json", file=sys.stderr)
            return EXIT_USAGE
        return check_call_file(Path(args.what[1]))
    if args.what or not args.config:
        print(
            "usage: outdial check --config FILE [--contacts CSV] | outdial check call FILE.json",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return check_config(args.config, args.contacts)


def check_config(path: str, contact_files: Sequence[str]) -> int:
    """Every problem in the config, its rules and the given contact lists, with locations."""
    from outdial.handlers.dispatch import rule_topics
    from outdial.handlers.rules import RuleError, RuleIndex

    problems: list[str] = []
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        index = RuleIndex.compile(config.rules)
    except RuleError as exc:
        problems.append(str(exc))
        index = None
    if config.guards.do_not_call_file:
        problems += _do_not_call_problems(config.guards.do_not_call_file, config.guards)
    for contact_file in contact_files:
        try:
            rows = read_contacts(contact_file, default_region=config.guards.default_region)
        except ContactListError as exc:
            problems.append(str(exc))
        else:
            print(f"{contact_file}: {len(rows)} contacts ok")
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_PROBLEMS
    topics = len(rule_topics(index)) if index else 0
    print(f"{path}: ok ({len(config.rules)} rules, {topics} topics)")
    return EXIT_OK


def _do_not_call_problems(path: str, guards: GuardsConfig) -> list[str]:
    from outdial.handlers.donotcall import (
        DoNotCallFileError,
        parse_do_not_call,
        read_do_not_call_text,
    )

    try:
        text = read_do_not_call_text(path)
    except DoNotCallFileError as exc:
        return [str(exc)]
    _numbers, bad = parse_do_not_call(text, guards.default_region)
    return [f"{path}, line {b.line}: {b.reason}" for b in bad]


def check_call_file(path: Path) -> int:
    """Validate a CreateCallRequest JSON file, naming each wrong field."""
    from outdial.platforms.genesys import CreateCallRequest, validation_error

    try:
        payload = load_json(path, what="a call request")
    except TextFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_PROBLEMS
    if not isinstance(payload, dict):
        print(
            f"{path}: a call request is a JSON object, got {type(payload).__name__}",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    try:
        CreateCallRequest.model_validate(payload)
    except ValidationError as exc:
        error = validation_error(exc)
        print(f"{path}: {len(error.details)} problem(s)", file=sys.stderr)
        for detail in error.details:
            print(f"  {detail.field}: {detail.message}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{path}: ok")
    return EXIT_OK


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """Load contact lists into the store."""
    from outdial.store import open_store

    config = _load(args.config)
    try:
        rows = [
            row
            for file in args.files
            for row in read_contacts(file, default_region=config.guards.default_region)
        ]
    except ContactListError as exc:
        print(exc, file=sys.stderr)
        return EXIT_PROBLEMS

    async def store_rows() -> int:
        async with open_store(config.store.url, config.store.settings()) as store:
            return await store.import_contacts(rows)

    count = anyio.run(store_rows)
    where = mask_url(config.store.url)
    print(f"imported {count} contacts from {len(args.files)} file(s) into {where}")
    return EXIT_OK


def cmd_contacts_list(args: argparse.Namespace) -> int:
    """Print the stored contacts."""
    from outdial.store import open_store

    config = _load(args.config)

    async def fetch() -> list[Any]:
        async with open_store(config.store.url, config.store.settings()) as store:
            return list(await store.contacts(args.user))

    for c in anyio.run(fetch):
        due = c.next_due_at.isoformat(timespec="seconds") if c.next_due_at else "now"
        print(
            f"{c.user_id}  {c.phone_number:<16} {c.state:<8} attempts={c.attempts} "
            f"last={c.last_outcome or '-'} due={due}  {c.name or ''}"
        )
    return EXIT_OK


def cmd_calls(args: argparse.Namespace) -> int:
    """Print per-agent call counts and the calls still active."""
    from outdial.store import open_store

    config = _load(args.config)

    async def fetch() -> tuple[list[Any], list[Any]]:
        async with open_store(config.store.url, config.store.settings()) as store:
            return list(await store.call_summary()), list(await store.active_calls())

    summary, active = anyio.run(fetch)
    print(format_summary(summary))
    for call in active:
        print(f"active {call.conversation_id} {call.user_id} {call.phone_number} {call.state}")
    return EXIT_OK


def format_summary(rows: Sequence[Any], names: Mapping[str, str] | None = None) -> str:
    """The per-agent call table shown by ``outdial calls`` and at the end of the demo.

    ``names`` shows agents under other names than their user ids (the demo's
    ``agent-1``... as in its event lines); rows are in the order of ``names``.
    """
    if names:
        order = {user: i for i, user in enumerate(names)}
        rows = sorted(rows, key=lambda r: (order.get(r.user_id, len(order)), r.user_id))
    head = (
        "agent",
        "placed",
        "answered",
        "busy",
        "no answer",
        "failed",
        "agent unavailable",
        "active",
    )
    lines: list[tuple[str, ...]] = [head]
    totals = [0] * (len(head) - 1)
    for row in rows:
        values = [
            row.placed,
            row.answered,
            row.busy,
            row.no_answer,
            row.failed,
            row.agent_unavailable,
            row.active,
        ]
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        lines.append(((names or {}).get(row.user_id, row.user_id), *map(str, values)))
    lines.append(("total", *map(str, totals)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0 or n == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    """Print what the running daemon shows on its status page (``/status.json``)."""
    import httpx

    from outdial.observe.status import render_text

    config = _load(args.config)
    address = config.observe.address
    if address is None:
        print(f"outdial: {args.config} has no [observe] listen: set it to see the status")
        return EXIT_PROBLEMS
    host, port = address
    # A daemon listening on every address answers on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/status.json"
    try:
        response = httpx.get(url, timeout=args.timeout)
        response.raise_for_status()
        status = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"outdial: no status from {url}: {exc} (is the daemon running?)", file=sys.stderr)
        return EXIT_PROBLEMS
    sys.stdout.write(render_text(status))
    return EXIT_OK if status.get("ready") else EXIT_PROBLEMS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="outdial", description=__doc__)
    parser.add_argument("--version", action="version", version=f"outdial {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run against the built-in fake platform")
    demo.add_argument("--config", default="examples/personal-dialing.toml")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds of dialing")
    demo.add_argument("--seed", type=int, default=5)
    demo.set_defaults(func=cmd_demo)

    fake = sub.add_parser("fake-server", help="serve the fake platform")
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    fake.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host beyond loopback (the fake's credentials are well known)",
    )
    fake.add_argument("--port", type=int, default=8080, help="REST port (0: any free port)")
    fake.add_argument("--ws-port", type=int, default=0, help="WebSocket port (0: any free port)")
    fake.add_argument("--agents", type=int, default=3, help="how many agents to simulate")
    fake.add_argument("--agent", action="append", help="an agent user id (repeatable)")
    fake.add_argument("--seed", type=int, default=0)
    fake.add_argument("--scenario", default=None, help="a scenario file")
    fake.set_defaults(func=cmd_fake_server)

    check = sub.add_parser("check", help="validate config, rules and contacts, or a call request")
    check.add_argument("what", nargs="*", help="'call FILE.json' to check a call request")
    check.add_argument("--config")
    check.add_argument("--contacts", action="append", default=[], help="a contact list CSV")
    check.set_defaults(func=cmd_check)

    calls = sub.add_parser("calls", help="per-agent call counts and active calls")
    calls.add_argument("--config", required=True)
    calls.set_defaults(func=cmd_calls)

    status = sub.add_parser(
        "status",
        help="what the running daemon is doing (channels, gaps, agents, calls)",
        description="Print the running daemon's status page, read from /status.json at the"
        " config's [observe] listen address. Exit status 0 when the daemon is ready, 1 when"
        " it is not or cannot be reached.",
    )
    status.add_argument("--config", required=True, help="the daemon's config file")
    status.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the daemon (default: 5)"
    )
    status.set_defaults(func=cmd_status)

    contacts = sub.add_parser("contacts", help="personal contact lists")
    contacts_sub = contacts.add_subparsers(dest="contacts_command", required=True)
    imp = contacts_sub.add_parser("import", help="load CSV files into the store")
    imp.add_argument("--config", required=True)
    imp.add_argument("files", nargs="+")
    imp.set_defaults(func=cmd_contacts_import)
    lst = contacts_sub.add_parser("list", help="show stored contacts")
    lst.add_argument("--config", required=True)
    lst.add_argument("--user", default=None)
    lst.set_defaults(func=cmd_contacts_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``outdial`` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_PROBLEMS
    return result
