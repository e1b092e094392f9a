"""What every platform's REST client does the same way on the wire.

* Every connection closes with a reset (``SO_LINGER`` 0, :data:`ABORT_ON_CLOSE`):
  a request abandoned at its timeout is dropped from the kernel's buffers at
  once, instead of being retransmitted and reaching the platform long after we
  gave up on it (and after a reconciled re-send could have placed the call a
  second time).
* :func:`send` sends one request and classifies a missing answer: nothing
  reached the platform (a refused or timed-out connect) is always retryable;
  a request that was sent and got no answer is :class:`AmbiguousOutcome` when
  it may have taken effect (a dial), else retryable. Every answer and every
  missing one is counted in :class:`~outdial.platforms.ratelimit.RestStats`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import httpx

from outdial.platforms.base import AmbiguousOutcome, RetryableError
from outdial.platforms.ratelimit import RestStats

__all__ = ["ABORT_ON_CLOSE", "send"]

ABORT_ON_CLOSE: list[tuple[int, int, bytes]] = [
    (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
]


async def send(
    http: httpx.AsyncClient,
    stats: RestStats,
    method: str,
    url: str,
    *,
    what: str,
    ambiguous_after_send: bool = False,
    **request: Any,
) -> httpx.Response:
    """Send one request; an answer of any status comes back (and is counted)."""
    try:
        response = await http.request(method, url, **request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        stats.unanswered += 1
        # Nothing reached the platform: safe to retry whatever the request was.
        raise RetryableError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except httpx.TransportError as exc:
        stats.unanswered += 1
        if ambiguous_after_send:
            raise AmbiguousOutcome(
                f"{what}: sent, but no answer ({type(exc).__name__}); "
                "the outcome must be reconciled before any retry"
            ) from exc
        raise RetryableError(f"{what}: {type(exc).__name__}: {exc}") from exc
    stats.responses[response.status_code] = stats.responses.get(response.status_code, 0) + 1
    return response
