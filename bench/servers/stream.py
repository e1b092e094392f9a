"""A tiny WebSocket server speaking the platform's envelope, for throughput and memory runs.

It streams ``n`` pre-encoded notification frames to each connection as fast as
the socket takes them (whole blocks of frames per write, with TCP flow
control), so the client under test, not the server, is the bottleneck. The
same server feeds the bare ``websockets`` loop and outdial's listener.

Query parameters of the connect URL: ``n`` frames to send (default 10,000),
``users`` agents in the stream (default 50), ``prefix`` for their ids,
``rate`` frames per second (default 0: flat out; else paced on an absolute
schedule, the frames due written every 5 ms). It
answers the platform's app-level ``{"message":"ping"}`` with a pong, protocol
pings with pongs, and a close frame with a close frame.

Run from ``bench/``: ``python -m servers.stream`` prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import sys
from functools import cache
from urllib.parse import parse_qs, urlsplit

from _common import stream_frames, stream_users

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_PONG = json.dumps({"topicName": "channel.metadata", "eventBody": {"message": "pong"}}).encode()
_ROUNDS = 4  # rounds of each agent's day in one pre-encoded block


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked (server-to-client) frame with FIN set."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


@cache
def _encoded(users: int, prefix: str) -> tuple[bytes, ...]:
    frames = stream_frames(stream_users(users, prefix), _ROUNDS)
    return tuple(frame(1, f.encode()) for f in frames)


@cache
def _block(users: int, prefix: str) -> bytes:
    return b"".join(_encoded(users, prefix))


#: Seconds between the writes of a paced stream.
_TICK = 0.005


async def _paced(
    writer: asyncio.StreamWriter, n: int, users: int, prefix: str, rate: float
) -> None:
    """``n`` frames at ``rate`` a second: every tick, the frames due by then (absolute schedule)."""
    frames = _encoded(users, prefix)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while sent < n:
        due = min(n, int((loop.time() - start) * rate) + 1)
        chunk = [frames[i % len(frames)] for i in range(sent, due)]
        writer.write(b"".join(chunk))
        sent = due
        await writer.drain()
        await asyncio.sleep(_TICK)


async def _stream(
    writer: asyncio.StreamWriter, n: int, users: int, prefix: str, rate: float = 0.0
) -> None:
    if rate > 0:
        await _paced(writer, n, users, prefix, rate)
        return
    frames = _encoded(users, prefix)
    block = _block(users, prefix)
    full, rest = divmod(n, len(frames))
    for _ in range(full):
        writer.write(block)
        await writer.drain()
    writer.write(b"".join(frames[:rest]))
    await writer.drain()


async def read_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the client's frames (pings, close) until it closes; ignore the rest."""
    while True:
        head = await reader.readexactly(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if head[1] & 0x80 else b""
        payload = await reader.readexactly(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if opcode == 0x8:
            writer.write(frame(0x8, payload[:2]))
            await writer.drain()
            return
        if opcode == 0x9:
            writer.write(frame(0xA, payload))
        elif opcode == 0x1 and b'"ping"' in payload:
            writer.write(frame(0x1, _PONG))


def read_head(raw: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and lower-cased headers of an HTTP/1.1 request head."""
    lines = raw.decode("latin-1").split("\r\n")
    method, target = lines[0].split(" ")[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def accept_upgrade(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
    """Answer a WebSocket handshake with 101 (no extensions: frames go out uncompressed)."""
    digest = hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode()).digest()
    accept = base64.b64encode(digest).decode()
    writer.write(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        _, target, headers = read_head(await reader.readuntil(b"\r\n\r\n"))
        accept_upgrade(writer, headers)
        query = parse_qs(urlsplit(target).query)
        n = int(query.get("n", ["10000"])[0])
        users = int(query.get("users", ["50"])[0])
        prefix = query.get("prefix", ["a"])[0]
        rate = float(query.get("rate", ["0"])[0])
        reading = asyncio.ensure_future(read_client(reader, writer))
        try:
            await _stream(writer, n, users, prefix, rate)
            await reading  # hold the socket open until the client closes it
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
    except (asyncio.IncompleteReadError, ConnectionError, KeyError, IndexError):
        pass
    finally:
        writer.close()


async def main() -> None:
    """Listen on a free loopback port, print it, serve until terminated."""
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
