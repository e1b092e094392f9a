"""The keepalive verdict, driven by hand-fed times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.listener.keepalive import Liveness, Verdict


def test_silence_past_interval_asks_for_a_probe() -> None:
    live = Liveness(interval=10, timeout=5, now=0)
    assert live.poll(9.9) is Verdict.ALIVE
    assert live.poll(10) is Verdict.SEND_PING


def test_no_answer_within_timeout_is_dead() -> None:
    live = Liveness(interval=10, timeout=5, now=0)
    live.probe_sent(10)
    assert live.poll(14.9) is Verdict.ALIVE
    assert live.poll(15) is Verdict.DEAD


def test_any_frame_after_probe_revives() -> None:
    live = Liveness(interval=10, timeout=5, now=0)
    live.probe_sent(10)
    live.frame_received(12)
    assert live.poll(15) is Verdict.ALIVE
    assert live.next_deadline() == 22


def test_next_deadline_follows_the_phase() -> None:
    live = Liveness(interval=10, timeout=5, now=3)
    assert live.next_deadline() == 13
    live.probe_sent(13)
    assert live.next_deadline() == 18


def test_rejects_non_positive_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        Liveness(interval=0, timeout=5, now=0)


@given(
    interval=st.floats(0.01, 100),
    timeout=st.floats(0.01, 100),
    last=st.floats(0, 1000),
)
def test_half_open_is_declared_dead_within_interval_plus_timeout(
    interval: float, timeout: float, last: float
) -> None:
    """A shell that polls at every next_deadline() declares a silent peer dead in bound."""
    live = Liveness(interval, timeout, now=last)
    now = last
    for _ in range(3):
        now = live.next_deadline()
        verdict = live.poll(now)
        if verdict is Verdict.SEND_PING:
            live.probe_sent(now)
        elif verdict is Verdict.DEAD:
            break
    assert verdict is Verdict.DEAD
    assert now - last <= interval + timeout + 1e-9
