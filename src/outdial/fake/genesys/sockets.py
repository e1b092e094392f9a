"""The notification WebSocket of the fake Genesys platform: connecting to a channel,
heartbeats, ping/pong, and the socket-level faults (kick, reset, malformed and
oversized frames, ``socket_closing``).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from outdial.fake.common.net import abort_transport
from outdial.fake.genesys.channels import _REPLACED
from outdial.fake.genesys.events import EventsMixin
from outdial.log import emit

__all__ = ["HEARTBEAT", "PONG", "SocketsMixin"]

_log = logging.getLogger("outdial.fake")

HEARTBEAT = json.dumps(
    {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
)
PONG = json.dumps({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})

_CHANNEL_PATH = re.compile(r"^/channels/([^/?#]+)$")
_ORG_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


@dataclass(slots=True, eq=False)
class Socket:
    """One WebSocket connection on a channel."""

    ws: ServerConnection
    channel_id: str

    async def send(self, text: str) -> bool:
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame: the peer sees a reset."""
        abort_transport(self.ws.transport)


class SocketsMixin(EventsMixin):
    """The streaming host: one socket per channel, heartbeats, pongs, socket faults."""

    heartbeats_enabled: bool
    answer_pings: bool
    pings_received: int
    heartbeat_interval: float

    async def send_malformed(self, text: str | None = None) -> int:
        """Send a frame that is not valid JSON (``text``, or a truncated envelope) to every
        socket; return how many got it."""
        frame = text if text is not None else '{"topicName": "v2.users.'
        return await self._send_raw(frame)

    async def send_oversized(self, nbytes: int) -> int:
        """Send a valid ``channel.metadata`` frame padded to ``nbytes`` bytes to every socket.

        A client with a smaller frame limit (``max_size`` in ``websockets``)
        closes the connection with 1009; return how many sockets it was sent to.
        """
        head = '{"topicName":"channel.metadata","eventBody":{"message":"oversized","padding":"'
        tail = '"}}'
        padding = max(0, nbytes - len(head) - len(tail))
        return await self._send_raw(head + "x" * padding + tail)

    async def publish_unknown_topic(
        self, topic: str = "v2.fake.unknown.topic", body: Mapping[str, Any] | None = None
    ) -> int:
        """Send an event on a topic no client subscribed to every socket (as a platform
        change or a stray event would); return how many got it."""
        envelope = {
            "topicName": topic,
            "version": "2",
            "eventBody": dict(body or {"unexpected": True}),
            "metadata": {"CorrelationId": str(uuid.uuid4())},
        }
        return await self._send_raw(json.dumps(envelope))

    async def _send_raw(self, text: str) -> int:
        delivered = 0
        for channel in list(self._channels.values()):
            if channel.socket is not None and await channel.socket.send(text):
                delivered += 1
        return delivered

    def kick_socket(self, channel_id: str) -> bool:
        """Close a channel's socket as a second socket on the channel would; False if none.

        The channel stays valid, so the client can reconnect to it.
        """
        channel = self._channels.get(channel_id)
        sock = channel.socket if channel is not None else None
        if channel is None or sock is None:
            return False
        channel.socket = None
        self._task_group.start_soon(sock.close, 1000, _REPLACED)
        self._notify()
        return True

    async def drop_sockets(self) -> None:
        """Reset every WebSocket connection abruptly (no close frame), as a network failure does."""
        for channel in list(self._channels.values()):
            if channel.socket is not None:
                channel.socket.abort()
        await anyio.lowlevel.checkpoint()

    async def send_socket_closing(
        self, channel_id: str | None = None, *, close_after: float | None = None
    ) -> None:
        """Send ``v2.system.socket_closing`` to every socket (or one channel's).

        With ``close_after``, also close those sockets that many seconds later,
        as the real platform does about a minute after its warning.
        """
        for channel in list(self._channels.values()):
            sock = channel.socket
            if sock is None or (channel_id is not None and channel.id != channel_id):
                continue
            body = {
                "channelId": channel.id,
                "systemTopicType": "socket_closing",
                "organizationId": _ORG_ID,
                "message": "Socket closing",
            }
            await sock.send(
                json.dumps({"topicName": "v2.system.socket_closing", "eventBody": body})
            )
            if close_after is not None:
                self._task_group.start_soon(self._close_later, sock, close_after)

    def _ws_process_request(
        self, connection: ServerConnection, request: WsRequest
    ) -> WsResponse | None:
        found = _CHANNEL_PATH.match(request.path.split("?", 1)[0])
        if found is None or self._live_channel(found.group(1)) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Channel not found\n")
        return None

    async def _ws_handler(self, ws: ServerConnection) -> None:
        found = _CHANNEL_PATH.match(ws.request.path.split("?", 1)[0]) if ws.request else None
        channel = self._live_channel(found.group(1)) if found else None
        if channel is None:
            await ws.close(1008, "Channel not found")
            return
        sock = Socket(ws, channel.id)
        previous, channel.socket = channel.socket, sock
        if previous is not None:
            # One socket per channel: the newcomer wins, the old one is told why.
            self._task_group.start_soon(previous.close, 1000, _REPLACED)
        self._notify()
        emit(_log, "fake.socket.connected", channel_id=channel.id)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats, sock)
                try:
                    async for message in ws:
                        await self._on_client_message(sock, message)
                except ConnectionClosed:
                    pass
                tg.cancel_scope.cancel()
        finally:
            if channel.socket is sock:
                channel.socket = None
            self._notify()
            emit(_log, "fake.socket.closed", channel_id=channel.id, code=ws.close_code)

    async def _heartbeats(self, sock: Socket) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            if self._live_channel(sock.channel_id) is None:
                return
            if self.heartbeats_enabled and not await sock.send(HEARTBEAT):
                return

    async def _on_client_message(self, sock: Socket, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("message") == "ping":
            self.pings_received += 1
            self._notify()
            if self.answer_pings:
                await sock.send(PONG)

    async def _close_later(self, sock: Socket, delay: float) -> None:
        await anyio.sleep(delay)
        await sock.close(1000, "Socket closing")

    @staticmethod
    async def _close_ws_server(server: Server) -> None:
        server.close(close_connections=True)
        with anyio.CancelScope(shield=True):
            await server.wait_closed()
