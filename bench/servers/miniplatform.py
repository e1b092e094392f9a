"""A minimal Genesys-shaped platform (REST + WebSocket on one port) for the latency run.

Just enough of the platform contract for ``GenesysPlatform`` and the listener:
token, channels, subscriptions, the call request, a call read, agent state.
Kept cheap (hand-written HTTP/1.1 keep-alive and pre-encoded WebSocket frames
on plain asyncio), so at 1,000 events/s it is never the bottleneck, which the
full fake platform (validation, call play-out in Python) is at that rate.

Every accepted call plays out as the three call events of
``tests/fixtures/genesys/call-answered-sequence.json`` (dialing, connected,
disconnected), 20 ms apart, on the agent's ``conversations.calls`` topic, so
a dialer that tracks its calls sees them end. Agents read over REST are
``Busy`` (a startup refresh dials no one); only the schedule makes them
Available.

Prints one JSON line when ready (``api_url``, ``login_url``, ``client_id``,
``client_secret``, ``agents``), then reads commands on standard input:
``go RATE COUNT SHARE`` publishes COUNT presence events at RATE per second on
an absolute schedule, a SHARE of them Available (dial triggers, round-robin
over the agents) and the rest Away, and prints what it did;
``stats`` prints ``{"calls_accepted": N}``; ``quit`` stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from _common import call_bodies, envelope, is_trigger, presence_body, stream_users
from servers.stream import accept_upgrade, frame, read_client, read_head

CALL_STEP = 0.02


@dataclass(eq=False)
class _Channel:
    id: str
    topics: set[str] = field(default_factory=set)
    writer: asyncio.StreamWriter | None = None


class MiniPlatform:
    """Channels, subscriptions and calls in memory; one port for REST and WebSocket."""

    def __init__(self, agents: list[str]) -> None:
        self.agents = agents
        self.port = 0
        self.channels: dict[str, _Channel] = {}
        self.by_topic: dict[str, _Channel] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.calls_accepted = 0
        self.serial = 0
        self._loop = asyncio.get_running_loop()

    def send(self, topic: str, body: dict[str, Any]) -> bool:
        """Publish one event to the socket whose channel subscribes ``topic``."""
        channel = self.by_topic.get(topic)
        if channel is None or channel.writer is None or channel.writer.is_closing():
            return False
        self.serial += 1
        text = envelope(topic, body, str(uuid.UUID(int=self.serial)))
        channel.writer.write(frame(1, text.encode()))
        return True

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One TCP connection: HTTP requests (keep-alive) or a WebSocket upgrade."""
        try:
            while True:
                method, target, headers = read_head(await reader.readuntil(b"\r\n\r\n"))
                path = urlsplit(target).path
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._socket(path, reader, writer, headers)
                    return
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, answer = self.route(method, path, body)
                data = b"" if answer is None else json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + (b"" if method == "HEAD" else data)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _socket(
        self,
        path: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
    ) -> None:
        channel = self.channels.get(path.rsplit("/", 1)[-1])
        if channel is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        accept_upgrade(writer, headers)
        channel.writer = writer
        try:
            await read_client(reader, writer)
        finally:
            if channel.writer is writer:
                channel.writer = None

    def route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """The answer to one REST request: (status, JSON body or None)."""
        parts = path.strip("/").split("/")
        if path == "/oauth/token":
            return 200, {"access_token": "mini", "token_type": "bearer", "expires_in": 86399}
        if path == "/api/v2/notifications/channels" and method == "POST":
            created = _Channel(f"mini-{len(self.channels) + 1}")
            self.channels[created.id] = created
            uri = f"ws://127.0.0.1:{self.port}/channels/{created.id}"
            return 200, {"id": created.id, "connectUri": uri, "expires": None}
        if parts[:4] == ["api", "v2", "notifications", "channels"] and len(parts) >= 5:
            return self._channel_route(method, parts, body)
        if parts[:5] == ["api", "v2", "conversations", "calls", "user"] and method == "POST":
            return 200, self._place(parts[5], json.loads(body))
        if parts[:4] == ["api", "v2", "conversations", "calls"] and len(parts) == 5:
            call = self.calls.get(parts[4])
            return (404, {"message": "not found", "status": 404}) if call is None else (200, call)
        if parts[:3] == ["api", "v2", "users"] and parts[-1] == "purecloud":
            return 200, presence_body("Busy")
        if parts[:3] == ["api", "v2", "users"] and parts[-1] == "routingstatus":
            return 200, {"userId": parts[3], "status": "OFF_QUEUE", "startTime": None}
        return 404, {"message": f"no route {method} {path}", "status": 404}

    def _channel_route(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
        channel = self.channels.get(parts[4])
        if channel is None:
            return 404, {"message": "channel not found", "code": "not.found", "status": 404}
        if len(parts) == 5:
            return 200, None
        if method in ("PUT", "POST"):
            wanted = {e["id"] for e in json.loads(body)}
            if method == "PUT":
                for topic in channel.topics:
                    self.by_topic.pop(topic, None)
                channel.topics = set()
            channel.topics |= wanted
            self.by_topic.update(dict.fromkeys(channel.topics, channel))
        entities = [{"id": t, "state": "Permitted"} for t in sorted(channel.topics)]
        return 200, {"entities": entities}

    def _place(self, user: str, request: dict[str, Any]) -> dict[str, Any]:
        self.calls_accepted += 1
        conversation = str(uuid.uuid4())
        bodies = call_bodies(user, conversation, str(request.get("phoneNumber")))
        self.calls[conversation] = bodies[-1]
        topic = f"v2.users.{user}.conversations.calls"
        for step, body in enumerate(bodies, start=1):
            self._loop.call_later(step * CALL_STEP, self.send, topic, body)
        return {"id": conversation, "selfUri": f"/api/v2/conversations/calls/{conversation}"}

    async def publish(self, rate: float, count: int, share: float) -> dict[str, Any]:
        """COUNT presence events at RATE per second: ``share`` Available, the rest Away."""
        start = time.monotonic()
        delivered = 0
        most_late = 0.0
        triggers = others = 0
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                most_late = max(most_late, -delay)
            if is_trigger(i, share):
                user, presence = self.agents[triggers % len(self.agents)], "Available"
                triggers += 1
            else:
                user, presence = self.agents[others % len(self.agents)], "Away"
                others += 1
            delivered += self.send(f"v2.users.{user}.presence", presence_body(presence, i))
        took = time.monotonic() - start
        return {
            "published": count,
            "delivered": delivered,
            "seconds": took,
            "rate": count / took if took > 0 else 0.0,
            "most_late": most_late,
        }


async def main(args: argparse.Namespace) -> None:
    """Serve until ``quit`` on standard input."""
    platform = MiniPlatform(stream_users(args.agents, "lat"))
    server = await asyncio.start_server(platform.connection, "127.0.0.1", 0)
    platform.port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{platform.port}"
    ready = {
        "api_url": base,
        "login_url": base,
        "client_id": "mini",
        "client_secret": "mini-secret",
        "agents": platform.agents,
    }
    print(json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    async with server:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "quit":
                return
            if line[0] == "go":
                stats = await platform.publish(float(line[1]), int(line[2]), float(line[3]))
                print(json.dumps(stats), flush=True)
            elif line[0] == "stats":
                print(json.dumps({"calls_accepted": platform.calls_accepted}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
