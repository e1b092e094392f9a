"""Network odds and ends both fakes need: loopback URLs and resets instead of clean closes."""

from __future__ import annotations

import socket
import struct
from contextlib import suppress
from typing import Any

import anyio.abc

__all__ = ["abort_transport", "set_linger_zero", "url_host"]

# SO_LINGER on with a zero timeout: closing sends RST instead of FIN.
_LINGER_ZERO = struct.pack("ii", 1, 0)


def url_host(host: str) -> str:
    """``host`` as it goes in a URL a client can dial: a wildcard bind names loopback,
    an IPv6 address is bracketed."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def set_linger_zero(stream: anyio.abc.SocketStream) -> None:
    """Make closing ``stream`` send RST instead of FIN (``SO_LINGER`` on, timeout 0)."""
    try:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    except (OSError, anyio.TypedAttributeLookupError):
        pass  # already closed: nothing left to reset


def abort_transport(transport: Any) -> None:
    """Drop an asyncio transport without a goodbye: the peer sees a connection reset."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()
