"""Guards: numbers, calling windows across zones and DST, limits, retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.clock import ManualClock
from outdial.config import GuardsConfig
from outdial.handlers.guards import (
    Allow,
    Deny,
    TokenBucket,
    check_attempts,
    check_do_not_call,
    check_one_active_call,
    check_rate,
    check_window,
    next_due_at,
    normalize_number,
)

WINDOW = ("08:00", "21:00")
NEW_YORK = "+12125551234"
LONDON = "+441212345601"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 121 234 5601", "US", LONDON),
        ("0121 234 5601", "GB", LONDON),
        ("tel:+441212345601", "US", LONDON),
        ("sip:+441212345601@pbx.example;user=phone", "US", LONDON),
        ("(212) 555-1234", "US", NEW_YORK),
    ],
)
def test_normalize(raw: str, region: str, expected: str) -> None:
    assert normalize_number(raw, region) == Allow(expected)


@pytest.mark.parametrize("raw", ["12345", "not a number", "", "+1 555"])
def test_invalid_numbers_are_denied(raw: str) -> None:
    decision = normalize_number(raw, "US")
    assert isinstance(decision, Deny)
    assert decision.reason.startswith("invalid_number")


def test_window_follows_dst_in_new_york() -> None:
    # US DST starts 2026-03-08: 12:30 UTC is 07:30 EST the day before, 08:30 EDT after.
    clock = ManualClock(datetime(2026, 3, 7, 12, 30, tzinfo=UTC))
    before = check_window(NEW_YORK, clock.now(), WINDOW)
    assert isinstance(before, Deny)
    assert before.guard == "calling_window"
    assert before.retry_at == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)  # 08:00 EST
    clock.advance(2 * 86400)
    assert check_window(NEW_YORK, clock.now(), WINDOW) == Allow()


def test_window_end_is_exclusive_and_local() -> None:
    # 21:00 in London in winter is 21:00 UTC; in summer (BST) it is 20:00 UTC.
    assert isinstance(check_window(LONDON, datetime(2026, 1, 5, 21, 0, tzinfo=UTC), WINDOW), Deny)
    assert check_window(LONDON, datetime(2026, 1, 5, 20, 59, tzinfo=UTC), WINDOW) == Allow()
    assert isinstance(check_window(LONDON, datetime(2026, 7, 5, 20, 0, tzinfo=UTC), WINDOW), Deny)


def test_contact_timezone_overrides_the_number() -> None:
    # 12:00 UTC: fine in London, 21:00 in Tokyo (closed).
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert check_window(LONDON, now, WINDOW) == Allow()
    tokyo = check_window(LONDON, now, WINDOW, "Asia/Tokyo")
    assert isinstance(tokyo, Deny)
    assert "Asia/Tokyo" in tokyo.reason
    assert tokyo.retry_at == datetime(2026, 1, 5, 23, 0, tzinfo=UTC)  # 08:00 JST


def test_several_zones_must_all_be_open() -> None:
    # A toll-free number may ring anywhere from Guam to Newfoundland.
    decision = check_window("+18005551234", datetime(2026, 1, 5, 18, 0, tzinfo=UTC), WINDOW)
    assert isinstance(decision, Deny)


def test_unknown_zones_fail_closed() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert isinstance(check_window(LONDON, now, WINDOW, "Mars/Olympus"), Deny)
    # A number the library cannot place in any zone.
    assert isinstance(check_window("+80012345678", now, WINDOW), Deny)


def test_simple_guards() -> None:
    assert check_do_not_call(False) == Allow()
    assert check_do_not_call(True) == Deny("do_not_call", "do_not_call")
    assert check_attempts(2, 3) == Allow()
    assert isinstance(check_attempts(3, 3), Deny)
    assert check_one_active_call([]) == Allow()
    assert isinstance(check_one_active_call(["c1"]), Deny)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, now=0.0)
    assert [bucket.try_acquire(0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.try_acquire(0.0) == pytest.approx(0.5)
    assert isinstance(check_rate(bucket, 0.25), Deny)
    assert check_rate(bucket, 0.5) == Allow()
    # Idle time refills up to the burst only.
    assert [bucket.try_acquire(100.0) for _ in range(3)][-1] > 0


def test_next_due_at() -> None:
    config = GuardsConfig()
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert next_due_at("answered", 1, now, config) is None
    assert next_due_at("busy", 1, now, config) == now + timedelta(seconds=600)
    assert next_due_at("no_answer", 2, now, config) == now + timedelta(seconds=3600)
    assert next_due_at("failed", 1, now, config) == now + timedelta(days=1)
    assert next_due_at("busy", 3, now, config) is None  # out of attempts
    assert next_due_at("weird", 1, now, config) == now + timedelta(days=1)
    # Not the contact's fault: due again at once, even with every attempt used.
    assert next_due_at("agent_unavailable", 1, now, config) == now
    assert next_due_at("agent_unavailable", 3, now, config) == now


ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
hhmm = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@given(now=instants, zone=st.sampled_from(ZONES), start=hhmm, end=hhmm)
def test_window_allowed_iff_local_time_inside(
    now: datetime, zone: str, start: tuple[int, int], end: tuple[int, int]
) -> None:
    window = (f"{start[0]:02d}:{start[1]:02d}", f"{end[0]:02d}:{end[1]:02d}")
    lo, hi = time(*start), time(*end)
    local = now.astimezone(ZoneInfo(zone)).time()
    inside = (lo <= local < hi) if lo <= hi else (local >= lo or local < hi)
    decision = check_window(LONDON, now, window, zone)
    assert isinstance(decision, Allow) == inside
    if isinstance(decision, Deny) and decision.retry_at is not None:
        # The suggested retry is in the future and really inside the window.
        assert decision.retry_at > now
        assert check_window(LONDON, decision.retry_at, window, zone) == Allow()


@given(now=instants)
def test_never_allowed_outside_default_window(now: datetime) -> None:
    local = now.astimezone(ZoneInfo("America/New_York")).time()
    if not time(8) <= local < time(21):
        assert isinstance(check_window(NEW_YORK, now, WINDOW), Deny)
