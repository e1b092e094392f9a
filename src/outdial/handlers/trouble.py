"""How the router's parts report trouble: one log shape, whichever part met it.

The router (:mod:`~outdial.handlers.dispatch`), the call tracker, the gap
refresher and the readiness offers never raise for one bad event, one failing
rule or a store that is away; they say so here and go on. Users and tests read
these log events (``handler.error``, ``handler.store_unavailable``,
``call.malformed``, ``event.malformed``), so their names and fields are fixed.
"""

from __future__ import annotations

import logging
from datetime import datetime

from outdial import log
from outdial.domain import Decoded
from outdial.events import Event
from outdial.platforms.base import Codec, MalformedEvent
from outdial.store.base import StoreUnavailable

__all__ = ["decode", "report"]

# The router's logger for every part: a user's logging config names it, not the modules.
logger = logging.getLogger("outdial.handlers")


def report(where: str, event: Event | None, exc: BaseException, **fields: object) -> None:
    """Log what failed ``where`` (about ``event``, if any); a store away is only debug."""
    if isinstance(exc, StoreUnavailable):
        # Expected while the database is away, and said once by the store.
        log.emit(
            logger,
            "handler.store_unavailable",
            logging.DEBUG,
            where=where,
            topic=event.topic if event else None,
            reason=exc.reason,
            **fields,
        )
        return
    log.emit(
        logger,
        "handler.error",
        logging.ERROR,
        where=where,
        topic=event.topic if event else None,
        error=f"{type(exc).__name__}: {exc}",
        **fields,
    )


def decode(codec: Codec, event: Event, now: datetime) -> Decoded:
    """What the event says, in domain terms; a malformed body says nothing (logged)."""
    try:
        return codec.decode(event, now)
    except MalformedEvent as exc:
        calls = codec.is_calls_topic(event.topic)
        log.emit(
            logger,
            "call.malformed" if calls else "event.malformed",
            logging.WARNING,
            topic=event.topic,
            reason=str(exc),
        )
        return Decoded()
