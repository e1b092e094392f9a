"""The reconciler: dials whose answer never came, settled against the platform.

A dial sent without an answer (``unknown``), or left ``claimed`` by a process
that stopped mid-dial, is never simply sent again: a second request could be a
second call. The reconciler looks for its call, first among the agent's calls
seen on its events but not tracked yet (``recent_calls``), then in the
platform's call history, and acts on the pure
:func:`outdial.handlers.reconcile.decide`: a matching call found means it was
placed (and it is tracked from then on); only a call still not found once the
history has had time to catch up lets the dial be sent again, under the same
claim, a bounded number of times. A lookup that fails leaves the claim
``unknown`` for the next :meth:`Reconciler.reconcile`.

A claim parked by a 429 (see :mod:`outdial.handlers.placing`) is no lost
dial: the platform said it placed nothing. It is not looked for; it is sent
again under the same claim (:meth:`Reconciler.resume`) when its trigger is
offered again, or, should that offer never come (the agent's readiness moved
on), by the next reconcile once its wait is over.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from outdial import log
from outdial.clock import Clock
from outdial.config import GuardsConfig
from outdial.handlers import guards, reconcile
from outdial.handlers.placing import (
    RATE_LIMITED,
    AgentLocks,
    DialResult,
    Placer,
    Unanswered,
    contact_id,
    request_for,
    skipped,
)
from outdial.handlers.reconcile import ClaimOwner, Found, ReconcilePolicy
from outdial.platforms.base import CallControl, OutboundCall
from outdial.store.base import Claim, Store

__all__ = ["RecentCalls", "Reconciler", "pid_alive_here", "this_process"]

logger = logging.getLogger("outdial.dialer")

#: The agent's calls already seen on its events (not tracked yet).
RecentCalls = Callable[[str], Sequence[OutboundCall]]


def this_process() -> ClaimOwner:
    """This process as a claim owner: host name, pid, and a nonce of this start."""
    return ClaimOwner(socket.gethostname(), os.getpid(), secrets.token_hex(4))


def pid_alive_here(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host (signal 0 probes, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class Reconciler:
    """Finds the calls of unknown dials, or sends them again when the platform has none.

    Shares the dialer's per-agent ``locks`` (a dial and a reconcile of one
    agent never overlap) and its ``placer`` (a dial sent again is sent and
    recorded as the first one was).
    """

    def __init__(
        self,
        platform: CallControl,
        store: Store,
        placer: Placer,
        locks: AgentLocks,
        clock: Clock,
        guards_config: GuardsConfig,
        *,
        policy: ReconcilePolicy,
        owner: ClaimOwner,
        pid_alive: Callable[[int], bool],
        recent_calls: RecentCalls | None = None,
    ) -> None:
        self.platform = platform
        self.store = store
        self.clock = clock
        self.policy = policy
        #: This process, as the owner of the claims it makes.
        self.owner = owner
        self._placer = placer
        self._lock = locks
        self._guards = guards_config
        self._pid_alive = pid_alive
        self._recent_calls = recent_calls

    def use_guards(self, guards_config: GuardsConfig) -> None:
        """Read numbers with the guards of a reloaded config from the next reconcile on."""
        self._guards = guards_config

    def needs_reconciling(self, claim: Claim, now: datetime) -> bool:
        """Whether ``claim`` is reconciled now: unknown, or in flight for a process gone;
        or parked here by a 429 whose wait is over (it is then sent again)."""
        parked = self._placer.parked(claim.key)
        if parked is not None and claim.state == "claimed":
            return self.clock.monotonic() >= parked.ready_at
        gone = reconcile.owner_gone(claim, now, self.owner, self._pid_alive)
        return reconcile.needs_reconciling(claim, now, self.policy, gone=gone)

    async def reconcile(self, key: str, *, allow_retry: bool = True) -> DialResult | None:
        """Reconcile the claim ``key`` if it needs it; None when it does not (any more).

        With ``allow_retry`` False (dialing is stopping) a dial found not
        placed stays ``unknown`` instead of being sent again.
        """
        claim = await self.store.get_claim(key)
        if claim is None:
            return None
        async with self._lock(claim.user_id):
            # Re-read under the lock: a dial or another reconcile may have settled it.
            claim = await self.store.get_claim(key)
            if claim is None or not self.needs_reconciling(claim, self.clock.now()):
                return None
            return await self._reconcile_locked(claim, allow_retry=allow_retry)

    async def resume(self, key: str, *, allow_retry: bool = True) -> DialResult:
        """Send the parked claim ``key`` again, under the same claim (the caller holds the lock).

        Only while it is still this process's and in flight: settled meanwhile
        (a reconcile, a replica that took over its lapsed lease), it is
        reported as the duplicate it now is, and nothing is sent.
        """
        claim = await self.store.get_claim(key)
        parked = self._placer.unpark(key)
        if claim is None or claim.state != "claimed" or claim.owner != str(self.owner):
            rule = claim.rule if claim else ""
            user = claim.user_id if claim else None
            return skipped(rule, key, "idempotency", "already_claimed", user=user)
        if not allow_retry:
            if parked is not None:  # still waiting: sent once dialing is on again
                self._placer.park_again(key, parked)
            return DialResult("skipped", claim.rule, key, guard=RATE_LIMITED, reason="dialing off")
        number, denied = await self._placer.contact_guards(claim)
        if denied is not None:
            await self._placer.deny_claimed(claim, denied)
            return skipped(
                claim.rule,
                key,
                denied.guard,
                denied.reason,
                user=claim.user_id,
                contact=contact_id(claim),
            )
        return await self.settle(
            await self._placer.place(claim, request_for(claim, number), parked)
        )

    async def settle(self, sent: DialResult | Unanswered) -> DialResult:
        """What a sent dial came to; one sent without an answer is reconciled at once.

        Under the agent's lock (the caller's). The call is often listed
        already; if not, the decision says wait.
        """
        if isinstance(sent, Unanswered):
            return await self._reconcile_locked(sent.claim, allow_retry=True)
        return sent

    def _claim_number(self, claim: Claim) -> str:
        raw = claim.phone_number or ""
        normalized = guards.normalize_number(raw, self._guards.default_region)
        if isinstance(normalized, guards.Allow) and normalized.value:
            return normalized.value
        return raw

    async def _reconcile_locked(self, claim: Claim, *, allow_retry: bool) -> DialResult:
        """Look for the unknown dial's call on the platform and act on :func:`reconcile.decide`."""
        policy = self.policy
        region = self._guards.default_region
        now = self.clock.now()
        if claim.state == "claimed" and self._placer.parked(claim.key) is not None:
            # Refused with a 429, so nothing to look for: send it again.
            return await self.resume(claim.key, allow_retry=allow_retry)
        if claim.state == "claimed":
            # Left behind by a process that stopped mid-dial: unknown since its last send.
            since = reconcile.last_send(claim)
            error = "the dialing process stopped before the platform answered"
            await self.store.mark_unknown(claim.key, error, since)
            claim = replace(claim, state="unknown", error=error, updated_at=since)
        number = self._claim_number(claim)
        seen = list(self._recent_calls(claim.user_id)) if self._recent_calls else []
        if seen:
            known = {
                c.conversation_id for c in seen if await self.store.get_call(c.conversation_id)
            }
            local = reconcile.decide(claim, number, seen, known, now, policy, region)
            if isinstance(local, reconcile.Found):
                return await self._found(claim, local, number, source="events")
        start, end = reconcile.search_window(claim, now, policy)
        try:
            calls = await self.platform.find_outbound_calls(
                claim.user_id, start, end, phone_number=number
            )
            known = {
                c.conversation_id for c in calls if await self.store.get_call(c.conversation_id)
            }
        except Exception as exc:
            log.emit(
                logger,
                "dial.reconcile_failed",
                logging.WARNING,
                rule=claim.rule,
                user=claim.user_id,
                key=claim.key,
                error=f"{type(exc).__name__}: {exc}",
            )
            reason = f"reconcile lookup failed: {exc}"
            return DialResult("unknown", claim.rule, claim.key, reason=reason)
        decision = reconcile.decide(claim, number, calls, known, now, policy, region)
        fields: dict[str, Any] = {"rule": claim.rule, "user": claim.user_id, "key": claim.key}
        if isinstance(decision, reconcile.Found):
            return await self._found(claim, decision, number, source="history")
        if isinstance(decision, reconcile.Wait):
            log.emit(logger, "dial.unresolved", **fields, until=decision.until.isoformat())
            reason = f"no call found yet; conclusive after {decision.until.isoformat()}"
            return DialResult("unknown", claim.rule, claim.key, reason=reason)
        if isinstance(decision, reconcile.GiveUp):
            return await self._placer.failed(claim, f"reconciled: {decision.reason}", None)
        if not allow_retry:
            return DialResult("unknown", claim.rule, claim.key, reason="not placed; dialing off")
        return await self._resend(claim, now)

    async def _found(self, claim: Claim, found: Found, number: str, *, source: str) -> DialResult:
        """The unknown dial's call was found (on the agent's events, or in the history)."""
        await self._placer.record_placed(claim, found.conversation_id, number)
        log.emit(
            logger,
            "dial.placed",
            rule=claim.rule,
            user=claim.user_id,
            key=claim.key,
            conversation=found.conversation_id,
            contact=contact_id(claim),
            number=number,
            reconciled=True,
            found_in=source,
        )
        return DialResult(
            "placed", claim.rule, claim.key, conversation_id=found.conversation_id, reconciled=True
        )

    async def _resend(self, claim: Claim, now: datetime) -> DialResult:
        """Send an unknown dial again: the platform has no call for it."""
        if not await self.store.retry_claim(
            claim.key,
            claim.retries,
            now,
            owner=str(self.owner),
            lease_until=reconcile.lease_until(now, self.policy),
        ):
            # Another reconciler (a replica) took it first.
            return skipped(
                claim.rule, claim.key, "idempotency", "retried_elsewhere", user=claim.user_id
            )
        fresh = await self.store.get_claim(claim.key)
        if fresh is None:  # pragma: no cover (claims are never deleted)
            raise KeyError(claim.key)
        log.emit(
            logger,
            "dial.resend",
            rule=fresh.rule,
            user=fresh.user_id,
            key=fresh.key,
            retry=fresh.retries,
        )
        number, denied = await self._placer.contact_guards(fresh)
        if denied is not None:
            await self._placer.deny_claimed(fresh, denied)
            return skipped(
                fresh.rule,
                fresh.key,
                denied.guard,
                denied.reason,
                user=fresh.user_id,
                contact=contact_id(fresh),
            )
        return await self.settle(await self._placer.place(fresh, request_for(fresh, number)))
