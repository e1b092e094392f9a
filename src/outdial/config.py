"""The TOML config schema (pydantic) and ``${VAR}`` expansion for secrets.

A config file never holds a secret itself: ``client_secret = "${GENESYS_CLIENT_SECRET}"``
is expanded from the environment when the file is loaded. Every problem is
reported with its location (``rules[1].dial.user``) and the reason, all at once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from outdial.files import TextFileError, load_toml
from outdial.log import emit, mask_url
from outdial.store.base import StoreSettings

__all__ = [
    "GENESYS_REGIONS",
    "AnyPlatformConfig",
    "Config",
    "ConfigError",
    "ConfigFileError",
    "CxoneAgentConfig",
    "CxonePlatformConfig",
    "DialSpec",
    "GuardsConfig",
    "HandlingConfig",
    "ListenerConfig",
    "LoggingConfig",
    "NumberLimit",
    "ObserveConfig",
    "PlatformConfig",
    "ReadinessConfig",
    "ReconcileConfig",
    "Rule",
    "StoreConfig",
    "expand_env",
    "is_loopback_host",
    "load_config",
    "plain_http_urls",
    "resolve_paths",
]

_log = logging.getLogger("outdial.config")

#: Genesys Cloud domains; the API is at ``api.<domain>``, OAuth at ``login.<domain>``.
GENESYS_REGIONS = frozenset(
    {
        "mypurecloud.com",
        "mypurecloud.ie",
        "mypurecloud.de",
        "mypurecloud.com.au",
        "mypurecloud.jp",
        "usw2.pure.cloud",
        "cac1.pure.cloud",
        "euw2.pure.cloud",
        "aps1.pure.cloud",
        "apne2.pure.cloud",
        "sae1.pure.cloud",
        "mec1.pure.cloud",
        "euc2.pure.cloud",
    }
)

#: Call outcomes after which a contact may be dialed again (answered ends it).
RETRYABLE_OUTCOMES = frozenset({"busy", "no_answer", "failed"})

#: Routing statuses as the platform names them (``v2.users.{id}.routingStatus``).
ROUTING_STATUSES = frozenset(
    {"OFF_QUEUE", "IDLE", "INTERACTING", "COMMUNICATING", "NOT_RESPONDING"}
)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists ``(location, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        # A problem may quote the value it is about: a store URL with its password.
        self.problems = [(where, mask_url(why)) for where, why in problems]
        problems = self.problems
        lines = "\n".join(f"  {where}: {why}" for where, why in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class ConfigFileError(ConfigError):
    """A config file that cannot be read as TOML at all; its text is one line.

    ``FILE, line N: cause`` (not UTF-8, too large, nested too deeply, a
    syntax error); ``problems`` holds the same as one ``(place, cause)`` pair.
    """

    def __init__(self, error: TextFileError) -> None:
        self.source = error.path
        self.problems = [(error.where.removeprefix(", ") or "(file)", error.cause)]
        Exception.__init__(self, str(error))


class _Strict(BaseModel):
    # Unknown keys are an error: a typo such as ``ping_intreval`` must not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformConfig(_Strict):
    """Genesys Cloud: where it is and how to authenticate (OAuth client credentials)."""

    kind: Literal["genesys"] = "genesys"
    region: str | None = None
    api_url: str | None = None
    login_url: str | None = None
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    request_timeout: float = Field(default=10.0, gt=0)
    #: REST requests a minute for the whole daemon (the token's allowance; Genesys: 300).
    requests_per_minute: int = Field(default=300, gt=0)

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None and value not in GENESYS_REGIONS:
            known = ", ".join(sorted(GENESYS_REGIONS))
            raise ValueError(f"unknown region {value!r}; known regions: {known}")
        return value

    @field_validator("api_url", "login_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _has_endpoints(self) -> PlatformConfig:
        if self.region is None and (self.api_url is None or self.login_url is None):
            raise ValueError("set region, or both api_url and login_url")
        return self

    @property
    def resolved_api_url(self) -> str:
        """The REST base URL: ``api_url`` if given, else ``https://api.<region>``."""
        return self.api_url or f"https://api.{self.region}"

    @property
    def resolved_login_url(self) -> str:
        """The OAuth base URL: ``login_url`` if given, else ``https://login.<region>``."""
        return self.login_url or f"https://login.{self.region}"


