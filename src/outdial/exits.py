"""Exit codes, and the one line a fatal stop prints: its leaf cause and what to fix.

A stop of ``outdial run`` reaches the command line wrapped in task groups'
exception groups (and a :class:`~outdial.listener.ListenerFatal` around the
platform's error): :func:`leaf_causes` unwraps them, :func:`classify` maps
each cause to an exit code and one line. Pure: nothing here prints or exits.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EXIT_AUTH",
    "EXIT_CODES",
    "EXIT_CONFIG",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STORE",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Failure",
    "classify",
    "epilog",
    "leaf_causes",
    "one_line",
]

EXIT_OK = 0
#: The config (or a file it names) is wrong, or ``check`` found problems: edit it.
EXIT_CONFIG = 1
#: The command line is wrong (argparse's own code).
EXIT_USAGE = 2
#: The platform refused the credentials or a permission (a rejected subscription too).
EXIT_AUTH = 3
#: The platform could not be reached (``[listener] give_up_after``, ``check --online``).
EXIT_UNREACHABLE = 4
#: The store could not be opened or reached.
EXIT_STORE = 5
#: A bug: an error outdial does not know (EX_SOFTWARE of sysexits.h).
EXIT_INTERNAL = 70
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok",
    EXIT_CONFIG: "a problem in the config or a file it names (the message says which key)",
    EXIT_USAGE: "a wrong command line",
    EXIT_AUTH: "the platform refused the credentials or a permission",
    EXIT_UNREACHABLE: "the platform could not be reached",
    EXIT_STORE: "the store could not be opened or reached",
    EXIT_INTERNAL: "an internal error (a bug: please report it with the message)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


def epilog() -> str:
    """The exit codes, as ``outdial --help`` lists them."""
    lines = [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()]
    return "exit codes:\n" + "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Failure:
    """A fatal stop: the exit code and the one line that says what to fix."""

    code: int
    message: str


def leaf_causes(exc: BaseException) -> list[BaseException]:
    """The exceptions at the leaves of nested exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaf_causes(sub)]
    return [exc]


def one_line(text: str) -> str:
    """``text`` on one line (libpq's messages span several)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def classify(exc: BaseException) -> Failure:
    """The exit code and message for one leaf cause of a stop."""
    from outdial.app import PlatformUnreachable
    from outdial.config import ConfigError
    from outdial.contacts import ContactListError
    from outdial.files import TextFileError
    from outdial.handlers.donotcall import DoNotCallFileError
    from outdial.handlers.rules import RuleError
    from outdial.handlers.templates import TemplateError
    from outdial.listener import ListenerFatal
    from outdial.log import mask_url
    from outdial.platforms.base import AuthError, PlatformError
    from outdial.platforms.genesys.plan import TooManyTopics
    from outdial.store.base import StoreError

    text = one_line(mask_url(str(exc))) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "interrupted")
    if isinstance(exc, ConfigError):
        return Failure(EXIT_CONFIG, text)
    if isinstance(exc, TooManyTopics):
        return Failure(EXIT_CONFIG, f"rules[].users: {text}")
    if isinstance(
        exc, DoNotCallFileError | RuleError | TemplateError | ContactListError | TextFileError
    ):
        return Failure(EXIT_CONFIG, text)
    if isinstance(exc, ListenerFatal):
        cause = exc.__cause__
        if isinstance(cause, AuthError) or "rejected" in text:
            return Failure(EXIT_AUTH, text)
        if isinstance(cause, PlatformError) and cause.status in (401, 403):
            return Failure(EXIT_AUTH, text)
        return Failure(EXIT_CONFIG, text)
    if isinstance(exc, AuthError):
        return Failure(EXIT_AUTH, text)
    if isinstance(exc, PlatformUnreachable):
        return Failure(EXIT_UNREACHABLE, text)
    if isinstance(exc, PlatformError):
        if exc.retryable:
            return Failure(EXIT_UNREACHABLE, text)
        return Failure(EXIT_CONFIG, text)
    if isinstance(exc, StoreError):
        if "url" in text and ("not a" in text or "unsupported" in text or "no path" in text):
            return Failure(EXIT_CONFIG, f"store.url: {text}")
        return Failure(EXIT_STORE, f"{text}; check store.url")
    return Failure(
        EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {text} (please report this)"
    )


def worst(failures: list[Failure]) -> Failure:
    """The failure to exit with when several causes stopped at once: the first, by code class.

    Configuration beats credentials beats reachability: the first one the
    operator must fix comes first (a bug only when nothing else is known).
    """
    order = [EXIT_CONFIG, EXIT_AUTH, EXIT_STORE, EXIT_UNREACHABLE, EXIT_INTERNAL]
    return min(failures, key=lambda f: order.index(f.code) if f.code in order else len(order))
