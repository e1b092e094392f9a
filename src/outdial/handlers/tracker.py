"""The call tracker: the store's calls, advanced by what the platform says of them.

Every call event is decoded into a :class:`~outdial.domain.CallUpdate` and
applied to the call outdial placed, through the pure state machine
(:func:`~outdial.handlers.calls.advance`, which never moves a call backwards).
On its end, the pure :func:`~outdial.handlers.disposition.contact_outcome`
says what becomes of the call's contact, and both are written in one store
operation.

Events of a call whose dial's answer is not back yet (the platform may tell of
the call before answering the request that placed it) are kept in a bounded
buffer, :class:`EarlyCalls`, and applied once the dial names the call; the
reconciler looks there first for a dial whose answer never came.

Calls may be updated by several workers at once (a dial for one agent, a call
event on another agent's topic): a lock per call, striped by hash, keeps two
read-modify-writes of one call from losing either.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import anyio

from outdial import log
from outdial.clock import Clock
from outdial.domain import CallSeen, CallState, CallUpdate, OutboundCall
from outdial.handlers import guards
from outdial.handlers.calls import Call, Outcome, advance
from outdial.handlers.dialer import DialResult
from outdial.handlers.disposition import contact_outcome
from outdial.handlers.live import Live
from outdial.store.base import CallChange, CallRecord, ContactOutcome, Store

__all__ = ["CallTracker", "EarlyCall", "EarlyCalls"]

logger = logging.getLogger("outdial.handlers")

# Call events that arrive before the dial's response names the call: kept
# (newest wins, oldest dropped past this many) and applied once it is named.
_EARLY_EVENTS = 256
# Locks guarding one call's read-modify-write, shared by hash: bounded memory,
# and two calls rarely wait for each other.
_CALL_LOCK_STRIPES = 64


@dataclass(frozen=True, slots=True)
class EarlyCall:
    """A call event for a conversation not tracked (yet): not ours, or ours before the
    dial's answer named it."""

    user_id: str | None
    call: CallSeen
    seen_at: datetime


class EarlyCalls:
    """The latest event of each call not tracked (yet), the newest ``size`` calls at most."""

    def __init__(self, size: int = _EARLY_EVENTS) -> None:
        self._size = size
        # Each with the agent whose topic carried it and when it was seen.
        self._calls: OrderedDict[str, EarlyCall] = OrderedDict()

    def keep(self, early: EarlyCall) -> None:
        """Keep ``early`` as its call's latest event, dropping the oldest call past the size."""
        cid = early.call.update.conversation_id
        self._calls[cid] = early
        self._calls.move_to_end(cid)
        while len(self._calls) > self._size:
            self._calls.popitem(last=False)

    def pop(self, conversation_id: str) -> EarlyCall | None:
        """Take the kept event of ``conversation_id``, if any."""
        return self._calls.pop(conversation_id, None)

    def recent_calls(self, user_id: str) -> list[OutboundCall]:
        """The agent's outbound calls seen on its events but not tracked (yet): where an
        unknown dial is looked for first, before asking the platform's call history."""
        calls: list[OutboundCall] = []
        for early in self._calls.values():
            call = early.call
            if early.user_id != user_id or not call.outbound or not call.number:
                continue
            started = call.started_at or early.seen_at
            calls.append(OutboundCall(call.update.conversation_id, started, call.number))
        return calls


class _Decision(NamedTuple):
    """A call event applied: the call as it was, as it is now, as written, its contact's fate."""

    call: Call
    new: Call
    written: CallRecord
    settled: ContactOutcome | None


def _to_call(record: CallRecord) -> Call:
    return Call(
        conversation_id=record.conversation_id,
        user_id=record.user_id,
        phone_number=record.phone_number,
        contact_id=record.contact_id,
        state=CallState(record.state),
        outcome=Outcome(record.outcome) if record.outcome else None,
    )


