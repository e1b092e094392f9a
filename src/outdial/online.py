"""``outdial check --online``: ask the platform what the daemon will need, and dial nothing.

In order, each step naming what it found wrong:

1. the credentials: a token (any first request gets one);
2. each agent id the rules name exists (the bulk users read: ``known=False``);
3. the topics subscribe: a channel of its own is created and the topics PUT
   on it; its answer names each rejected topic. The channel is left to
   expire (nothing else ever connects to it), and no other channel is touched;
4. the analytics query reconcile relies on, for a one-second interval.

Calls on behalf of agents cannot be tried without placing one: that
permission (``conversation:call:add``) is listed as not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from outdial.config import Config
from outdial.exits import EXIT_AUTH, EXIT_CONFIG, EXIT_OK, EXIT_UNREACHABLE, one_line
from outdial.platforms.base import AuthError, PlatformError
from outdial.platforms.genesys.client import GenesysPlatform

__all__ = ["OnlineReport", "check_online", "platform_topics"]

#: Seconds each step may retry a platform that is failing before it is reported.
STEP_TIMEOUT = 10.0
#: Topics one channel carries (the platform's limit): more are checked on more channels.
TOPICS_PER_CHANNEL = 1000


@dataclass(slots=True)
class OnlineReport:
    """What ``check --online`` found: lines that passed, problems, and the exit code."""

    ok: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    code: int = EXIT_OK

    def fail(self, code: int, problem: str) -> None:
        """Record a problem; the first kind found sets the exit code."""
        self.problems.append(one_line(problem))
        if self.code == EXIT_OK:
            self.code = code


def platform_topics(config: Config, rule_topics: list[str]) -> list[str]:
    """The platform topics the daemon would subscribe: the rules', and readiness's."""
    from outdial.handlers.dispatch import readiness_topics, ready_users
    from outdial.handlers.rules import RuleIndex
    from outdial.platforms.registry import codec_for

    users = ready_users(RuleIndex.compile(config.rules))
    topics = set(rule_topics) | readiness_topics(users, codec_for(config))
    return sorted(t for t in topics if t.startswith("v2."))


def _agents(config: Config) -> dict[str, str]:
    """Each agent id the rules list, with where it is first named."""
    found: dict[str, str] = {}
    for n, rule in enumerate(config.rules):
        for m, user in enumerate(rule.users):
            found.setdefault(user, f"rules[{n}].users[{m}]")
        user = rule.dial.user
        if "{" not in user:
            found.setdefault(user, f"rules[{n}].dial.user")
    return found


def _code(exc: PlatformError) -> int:
    if isinstance(exc, AuthError) or exc.status in (401, 403):
        return EXIT_AUTH
    return EXIT_UNREACHABLE if exc.retryable else EXIT_CONFIG


async def check_online(
    config: Config, rule_topics: list[str], platform: GenesysPlatform | None = None
) -> OnlineReport:
    """Run the online checks for ``config`` (``platform``: the config's own, by default)."""
    from outdial.config import PlatformConfig
    from outdial.platforms.genesys.bundle import genesys_client

    report = OnlineReport()
    if not isinstance(config.platform, PlatformConfig):
        report.fail(EXIT_CONFIG, f"check --online: not available for {config.platform.kind} yet")
        return report
    client = platform or genesys_client(config.platform)
    try:
        await _check(config, client, platform_topics(config, rule_topics), report)
    finally:
        if platform is None:
            await client.aclose()
    return report


async def _check(
    config: Config, platform: GenesysPlatform, topics: list[str], report: OnlineReport
) -> None:
    agents = _agents(config)
    try:
        states = await platform.get_agent_states(list(agents), give_up_after=STEP_TIMEOUT)
    except PlatformError as exc:
        # The first request: a refusal here is the credentials (or the users read permission).
        report.fail(_code(exc), f"platform: {exc}")
        return
    report.ok.append("platform: credentials accepted")
    unknown = [s.user_id for s in states if not s.known]
    for user in unknown:
        report.fail(
            EXIT_CONFIG, f"{agents[user]}: agent id {user} is not a user the platform knows"
        )
    if agents and not unknown:
        report.ok.append(f"agents: all {len(agents)} known")

    rejected = 0
    for start in range(0, len(topics), TOPICS_PER_CHANNEL):
        chunk = topics[start : start + TOPICS_PER_CHANNEL]
        try:
            channel = await platform.create_channel()
            results = await platform.put_subscriptions(channel.id, chunk)
        except PlatformError as exc:
            report.fail(_code(exc), f"topics: subscribing failed: {exc}")
            return
        for result in results:
            if not result.permitted and result.topic in chunk:
                rejected += 1
                report.fail(
                    EXIT_AUTH,
                    f"topic {result.topic}: rejected ({result.reason or 'no reason given'});"
                    " check the rule's topic, its users and the OAuth client's permissions",
                )
    if topics and not rejected:
        report.ok.append(f"topics: all {len(topics)} subscribe")

    if agents:
        until = datetime.now(UTC)
        try:
            await platform.find_outbound_calls(
                next(iter(agents)), until - timedelta(seconds=1), until
            )
        except PlatformError as exc:
            report.fail(_code(exc), f"analytics query (reconcile needs it): {exc}")
        else:
            report.ok.append("analytics: conversation details query allowed")
    report.ok.append(
        "not checked: placing calls on behalf of agents (conversation:call:add) needs a real call"
    )
