"""The ``outdial`` command line: run | demo | fake-server | check | calls | contacts.

Every fatal stop is one line naming its cause and what to fix, and an exit
code by kind (see :mod:`outdial.exits` and ``outdial --help``), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from outdial import __version__
from outdial.config import (
    Config,
    ConfigError,
    ConfigFileError,
    GuardsConfig,
    Rule,
    expand_env,
    load_config,
)
from outdial.contacts import ContactListError, read_contacts
from outdial.exits import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    classify,
    epilog,
    leaf_causes,
    worst,
)
from outdial.files import TextFileError, load_json, load_toml
from outdial.log import mask_url, set_mask_numbers

if TYPE_CHECKING:
    from outdial.store.base import ContactStore
__all__ = ["build_parser", "main", "natural_key"]

#: ``check`` found problems: the config's code (see :mod:`outdial.exits`).
EXIT_PROBLEMS = EXIT_CONFIG


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


def _load(args: argparse.Namespace, *, secrets: bool = True) -> Config:
    """The config of ``--config``; masking of numbers follows it or ``--mask-numbers``.

    ``secrets=False``: a command that never calls the platform (``calls``,
    ``contacts``, the offline ``check``) runs without its secrets set.
    """
    config = load_config(args.config, secrets=secrets)
    set_mask_numbers(bool(getattr(args, "mask_numbers", False)) or config.logging.mask_numbers)
    return config


def _report_stop(prefix: str, exc: BaseException) -> int:
    """Print each leaf cause of a stop as one line; the exit code of the worst."""
    failures = [classify(leaf) for leaf in leaf_causes(exc)]
    for failure in failures:
        print(f"{prefix}: {failure.message}", file=sys.stderr)
    return worst(failures).code


def _existing_store(config: Config) -> str | None:
    """Why a read-only command must not open the store: a SQLite file that is not there.

    Opening it would create an empty database and show zeros, as if nothing
    had been dialed; the operator more likely points at the wrong file.
    """
    from outdial.store import sqlite_path

    url = config.store.url
    if not url.startswith("sqlite:") or url.endswith(":memory:"):
        return None
    path = Path(sqlite_path(url))
    if path.is_file():
        return None
    return f"no store at {path} (outdial run creates it); check store.url"


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    from outdial.app import run_until_signalled
    from outdial.loop import LoopUnavailable, backend_options, tune_gc

    try:
        options = backend_options(args.loop)
    except LoopUnavailable as exc:
        print(f"outdial: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = _load(args)
    tune_gc()
    try:
        anyio.run(run_until_signalled, config, args.config, backend_options=options)
    except Exception as exc:  # every cause, however wrapped: one line each, a code by kind
        return _report_stop("outdial: stopped", exc)
    return EXIT_OK


#: The example each platform's demo runs when no --config is given.
DEMO_CONFIGS = {
    "genesys": "examples/personal-dialing.toml",
    "cxone": "examples/personal-dialing-cxone.toml",
}


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the daemon against the in-process fake platform and print a summary."""
    from outdial.demo import run_demo

    path = Path(args.config or DEMO_CONFIGS[args.platform or "genesys"])
    if not path.is_file():
        print(
            f"outdial demo: {path} not found (run it from the repository root, or pass --config)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        # Checked here, so a file that is not UTF-8 TOML is one line like every config.
        data = load_toml(path, what="a config file")
    except TextFileError as exc:
        print(f"outdial demo: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    section = data.get("platform")
    kind = section.get("kind", "genesys") if isinstance(section, dict) else "genesys"
    if args.platform is not None and kind != args.platform:
        print(
            f"outdial demo: {path} is a {kind} config ([platform] kind) but --platform is"
            f" {args.platform}; pass a {args.platform} config or leave --platform out",
            file=sys.stderr,
        )
        return EXIT_USAGE
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
    if args.platform == "cxone" and args.scenario is not None:
        print("outdial fake-server: --scenario is for the Genesys fake only", file=sys.stderr)
        return EXIT_USAGE
    if args.scenario is not None:
        # Read before anything listens: a bad file is one line, not a traceback.
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            print(f"outdial fake-server: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
    if args.platform == "cxone":
        return _serve_fake_cxone(args)
    agents = args.agent or [f"agent-{i + 1}" for i in range(args.agents)]
    try:
        _serve_fake(serve, args, agents, scenario)
    except OSError as exc:
        print(
            f"outdial fake-server: cannot listen on {args.host}: {_os_reason(exc)}", file=sys.stderr
        )
        return EXIT_USAGE
    return EXIT_OK


def _serve_fake_cxone(args: argparse.Namespace) -> int:
    """Serve the fake CXone until Ctrl-C (agents are CXone agent ids: digits)."""
    from outdial.fake.cxone import serve_cxone

    agents = args.agent or [str(3141592 + i) for i in range(args.agents)]
    bad = [a for a in agents if not a.isdigit()]
    if bad:
        print(f"outdial fake-server: a CXone agent id is digits, not {bad[0]!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(
                lambda: serve_cxone(
                    port=args.port,
                    api_port=args.api_port,
                    agents=agents,
                    seed=args.seed,
                    host=args.host,
                    allow_remote=args.allow_remote,
                )
            )
    except BaseExceptionGroup as group:
        errors = [leaf for leaf in leaf_causes(group) if isinstance(leaf, OSError)]
        if not errors:
            raise
        exc: OSError = errors[0]
    except OSError as error:
        exc = error
    else:
        return EXIT_OK
    print(f"outdial fake-server: cannot listen on {args.host}: {_os_reason(exc)}", file=sys.stderr)
    return EXIT_USAGE


def _os_reason(exc: OSError) -> str:
    """Why a socket could not be bound, with the option to change."""
    import errno
    import socket

    if isinstance(exc, socket.gaierror):
        return f"no such host ({exc.strerror}); check --host"
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use (another fake-server?); pick another --port, or 0 for any"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address; check --host"
    return f"{exc.strerror or exc}; check --host and --port"


def _serve_fake(
    serve: Callable[..., Any], args: argparse.Namespace, agents: list[str], scenario: Any
) -> None:
    """Run the fake until Ctrl-C; a bind failure comes out as its plain ``OSError``."""
    try:
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
    except BaseExceptionGroup as group:
        errors = [leaf for leaf in leaf_causes(group) if isinstance(leaf, OSError)]
        if errors:
            raise errors[0] from None
        raise


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config (rules, templates, contact lists) or a call request, offline."""
    if args.what and args.what[0] == "call":
        if len(args.what) != 2:
            print("usage: outdial check call [--platform cxone] FILE.json", file=sys.stderr)
            return EXIT_USAGE
        if args.platform == "cxone":
            return check_cxone_call_file(Path(args.what[1]))
        return check_call_file(Path(args.what[1]))
    if args.what or not args.config:
        print(
            "usage: outdial check --config FILE [--contacts CSV] | outdial check call FILE.json",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return check_config(args.config, args.contacts, online=args.online)


def check_config(path: str, contact_files: Sequence[str], *, online: bool = False) -> int:
    """Every problem in the config, its rules and the given contact lists, with locations.

    Offline, nothing is opened or created; ``online`` then asks the platform
    (:mod:`outdial.online`) and dials nothing.
    """
    from outdial.handlers.dispatch import rule_topics
    from outdial.handlers.rules import RuleError, RuleIndex
    from outdial.platforms.registry import codec_for

    problems: list[str] = []
    try:
        config = load_config(path, secrets=online)
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_PROBLEMS
    except ConfigError as exc:
        # A schema problem (guards.default_region, a caller_id) must not hide the
        # problems of the rules that are valid on their own: report them all at once.
        problems = [f"{where}: {why}" for where, why in exc.problems]
        for n, rule in _valid_rules(path):
            problems += _compile_problems(rule) + rule_problems(n, rule)
        _print_problems(path, problems)
        return EXIT_PROBLEMS
    for rule in config.rules:
        # One rule at a time: every rule's problem is reported, not the first one's.
        problems += _compile_problems(rule)
    problems += offline_problems(config)
    try:
        index: RuleIndex | None = RuleIndex.compile(config.rules)
    except RuleError:
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
    topics = sorted(rule_topics(index, codec_for(config))) if index else []
    code = EXIT_OK
    if online and index is not None:
        from outdial.online import check_online

        report = anyio.run(check_online, config, topics)
        for line in report.ok:
            print(line)
        problems += report.problems
        code = report.code
    if problems:
        _print_problems(path, problems)
        return code or EXIT_PROBLEMS
    print(f"{path}: ok ({len(config.rules)} rules, {len(topics)} topics)")
    return EXIT_OK


def _print_problems(path: str, problems: Sequence[str]) -> None:
    print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _compile_problems(rule: Rule) -> list[str]:
    """The rule's own compile error (its ``when`` patterns, topic, templates), if any."""
    from outdial.handlers.rules import RuleError, RuleIndex

    try:
        RuleIndex.compile([rule])
    except RuleError as exc:
        return [str(exc)]
    return []


def _valid_rules(path: str) -> list[tuple[int, Rule]]:
    """The rules of a config that does not validate as a whole, each valid on its own."""
    try:
        data = load_toml(Path(path), what="a config file")
    except TextFileError:
        return []
    raw = data.get("rules")
    if not isinstance(raw, list):
        return []
    valid: list[tuple[int, Rule]] = []
    for n, item in enumerate(raw):
        expanded, _unset = expand_env(item, os.environ, f"rules[{n}]")  # reported already
        try:
            valid.append((n, Rule.model_validate(expanded)))
        except ValidationError:
            continue  # its problems are the schema's, reported already
    return valid


_TOPIC_SHAPE = re.compile(r"v2\.[A-Za-z]+\.[^.\s]+(\.[A-Za-z][A-Za-z0-9.]*)?")
#: Placeholders that name a topic segment by convention (``userId``, ``conversationId``).
_SEGMENT_NAME = re.compile(r"[a-z][A-Za-z]*Id")


def offline_problems(config: Config) -> list[str]:
    """What can be known wrong without the platform: topics, placeholders, the store's folder."""
    from outdial.store import sqlite_path

    problems: list[str] = []
    for n, rule in enumerate(config.rules):
        problems += rule_problems(n, rule)
    problems += _cxone_problems(config)
    url = config.store.url
    if url.startswith("sqlite:") and not url.endswith(":memory:"):
        folder = Path(sqlite_path(url)).parent
        if not folder.is_dir():
            problems.append(f"store.url: the folder {folder} does not exist")
    return problems


def _cxone_problems(config: Config) -> list[str]:
    """A CXone agent the rules dial for needs a manual outbound skill for ``dial-phone``."""
    from outdial.config import CxonePlatformConfig

    settings = config.platform
    if not isinstance(settings, CxonePlatformConfig):
        return []
    problems = []
    for n, rule in enumerate(config.rules):
        for user in rule.users:
            if settings.skill_for(user) is None:
                problems.append(
                    f"rules[{n}].users: agent {user} has no skill to dial with; set"
                    f' platform.skill_id or platform.agents."{user}".skill_id (a manual'
                    " outbound phone skill)"
                )
    return problems


def rule_problems(n: int, rule: Rule) -> list[str]:
    """What is wrong with ``rules[n]`` beyond its compile: its topic's shape, placeholders."""
    from outdial.handlers.rules import TopicPattern
    from outdial.handlers.templates import Template, TemplateError

    problems: list[str] = []
    where = f"rules[{n}] ({rule.name!r})"
    if rule.topic.startswith("v2.") and not _TOPIC_SHAPE.fullmatch(rule.topic):
        problems.append(
            f"{where}.topic: {rule.topic!r} is not a platform topic: want"
            " v2.<entity>.<id>.<event> such as v2.users.{{userId}}.presence"
        )
    try:
        names = set(TopicPattern.parse(rule.topic, rule.name).names)
    except Exception:  # reported by the rule's own compile
        return problems
    for field, value in rule.dial.model_dump().items():
        if not isinstance(value, str):
            continue
        try:
            template = Template.parse(value, rule.name, field)
        except TemplateError:
            continue  # reported by the rule's own compile
        for _literal, name in template.parts:
            if name and _SEGMENT_NAME.fullmatch(name) and name not in names:
                problems.append(
                    f"{where}.dial.{field}: nothing fills {{{name}}}: the topic"
                    f" {rule.topic!r} has no {{{name}}} segment"
                )
    return problems


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
    from outdial.platforms.genesys.client import CreateCallRequest, validation_error

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


def check_cxone_call_file(path: Path) -> int:
    """Validate a CXone ``dial-phone`` body in a JSON file, naming every wrong field."""
    from outdial.platforms.cxone.validation import dial_problems

    try:
        payload = load_json(path, what="a dial-phone request")
    except TextFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_PROBLEMS
    problems = dial_problems(payload)
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem.text}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{path}: ok")
    return EXIT_OK


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """Load contact lists into the store."""
    from outdial.store import open_store

    config = _load(args, secrets=False)
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


def _read_only_config(args: argparse.Namespace) -> Config | None:
    """The config of a read-only command, or None (said why) when its store is not there."""
    config = _load(args, secrets=False)
    missing = _existing_store(config)
    if missing is not None:
        print(f"outdial {args.command}: {missing}", file=sys.stderr)
        return None
    return config


def cmd_contacts_list(args: argparse.Namespace) -> int:
    """Print the stored contacts."""
    from outdial.store import open_store

    config = _read_only_config(args)
    if config is None:
        return EXIT_STORE

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


def _numbers(args: argparse.Namespace, config: Config) -> list[str] | None:
    """The numbers given on the command line, in E.164 (as the store keeps them)."""
    from outdial.contacts import normalize_number

    if not args.numbers:
        return None
    try:
        return [normalize_number(n, config.guards.default_region) for n in args.numbers]
    except ValueError as exc:
        raise _Usage(f"outdial contacts: {exc}") from None


class _Usage(Exception):
    """A wrong command line found after parsing: one line, exit 2."""


def cmd_contacts_remove(args: argparse.Namespace) -> int:
    """Delete an agent's contacts (or some numbers of them)."""
    config = _read_only_config(args)
    if config is None:
        return EXIT_STORE
    numbers = _numbers(args, config)
    removed = _on_store(config, lambda store: store.remove_contacts(args.user, numbers))
    print(f"removed {removed} contacts of {args.user}")
    return EXIT_OK


def cmd_contacts_reset(args: argparse.Namespace) -> int:
    """Make contacts due again (all, an agent's, or some numbers of an agent)."""
    if args.numbers and args.user is None:
        print("outdial contacts reset: numbers need --user", file=sys.stderr)
        return EXIT_USAGE
    config = _read_only_config(args)
    if config is None:
        return EXIT_STORE
    numbers = _numbers(args, config)
    print(f"reset {_on_store(config, lambda s: s.reset_contacts(args.user, numbers))} contacts")
    return EXIT_OK


def _on_store(config: Config, operation: Callable[[ContactStore], Awaitable[int]]) -> int:
    """Open the config's store, run one operation on it, close it; the operation's count."""
    from outdial.store import open_store

    async def run() -> int:
        async with open_store(config.store.url, config.store.settings()) as store:
            return await operation(store)

    return anyio.run(run)


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an age (``90m``, ``12h``, ``7d``) before ``now``, or an ISO date or time.

    A time without a zone is UTC. Raises ``ValueError`` saying what is accepted.
    """
    age = _AGE.fullmatch(text.strip())
    if age:
        return now - timedelta(seconds=float(age.group(1)) * _UNIT[age.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: want an age such as 90m, 12h, 7d or an ISO date such as"
            " 2024-05-01 or 2024-05-01T08:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def natural_key(text: str) -> tuple[tuple[int, Any], ...]:
    """Sort key putting ``agent-2`` before ``agent-10``: digit runs compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part
    )


def cmd_calls(args: argparse.Namespace) -> int:
    """Print per-agent call counts and the calls still active (a table, or JSON)."""
    from outdial.store import open_store

    try:
        since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        print(f"outdial calls: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = _read_only_config(args)
    if config is None:
        return EXIT_STORE

    async def fetch() -> tuple[list[Any], list[Any]]:
        async with open_store(config.store.url, config.store.settings()) as store:
            return list(await store.call_summary(since)), list(await store.active_calls())

    summary, active = anyio.run(fetch)
    summary.sort(key=lambda row: natural_key(row.user_id))
    active.sort(key=lambda call: natural_key(call.user_id))
    if args.format == "json":
        print(
            json.dumps(
                {
                    "since": since.isoformat() if since else None,
                    "agents": [dataclasses.asdict(row) for row in summary],
                    "active": [dataclasses.asdict(call) for call in active],
                },
                default=str,
                indent=2,
            )
        )
        return EXIT_OK
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

    config = _load(args, secrets=False)
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


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown on every option; the epilog (exit codes) kept as written."""


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--log-level, --log-format, --mask-numbers: before or after the subcommand.

    The subcommands' copies default to SUPPRESS, so an option given before the
    subcommand is not reset by the subcommand's default.
    """

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--log-level",
        default=default("info"),
        choices=["debug", "info", "warning", "error"],
        help="least severe log events shown (on stderr)",
    )
    parser.add_argument(
        "--log-format",
        default=default("text"),
        choices=["text", "json"],
        help="log lines as 'name key=value' text or JSON objects",
    )
    parser.add_argument(
        "--mask-numbers",
        action="store_true",
        default=default(False),
        help="show phone numbers in logs as +4412123***01 (also [logging] mask_numbers)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (a subcommand is one ``sub.add_parser``)."""
    parser = argparse.ArgumentParser(
        prog="outdial", description=__doc__, epilog=epilog(), formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"outdial {__version__}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, parent: Any = sub) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, epilog=epilog(), formatter_class=_Formatter
        )
        _global_options(cmd, top=False)
        return cmd

    config_help = "the outdial.toml (relative paths in it are relative to its folder)"

    run = command("run", "run the daemon until SIGTERM or Ctrl-C (SIGHUP reloads the config)")
    run.add_argument("--config", required=True, help=config_help)
    run.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: auto (uvloop when installed, from outdial[speed]), asyncio or uvloop",
    )
    run.set_defaults(func=cmd_run)

    demo = command("demo", "run against the built-in fake platform and show a summary")
    demo.add_argument(
        "--platform",
        choices=["genesys", "cxone"],
        help="which fake platform (and example rules) to run against (default: the config's"
        " [platform] kind)",
    )
    demo.add_argument(
        "--config",
        help="the rules to demonstrate (default: examples/personal-dialing.toml,"
        " or examples/personal-dialing-cxone.toml with --platform cxone)",
    )
    demo.add_argument("--duration", type=float, default=30.0, help="seconds of dialing")
    demo.add_argument("--seed", type=int, default=5, help="seed of the fake's random outcomes")
    demo.set_defaults(func=cmd_demo)

    fake = command("fake-server", "serve the fake platform until Ctrl-C")
    fake.add_argument(
        "--platform",
        choices=["genesys", "cxone"],
        default="genesys",
        help="which platform to fake (cxone: NICE CXone; its REST port is the issuer)",
    )
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    fake.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host beyond loopback (the fake's credentials are well known)",
    )
    fake.add_argument("--port", type=int, default=8080, help="REST port (0: any free port)")
    fake.add_argument("--ws-port", type=int, default=0, help="WebSocket port (0: any free port)")
    fake.add_argument("--api-port", type=int, default=0, help="CXone API port (0: any free port)")
    fake.add_argument("--agents", type=int, default=3, help="how many agents to simulate")
    fake.add_argument("--agent", action="append", help="an agent user id (repeatable)")
    fake.add_argument("--seed", type=int, default=0, help="seed of the fake's random outcomes")
    fake.add_argument("--scenario", default=None, help="a scenario file (TOML)")
    fake.set_defaults(func=cmd_fake_server)

    check = command(
        "check",
        "validate a config (rules, contacts; --online: against the platform) or a call request",
    )
    check.add_argument("what", nargs="*", help="'call FILE.json' to check a call request")
    check.add_argument(
        "--platform",
        choices=["genesys", "cxone"],
        default="genesys",
        help="whose call request 'check call' validates (cxone: a dial-phone body)",
    )
    check.add_argument("--config", help=config_help)
    check.add_argument(
        "--contacts", action="append", default=[], help="a contact list CSV (repeatable)"
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also check credentials, agent ids, topics and permissions on the platform"
        " (dials nothing)",
    )
    check.set_defaults(func=cmd_check)

    calls = command("calls", "per-agent call counts and the calls still active")
    calls.add_argument("--config", required=True, help=config_help)
    calls.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    calls.add_argument(
        "--since",
        default=None,
        help="only calls since then: an ISO date or time, or an age such as 90m, 12h, 7d",
    )
    calls.set_defaults(func=cmd_calls)

    status = command(
        "status",
        "what the running daemon is doing (channels, gaps, agents, calls), read from"
        " /status.json at the config's [observe] listen address; exit 0 when it is ready",
    )
    status.add_argument("--config", required=True, help=config_help)
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for it")
    status.set_defaults(func=cmd_status)

    contacts = command("contacts", "personal contact lists")
    contacts_sub = contacts.add_subparsers(dest="contacts_command", required=True, metavar="ACTION")
    imp = command("import", "load CSV files into the store", contacts_sub)
    imp.add_argument("--config", required=True, help=config_help)
    imp.add_argument("files", nargs="+", help="contact list CSV files")
    imp.set_defaults(func=cmd_contacts_import)
    lst = command("list", "show stored contacts", contacts_sub)
    lst.add_argument("--config", required=True, help=config_help)
    lst.add_argument("--user", default=None, help="only this agent's contacts")
    lst.set_defaults(func=cmd_contacts_list)
    rm = command("remove", "delete an agent's contacts (not those in a call)", contacts_sub)
    rm.add_argument("--config", required=True, help=config_help)
    rm.add_argument("--user", required=True, help="the agent whose contacts to delete")
    rm.add_argument("numbers", nargs="*", help="only these numbers (default: all of them)")
    rm.set_defaults(func=cmd_contacts_remove)
    reset = command(
        "reset",
        "make contacts due again: no attempts, no outcome (not those in a call)",
        contacts_sub,
    )
    reset.add_argument("--config", required=True, help=config_help)
    reset.add_argument("--user", default=None, help="only this agent's contacts")
    reset.add_argument("numbers", nargs="*", help="only these numbers (needs --user)")
    reset.set_defaults(func=cmd_contacts_reset)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``outdial`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "check" and not any(e.startswith("-") for e in extra):
        # ``check call --platform cxone FILE.json``: the file comes after the option.
        args.what = [*args.what, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging(args.log_level, args.log_format)
    set_mask_numbers(args.mask_numbers)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except _Usage as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("outdial: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a store or platform stop of a short command: one line
        return _report_stop(f"outdial {args.command}", exc)
    return result
