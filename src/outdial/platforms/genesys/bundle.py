"""The Genesys Cloud ports, put together for the daemon."""

from __future__ import annotations

from random import Random

from outdial.clock import Clock
from outdial.config import ListenerConfig, PlatformConfig
from outdial.platforms.base import PlatformBundle
from outdial.platforms.genesys.client import GenesysPlatform
from outdial.platforms.genesys.codec import GenesysCodec
from outdial.platforms.genesys.sources import ChannelSources

__all__ = ["genesys_bundle", "genesys_client"]


def genesys_client(settings: PlatformConfig, clock: Clock | None = None) -> GenesysPlatform:
    """The REST client for a ``[platform] kind = "genesys"`` section."""
    return GenesysPlatform(
        api_url=settings.resolved_api_url,
        login_url=settings.resolved_login_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        timeout=settings.request_timeout,
        clock=clock,
        requests_per_minute=settings.requests_per_minute,
    )


def genesys_bundle(
    client: GenesysPlatform,
    listener: ListenerConfig,
    clock: Clock,
    rng: Random | None = None,
) -> PlatformBundle:
    """The ports of one Genesys client: REST calls and reads, the codec, channels."""
    return PlatformBundle(
        kind="genesys",
        calls=client,
        agents=client,
        codec=GenesysCodec(),
        sources=ChannelSources(client, listener, clock, rng),
        aclose=client.aclose,
    )
