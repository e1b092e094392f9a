"""A minimal Genesys-shaped platform (REST + WebSocket on one port) for the latency runs.

Just enough of the platform contract for ``GenesysPlatform`` and the listener:
token, channels, subscriptions, the call request, a call read, agent state
(the bulk ``GET /api/v2/users?id=..&expand=presence,routingStatus,
conversationSummary`` in the shape of ``users-expand-rest.json``, paged as the
platform pages it, ``GET /api/v2/users/{id}?expand=..``, and the single reads
``/presences/purecloud`` and ``/routingstatus``). Kept cheap (hand-written
HTTP/1.1 keep-alive and pre-encoded WebSocket frames on plain asyncio), so at
1,000 events/s it is never the bottleneck, which the full fake platform
(validation, call play-out in Python) is at that rate.

Two modes (``--mode``):

- ``latency`` (``bench/latency.py``): every accepted call plays out as the
  three call events of ``tests/fixtures/genesys/call-answered-sequence.json``
  (dialing, connected, disconnected), 20 ms apart, on the agent's
  ``conversations.calls`` topic, so a dialer that tracks its calls sees them
  end. Agents read over REST are ``Busy`` (a startup refresh dials no one);
  only the schedule makes them Available.
- ``ready`` (``bench/ready_latency.py``): agents start ``Away``, ``OFF_QUEUE``,
  with an idle conversation summary, and REST reads say what the agent is now.
  A call plays out as the agent sees it on a direct call
  (``call-nonacd-agent-hangs-up-sequence.json``: ``user`` and ``external``
  legs): 20 ms after the request the summary shows one active call and the call
  is dialing, 20 ms later it is connected, ``--call-seconds`` after the request
  both legs are disconnected (``endTime`` now, ``wrapupRequired`` false) and
  the summary shows none. Presence never changes because of a call.

Prints one JSON line when ready (``api_url``, ``login_url``, ``client_id``,
``client_secret``, ``agents``), then reads commands on standard input:
``go RATE COUNT SHARE`` publishes COUNT presence events at RATE per second on
an absolute schedule, a SHARE of them Available (dial triggers, round-robin
over the agents) and the rest Away, and prints what it did;
``ready RATE`` makes every agent Available in turn, RATE agents per second (a
presence event with a fresh ``modifiedDate`` each), and prints what it did;
``summaries`` publishes each agent's conversation summary once, as it is now;
``scale RATE SECONDS SHARE WARMUP GRACE`` publishes presence events at RATE
per second (``bench/scale.py``; see :meth:`MiniPlatform.scale`) and prints
what it did, with the event -> call request latencies it measured;
``stats`` prints ``{"calls_accepted": N, "requests": {...}}``; ``quit`` stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from _common import (
    call_bodies,
    envelope,
    is_trigger,
    iso_now,
    presence_body,
    stream_users,
    summary_body,
    user_call_bodies,
)
from servers.stream import accept_upgrade, frame, read_client, read_head

CALL_STEP = 0.02
#: The platform's page size of ``GET /api/v2/users`` when none is asked for, and its maximum.
USERS_PAGE_DEFAULT = 25
USERS_PAGE_MAX = 500
_SINCE = "2026-11-23T08:00:00.000Z"


@dataclass(eq=False)
class _Agent:
    """What the platform knows of one agent now."""

    id: str
    presence: str
    modified: str = _SINCE
    routing: str = "OFF_QUEUE"
    active_calls: int = 0


@dataclass(eq=False)
class _Channel:
    id: str
    topics: set[str] = field(default_factory=set)
    writer: asyncio.StreamWriter | None = None


class MiniPlatform:
    """Channels, subscriptions and calls in memory; one port for REST and WebSocket."""

    def __init__(self, agents: list[str], mode: str = "latency", call_seconds: float = 1.0) -> None:
        self.agents = agents
        self.mode = mode
        self.call_seconds = call_seconds
        self.port = 0
        self.channels: dict[str, _Channel] = {}
        self.by_topic: dict[str, _Channel] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.calls_accepted = 0
        self.requests: Counter[str] = Counter()
        self.serial = 0
        initial = "Away" if mode == "ready" else "Busy"
        self.state = {a: _Agent(a, initial) for a in agents}
        self._loop = asyncio.get_running_loop()
        self.request_at = 0.0
        #: ``scale``: each agent's trigger waiting for its call request (sent at, counted?).
        self.waiting: dict[str, tuple[float, bool]] = {}
        self.latencies: list[float] = []
        self.unattributed = 0

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
                # When the request reached the platform: the end of a scale trigger's latency.
                self.request_at = time.monotonic()
                url = urlsplit(target)
                path = url.path
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._socket(path, reader, writer, headers)
                    return
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, answer = self.route(method, path, body, parse_qsl(url.query))
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

    def route(
        self, method: str, path: str, body: bytes, query: list[tuple[str, str]] | None = None
    ) -> tuple[int, Any]:
        """The answer to one REST request: (status, JSON body or None)."""
        parts = path.strip("/").split("/")
        query = query or []
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
        if parts[:3] == ["api", "v2", "users"] and method == "GET":
            return self._users_route(parts, query)
        return 404, {"message": f"no route {method} {path}", "status": 404}

    def _users_route(self, parts: list[str], query: list[tuple[str, str]]) -> tuple[int, Any]:
        expands = {e for k, v in query if k == "expand" for e in v.split(",") if e}
        if len(parts) == 3:
            self.requests["users.list"] += 1
            return 200, self._list_users(query, expands)
        agent = self.state.get(parts[3])
        if agent is None:
            return 404, {"message": f"user {parts[3]} not found", "status": 404}
        if len(parts) == 4:
            self.requests["users.one"] += 1
            return 200, self._user(agent, expands)
        if parts[4:] == ["presences", "purecloud"]:
            self.requests["presence"] += 1
            return 200, self._rest_presence(agent)
        if parts[4:] == ["routingstatus"]:
            self.requests["routingstatus"] += 1
            return 200, self._rest_routing(agent)
        return 404, {"message": f"no route GET /{'/'.join(parts)}", "status": 404}

    def _list_users(self, query: list[tuple[str, str]], expands: set[str]) -> dict[str, Any]:
        """``GET /api/v2/users?id=..``: the known ids asked for (repeated or comma-separated)."""
        ids = [i for k, v in query if k == "id" for i in v.split(",") if i]
        params = dict(query)
        size = min(int(params.get("pageSize", USERS_PAGE_DEFAULT)), USERS_PAGE_MAX)
        number = max(1, int(params.get("pageNumber", 1)))
        known = [self.state[i] for i in dict.fromkeys(ids) if i in self.state]
        page = known[(number - 1) * size : number * size]
        return {
            "entities": [self._user(agent, expands) for agent in page],
            "pageSize": size,
            "pageNumber": number,
            "total": len(known),
            "pageCount": max(1, -(-len(known) // size)),
        }

    def _user(self, agent: _Agent, expands: set[str]) -> dict[str, Any]:
        """One user as ``users-expand-rest.json`` has it, with the expands asked for."""
        user: dict[str, Any] = {
            "id": agent.id,
            "name": f"Agent {agent.id[-6:]}",
            "state": "active",
            "selfUri": f"/api/v2/users/{agent.id}",
        }
        if "presence" in expands:
            user["presence"] = self._rest_presence(agent)
        if "routingStatus" in expands:
            user["routingStatus"] = self._rest_routing(agent)
        if "conversationSummary" in expands:
            user["conversationSummary"] = summary_body(agent.id, agent.active_calls)
        return user

    def _rest_presence(self, agent: _Agent) -> dict[str, Any]:
        """``user-presence-rest.json``: the event's fields and a few more."""
        body = presence_body(agent.presence)
        body["modifiedDate"] = agent.modified
        body.update(
            {
                "id": "PURECLOUD",
                "name": "PURECLOUD",
                "sourceId": "PURECLOUD",
                "selfUri": f"/api/v2/users/{agent.id}/presences/PURECLOUD",
            }
        )
        return body

    def _rest_routing(self, agent: _Agent) -> dict[str, Any]:
        return {"userId": agent.id, "status": agent.routing, "startTime": _SINCE}

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
        waiting = self.waiting.pop(user, None)
        if waiting is None:
            self.unattributed += 1
        elif waiting[1]:
            self.latencies.append(self.request_at - waiting[0])
        self.calls_accepted += 1
        self.requests["call.place"] += 1
        conversation = str(uuid.uuid4())
        number = str(request.get("phoneNumber"))
        topic = f"v2.users.{user}.conversations.calls"
        if self.mode == "ready" and user in self.state:
            bodies = user_call_bodies(user, conversation, number, at=iso_now())
            self.calls[conversation] = bodies[0]
            agent = self.state[user]
            self._loop.call_later(CALL_STEP, self._call_starts, agent, conversation, bodies[0])
            self._loop.call_later(2 * CALL_STEP, self._call_connects, agent, bodies[1])
            self._loop.call_later(self.call_seconds, self._call_ends, agent, bodies[2])
        else:
            bodies = call_bodies(user, conversation, number)
            self.calls[conversation] = bodies[-1]
            for step, body in enumerate(bodies, start=1):
                self._loop.call_later(step * CALL_STEP, self.send, topic, body)
        return {"id": conversation, "selfUri": f"/api/v2/conversations/calls/{conversation}"}

    def _call_starts(self, agent: _Agent, conversation: str, body: dict[str, Any]) -> None:
        agent.active_calls += 1
        self.send(f"v2.users.{agent.id}.conversationsummary", summary_body(agent.id, 1))
        self.send(f"v2.users.{agent.id}.conversations.calls", body)

    def _call_connects(self, agent: _Agent, body: dict[str, Any]) -> None:
        body["participants"][1]["connectedTime"] = iso_now()
        self.calls[body["id"]] = body
        self.send(f"v2.users.{agent.id}.conversations.calls", body)

    def _call_ends(self, agent: _Agent, body: dict[str, Any]) -> None:
        """Both legs end now; then the summary shows the agent free of it."""
        ended = iso_now()
        for participant in body["participants"]:
            participant["endTime"] = ended
        self.calls[body["id"]] = body
        agent.active_calls = max(0, agent.active_calls - 1)
        self.send(f"v2.users.{agent.id}.conversations.calls", body)
        self.send(
            f"v2.users.{agent.id}.conversationsummary",
            summary_body(agent.id, agent.active_calls),
        )

    async def make_ready(self, rate: float) -> dict[str, Any]:
        """Every agent Available in turn, RATE per second, on an absolute schedule."""
        start = time.monotonic()
        delivered = 0
        most_late = 0.0
        for i, user in enumerate(self.agents):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                most_late = max(most_late, -delay)
            agent = self.state[user]
            agent.presence, agent.modified = "Available", iso_now()
            body = presence_body("Available")
            body["modifiedDate"] = agent.modified
            delivered += self.send(f"v2.users.{user}.presence", body)
        took = time.monotonic() - start
        return {
            "published": len(self.agents),
            "delivered": delivered,
            "seconds": took,
            "rate": len(self.agents) / took if took > 0 else 0.0,
            "most_late": most_late,
        }

    def publish_summaries(self) -> dict[str, Any]:
        """Each agent's conversation summary as it is now, once."""
        delivered = sum(
            self.send(f"v2.users.{a.id}.conversationsummary", summary_body(a.id, a.active_calls))
            for a in self.state.values()
        )
        return {"summaries": delivered}

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

    async def scale(
        self, rate: float, seconds: float, share: float, warmup: float, grace: float
    ) -> dict[str, Any]:
        """Presence events at RATE a second for WARMUP + SECONDS, a SHARE of them Available.

        Every millisecond tick sends the events due by then (an absolute schedule),
        each agent in turn. A trigger's latency runs from the moment its frame is
        written to the moment the agent's call request reaches this server (both on
        this process's monotonic clock); triggers written during the last SECONDS
        are measured, and GRACE seconds after the last one the undialed are counted.
        """
        templates = {
            presence: envelope(
                "v2.users.%(user)s.presence",
                {**presence_body(presence), "modifiedDate": "%(date)s"},
                "%(correlation)s",
            )
            for presence in ("Available", "Away")
        }
        self.waiting.clear()
        self.latencies = []
        self.unattributed = 0
        total = int(rate * (warmup + seconds))
        first_measured = int(rate * warmup)
        measured = undialed_at_end = 0
        triggers = others = delivered = 0
        most_late = 0.0
        start = time.monotonic()
        sent = 0
        while sent < total:
            now = time.monotonic()
            due = min(total, int((now - start) * rate) + 1)
            most_late = max(most_late, now - (start + sent / rate))
            for i in range(sent, due):
                if is_trigger(i, share):
                    user, presence = self.agents[triggers % len(self.agents)], "Available"
                    triggers += 1
                else:
                    user, presence = self.agents[others % len(self.agents)], "Away"
                    others += 1
                self.serial += 1
                text = templates[presence] % {
                    "user": user,
                    "date": iso_now(),
                    "correlation": f"00000000-0000-0000-0000-{self.serial:012d}",
                }
                channel = self.by_topic.get(f"v2.users.{user}.presence")
                if channel is None or channel.writer is None or channel.writer.is_closing():
                    continue
                channel.writer.write(frame(1, text.encode()))
                delivered += 1
                if presence == "Available":
                    counted = i >= first_measured
                    measured += counted
                    old = self.waiting.get(user)
                    if old is not None and old[1]:
                        undialed_at_end += 1  # superseded before its dial: never dialed
                    self.waiting[user] = (time.monotonic(), counted)
            sent = due
            await asyncio.sleep(0.001)
        took = time.monotonic() - start
        await asyncio.sleep(grace)
        undialed = undialed_at_end + sum(1 for _, counted in self.waiting.values() if counted)
        return {
            "published": total,
            "delivered": delivered,
            "seconds": took,
            "rate": total / took if took > 0 else 0.0,
            "most_late": most_late,
            "measured": measured,
            "latencies": self.latencies,
            "undialed": undialed,
            "unattributed": self.unattributed,
            "calls_accepted": self.calls_accepted,
        }


async def main(args: argparse.Namespace) -> None:
    """Serve until ``quit`` on standard input."""
    platform = MiniPlatform(stream_users(args.agents, "lat"), args.mode, args.call_seconds)
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
            elif line[0] == "scale":
                numbers = [float(x) for x in line[1:6]]
                print(json.dumps(await platform.scale(*numbers)), flush=True)
            elif line[0] == "ready":
                print(json.dumps(await platform.make_ready(float(line[1]))), flush=True)
            elif line[0] == "summaries":
                print(json.dumps(platform.publish_summaries()), flush=True)
            elif line[0] == "stats":
                stats = {"calls_accepted": platform.calls_accepted, "requests": platform.requests}
                print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=("latency", "ready"), default="latency")
    parser.add_argument(
        "--call-seconds", type=float, default=1.0, help="ready mode: request to both legs ended"
    )
    asyncio.run(main(parser.parse_args()))
