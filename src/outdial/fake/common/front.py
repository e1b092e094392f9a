"""One fake API port's request cycle: route, REST faults, handler, error answer, recording.

Both fakes answer their API (and the Genesys login host) through an
:class:`ApiFront`: the path is resolved in a typed :class:`~.routes.Routes`
table (404/405 as the platform answers), the REST faults in force decide
the request's fate (:class:`~outdial.fake.faults.RestFaults`: stall before
or after handling, fail with a status and ``Retry-After``), then the
platform's handler runs. What differs per platform is a few hooks: its error
type and how it is written, what it adds to every answer, and what it records.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from outdial.fake.common.routes import RouteMatch, Routes
from outdial.fake.faults import RestFaults
from outdial.http import Request, Response
from outdial.log import emit

__all__ = ["ApiFront", "Exchange", "StallGate", "retry_after_header"]

H = TypeVar("H")
E = TypeVar("E", bound=Exception)


def retry_after_header(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up (a client must not come back early)."""
    return str(max(0, int(seconds + 0.999)))


class StallGate:
    """Holds answers for stall and slow faults; :meth:`release` ends every stall early.

    ``stalled`` counts the requests held by a stall now; ``on_change`` is
    called whenever it moves (the fake's change signal).
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._release = anyio.Event()
        self.stalled = 0

    def reset(self) -> None:
        """Start afresh (on entering the fake, whose event loop may be a new one)."""
        self._release = anyio.Event()

    def release(self) -> None:
        """End every current stall now; later stalls hold again."""
        self._release.set()
        self._release = anyio.Event()

    async def wait(self) -> None:
        """Wait until the next :meth:`release` (a hold with no deadline)."""
        await self._release.wait()

    async def hold(self, seconds: float, stalled: bool) -> None:
        """Hold for ``seconds``; a ``stalled`` hold ends early on :meth:`release`."""
        if seconds <= 0:
            return
        if not stalled:
            await anyio.sleep(seconds)
            return
        self.stalled += 1
        self._on_change()
        try:
            with anyio.move_on_after(seconds):
                await self._release.wait()
        finally:
            self.stalled -= 1
            self._on_change()


@dataclass(slots=True)
class Exchange:
    """One request on its way to an answer: its id, and headers every answer to it carries."""

    request: Request
    request_id: str
    headers: list[tuple[str, str]] = field(default_factory=list)


class ApiFront(ABC, Generic[H, E]):
    """Serves one API port: call it with a :class:`~outdial.http.Request`.

    ``error_type`` is the platform's error exception: raised by a handler (or
    by :meth:`refusal` for a route miss or an injected failure), it is
    answered by :meth:`render`; any other exception is a bug, logged as
    ``bug_event`` and answered as the platform's 500. Every answer is logged
    at debug level as ``request_event`` (``method``, ``path``, ``status`` and
    :meth:`log_fields`).
    """

    error_type: type[E]
    request_event: str
    bug_event: str

    def __init__(
        self, routes: Routes[H], faults: RestFaults, gate: StallGate, log: logging.Logger
    ) -> None:
        self.routes = routes
        self._faults = faults
        self._gate = gate
        self._log = log

    async def __call__(self, request: Request) -> Response:
        """Answer ``request`` as the platform would, faults included."""
        exchange = self.exchange(request)
        match = self.routes.resolve(request.method, request.path)
        verdict = self._faults.decide(request.method, request.path)
        await self._gate.hold(verdict.hold_before, verdict.stalled)
        try:
            if isinstance(match, int):
                raise self.refusal(match, None)
            if verdict.status is not None:
                raise self.refusal(verdict.status, verdict.retry_after)
            response = await self.handle(exchange, match)
        except self.error_type as error:
            response = self.render(exchange, error)
        except Exception as exc:  # a bug here must still answer in the platform's shape
            emit(self._log, self.bug_event, logging.ERROR, path=request.path, error=exc)
            response = self.render(exchange, self.refusal(500, None))
        self.answered(exchange, match, response)
        emit(
            self._log,
            self.request_event,
            logging.DEBUG,
            method=request.method,
            path=request.path,
            status=response.status,
            **self.log_fields(exchange),
        )
        await self._gate.hold(verdict.hold_after, verdict.stalled)
        return response

    @abstractmethod
    def exchange(self, request: Request) -> Exchange:
        """A new :class:`Exchange` for ``request`` (its id, the headers it starts with)."""

    @abstractmethod
    def refusal(self, status: int, retry_after: float | None) -> E:
        """The platform's generic error for ``status`` (a route miss, an injected failure)."""

    @abstractmethod
    async def handle(self, exchange: Exchange, match: RouteMatch[H]) -> Response:
        """Run the matched route's handler (after the platform's own checks: auth, limits)."""

    @abstractmethod
    def render(self, exchange: Exchange, error: E) -> Response:
        """``error`` as the platform writes it."""

    def answered(self, exchange: Exchange, match: RouteMatch[H] | int, response: Response) -> None:
        """Finish the answer (headers every answer carries) and record the request."""
        response.headers.extend(exchange.headers)

    def log_fields(self, exchange: Exchange) -> dict[str, Any]:
        """Extra fields of the request's log line."""
        return {}
