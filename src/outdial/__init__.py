"""outdial: an event-driven outbound dialer daemon for contact-center platforms.

The public API, for running the daemon from Python and adding custom handlers::

    import anyio
    from outdial import HandlerRegistry, load_config, open_daemon

    registry = HandlerRegistry()

    @registry.on("v2.users.{userId}.routingStatus", users=["<agent id>"],
                 when={"routingStatus.status": "NOT_RESPONDING"})
    async def not_responding(event, match):
        print("agent", match.bindings["userId"], "missed a call")

    async def main() -> None:
        async with open_daemon(load_config("outdial.toml"), registry=registry) as daemon:
            await daemon.run()

    anyio.run(main)

The fake platform for tests lives in :mod:`outdial.fake`.
"""

from outdial.app import Daemon, open_daemon, platform_from_config
from outdial.clock import Clock, ManualClock, SystemClock
from outdial.config import Config, ConfigError, load_config, parse_config
from outdial.events import Event, Gap
from outdial.handlers.registry import HandlerRegistry
from outdial.handlers.rules import Match, RuleError
from outdial.listener import Listener, ListenerFatal
from outdial.platforms.base import PlatformBundle, PlatformError

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "Config",
    "ConfigError",
    "Daemon",
    "Event",
    "Gap",
    "HandlerRegistry",
    "Listener",
    "ListenerFatal",
    "ManualClock",
    "Match",
    "PlatformBundle",
    "PlatformError",
    "RuleError",
    "SystemClock",
    "__version__",
    "load_config",
    "open_daemon",
    "parse_config",
    "platform_from_config",
]
