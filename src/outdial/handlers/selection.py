"""Which of an agent's contacts to dial now: pure, over the guards.

``contact = "next"`` means the first contact in the agent's list that can be
called *now*. The list is read in its order (never dialed first, then by due
time, then by import order); each contact is checked with the guards that
depend on it alone: attempts left, a valid number, not on the do-not-call
list, inside the calling window of the callee's zone. A contact that fails a
guard no later attempt can pass is closed; one that is only outside its window
is passed over *without* changing it, so it keeps its place in the list and is
dialed first once its window opens. :func:`choose_contact` also says when the
choice may change by time alone (a window opening, a retry coming due), so
the pacer can look again then.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from outdial.config import GuardsConfig
from outdial.handlers import guards
from outdial.store.base import Contact

__all__ = ["ContactChoice", "choose_contact"]

#: Guards whose denial no later attempt can pass: the contact is closed.
FINAL_GUARDS = frozenset({"do_not_call", "number", "max_attempts"})


@dataclass(frozen=True, slots=True)
class ContactChoice:
    """The contact to dial now (``contact`` with its E.164 ``number``), or none.

    ``closed``: contacts that can never be dialed (close them);
    ``waiting``: contacts passed over for now, with the guard that stopped
    them; ``retry_at``: the earliest time a passed-over or not-yet-due
    contact may become callable (None: nothing will change by time alone).
    """

    contact: Contact | None
    number: str | None = None
    closed: tuple[tuple[Contact, guards.Deny], ...] = ()
    waiting: tuple[tuple[Contact, guards.Deny], ...] = ()
    retry_at: datetime | None = None

    @property
    def reason(self) -> str:
        """Why nothing was chosen, for the log: the first waiting contact's guard."""
        if self.contact is not None:
            return "chosen"
        if self.waiting:
            first, deny = self.waiting[0]
            more = f" (+{len(self.waiting) - 1} more)" if len(self.waiting) > 1 else ""
            return f"no_callable_contact: contact {first.id} {deny.reason}{more}"
        return "no_due_contact"


def choose_contact(
    due: Sequence[Contact],
    do_not_call: Container[str],
    now: datetime,
    config: GuardsConfig,
    *,
    next_due_at: datetime | None = None,
    capped: Mapping[str, datetime] | None = None,
) -> ContactChoice:
    """The first contact of ``due`` (in list order) that every per-contact guard allows now.

    ``do_not_call`` holds the listed numbers among ``due``'s (E.164);
    ``next_due_at`` is when the agent's next contact that is not due yet
    comes due, if any; ``capped`` the numbers that had their calls for now
    (``[guards] max_calls_per_number``), with when they may be called again.
    """
    capped = capped or {}
    closed: list[tuple[Contact, guards.Deny]] = []
    waiting: list[tuple[Contact, guards.Deny]] = []
    retry_at = next_due_at
    for contact in due:
        decision = guards.check_attempts(contact.attempts, config.max_attempts)
        if isinstance(decision, guards.Deny):
            closed.append((contact, decision))
            continue
        normalized = guards.normalize_number(contact.phone_number, config.default_region)
        if isinstance(normalized, guards.Deny):
            closed.append((contact, normalized))
            continue
        number = normalized.value or contact.phone_number
        decision = guards.check_do_not_call(
            number in do_not_call or contact.phone_number in do_not_call
        )
        if isinstance(decision, guards.Deny):
            closed.append((contact, decision))
            continue
        free_at = capped.get(contact.phone_number) or capped.get(number)
        if free_at is not None:
            limit = config.max_calls_per_number
            decision = guards.Deny(
                "max_calls_per_number",
                f"max_calls_per_number {limit.count} in {limit.per:g}s",
                retry_at=free_at,
            )
        else:
            decision = guards.check_window(number, now, config.calling_window, contact.timezone)
        if isinstance(decision, guards.Deny):
            waiting.append((contact, decision))
            if decision.retry_at is not None and (retry_at is None or decision.retry_at < retry_at):
                retry_at = decision.retry_at
            continue
        return ContactChoice(contact, number, tuple(closed), tuple(waiting), retry_at)
    return ContactChoice(None, None, tuple(closed), tuple(waiting), retry_at)
