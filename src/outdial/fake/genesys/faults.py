"""The fault controls of the fake Genesys platform: REST faults, clearing every fault,
and fault schedules (the faults themselves act in the modules they break).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

import anyio
import anyio.abc
import anyio.lowlevel

from outdial.fake.faults import RestFaults
from outdial.fake.genesys.sockets import SocketsMixin
from outdial.fake.genesys.users import UsersMixin
from outdial.fake.runner import FaultRun, end_fault, follow, start_fault
from outdial.fake.schedule import Fault, expand
from outdial.log import emit

if TYPE_CHECKING:
    from outdial.fake.genesys.platform import FakePlatform

__all__ = ["FaultsMixin"]

_log = logging.getLogger("outdial.fake")


class FaultsMixin(SocketsMixin, UsersMixin):
    """REST faults, :meth:`clear_faults`, :meth:`run_schedule` and :meth:`apply_fault`."""

    _rest_faults: RestFaults

    @property
    def _whole(self) -> FakePlatform:
        # A schedule drives the whole platform (sockets, calls, proxies), not this part.
        return cast("FakePlatform", self)

    def fail_next(
        self,
        path_regex: str,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose path matches ``path_regex`` with ``status``.

        The answer carries the platform's error body for that status; a 429
        carries ``Retry-After`` (``retry_after`` seconds, 1 when not given).
        Matching uses :func:`re.search` on the path without the query string,
        and only requests with ``method`` when one is given.
        """
        self._rest_faults.fail_next(path_regex, status, count, retry_after, method)

    def stall_next(
        self,
        path_regex: str,
        seconds: float,
        method: str | None = None,
        count: int = 1,
        after_effect: bool = True,
    ) -> None:
        """Hold the answer to the next ``count`` matching requests for ``seconds``.

        With ``after_effect`` (the default) the request is handled first: a
        call is accepted, recorded and played out, but its answer comes
        ``seconds`` later, so a client with a shorter timeout sees a timeout
        *after* the platform accepted the call. Without it, the request waits
        before it is handled (nothing happens until then). :meth:`release_stalls`
        ends every current hold early; :attr:`stalled_requests` counts them.
        """
        self._rest_faults.stall_next(path_regex, seconds, method, count, after_effect)

    def release_stalls(self) -> None:
        """End every current :meth:`stall_next` hold now (the held answers go out)."""
        self._stalls.release()

    def slow_rest(self, seconds: float) -> None:
        """Hold every REST answer ``seconds`` after handling the request (0: no delay)."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._rest_faults.slow = seconds

    def fail_rate(
        self,
        status: int,
        rate: float,
        path_regex: str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer a seeded-random fraction ``rate`` of matching requests with ``status``.

        ``status`` is 429 (with ``Retry-After: 1``), 500, 502, 503 or 504.
        ``path_regex`` None matches every request, the token endpoint included.
        Calling again with the same ``path_regex`` and ``method`` replaces the
        rule; ``rate`` 0 removes it. The draws come from their own seeded
        stream: the same seed and the same requests fail the same requests, and
        call outcomes do not change because of it.
        """
        self._rest_faults.fail_rate(status, rate, path_regex, method)

    def clear_rest_faults(self) -> None:
        """Remove every REST fault (fail_next, stall_next, slow_rest, fail_rate)."""
        self._rest_faults.clear()
        self.release_stalls()

    def clear_faults(self) -> None:
        """Back to a healthy platform: no REST, protocol or TCP faults in force.

        Heartbeats and pongs resume, events are no longer duplicated, reordered
        or delayed (held ones still go out), stalls are released, every expand
        is answered again (:meth:`drop_expand`) and the proxies (if any) forward
        transparently again.
        """
        self.clear_rest_faults()
        self._expand_drops.rules.clear()
        self.heartbeats_enabled = True
        self.answer_pings = True
        self.duplicate_events = 1
        self.reorder_events(1)
        self.delay_events(0.0)
        for proxy in (self._ws_proxy, self._rest_proxy):
            if proxy is not None:
                proxy.clear()

    def run_schedule(self, faults: Iterable[Fault]) -> FaultRun:
        """Play a fault schedule in the platform's task group; return its :class:`FaultRun`.

        Times are seconds from now. A fault with a ``duration`` is undone when
        it ends. Raises :class:`RuntimeError` at once when a fault needs a TCP
        proxy the platform was not created with (``ws_proxy``/``rest_proxy``).
        """
        listed = list(faults)
        self._check_proxies(listed)
        run = FaultRun(expand(listed))
        self._task_group.start_soon(follow, self._whole, run)
        emit(_log, "fake.schedule.started", faults=len(listed))
        return run

    async def apply_fault(self, fault: Fault) -> None:
        """Make one fault happen now (its ``at`` is ignored); undo it after its ``duration``."""
        self._check_proxies([fault])
        await start_fault(self._whole, fault)
        self._notify()
        if fault.duration is not None:
            self._task_group.start_soon(self._end_fault_later, fault, fault.duration)

    async def _end_fault_later(self, fault: Fault, delay: float) -> None:
        await anyio.sleep(delay)
        await end_fault(self._whole, fault)
        self._notify()

    def _check_proxies(self, faults: Sequence[Fault]) -> None:
        for fault in faults:
            if fault.proxy_name == "ws" and self._ws_proxy is None:
                raise RuntimeError(f"a {fault.kind!r} fault needs FakePlatform(ws_proxy=True)")
            if fault.proxy_name == "rest" and self._rest_proxy is None:
                raise RuntimeError(f"a {fault.kind!r} fault needs FakePlatform(rest_proxy=True)")
