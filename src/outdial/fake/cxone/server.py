"""Run the fake CXone as a standalone server (``outdial fake-server --platform cxone``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio

from outdial.fake.cxone.platform import DEFAULT_CXONE_AGENTS, FakeCxone
from outdial.fake.script import CallTiming, Outcome

__all__ = ["cxone_banner", "print_cxone_banner", "serve_cxone"]


def cxone_banner(cxone: FakeCxone) -> str:
    """A few lines telling a user where the fake CXone listens and how to log in to it."""
    lines = [
        "outdial fake NICE CXone platform is ready",
        f"  issuer            {cxone.issuer_url}",
        f"  api_endpoint      {cxone.api_url}",
        f"  control_url       {cxone.control_url}",
        f"  control_token     {cxone.control_token}  (Authorization: Bearer <control_token>)",
        f"  client_id         {cxone.client_id}",
        f"  client_secret     {cxone.client_secret}",
        f"  access_key_id     {cxone.access_key_id}",
        f"  access_key_secret {cxone.access_key_secret}",
        f"  tenant_id         {cxone.tenant_id}",
        f"  skill_id          {cxone.skill_id}",
        "  agents            " + ", ".join(cxone.agents),
    ]
    return "\n".join(lines)


def print_cxone_banner(cxone: FakeCxone) -> None:
    """Print :func:`cxone_banner` to standard output and flush it."""
    print(cxone_banner(cxone), file=sys.stdout, flush=True)


async def serve_cxone(
    port: int = 0,
    api_port: int = 0,
    agents: Iterable[str] = DEFAULT_CXONE_AGENTS,
    seed: int | None = None,
    *,
    host: str = "127.0.0.1",
    timing: CallTiming | None = None,
    outcome_weights: Mapping[Outcome, float] | None = None,
    on_ready: Callable[[FakeCxone], None] | None = print_cxone_banner,
    allow_remote: bool = False,
    **options: Any,
) -> None:
    """Serve the fake CXone until cancelled; call ``on_ready`` once it listens.

    A ``host`` beyond loopback raises :class:`ValueError` unless ``allow_remote``
    (see :func:`outdial.fake.server.remote_bind_refusal`). ``options`` go to
    :class:`FakeCxone`.
    """
    from outdial.fake.server import remote_bind_refusal

    refusal = remote_bind_refusal(host, allow_remote=allow_remote)
    if refusal is not None:
        raise ValueError(refusal)
    cxone = FakeCxone(
        agents,
        seed=seed,
        host=host,
        port=port,
        api_port=api_port,
        timing=timing,
        outcome_weights=outcome_weights,
        **options,
    )
    async with cxone:
        if on_ready is not None:
            on_ready(cxone)
        await anyio.sleep_forever()
