"""What every part of the fake Genesys platform shares: the change signal, the task group,
the addresses and proxies, and the route entry type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from outdial.clock import Clock
from outdial.fake.common.changes import Changes
from outdial.fake.common.control import CONTROL_PREFIX
from outdial.fake.common.front import StallGate
from outdial.fake.common.net import url_host
from outdial.fake.errors import ApiError, FieldDetail
from outdial.fake.genesys.recorded import Recorded
from outdial.fake.proxy import FaultProxy
from outdial.http import Request, Response

__all__ = ["Endpoint", "GenesysCore", "not_found", "sub_seed"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What one API route does: its handler ``(request, **params)``, whether it needs a
    bearer token (and so counts against the rate limit), and what records it."""

    handle: Callable[..., Awaitable[Response]]
    authenticated: bool = True
    record: Callable[[Request, Response, dict[str, Any]], None] | None = None


class GenesysCore:
    """The state and helpers every concern of :class:`~outdial.fake.platform.FakePlatform` uses."""

    recorded: Recorded
    client_id: str
    _host: str
    _clock: Clock
    _changes: Changes
    _stalls: StallGate
    _tg: anyio.abc.TaskGroup | None
    _bound_port: int
    _bound_ws_port: int
    _ws_proxy: FaultProxy | None
    _rest_proxy: FaultProxy | None

    @property
    def stalled_requests(self) -> int:
        """Requests held by :meth:`stall_next` right now."""
        return self._stalls.stalled

    @property
    def api_url(self) -> str:
        """Base URL of the REST API, ``http://127.0.0.1:PORT`` (the proxy's with ``rest_proxy``)."""
        port = self._rest_proxy.port if self._rest_proxy is not None else self._bound_port
        return f"http://{url_host(self._host)}:{port}"

    @property
    def login_url(self) -> str:
        """Base URL of the login host (the same server as the API)."""
        return self.api_url

    @property
    def ws_url(self) -> str:
        """Base URL of the notification streaming host, ``ws://127.0.0.1:WSPORT``."""
        return f"ws://{url_host(self._host)}:{self._bound_ws_port}"

    @property
    def control_url(self) -> str:
        """Base URL of the control endpoints (``/fake/...``), never through a proxy."""
        return f"http://{url_host(self._host)}:{self._bound_port}{CONTROL_PREFIX}"

    @property
    def connect_url(self) -> str:
        """Base of the ``connectUri`` channels hand out: the proxy's with ``ws_proxy``, else
        :attr:`ws_url`."""
        if self._ws_proxy is not None:
            return f"ws://{url_host(self._host)}:{self._ws_proxy.port}"
        return self.ws_url

    @property
    def ws_proxy(self) -> FaultProxy:
        """The :class:`~outdial.fake.proxy.FaultProxy` every channel's ``connectUri`` goes through.

        Only with ``FakePlatform(ws_proxy=True)``: freeze it for a half-open
        socket, reset it for a connection reset, and so on.
        """
        if self._ws_proxy is None:
            raise RuntimeError("no WebSocket proxy: create the platform with ws_proxy=True")
        return self._ws_proxy

    @property
    def proxies(self) -> dict[str, FaultProxy]:
        """The running fault proxies by name (``"ws"``, ``"rest"``); empty without any."""
        named = {"ws": self._ws_proxy, "rest": self._rest_proxy}
        return {name: proxy for name, proxy in named.items() if proxy is not None}

    @property
    def rest_proxy(self) -> FaultProxy:
        """The :class:`~outdial.fake.proxy.FaultProxy` in front of the REST API and login host.

        Only with ``FakePlatform(rest_proxy=True)``; :attr:`api_url` then points at it.
        """
        if self._rest_proxy is None:
            raise RuntimeError("no REST proxy: create the platform with rest_proxy=True")
        return self._rest_proxy

    @property
    def port(self) -> int:
        """The port the API server itself listens on (known once entered)."""
        return self._bound_port

    @property
    def ws_port(self) -> int:
        """The port the streaming host listens on (known once entered)."""
        return self._bound_ws_port

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked after every change the platform makes.

        Changes are: tokens, channels, subscriptions, sockets connecting or
        disconnecting, calls accepted or moving on, agent presence, pings,
        stalled requests, faults applied by a schedule or ``apply_fault``. Raises
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        await self._changes.wait_for(predicate, timeout)

    def notify_changed(self) -> None:
        """Wake every :meth:`wait_for` to re-check its predicate (after a change made
        outside the platform's own bookkeeping, such as a fault being applied)."""
        self._notify()

    def _notify(self) -> None:
        self._changes.notify()

    @property
    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("FakePlatform is not running; use it as `async with FakePlatform()`")
        return self._tg

    async def _until(self, predicate: Callable[[], bool]) -> None:
        await self._changes.until(predicate)


def not_found(what: str, field: str, value: str) -> ApiError:
    """The platform's 404 for an unknown ``what`` (Channel, User, ...), naming the field."""
    return ApiError(
        404,
        "not.found",
        f"{what} {{{field}}} not found",
        {field: value},
        [FieldDetail(field, "not.found")],
    )


def sub_seed(seed: int | None, purpose: str) -> str | None:
    """A seed for one purpose's RNG, derived from the platform's seed (None stays random)."""
    return None if seed is None else f"{seed}:{purpose}"
