"""What an ended call means for its contact, decided before the store is asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from outdial.config import GuardsConfig
from outdial.handlers.calls import Call, CallState, Outcome
from outdial.handlers.disposition import contact_outcome
from outdial.store.base import ContactOutcome

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)
GUARDS = GuardsConfig(max_attempts=4, retry_after={"busy": 600.0, "failed": 3600.0})


def ended(outcome: Outcome, contact_id: int | None = 7) -> Call:
    return Call("conv", "u1", "+441212345601", contact_id, CallState.ENDED, outcome)


def test_a_busy_call_is_one_attempt_due_again_after_its_retry_delay() -> None:
    assert contact_outcome(ended(Outcome.BUSY), NOW, GUARDS) == ContactOutcome(
        "busy", counted=True, retry_at=NOW + timedelta(seconds=600), max_attempts=4
    )


def test_an_outcome_without_its_own_delay_waits_as_long_as_failed() -> None:
    settled = contact_outcome(ended(Outcome.NO_ANSWER), NOW, GUARDS)
    assert settled is not None
    assert settled.retry_at == NOW + timedelta(seconds=3600)


def test_an_answered_call_closes_the_contact() -> None:
    settled = contact_outcome(ended(Outcome.ANSWERED), NOW, GUARDS)
    assert settled == ContactOutcome("answered", counted=True, retry_at=None, max_attempts=4)


def test_an_agent_who_never_took_the_call_costs_the_contact_no_attempt() -> None:
    settled = contact_outcome(ended(Outcome.AGENT_UNAVAILABLE), NOW, GUARDS)
    assert settled == ContactOutcome("agent_unavailable", counted=False)


def test_a_call_still_going_or_without_a_contact_settles_nothing() -> None:
    ringing = Call("conv", "u1", "+441212345601", 7, CallState.RINGING)
    assert contact_outcome(ringing, NOW, GUARDS) is None
    assert contact_outcome(ended(Outcome.BUSY, contact_id=None), NOW, GUARDS) is None