class CxoneAgentConfig(_Strict):
    """Per-agent CXone settings (``[platform.agents."<agent id>"]``): override the defaults."""

    skill_id: int | None = Field(default=None, gt=0)
    station_phone_number: str | None = None
    station_id: str | None = None


class CxonePlatformConfig(_Strict):
    """NICE CXone: the issuer, the back-end app, the access key, and how agents are reached.

    The issuer is the only URL a user gives: the API host is discovered from it
    (``/.well-known/cxone-configuration``). ``session`` says whether outdial
    starts a session for each agent (``"start"``, with ``asAgentId``) or joins
    the agent's own (``"join"``, which needs impersonation). ``skill_id`` is the
    manual outbound skill ``dial-phone`` uses, per agent in ``agents``.
    """

    kind: Literal["cxone"]
    issuer: str = "https://cxone.niceincontact.com"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    access_key_id: str = Field(min_length=1)
    access_key_secret: SecretStr
    tenant_id: str | None = None
    api_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    session: Literal["start", "join"] = "start"
    skill_id: int | None = Field(default=None, gt=0)
    station_phone_number: str | None = None
    station_id: str | None = None
    agents: dict[str, CxoneAgentConfig] = Field(default_factory=dict)
    request_timeout: float = Field(default=10.0, gt=0)
    #: REST requests a minute for the whole daemon (CXone publishes no limit).
    requests_per_minute: int = Field(default=600, gt=0)
    #: The ``timeout`` of each ``get-next-event`` long poll (the platform allows 0 to 60 s).
    poll_timeout: float = Field(default=30.0, ge=0, le=60)
    #: A poll with no answer this long after its timeout is a dead connection.
    poll_watchdog: float = Field(default=30.0, gt=0)
    #: Seconds a ``dial-phone`` (answered 202) waits for its contact before it is unknown.
    contact_wait: float = Field(default=15.0, gt=0)

    @field_validator("issuer")
    @classmethod
    def _http_issuer(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    def skill_for(self, agent_id: str) -> int | None:
        """The manual outbound skill ``dial-phone`` uses for ``agent_id``."""
        own = self.agents.get(agent_id)
        return own.skill_id if own is not None and own.skill_id else self.skill_id

    def station_for(self, agent_id: str) -> tuple[str | None, str | None]:
        """``(stationId, stationPhoneNumber)`` of ``agent_id``'s session."""
        own = self.agents.get(agent_id)
        number = own.station_phone_number if own and own.station_phone_number else None
        station = own.station_id if own and own.station_id else None
        return station or self.station_id, number or self.station_phone_number


#: The platforms ``[platform] kind`` may name.
PLATFORM_KINDS = ("genesys", "cxone")


def _platform_kind(value: Any) -> str:
    # No kind is Genesys (the first platform; configs written before CXone say nothing).
    kind = value.get("kind", "genesys") if isinstance(value, Mapping) else value.kind
    return kind if isinstance(kind, str) else ""


#: ``[platform]``: which platform, by ``kind`` (Genesys when it is left out).
AnyPlatformConfig = Annotated[
    Annotated[PlatformConfig, Tag("genesys")] | Annotated[CxonePlatformConfig, Tag("cxone")],
    Discriminator(
        _platform_kind,
        custom_error_type="platform_kind",
        custom_error_message="unknown platform kind: want one of genesys, cxone",
    ),
]


class ListenerConfig(_Strict):
    """Keepalive and reconnect tuning for the notification channel.

    ``error_after``: consecutive failed connection attempts after which each
    backoff is logged at ERROR rather than WARNING (an operator's alert).
    ``give_up_after``: seconds after start to exit (code 4, platform
    unreachable) if no channel was ever connected; unset: retry forever.
    """

    ping_interval: float = Field(default=10.0, gt=0)
    ping_timeout: float = Field(default=5.0, gt=0)
    backoff_base: float = Field(default=0.5, gt=0)
    backoff_cap: float = Field(default=30.0, gt=0)
    stable_after: float = Field(default=30.0, ge=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    rotate_before_expiry: float = Field(default=3600.0, ge=0)
    queue_size: int = Field(default=10_000, ge=1)
    error_after: int = Field(default=5, ge=1)
    give_up_after: float | None = Field(default=None, gt=0)


class LoggingConfig(_Strict):
    """How outdial logs (``[logging]``).

    ``mask_numbers``: show phone numbers in logs as ``+4412123***01`` (the
    ``--mask-numbers`` option does the same).
    """

    mask_numbers: bool = False


class HandlingConfig(_Strict):
    """How events are handled concurrently (``[handling]``; a change needs a restart).

    ``workers``: with a store whose operations wait on a network
    (PostgreSQL), tasks that handle the quick part of events (tracking,
    readiness, matching), each agent's events always by the same one, in
    order; what waits on the platform (a dial, a re-read) runs beside them in
    the agent's own lane. Few are enough: a busy worker takes its queued
    events in a row, an idle one costs a wake-up per event (4 took a fifth
    less CPU than 16 at 10,000 events/s, ``bench/scale.py``). With SQLite on
    a local file (it answers at once) there are none: the dispatcher does the
    quick part itself, which saves a hand-off per event.
    ``worker_queue_size``: events waiting per worker; when it is full the
    listener's own bounded queue takes the backlog (and overflows as it says).
    It also bounds the events waiting in one agent's lane behind a dial:
    past it, the agent's events are dropped, counted, and the agent re-read.
    ``refresh_concurrency``: agents re-read over REST at once after a gap.
    """

    workers: int = Field(default=4, ge=1, le=1024)
    worker_queue_size: int = Field(default=64, ge=1)
    refresh_concurrency: int = Field(default=16, ge=1)


class StoreConfig(_Strict):
    """Where outdial keeps contacts, dial claims and calls, and how it talks to it.

    ``statement_timeout``: seconds one statement may take (PostgreSQL
    cancels it, and a server that does not answer at all is given up on at
    the same moment; SQLite waits that long for a file another process has
    locked). ``connect_timeout``: seconds to connect to PostgreSQL.
    ``keepalives_idle``, ``keepalives_interval``, ``keepalives_count``: TCP
    keepalives on PostgreSQL connections (seconds idle before the first
    probe, seconds between probes, probes unanswered before the connection
    is dead). These win over the same parameters in a PostgreSQL URL.
    """

    url: str = "sqlite:///outdial.db"
    statement_timeout: float = Field(default=5.0, gt=0, le=3600)
    connect_timeout: float = Field(default=5.0, gt=0, le=3600)
    keepalives_idle: int = Field(default=10, ge=1)
    keepalives_interval: int = Field(default=5, ge=1)
    keepalives_count: int = Field(default=3, ge=1)

    @field_validator("url")
    @classmethod
    def _supported_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(f"store url must be sqlite:///PATH or postgresql://..., got {value!r}")
        if value.startswith("sqlite:"):
            # sqlite://x.db reads as host "x.db" and no path: three slashes before the path.
            if not value.startswith("sqlite:///") or value == "sqlite:///":
                raise ValueError(
                    f"a SQLite store url is sqlite:///PATH (three slashes; four for an"
                    f" absolute path), got {value!r}"
                )
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"malformed PostgreSQL url {value!r}: {exc}") from None
        return value

    def settings(self) -> StoreSettings:
        """These keys (all but ``url``) as the store takes them."""
        return StoreSettings(
            statement_timeout=self.statement_timeout,
            connect_timeout=self.connect_timeout,
            keepalives_idle=self.keepalives_idle,
            keepalives_interval=self.keepalives_interval,
            keepalives_count=self.keepalives_count,
        )


class NumberLimit(_Strict):
    """At most ``count`` calls to one number in any ``per`` seconds (``count = 0``: no limit)."""

    count: int = Field(default=3, ge=0)
    per: float = Field(default=86400.0, gt=0)


class GuardsConfig(_Strict):
    """Compliance guards checked just before each dial.

    ``max_calls_per_number`` caps the calls to one number across every rule,
    list contact or number from an event, and every replica sharing the store:
    the last line against a rule that would call the same person again and
    again.
    """

    default_region: str = Field(default="US", min_length=2, max_length=2)
    calling_window: tuple[str, str] = ("08:00", "21:00")
    max_attempts: int = Field(default=3, ge=1)
    retry_after: dict[str, float] = Field(
        default_factory=lambda: {"busy": 600.0, "no_answer": 3600.0, "failed": 86400.0}
    )
    do_not_call_file: str | None = None
    calls_per_second: float = Field(default=5.0, gt=0)
    max_calls_per_number: NumberLimit = Field(default_factory=NumberLimit)

    @field_validator("retry_after")
    @classmethod
    def _known_outcomes(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - RETRYABLE_OUTCOMES)
        if unknown:
            known = ", ".join(sorted(RETRYABLE_OUTCOMES))
            raise ValueError(f"unknown outcome(s) {', '.join(unknown)}; retry_after takes {known}")
        if any(seconds < 0 for seconds in value.values()):
            raise ValueError("retry_after delays must not be negative")
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region_code(cls, value: str) -> str:
        # "uk" is a common slip for GB: parsing would fail on every national number.
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            hint = " (the United Kingdom is GB)" if value.upper() == "UK" else ""
            raise ValueError(f"unknown region code {value!r}{hint}: want ISO 3166 such as US, GB")
        return value.upper()

    @field_validator("calling_window")
    @classmethod
    def _window(cls, value: tuple[str, str]) -> tuple[str, str]:
        for bound in value:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", bound):
                raise ValueError(f"calling window bound {bound!r} is not HH:MM")
        return value


#: Seconds the platform's call history may lag behind a call's creation (at least).
HISTORY_LAG_FLOOR = 5.0


class ReconcileConfig(_Strict):
    """How dials with an unknown outcome (sent, no answer) are settled against the platform.

    ``settle`` is how long after a dial became unknown "no call found" is
    conclusive (and the dial may be sent again). It must cover the platform's
    history lag and the longest a request can linger in flight, so it may not
    be less than ``platform.request_timeout`` + :data:`HISTORY_LAG_FLOOR`
    (checked on the whole config). ``lease``: how long a claim in flight is
    its process's without a renewal; a replica may reconcile it after that.
    """

    interval: float = Field(default=15.0, gt=0)
    settle: float = Field(default=60.0, ge=0)
    skew: float = Field(default=120.0, ge=0)
    max_retries: int = Field(default=2, ge=0)
    stale_after: float = Field(default=600.0, gt=0)
    lease: float = Field(default=15.0, gt=0)


class ReadinessConfig(_Strict):
    """When an agent can take the next personal call (``[readiness]``).

    ``presences``: ``systemPresence`` names (compared case-insensitively) or
    presence definition ids; ``routing_statuses``: routing statuses in which an
    agent may be dialed; ``after_call``: seconds of rest after the agent's last
    call (and its wrap-up) before the next dial.
    """

    presences: list[str] = Field(default_factory=lambda: ["Available"], min_length=1)
    routing_statuses: list[str] = Field(default_factory=lambda: ["OFF_QUEUE", "IDLE"], min_length=1)
    after_call: float = Field(default=5.0, ge=0)

    @field_validator("routing_statuses")
    @classmethod
    def _known_statuses(cls, value: list[str]) -> list[str]:
        unknown = sorted({v.upper() for v in value} - ROUTING_STATUSES)
        if unknown:
            known = ", ".join(sorted(ROUTING_STATUSES))
            raise ValueError(f"unknown routing status(es) {', '.join(unknown)}; known: {known}")
        return [v.upper() for v in value]


class ObserveConfig(_Strict):
    """The daemon's own HTTP endpoint (``[observe]``): metrics, health and a status page.

    ``listen``: ``host:port`` to serve on (``127.0.0.1:9464``; port 0 picks a
    free one); unset (the default) serves nothing. The endpoint has no
    authentication: keep it on loopback or a private network.
    """

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)  # raises ValueError with the reason
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """``listen`` as ``(host, port)``, or None when off."""
        return None if self.listen is None else split_listen(self.listen)


