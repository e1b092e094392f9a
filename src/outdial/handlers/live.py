"""What the router's parts read when they act, not when they are built.

Some of the router's settings change while the daemon runs: a reload brings new
rules, guards and readiness; the daemon sets its observer and its step runner
once it runs; a draining shutdown turns dialing off; a test may swap the
dialer. The parts of :class:`~outdial.handlers.dispatch.Handlers` (call
tracker, gap refresher, readiness offers) are given one :class:`Live` at
construction and read those settings from it at the time they act, so no part
keeps a stale copy and none reaches into another's attributes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from outdial.config import Config
from outdial.events import Event
from outdial.handlers.dialer import Dialer, DialResult
from outdial.handlers.readiness import ReadinessPolicy
from outdial.handlers.rules import RuleIndex
from outdial.store.base import CallRecord

__all__ = ["HandlingObserver", "Live", "StepRunner", "Unobserved", "UserStep", "run_inline"]

#: One agent's part of a refresh: re-read over REST and feed through ``handle``.
UserStep = Callable[[], Awaitable[None]]
#: Runs one agent's step (``None``: no agent) and returns once it has run,
#: raising what it raised. See :attr:`Handlers.run_for_user`.
StepRunner = Callable[[str | None, UserStep], Awaitable[None]]


class HandlingObserver(Protocol):
    """What the handlers tell an observer (metrics, the status page); must not block or raise.

    ``dialed``: a rule's match was dialed (placed, skipped, failed or unknown),
    ``trigger`` being the event that fired it. ``call_progressed``: a call
    outdial placed was written with a new state (``ended_at`` set once ended).
    """

    def dialed(self, trigger: Event, result: DialResult) -> None: ...

    def call_progressed(self, record: CallRecord) -> None: ...


class Unobserved:
    """The default :class:`HandlingObserver`: nobody is looking."""

    def dialed(self, trigger: Event, result: DialResult) -> None:
        pass

    def call_progressed(self, record: CallRecord) -> None:
        pass


async def run_inline(user_id: str | None, step: UserStep) -> None:
    """The default :data:`StepRunner`: run the step right here."""
    await step()


@dataclass(slots=True)
class Live:
    """The router's settings that may change while it runs, shared with its parts.

    Only :class:`~outdial.handlers.dispatch.Handlers` writes them (its
    ``apply_config``, and the attributes the daemon sets on it); the parts
    only read them.
    """

    config: Config
    rules: RuleIndex
    readiness: ReadinessPolicy
    dialer: Dialer
    observer: HandlingObserver = field(default_factory=Unobserved)
    run_for_user: StepRunner = run_inline
    #: False stops new dials (a draining shutdown) while calls are still tracked.
    dialing_enabled: bool = True