class CallTracker:
    """The calls outdial placed, as the store keeps them, advanced by :class:`CallUpdate`\\ s.

    ``early`` is the buffer of untracked calls' events; the composition shares
    it with the dialer (as its ``recent_calls``) so both read the same one.
    """

    def __init__(self, store: Store, clock: Clock, live: Live, early: EarlyCalls) -> None:
        self.store = store
        self.clock = clock
        self._live = live
        self._early = early
        # One call's events are read-modify-written in the store; these keep two
        # concurrent handle() calls from losing one of the updates.
        # fast_acquire: an uncontended lock (nearly always) is taken without a
        # trip through the event loop, on every call event.
        self._call_locks = tuple(anyio.Lock(fast_acquire=True) for _ in range(_CALL_LOCK_STRIPES))

    def _call_lock(self, conversation_id: str) -> anyio.Lock:
        return self._call_locks[zlib.crc32(conversation_id.encode()) % _CALL_LOCK_STRIPES]

    async def track(self, call: CallSeen, user_id: str | None) -> bool:
        """Advance the stored call an event is about; True when it is one outdial placed
        (it is tracked in the store)."""
        cid = call.update.conversation_id
        async with self._call_lock(cid):
            if not await self._apply(cid, call.update):
                # Not ours, or ours but the dial's response is not back yet.
                self._early.keep(EarlyCall(user_id, call, self.clock.now()))
                return False
        return True

    async def end_unseen(self, conversation_id: str) -> None:
        """End a tracked call the platform no longer knows (it ended while nobody looked)."""
        update = CallUpdate(conversation_id, CallState.ENDED, disconnect_type="unknown")
        async with self._call_lock(conversation_id):
            # Read under the lock (in the same operation): an event may have ended it meanwhile.
            await self._apply(conversation_id, update)

    async def dialed_now(self, user_id: str | None, call: CallSeen) -> bool:
        """Whether an untracked call is one of outdial's whose dial is still open.

        A dial whose answer is unknown (or not back yet) has no tracked call,
        but its call's events already come: a call of the agent to a number
        an open claim of the agent dials is taken as outdial's own.
        """
        if user_id is None or not call.number:
            return False
        region = self._live.config.guards.default_region
        number = guards.normalize_number(call.number, region)
        if not isinstance(number, guards.Allow):
            return False
        for claim in await self.store.open_claims(user_id):
            claimed = guards.normalize_number(claim.phone_number or "", region)
            if isinstance(claimed, guards.Allow) and claimed.value == number.value:
                return True
        return False

    async def after_dial(self, result: DialResult) -> CallRecord | None:
        """Track the call a dial placed: apply its early event, if one came first.

        Returns the call to re-read from the platform now: one found by
        reconciling, which may have moved on (or ended) unseen. None otherwise.
        """
        if result.status != "placed" or result.conversation_id is None:
            return None
        # Under the call's lock: a call event handled by another worker (the
        # dial was for another agent than the event's) either finds the call
        # recorded, or has left its event here before we look.
        async with self._call_lock(result.conversation_id):
            early = self._early.pop(result.conversation_id)
            if early is not None:
                await self._apply(result.conversation_id, early.call.update)
        if not result.reconciled:
            return None
        return await self.store.get_call(result.conversation_id)

    def _decide(self, record: CallRecord, update: CallUpdate) -> _Decision | None:
        """What ``update`` makes of the stored call (None: nothing changes); pure but for
        the clock's reading."""
        call = _to_call(record)
        new = advance(call, update)
        if new == call:
            return None
        now = self.clock.now()
        written = CallRecord(
            conversation_id=new.conversation_id,
            user_id=new.user_id,
            contact_id=new.contact_id,
            phone_number=new.phone_number,
            state=new.state.value,
            outcome=new.outcome.value if new.outcome else None,
            updated_at=now,
            ended_at=now if new.ended else None,
        )
        return _Decision(call, new, written, contact_outcome(new, now, self._live.config.guards))

    async def _apply(self, conversation_id: str, update: CallUpdate) -> bool:
        """Advance one stored call; on its end, record the contact's outcome. False when
        no call has ``conversation_id`` (it is not tracked).

        One store operation reads the call and writes it and, when it ended,
        its contact's outcome (or release), in one transaction: a call event
        costs one operation, and the end of a call one commit; the call and
        its contact are never written apart.
        """
        decided: _Decision | None = None

        def change(record: CallRecord) -> CallChange:
            # Run inside the store's operation (again, should it be tried again):
            # the last decision is the one written.
            nonlocal decided
            decided = self._decide(record, update)
            return None if decided is None else (decided.written, decided.settled)

        advanced = await self.store.advance_call(conversation_id, change)
        if advanced is None:
            return False
        if decided is None or advanced.written is None:
            return True
        call, new, written, settled = decided
        contact, now, config = advanced.contact, written.updated_at, self._live.config.guards
        self._live.observer.call_progressed(written)
        log.emit(
            logger,
            "call.state",
            conversation=new.conversation_id,
            user=new.user_id,
            state=new.state.value,
            previous=call.state.value,
        )
        if not new.ended or new.outcome is None:
            return True
        counted: bool | None = None
        next_due_at = None
        if contact is not None and settled is not None:
            counted = settled.counted
            # The contact's attempts as written (this one included when counted).
            next_due_at = guards.next_due_at(settled.outcome, contact.attempts, now, config)
        log.emit(
            logger,
            "call.ended",
            conversation=new.conversation_id,
            user=new.user_id,
            outcome=new.outcome.value,
            contact=new.contact_id,
            disconnect_type=update.disconnect_type,
            ended_by=update.ended_by,
            q850=update.q850,
            next_due_at=next_due_at.isoformat() if next_due_at else None,
            attempt_counted=counted,
        )
        return True