def split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:9464"`` for IPv6) as ``(host, port)``; ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port, such as 127.0.0.1:9464, got {value!r}")
    return host, int(port)


class DialSpec(_Strict):
    """What to dial when a rule matches; string values are templates over the event."""

    user: str = Field(min_length=1)
    contact: Literal["next"] | None = None
    phone_number: str | None = None
    caller_id: str | None = None
    caller_id_name: str | None = None
    call_from_queue_id: str | None = None
    label: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("caller_id", "phone_number")
    @classmethod
    def _literal_number_is_e164(cls, value: str | None) -> str | None:
        # A template ("{participants.address}") is filled per event; a literal is checked now.
        if value is None or "{" in value:
            return value
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed) or not value.startswith("+"):
            raise ValueError(f"{value!r} is not a valid E.164 number such as +441212345601")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> DialSpec:
        if (self.contact is None) == (self.phone_number is None):
            raise ValueError('give exactly one of contact = "next" or phone_number')
        return self


class Rule(_Strict):
    """A dialing rule: when an event on ``topic`` matches ``when``, ``dial``."""

    name: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    users: list[str] = Field(default_factory=list)
    when: dict[str, Any] = Field(default_factory=dict)
    dial: DialSpec
    #: Whether the rule also fires on events about calls outdial itself placed. Off:
    #: a callback rule must not call back the end of its own callback, forever.
    on_own_calls: bool = False

    @model_validator(mode="after")
    def _users_fill_topic(self) -> Rule:
        if "{userId}" in self.topic and not self.users:
            raise ValueError("topic has {userId}: list the agents to subscribe in users = [...]")
        return self


