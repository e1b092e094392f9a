"""The CXone platform bundle: every port on one client, registry and correlator."""

from __future__ import annotations

from random import Random

import httpx

from outdial.clock import Clock
from outdial.config import CxonePlatformConfig, ListenerConfig
from outdial.platforms.base import PlatformBundle
from outdial.platforms.cxone.agents import CxoneAgents
from outdial.platforms.cxone.calls import CxoneCalls
from outdial.platforms.cxone.client import CxoneClient
from outdial.platforms.cxone.codec import CxoneCodec
from outdial.platforms.cxone.correlate import DialCorrelator, SessionRegistry
from outdial.platforms.cxone.source import CxoneSources

__all__ = ["cxone_bundle"]


def cxone_bundle(
    settings: CxonePlatformConfig,
    listener: ListenerConfig,
    clock: Clock,
    rng: Random | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PlatformBundle:
    """CXone's ports (kind ``"cxone"``); ``transport`` replaces the network in tests.

    The event sources and call control share the session registry (which
    session a dial uses) and the correlator (which contact a dial made).
    """
    rng = rng or Random()
    client = CxoneClient(settings, clock, transport=transport)
    sessions = SessionRegistry()
    correlator = DialCorrelator()
    return PlatformBundle(
        kind="cxone",
        calls=CxoneCalls(client, settings, clock, sessions, correlator),
        agents=CxoneAgents(client, clock, rng),
        codec=CxoneCodec(),
        sources=CxoneSources(
            client=client,
            settings=settings,
            listener=listener,
            clock=clock,
            rng=rng,
            sessions=sessions,
            correlator=correlator,
        ),
        aclose=client.aclose,
    )
