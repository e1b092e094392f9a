"""Compliance guards checked just before a dial: pure, and failing closed.

Each check takes plain values (a number, the time, what the store said) and
returns :class:`Allow` or :class:`Deny` with the guard's name and a reason. A
guard that cannot decide (an unknown time zone, a number it cannot parse)
denies: a missed call can be retried, a call at 3 a.m. cannot be taken back.
The dialer does the I/O (asking the store) and feeds the answers in here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phonenumbers import timezone as phone_timezone

from outdial.config import GuardsConfig
from outdial.phone import number_facts

__all__ = [
    "UNCOUNTED_OUTCOMES",
    "Allow",
    "Decision",
    "Deny",
    "TokenBucket",
    "check_attempts",
    "check_do_not_call",
    "check_one_active_call",
    "check_rate",
    "check_window",
    "next_due_at",
    "normalize_number",
    "parse_window",
    "zones_for",
]


@dataclass(frozen=True, slots=True)
class Allow:
    """The guard lets the dial through; ``value`` carries a normalized result if any."""

    value: str | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """The guard stops the dial; ``retry_at`` says when trying again could pass."""

    guard: str
    reason: str
    retry_at: datetime | None = None


Decision = Allow | Deny

_URI_SCHEMES = ("tel:", "sip:", "sips:")


#: Numbers remembered by :func:`normalize_number` and :func:`zones_for`: a dial
#: reads its number several times (choosing the contact, its guards, the
#: calling window, the request), and its parse (:func:`outdial.phone.number_facts`,
#: made once for all of them) and its zones cost more than the rest of a guard.
_NUMBERS_KEPT = 4096


@functools.lru_cache(maxsize=_NUMBERS_KEPT)
def normalize_number(raw: str, default_region: str) -> Decision:
    """E.164 for ``raw`` (``tel:``/``sip:`` URIs accepted); invalid numbers are denied.

    National formats are read in ``default_region`` (ISO country code). Pure,
    so the answers for recent numbers are remembered.
    """
    text = raw.strip()
    lowered = text.lower()
    for scheme in _URI_SCHEMES:
        if lowered.startswith(scheme):
            # sip:+4930123456@host;user=phone -> +4930123456
            text = text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
            break
    facts = number_facts(text, default_region.upper())
    if facts.parsed is None:
        return Deny("number", f"invalid_number: {raw!r} ({facts.error})")
    if facts.e164 is None:
        return Deny("number", f"invalid_number: {raw!r}")
    return Allow(facts.e164)


def zones_for(e164: str, contact_timezone: str | None = None) -> tuple[str, ...]:
    """The callee's time zones: the contact's own if set, else those of the number."""
    if contact_timezone:
        return (contact_timezone,)
    return _number_zones(e164)


@functools.lru_cache(maxsize=_NUMBERS_KEPT)
def _number_zones(e164: str) -> tuple[str, ...]:
    parsed = number_facts(e164, None).parsed
    if parsed is None:
        return ()
    zones = tuple(phone_timezone.time_zones_for_number(parsed))
    # The library answers Etc/Unknown when it does not know: no zone at all.
    return tuple(z for z in zones if z != "Etc/Unknown")


def parse_window(window: Sequence[str]) -> tuple[time, time]:
    """``("08:00", "21:00")`` -> two ``time`` values (validated by the config already)."""
    start, end = window
    return time.fromisoformat(start), time.fromisoformat(end)


def _open_at(local: time, start: time, end: time) -> bool:
    # Start inclusive, end exclusive; a window like 22:00-06:00 wraps midnight.
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def _next_opening(
    now: datetime, zones: Sequence[ZoneInfo], start: time, end: time
) -> datetime | None:
    # The window is open everywhere first at some zone's local opening time,
    # so only those instants (over the next few days) need checking.
    candidates: list[datetime] = []
    for zone in zones:
        local_day = now.astimezone(zone).date()
        for days in range(4):
            opening = datetime.combine(local_day + timedelta(days=days), start, tzinfo=zone)
            # Normalize through UTC so a nonexistent local time (DST gap) lands
            # on a real instant.
            candidates.append(opening.astimezone(UTC))
    for candidate in sorted(c for c in candidates if c > now):
        if all(_open_at(candidate.astimezone(z).time(), start, end) for z in zones):
            return candidate
    return None


def check_window(
    e164: str,
    now: datetime,
    window: Sequence[str],
    contact_timezone: str | None = None,
) -> Decision:
    """Allowed iff the callee's local time is inside ``window`` in every zone it may be in."""
    if now.tzinfo is None:
        raise ValueError("check_window needs a timezone-aware now")
    names = zones_for(e164, contact_timezone)
    if not names:
        return Deny("calling_window", f"unknown_timezone for {e164}")
    zones: list[ZoneInfo] = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            return Deny("calling_window", f"unknown_timezone {name!r}")
    start, end = parse_window(window)
    closed = [z.key for z in zones if not _open_at(now.astimezone(z).time(), start, end)]
    if not closed:
        return Allow()
    shown = ", ".join(closed[:3]) + (f" (+{len(closed) - 3} more)" if len(closed) > 3 else "")
    return Deny(
        "calling_window",
        f"outside_calling_window {window[0]}-{window[1]} in {shown}",
        retry_at=_next_opening(now, zones, start, end),
    )


def check_do_not_call(listed: bool) -> Decision:
    """Deny numbers on the do-not-call list."""
    return Deny("do_not_call", "do_not_call") if listed else Allow()


def check_attempts(attempts: int, max_attempts: int) -> Decision:
    """Deny a contact that has used up its attempts."""
    if attempts >= max_attempts:
        return Deny("max_attempts", f"max_attempts {attempts}/{max_attempts}")
    return Allow()


def check_one_active_call(active_conversation_ids: Iterable[str]) -> Decision:
    """Deny when the agent already has a call that has not ended (or a dial in flight)."""
    active = list(active_conversation_ids)
    if active:
        return Deny("one_active_call", f"agent_busy with {active[0]}")
    return Allow()


class TokenBucket:
    """Calls-per-second limit: ``rate`` tokens a second, at most ``burst`` saved up.

    Pure: it reads no clock, the caller passes the monotonic time in.
    """

    def __init__(self, rate: float, now: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def try_acquire(self, now: float) -> float:
        """Take a token and return 0.0, or take nothing and return seconds until one is there."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


def check_rate(bucket: TokenBucket, now: float) -> Decision:
    """Deny when the global calls-per-second budget is spent right now."""
    wait = bucket.try_acquire(now)
    if wait > 0:
        return Deny("calls_per_second", f"rate_limited, next token in {wait:.3f}s")
    return Allow()


UNCOUNTED_OUTCOMES = frozenset({"agent_unavailable"})
"""Outcomes that are not the contact's fault: the call never reached the contact
(the agent's own leg failed first), so no attempt is counted and the contact is
due again at once."""


def next_due_at(
    outcome: str, attempts: int, now: datetime, config: GuardsConfig
) -> datetime | None:
    """When a contact is due again after ``attempts`` attempts ending in ``outcome``.

    None means done: answered, or out of attempts. An outcome without its own
    ``retry_after`` entry waits as long as ``failed``. An outcome in
    :data:`UNCOUNTED_OUTCOMES` (agent unavailable) used no attempt: due again
    ``now``, however many attempts were used before.
    """
    if outcome in UNCOUNTED_OUTCOMES:
        return now
    if outcome == "answered" or attempts >= config.max_attempts:
        return None
    delay = config.retry_after.get(outcome, config.retry_after.get("failed", 86400.0))
    return now + timedelta(seconds=delay)
