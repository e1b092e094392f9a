"""Which event loop runs the daemon: uvloop when installed, else asyncio's own.

uvloop (``pip install 'outdial[speed]'``) runs the same code on libuv and
takes about a tenth less CPU per event (``bench/scale.py``, README). It is
optional: without it, or with ``outdial run --loop asyncio``, the daemon
runs on asyncio's standard loop, unchanged. anyio starts either, through its
``use_uvloop`` backend option.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Literal

__all__ = ["LOOPS", "LoopChoice", "LoopUnavailable", "backend_options", "running_loop"]

LoopChoice = Literal["auto", "asyncio", "uvloop"]
#: What ``--loop`` accepts: ``auto`` is uvloop when installed, else asyncio.
LOOPS: tuple[LoopChoice, ...] = ("auto", "asyncio", "uvloop")


class LoopUnavailable(Exception):
    """``--loop uvloop`` was asked for, and uvloop is not installed."""


def uvloop_installed() -> bool:
    """Whether uvloop can be imported here."""
    return importlib.util.find_spec("uvloop") is not None


def backend_options(choice: LoopChoice) -> dict[str, object]:
    """anyio's backend options for ``choice``; LoopUnavailable when uvloop is asked for, missing."""
    if choice == "asyncio":
        return {}
    if uvloop_installed():
        return {"use_uvloop": True}
    if choice == "uvloop":
        raise LoopUnavailable(
            "--loop uvloop: uvloop is not installed; pip install 'outdial[speed]', "
            "or run with --loop asyncio"
        )
    return {}


def running_loop() -> str:
    """The running event loop's kind, for the log: ``uvloop`` or ``asyncio``."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
