"""Custom handlers in Python, next to (or instead of) the config's dialing rules.

```python
registry = HandlerRegistry()

@registry.on("v2.users.{userId}.presence", when={"presenceDefinition.systemPresence": "Away"},
             users=["<agent id>"])
async def on_away(event: Event, match: Match) -> None:
    ...
```

Pass the registry to :class:`~outdial.handlers.dispatch.Handlers`. A topic with
``{userId}`` and ``users`` is subscribed for those agents; a topic whose
placeholders are not filled (no ``users``) is not subscribed, and the handler
sees the matching events that the rules subscribed anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from outdial.events import Event
from outdial.handlers.rules import Match, PatternIndex

__all__ = ["HandlerFn", "HandlerRegistry"]

HandlerFn = Callable[[Event, Match], Awaitable[None]]
_F = TypeVar("_F", bound=HandlerFn)


class HandlerRegistry:
    """A set of ``async def f(event, match)`` handlers keyed by topic and ``when`` pattern."""

    def __init__(self) -> None:
        self._index: PatternIndex[HandlerFn] = PatternIndex(wildcards=True)

    def on(
        self,
        topic: str,
        *,
        when: Mapping[str, Any] | None = None,
        users: Sequence[str] = (),
        name: str | None = None,
    ) -> Callable[[_F], _F]:
        """Register the decorated coroutine function; patterns are checked right here."""

        def register(fn: _F) -> _F:
            label: str = name or str(getattr(fn, "__qualname__", repr(fn)))
            self._index.add(label, topic, users, when or {}, fn)
            return fn

        return register

    def topics(self) -> set[str]:
        """Concrete topics the handlers need subscribed."""
        return self._index.topics()

    def match(self, event: Event) -> list[tuple[HandlerFn, Match]]:
        """Handlers for ``event``, in registration order."""
        return self._index.match(event)
