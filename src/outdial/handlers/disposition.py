"""What an ended call means for its contact: counted or not, due again when. Pure.

The guards decide it from the call's outcome, the time and ``[guards]``
(``retry_after``, ``max_attempts``); the store only writes the answer, in the
same transaction as the call's end (:meth:`~outdial.store.base.CallStore.advance_call`).
"""

from __future__ import annotations

from datetime import datetime

from outdial.config import GuardsConfig
from outdial.handlers import guards
from outdial.handlers.calls import Call
from outdial.store.base import ContactOutcome

__all__ = ["contact_outcome"]


def contact_outcome(call: Call, now: datetime, config: GuardsConfig) -> ContactOutcome | None:
    """How ``call``'s end settles its contact; None while it goes on, or without a contact.

    An outcome that never reached the contact (agent unavailable) is not counted:
    the contact goes back to due with its attempts and its old due time, so it
    keeps its place in the list. Any other is one attempt: answered is done; the
    rest are due again after their ``retry_after``, until ``max_attempts``.
    """
    if not call.ended or call.outcome is None or call.contact_id is None:
        return None
    outcome = call.outcome.value
    if outcome in guards.UNCOUNTED_OUTCOMES:
        return ContactOutcome(outcome, counted=False)
    # The retry time as if attempts were left (None: answered); the store, which
    # reads the attempts in its transaction, makes it done once they are used up.
    retry_at = guards.next_due_at(outcome, 0, now, config)
    return ContactOutcome(
        outcome, counted=True, retry_at=retry_at, max_attempts=config.max_attempts
    )
