"""Run the fake CXone as a standalone server (``outdial fake-server --platform cxone``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from outdial.fake.common.serve import check_bind, format_banner, print_text, run_until_cancelled
from outdial.fake.cxone.platform import DEFAULT_CXONE_AGENTS, FakeCxone
from outdial.fake.script import CallTiming, Outcome

__all__ = ["cxone_banner", "print_cxone_banner", "serve_cxone"]


def cxone_banner(cxone: FakeCxone) -> str:
    """A few lines telling a user where the fake CXone listens and how to log in to it."""
    return format_banner(
        "outdial fake NICE CXone platform is ready",
        [
            ("issuer", cxone.issuer_url),
            ("api_endpoint", cxone.api_url),
            ("control_url", cxone.control_url),
            ("control_token", f"{cxone.control_token}  (Authorization: Bearer <control_token>)"),
            ("client_id", cxone.client_id),
            ("client_secret", cxone.client_secret),
            ("access_key_id", cxone.access_key_id),
            ("access_key_secret", cxone.access_key_secret),
            ("tenant_id", cxone.tenant_id),
            ("skill_id", str(cxone.skill_id)),
            ("agents", ", ".join(cxone.agents)),
        ],
    )


def print_cxone_banner(cxone: FakeCxone) -> None:
    """Print :func:`cxone_banner` to standard output and flush it."""
    print_text(cxone_banner(cxone))


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
    (see :func:`outdial.fake.common.serve.remote_bind_refusal`). ``options`` go to
    :class:`FakeCxone`.
    """
    check_bind(host, allow_remote=allow_remote)
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
    await run_until_cancelled(cxone, on_ready)
