"""A typed route table: ``(method, "/path/{name:type}", handler)`` entries, resolved in order.

Both fakes' API ports and control endpoints answer through one of these
instead of parsing paths by hand. A parameter is ``{name}`` (one path
segment, a ``str``) or ``{name:int}`` (digits, passed as an ``int``); values
are URL-decoded before conversion. :meth:`Routes.resolve` answers 404 for a
path no route knows and 405 for a known path asked with another method, the
answers both platforms give.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

__all__ = ["CONVERTERS", "Route", "RouteMatch", "Routes"]

H = TypeVar("H")

CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"[0-9]+", int),
}
"""Parameter types a pattern may name: the regex of one value, and its conversion."""

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """One entry: the method, the pattern as written, its handler and parameter types."""

    method: str
    pattern: str
    handler: H
    regex: re.Pattern[str]
    params: tuple[tuple[str, Callable[[str], Any]], ...]


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[H]):
    """A resolved route and its parameters, URL-decoded and converted to their types."""

    route: Route[H]
    params: dict[str, Any]

    @property
    def handler(self) -> H:
        """The matched route's handler."""
        return self.route.handler


def _compile(pattern: str) -> tuple[re.Pattern[str], tuple[tuple[str, Callable[[str], Any]], ...]]:
    parts: list[str] = []
    params: list[tuple[str, Callable[[str], Any]]] = []
    end = 0
    for found in _PARAM.finditer(pattern):
        name, kind = found.group(1), found.group(2) or "str"
        if kind not in CONVERTERS:
            raise ValueError(f"unknown parameter type {kind!r} in {pattern!r}")
        if any(name == seen for seen, _ in params):
            raise ValueError(f"parameter {name!r} appears twice in {pattern!r}")
        regex, convert = CONVERTERS[kind]
        parts += [re.escape(pattern[end : found.start()]), f"(?P<{name}>{regex})"]
        params.append((name, convert))
        end = found.end()
    parts.append(re.escape(pattern[end:]))
    return re.compile("^" + "".join(parts) + "$"), tuple(params)


class Routes(Generic[H]):
    """A table of routes; the first route whose pattern and method match wins."""

    def __init__(self) -> None:
        self._routes: list[Route[H]] = []

    def add(self, method: str, pattern: str, handler: H) -> None:
        """Add a route; ``{name}`` or ``{name:type}`` in ``pattern`` captures one segment."""
        regex, params = _compile(pattern)
        self._routes.append(Route(method.upper(), pattern, handler, regex, params))

    def resolve(self, method: str, path: str) -> RouteMatch[H] | int:
        """The matching route, or 404 (no such path) / 405 (the path exists, other method)."""
        path_known = False
        for route in self._routes:
            found = route.regex.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method.upper():
                values = found.groupdict()
                params = {name: convert(unquote(values[name])) for name, convert in route.params}
                return RouteMatch(route, params)
        return 405 if path_known else 404

    def __iter__(self) -> Iterator[Route[H]]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)
