"""Genesys Cloud: notification channels over WebSocket, REST for calls and agent state.

:mod:`.client` is the REST client (OAuth client credentials, channels,
subscriptions, calls, bulk agent reads, errors); :mod:`.codec` reads the
notification topics into :mod:`outdial.domain` terms; :func:`genesys_bundle`
puts the ports together for the daemon.
"""

from outdial.platforms.genesys.client import GenesysPlatform

__all__ = ["GenesysPlatform"]
