"""How ``outdial run``'s process runs: which event loop, and how often it collects garbage.

Which event loop: uvloop when installed, else asyncio's own.

uvloop (``pip install 'outdial[speed]'``) runs the same code on libuv and
takes about a tenth less CPU per event (``bench/scale.py``, README). It is
optional: without it, or with ``outdial run --loop asyncio``, the daemon
runs on asyncio's standard loop, unchanged. anyio starts either, through its
``use_uvloop`` backend option.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from typing import Literal

__all__ = [
    "GC_THRESHOLDS",
    "LOOPS",
    "LoopChoice",
    "LoopUnavailable",
    "backend_options",
    "running_loop",
    "tune_gc",
]

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


#: The cyclic collector's thresholds for the daemon's process (CPython's are 700, 10, 10).
#: Every event allocates a few dozen short-lived objects, so at the default the
#: youngest generation is collected hundreds of times a second, and each full
#: collection walks every agent's state. At 10,000 events/s (``bench/scale.py``)
#: these took 70-80 % of a core and a p99 of 6-15 ms, against 85-95 % and 30-430 ms
#: at the default; with the collector off, 80 % and 12-16 ms, so what is left is
#: not the collector's. Memory stays flat: cyclic garbage still goes, in larger
#: and rarer batches.
GC_THRESHOLDS = (10_000, 50, 50)


def tune_gc() -> None:
    """Collect cyclic garbage less often (see :data:`GC_THRESHOLDS`); for a daemon's process."""
    gc.set_threshold(*GC_THRESHOLDS)
