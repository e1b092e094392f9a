"""The handlers: rules, the router and its parts (call tracker, readiness offers, gap
refresher), guards, the dialer, the call state machine.

The daemon needs :class:`Handlers` (``start``, ``topics``, ``handle``, ``refresh``,
``reconcile_unknown``); custom
Python handlers register on a :class:`HandlerRegistry`.
"""

from __future__ import annotations

from outdial.handlers.calls import Call, CallState, CallUpdate, Outcome, advance
from outdial.handlers.dialer import Dialer, DialResult, RetryPolicy
from outdial.handlers.dispatch import Handlers
from outdial.handlers.donotcall import DoNotCallFileError
from outdial.handlers.reconcile import ReconcilePolicy
from outdial.handlers.registry import HandlerRegistry
from outdial.handlers.rules import Match, RuleError, RuleIndex
from outdial.handlers.templates import TemplateError

__all__ = [
    "Call",
    "CallState",
    "CallUpdate",
    "DialResult",
    "Dialer",
    "DoNotCallFileError",
    "HandlerRegistry",
    "Handlers",
    "Match",
    "Outcome",
    "ReconcilePolicy",
    "RetryPolicy",
    "RuleError",
    "RuleIndex",
    "TemplateError",
    "advance",
]
