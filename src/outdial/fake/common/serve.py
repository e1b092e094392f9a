"""What both standalone fake servers (``outdial fake-server``) do alike: refuse a bind beyond
loopback unless meant, print a banner, and run until cancelled."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import anyio

from outdial.config import is_loopback_host

__all__ = [
    "check_bind",
    "format_banner",
    "print_text",
    "remote_bind_refusal",
    "run_until_cancelled",
]

F = TypeVar("F", bound=AbstractAsyncContextManager[object])


def remote_bind_refusal(host: str, *, allow_remote: bool) -> str | None:
    """Why listening on ``host`` is refused (None when it is loopback or ``allow_remote``).

    Beyond loopback, anyone on the network could log in with the fake's
    well-known credentials and read or drive its calls.
    """
    if allow_remote or is_loopback_host(host):
        return None
    shown = host or "(all interfaces)"
    return (
        f"--host {shown} would serve the fake beyond this machine; use 127.0.0.1, "
        "or pass --allow-remote to mean it"
    )


def check_bind(host: str, *, allow_remote: bool) -> None:
    """Raise :class:`ValueError` with :func:`remote_bind_refusal`'s reason, if there is one."""
    refusal = remote_bind_refusal(host, allow_remote=allow_remote)
    if refusal is not None:
        raise ValueError(refusal)


def format_banner(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """``title``, then one ``  name  value`` line per row, the values aligned."""
    width = max(len(name) for name, _ in rows) + 1
    return "\n".join([title, *(f"  {name.ljust(width)}{value}" for name, value in rows)])


def print_text(text: str) -> None:
    """Print ``text`` to standard output and flush it (for wrappers waiting on it)."""
    print(text, file=sys.stdout, flush=True)


async def run_until_cancelled(
    fake: F,
    on_ready: Callable[[F], None] | None,
    *,
    started: Callable[[F], None] | None = None,
) -> None:
    """Run ``fake`` until cancelled: ``started`` once it listens, then ``on_ready``."""
    async with fake:
        if started is not None:
            started(fake)
        if on_ready is not None:
            on_ready(fake)
        await anyio.sleep_forever()
