"""CXone call control: ``dial-phone`` on the agent's session, correlated exactly once.

``dial-phone`` answers 202 (accepted, not placed), and whether the answer
names the contact is not settled. :meth:`CxoneCalls.place_call` therefore:

1. registers the dial with the :class:`~.correlate.DialCorrelator` *before*
   sending it (a contact seen before the request is never taken for it);
2. sends it on the agent's live session (none: :class:`RetryableError`);
3. on a 202 that names the contact, that is the call; otherwise waits up to
   ``contact_wait`` for the next new outbound contact of that session to the
   number (the event source resolves it before the event is queued);
4. none came, or the answer was lost (timeout, 5xx, connection dropped after
   sending): re-reads ``contacts/active?agentId=`` for a new outbound contact
   to the number;
5. still none: :class:`AmbiguousOutcome`. The dial is **never re-sent**; the
   daemon's reconciler asks :meth:`find_outbound_calls` later, so a dial whose
   answer was lost, even across a restart, is found there and not placed twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import anyio
from pydantic import ValidationError

from outdial.clock import Clock
from outdial.config import CxonePlatformConfig
from outdial.domain import DialRequest, OutboundCall, PlacedCall
from outdial.log import emit
from outdial.platforms.base import (
    AmbiguousOutcome,
    CallSnapshot,
    FieldProblem,
    PlatformError,
    RetryableError,
)
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.client import CxoneClient
from outdial.platforms.cxone.correlate import (
    DialCorrelator,
    PendingDial,
    SessionRegistry,
    same_number,
)
from outdial.platforms.cxone.shapes import active_contact_event, completed_contact_event

__all__ = ["CLOCK_SLACK", "COMPLETED_LOOKBACK", "START_TOLERANCE", "CxoneCalls"]

log = logging.getLogger("outdial.dialer")

#: How far back :meth:`CxoneCalls.get_call` looks among completed contacts.
COMPLETED_LOOKBACK = timedelta(hours=24)
#: A re-read contact that started this much before the dial is not the dial's (clock skew).
START_TOLERANCE = timedelta(seconds=60)
#: How far ahead of our clock a lookup window reaches (the platform's clock may run ahead).
CLOCK_SLACK = timedelta(hours=1)


def _validation_error(exc: ValidationError) -> PlatformError:
    return PlatformError(
        "the dial-phone request would be rejected by the platform",
        status=400,
        code="outdial.invalid.request",
        details=[
            FieldProblem(".".join(str(p) for p in e["loc"]) or "(body)", e["type"], e["msg"])
            for e in exc.errors()
        ],
    )


#: ``dial-phone`` answers for a session that is no longer there (ended: 409; unknown: 404).
_SESSION_GONE = frozenset({404, 409})


class CxoneCalls:
    """The :class:`~outdial.platforms.base.CallControl` of CXone."""

    def __init__(
        self,
        client: CxoneClient,
        settings: CxonePlatformConfig,
        clock: Clock,
        sessions: SessionRegistry,
        correlator: DialCorrelator,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._sessions = sessions
        self._correlator = correlator
        # What the metrics read off a platform's call control: its REST accounting.
        self.rest_stats = client.rest_stats
        self.budget = client.budget

    async def place_call(self, request: DialRequest) -> PlacedCall:
        """``dial-phone`` for ``request.user_id``; the answer names the contact (ContactID)."""
        agent = request.user_id
        session = self._sessions.session_for(agent)
        if session is None:
            raise RetryableError(f"CXone agent {agent} has no live session to dial from (yet)")
        skill = self._settings.skill_for(agent)
        if skill is None:
            raise PlatformError(
                f"no outbound skill for CXone agent {agent}: set platform.skill_id (or "
                f'platform.agents."{agent}".skill_id) to a manual outbound phone skill',
                code="outdial.no.skill",
            )
        try:
            body = wire.DialPhoneRequest(
                phoneNumber=request.phone_number, skillId=skill, callerId=request.caller_id
            )
        except ValidationError as exc:
            raise _validation_error(exc) from None
        started = self._clock.now()
        with self._correlator.expect(agent, request.phone_number) as pending:
            try:
                answer = await self._client.dial_phone(session, body)
            except AmbiguousOutcome as exc:
                return await self._after_lost_answer(pending, started, str(exc))
            except RetryableError as exc:
                if exc.status is None or exc.status < 500:
                    raise  # refused before acting (429), or never reached the platform
                return await self._after_lost_answer(pending, started, str(exc))
            except PlatformError as exc:
                if exc.status in _SESSION_GONE:
                    # The session ended under the dial (a 409 racing the poll that would
                    # have said so): nothing was placed; the next session dials it.
                    raise RetryableError(
                        f"CXone agent {agent}'s session {session} ended before the dial; "
                        "it is sent again on the agent's next session",
                        status=exc.status,
                    ) from exc
                raise
            if answer.contact_id:
                self._correlator.claim(answer.contact_id)
                return self._placed(agent, answer.contact_id, "answer")
            return await self._settle(pending, started, "accepted")

    async def _after_lost_answer(
        self, pending: PendingDial, started: datetime, why: str
    ) -> PlacedCall:
        """The dial may or may not have been taken: re-read first, then wait as for a 202."""
        found = await self._reread(pending, started, why)
        return found if found is not None else await self._settle(pending, started, why)

    async def _settle(self, pending: PendingDial, started: datetime, why: str) -> PlacedCall:
        """Wait for the contact's event, then re-read once; else the outcome is unknown."""
        if await self._wait(pending):
            assert pending.contact_id is not None
            return self._placed(pending.agent_id, pending.contact_id, "event")
        why = f"{why}; no contact within {self._settings.contact_wait:g} s"
        found = await self._reread(pending, started, why)
        if found is not None:
            return found
        raise AmbiguousOutcome(
            f"dial-phone for agent {pending.agent_id}: {why}, and no new outbound contact to "
            "the number is active; reconcile before any retry (never re-send)"
        )

    def _placed(self, agent: str, contact_id: str, how: str) -> PlacedCall:
        emit(log, "cxone.dial_correlated", agent=agent, contact=contact_id, by=how)
        return PlacedCall(conversation_id=contact_id)

    async def _wait(self, pending: PendingDial) -> bool:
        """Wait for the contact until ``contact_wait`` has passed on the clock."""
        if pending.contact_id is not None:
            return True
        deadline = self._clock.monotonic() + self._settings.contact_wait
        async with anyio.create_task_group() as tg:

            async def expire() -> None:
                await self._clock.sleep_until(deadline)
                tg.cancel_scope.cancel()

            tg.start_soon(expire)
            await pending.resolved.wait()
            tg.cancel_scope.cancel()
        return pending.contact_id is not None

    async def _reread(self, pending: PendingDial, started: datetime, why: str) -> PlacedCall | None:
        """A new outbound contact of the agent to the number, from ``contacts/active``."""
        if pending.contact_id is not None:
            return self._placed(pending.agent_id, pending.contact_id, "event")
        try:
            contacts = await self._client.active_contacts(pending.agent_id)
        except PlatformError as exc:
            raise AmbiguousOutcome(
                f"dial-phone for agent {pending.agent_id}: {why}, and re-reading its contacts "
                f"failed ({exc.message}); reconcile before any retry",
                status=exc.status,
                correlation_id=exc.correlation_id,
            ) from exc
        if pending.contact_id is not None:  # the event came while we read
            return self._placed(pending.agent_id, pending.contact_id, "event")
        for contact in contacts:
            cid = str(contact.contact_id)
            begun = wire.parse_time(contact.start_date)
            if (
                contact.is_outbound
                and cid not in pending.known_before
                and not self._correlator.claimed(cid)
                and same_number(pending.number, contact.to_address)
                and (begun is None or begun >= started - START_TOLERANCE)
            ):
                self._correlator.claim(cid)
                pending.resolve(cid)
                return self._placed(pending.agent_id, cid, "re-read")
        return None

    async def get_call(self, conversation_id: str) -> CallSnapshot | None:
        """The contact as a ``CallContactEvent`` body: active, else completed, else None."""
        agent = self._correlator.agent_of(conversation_id)
        for contact in await self._client.active_contacts(agent):
            if str(contact.contact_id) == conversation_id:
                return CallSnapshot(conversation_id, active_contact_event(contact))
        now = self._clock.now()
        done = await self._client.completed_contacts(
            now - COMPLETED_LOOKBACK, now + CLOCK_SLACK, agent
        )
        for finished in done:
            if str(finished.contact_id) == conversation_id:
                return CallSnapshot(conversation_id, completed_contact_event(finished))
        return None

    async def find_outbound_calls(
        self,
        user_id: str,
        since: datetime,
        until: datetime,
        phone_number: str | None = None,
    ) -> list[OutboundCall]:
        """The agent's outbound contacts that started in ``[since, until)``, active and
        completed, oldest first (``phone_number`` is checked by the caller)."""
        calls: dict[str, OutboundCall] = {}
        for contact in await self._client.active_contacts(user_id):
            begun = wire.parse_time(contact.start_date) or wire.parse_time(contact.last_update_time)
            if contact.is_outbound and begun is not None and since <= begun < until:
                cid = str(contact.contact_id)
                calls[cid] = OutboundCall(cid, begun, contact.to_address or None)
        for finished in await self._client.completed_contacts(since, until, user_id):
            begun = wire.parse_time(finished.contact_start)
            if not finished.is_outbound or begun is None or not since <= begun < until:
                continue
            if finished.agent_id is not None and str(finished.agent_id) != user_id:
                continue
            cid = str(finished.contact_id)
            ended = wire.parse_time(finished.last_update_time) or begun
            calls[cid] = OutboundCall(cid, begun, finished.to_address or None, ended)
        return sorted(calls.values(), key=lambda c: (c.started_at, c.conversation_id))
