"""Notification channels of the fake Genesys platform: create, list, HEAD, subscriptions,
expiry and eviction (the REST side; the sockets are :mod:`.sockets`).
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from outdial.fake.common.routes import Routes
from outdial.fake.genesys.core import Endpoint, GenesysCore, not_found
from outdial.fake.genesys.recorded import SubscriptionChange
from outdial.fake.script import (
    iso_ms,
)
from outdial.fake.validation import (
    check_topic,
    check_topic_count,
    parse_json,
    validate_topic_list,
)
from outdial.http import Request, Response
from outdial.log import emit

if TYPE_CHECKING:
    from outdial.fake.genesys.sockets import Socket

__all__ = ["MAX_CHANNELS", "ChannelsMixin"]

_log = logging.getLogger("outdial.fake")

MAX_CHANNELS = 20
"""Channels one client may hold; creating one more evicts the oldest."""

_REPLACED = "Replaced by a newer connection to this channel"


@dataclass(slots=True, eq=False)
class Channel:
    """A notification channel: its topics, expiry and the socket connected to it (if any)."""

    id: str
    client_id: str
    expires_at: float
    expires_wall: datetime
    topics: dict[str, None] = field(default_factory=dict)
    socket: Socket | None = None


class ChannelsMixin(GenesysCore):
    """Channels and their subscriptions, and the routes that manage them."""

    channel_lifetime: float
    _channels: dict[str, Channel]

    def _channel_routes(self, routes: Routes[Endpoint]) -> None:
        channels = "/api/v2/notifications/channels"
        routes.add("POST", channels, Endpoint(self._h_create_channel))
        routes.add("GET", channels, Endpoint(self._h_list_channels))
        routes.add("HEAD", f"{channels}/{{channel_id}}", Endpoint(self._h_head_channel))
        subscriptions = f"{channels}/{{channel_id}}/subscriptions"
        routes.add("GET", subscriptions, Endpoint(self._h_get_subscriptions))
        routes.add("PUT", subscriptions, Endpoint(self._h_put_subscriptions))
        routes.add("POST", subscriptions, Endpoint(self._h_post_subscriptions))
        routes.add("DELETE", subscriptions, Endpoint(self._h_delete_subscriptions))

    async def wait_for_subscription(
        self,
        topic: str,
        timeout: float = 5.0,  # noqa: ASYNC109 (the deadline is the point of this helper)
    ) -> None:
        """Wait until a connected socket's channel subscribes ``topic`` (so a published event
        reaches the client); :class:`TimeoutError` after ``timeout`` seconds."""

        def subscribed() -> bool:
            return any(
                c.socket is not None and topic in c.topics for c in list(self._channels.values())
            )

        await self.wait_for(subscribed, timeout)

    def channel_topics(self, channel_id: str) -> list[str]:
        """The topics a live channel subscribes (empty when the channel is gone)."""
        channel = self._live_channel(channel_id)
        return [] if channel is None else list(channel.topics)

    @property
    def live_channels(self) -> list[str]:
        """Ids of the channels that exist now, oldest first."""
        return [c.id for c in list(self._channels.values()) if self._live_channel(c.id)]

    @property
    def connected_channels(self) -> list[str]:
        """Ids of the channels that have a WebSocket connected now."""
        return [c.id for c in self._channels.values() if c.socket is not None]

    def evict_oldest(self) -> str | None:
        """Evict the oldest live channel, as creating a 21st one would; return its id."""
        live = self.live_channels
        if not live:
            return None
        self._remove_channel(self._channels[live[0]], "channel evicted: too many channels")
        return live[0]

    def expire_channel(self, channel_id: str) -> None:
        """End a channel now: HEAD answers 404, its socket is closed, reconnecting is refused."""
        channel = self._channels.get(channel_id)
        if channel is not None:
            self._remove_channel(channel, "channel expired")

    async def _h_create_channel(self, request: Request) -> Response:
        client = self.client_id
        mine = [c for c in self._channels.values() if c.client_id == client]
        while len(mine) >= MAX_CHANNELS:
            self._remove_channel(mine.pop(0), "channel evicted: too many channels")
        channel_id = "streaming-0-" + "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(26)
        )
        channel = Channel(
            channel_id,
            client,
            self._clock.monotonic() + self.channel_lifetime,
            self._clock.now() + timedelta(seconds=self.channel_lifetime),
        )
        self._channels[channel_id] = channel
        self.recorded.channels.append(channel_id)
        self._notify()
        emit(_log, "fake.channel.created", channel_id=channel_id)
        return Response.json(200, self._channel_json(channel))

    async def _h_list_channels(self, request: Request) -> Response:
        live = [c for c in list(self._channels.values()) if self._live_channel(c.id)]
        return Response.json(200, {"entities": [self._channel_json(c) for c in live]})

    async def _h_head_channel(self, request: Request, channel_id: str) -> Response:
        if self._live_channel(channel_id) is None:
            return Response.empty(404)
        return Response.empty(200)

    async def _h_get_subscriptions(self, request: Request, channel_id: str) -> Response:
        channel = self._require_channel(channel_id)
        return Response.json(200, _entities(channel.topics, []))

    async def _h_put_subscriptions(self, request: Request, channel_id: str) -> Response:
        return self._change_subscriptions(request, channel_id, replace=True)

    async def _h_post_subscriptions(self, request: Request, channel_id: str) -> Response:
        return self._change_subscriptions(request, channel_id, replace=False)

    async def _h_delete_subscriptions(self, request: Request, channel_id: str) -> Response:
        channel = self._require_channel(channel_id)
        channel.topics.clear()
        self.recorded.subscription_changes.append(SubscriptionChange(channel.id, "DELETE", ()))
        self._notify()
        return Response.json(200, {"entities": []})

    def _change_subscriptions(
        self, request: Request, channel_id: str, *, replace: bool
    ) -> Response:
        channel = self._require_channel(channel_id)
        topics = validate_topic_list(parse_json(request.body))
        verdicts = [check_topic(t) for t in topics]
        permitted = [v.topic for v in verdicts if v.permitted]
        merged = (
            dict.fromkeys(permitted) if replace else {**channel.topics, **dict.fromkeys(permitted)}
        )
        check_topic_count(len(merged))
        channel.topics = merged
        method = "PUT" if replace else "POST"
        self.recorded.subscription_changes.append(
            SubscriptionChange(channel.id, method, tuple(topics))
        )
        self._notify()
        rejected = [(v.topic, v.reason or "rejected") for v in verdicts if not v.permitted]
        return Response.json(200, _entities(channel.topics, rejected))

    def _channel_json(self, channel: Channel) -> dict[str, str]:
        return {
            "id": channel.id,
            "connectUri": f"{self.connect_url}/channels/{channel.id}",
            "expires": iso_ms(channel.expires_wall),
        }

    def _live_channel(self, channel_id: str) -> Channel | None:
        channel = self._channels.get(channel_id)
        if channel is not None and self._clock.monotonic() >= channel.expires_at:
            self._remove_channel(channel, "channel expired")
            return None
        return channel

    def _require_channel(self, channel_id: str) -> Channel:
        channel = self._live_channel(channel_id)
        if channel is None:
            raise not_found("Channel", "channelId", channel_id)
        return channel

    def _remove_channel(self, channel: Channel, reason: str) -> None:
        self._channels.pop(channel.id, None)
        sock, channel.socket = channel.socket, None
        if sock is not None and self._tg is not None:
            self._tg.start_soon(sock.close, 1000, reason)
        self._notify()
        emit(_log, "fake.channel.removed", channel_id=channel.id, reason=reason)


def _entities(topics: Iterable[str], rejected: Sequence[tuple[str, str]]) -> dict[str, Any]:
    entities: list[dict[str, str]] = [{"id": t, "state": "Permitted"} for t in topics]
    entities += [{"id": t, "state": "Rejected", "rejectionReason": why} for t, why in rejected]
    return {"entities": entities}
