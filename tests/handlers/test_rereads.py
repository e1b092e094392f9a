"""Re-reads after gaps go in batches, in the handlers' spare time, and never stop."""

from __future__ import annotations

from outdial.handlers.rereads import RereadPacing


def test_a_batch_starts_while_the_queue_has_room() -> None:
    pacing = RereadPacing(spare=0.25, hold=1.0)
    assert pacing.may_start(queue_depth=0, queue_size=1000, waited=0.0)
    assert pacing.may_start(queue_depth=250, queue_size=1000, waited=0.0)
    assert not pacing.may_start(queue_depth=251, queue_size=1000, waited=0.0)


def test_a_batch_held_back_by_a_full_queue_starts_after_hold_seconds() -> None:
    """Under sustained overload re-reads slow down to a batch per ``hold``, never stop."""
    pacing = RereadPacing(spare=0.25, hold=1.0)
    assert not pacing.may_start(queue_depth=1000, queue_size=1000, waited=0.99)
    assert pacing.may_start(queue_depth=1000, queue_size=1000, waited=1.0)


def test_batches_take_each_pending_agent_once_in_a_stable_order() -> None:
    pacing = RereadPacing(batch=3)
    pending = {"d", "a", "e", "c", "b"}
    assert pacing.take(pending) == ["a", "b", "c"]
    pending.add("a")  # a new gap names it again: it is re-read again, later
    assert pacing.take(pending) == ["a", "d", "e"]
    assert pending == set()
    assert pacing.take(pending) == []