class Config(_Strict):
    """The whole ``outdial.toml``."""

    platform: AnyPlatformConfig
    listener: ListenerConfig = Field(default_factory=ListenerConfig)
    handling: HandlingConfig = Field(default_factory=HandlingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig)
    observe: ObserveConfig = Field(default_factory=ObserveConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _settle_covers_a_lingering_request(self) -> Config:
        floor = self.platform.request_timeout + HISTORY_LAG_FLOOR
        if self.reconcile.settle < floor:
            raise ValueError(
                f"reconcile.settle = {self.reconcile.settle:g} is too short: a request may linger"
                f" up to platform.request_timeout ({self.platform.request_timeout:g} s) and the"
                f" platform's history lags at least {HISTORY_LAG_FLOOR:g} s; set it to {floor:g}"
                " or more, or a dial could be sent twice"
            )
        return self

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Config:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


def expand_env(
    value: Any, env: Mapping[str, str], path: str = ""
) -> tuple[Any, list[tuple[str, str]]]:
    """Replace ``${VAR}`` in every string of a parsed TOML tree; report unset variables."""
    problems: list[tuple[str, str]] = []
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append((path or "(root)", f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _ENV_REF.sub(sub, value), problems
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key], sub_problems = expand_env(item, env, f"{path}.{key}" if path else key)
            problems += sub_problems
        return out, problems
    if isinstance(value, list):
        items: list[Any] = []
        for index, item in enumerate(value):
            expanded, sub_problems = expand_env(item, env, f"{path}[{index}]")
            items.append(expanded)
            problems += sub_problems
        return items, problems
    return value, problems


def _location(loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "platform" and loc[1] in PLATFORM_KINDS:
        loc = (loc[0], *loc[2:])  # the union's tag is ours, not a key the user wrote
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def parse_config(data: Mapping[str, Any], source: str, env: Mapping[str, str]) -> Config:
    """Validate an already-parsed TOML mapping; raise :class:`ConfigError` listing every problem."""
    expanded, problems = expand_env(dict(data), env)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        # A value left empty by an unset variable is already reported as that.
        unset = {where for where, _ in problems}
        for error in exc.errors():
            where = _location(tuple(error["loc"]))
            if where not in unset:
                problems.append((where, error["msg"]))
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return config


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that never leave this machine (``localhost``, 127/8, ::1)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_urls(platform: PlatformConfig | CxonePlatformConfig) -> list[tuple[str, str]]:
    """``(key, url)`` of each platform URL sent in clear text to another machine.

    The token request carries the client secret and every API call the
    bearer token: over ``http://`` they can be read on the way. Loopback is
    exempt (the fake platform, or a local TLS-terminating proxy).
    """
    found: list[tuple[str, str]] = []
    urls: tuple[tuple[str, str | None], ...] = (
        (("platform.issuer", platform.issuer),)
        if isinstance(platform, CxonePlatformConfig)
        else (("platform.api_url", platform.api_url), ("platform.login_url", platform.login_url))
    )
    for key, url in urls:
        if url is None or not url.lower().startswith("http://"):
            continue
        host = urlsplit(url).hostname or ""
        if not is_loopback_host(host):
            found.append((key, url))
    return found


# Keys and URLs already warned about: a reload (SIGHUP) of the same config stays quiet.
_warned_plain_http: set[tuple[str, str]] = set()


def _warn_plain_http(config: Config, source: str) -> None:
    for key, url in plain_http_urls(config.platform):
        if (key, url) in _warned_plain_http:
            continue
        _warned_plain_http.add((key, url))
        emit(
            _log,
            "config.plain_http",
            logging.WARNING,
            file=source,
            key=key,
            url=url,
            advice="the client secret and tokens cross the network unencrypted; use https://",
        )


#: What an unset ``${VAR}`` in ``[platform]`` becomes for a command that never calls it.
UNSET_SECRET = "(unset)"


class _Lenient(dict[str, str]):
    """An environment in which every variable is set: unset ones read :data:`UNSET_SECRET`."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return UNSET_SECRET


def resolve_paths(config: Config, base: Path) -> Config:
    """``config`` with its relative file paths taken relative to ``base`` (the config's folder).

    A relative ``sqlite:///outdial.db`` or ``do_not_call_file`` otherwise
    follows the current directory, and ``outdial calls`` run elsewhere would
    read (and create) another, empty database.
    """
    store = config.store
    prefix = "sqlite:///"
    path = store.url[len(prefix) :] if store.url.startswith(prefix) else None
    if path is not None and path != ":memory:" and not Path(path).is_absolute():
        store = store.model_copy(update={"url": f"{prefix}{base / path}"})
    guards = config.guards
    dnc = guards.do_not_call_file
    if dnc and not Path(dnc).is_absolute():
        guards = guards.model_copy(update={"do_not_call_file": str(base / dnc)})
    return config.model_copy(update={"store": store, "guards": guards})


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Config:
    """Read, expand and validate a TOML config file.

    Relative paths in it are relative to the file's folder (:func:`resolve_paths`).
    With ``secrets=False`` (commands that never talk to the platform: ``calls``,
    ``contacts``, the offline ``check``), unset variables in ``[platform]`` are
    no problem. Raises :class:`ConfigFileError` when the file is not readable
    TOML (one line) and :class:`ConfigError` listing every problem of a valid one.
    """
    path = Path(path)
    try:
        data = load_toml(path, what="a config file")
    except TextFileError as exc:
        raise ConfigFileError(exc) from None
    env = os.environ if env is None else env
    if not secrets and isinstance(data.get("platform"), dict):
        platform, _unset = expand_env(data["platform"], _Lenient(env), "platform")
        data = {**data, "platform": platform}
    config = resolve_paths(parse_config(data, str(path), env), path.resolve().parent)
    _warn_plain_http(config, str(path))
    return config
