"""``[platform] kind`` to the platform's bundle of ports.

Each platform registers one builder: it takes the whole config (its own
``[platform]`` section and ``[listener]``), a clock and a random source, and
returns a :class:`~outdial.platforms.base.PlatformBundle`. A builder imports its
platform lazily, so a daemon loads only the platform it talks to. A third
platform adds a package under ``platforms/`` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from random import Random
from typing import cast

from outdial.clock import Clock
from outdial.config import Config, CxonePlatformConfig, PlatformConfig
from outdial.platforms.base import Codec, PlatformBundle

__all__ = ["BUILDERS", "CODECS", "bundle_for", "codec_for"]

Builder = Callable[[Config, Clock, Random | None], PlatformBundle]


def _genesys(config: Config, clock: Clock, rng: Random | None) -> PlatformBundle:
    from outdial.platforms.genesys.bundle import genesys_bundle, genesys_client

    assert isinstance(config.platform, PlatformConfig)
    return genesys_bundle(genesys_client(config.platform, clock), config.listener, clock, rng)


def _cxone(config: Config, clock: Clock, rng: Random | None) -> PlatformBundle:
    module = import_module("outdial.platforms.cxone.bundle")
    assert isinstance(config.platform, CxonePlatformConfig)
    return cast(PlatformBundle, module.cxone_bundle(config.platform, config.listener, clock, rng))


def _genesys_codec() -> Codec:
    from outdial.platforms.genesys.codec import GenesysCodec

    return GenesysCodec()


def _cxone_codec() -> Codec:
    return cast(Codec, import_module("outdial.platforms.cxone.codec").CxoneCodec())


#: The builder of each ``[platform] kind``.
BUILDERS: dict[str, Builder] = {"genesys": _genesys, "cxone": _cxone}
#: The codec of each kind, for what needs the topics but no connection (``outdial check``).
CODECS: dict[str, Callable[[], Codec]] = {"genesys": _genesys_codec, "cxone": _cxone_codec}


def bundle_for(config: Config, clock: Clock, rng: Random | None = None) -> PlatformBundle:
    """The ports of the platform ``config`` names."""
    return BUILDERS[config.platform.kind](config, clock, rng)


def codec_for(config: Config) -> Codec:
    """The codec of the platform ``config`` names."""
    return CODECS[config.platform.kind]()
