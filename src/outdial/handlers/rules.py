"""Rules, compiled once: which topics to subscribe, and which events match.

A rule's ``topic`` is a dot-separated pattern whose ``{placeholders}`` each
stand for one segment; ``{userId}`` is filled from the rule's ``users`` to get
the concrete topics to subscribe. The index maps each concrete topic to its
rules, so matching an event is one dict lookup plus the ``when`` checks of the
rules on that topic: rules on other topics cost nothing.

``when`` follows EventBridge content filtering. Keys are dotted paths into the
event body; values are:

- a scalar: equality (type-aware: ``1`` does not equal ``"1"`` or ``true``)
- a list: any of its items (scalars or operator objects)
- an operator object: ``{"prefix": "A"}``, ``{"suffix": "z"}``,
  ``{"equals-ignore-case": "available"}``,
  ``{"anything-but": "X" | [..] | {"prefix": ".."}}``,
  ``{"numeric": [">", 0, "<=", 5]}``, ``{"exists": true | false}``

All keys must match. A path through a list matches when some element matches.
Keys that go through the same list must match **the same element**:
``{"participants.purpose": "customer", "participants.disconnectType": "peer"}``
needs one participant that is a customer disconnected by the peer, not a
customer plus some other participant with ``peer``. (EventBridge itself checks
each key on its own; this is what such a rule means to its author.) The
element that matched is kept on the :class:`Match`, and dial templates that
read through that list read from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from outdial.config import Rule
from outdial.events import Event
from outdial.handlers.templates import DialTemplate, RenderedDial, TemplateError

__all__ = [
    "Match",
    "PatternIndex",
    "RuleError",
    "RuleIndex",
    "TopicPattern",
    "WhenPattern",
]

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MISSING: Any = object()
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
}


class RuleError(ValueError):
    """A rule that cannot be compiled: which rule, where in it, and why."""

    def __init__(self, rule: str, location: str, reason: str) -> None:
        self.rule = rule
        self.location = location
        self.reason = reason
        super().__init__(f"rule {rule!r}, {location}: {reason}")


# Topic patterns


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A topic with ``{name}`` segments; each placeholder matches exactly one segment."""

    source: str
    segments: tuple[str | None, ...]  # None where a placeholder is
    names: tuple[str, ...]  # placeholder names, in segment order

    @classmethod
    def parse(cls, source: str, rule: str = "?") -> TopicPattern:
        """Parse ``source``; raise :class:`RuleError` for a malformed placeholder."""
        segments: list[str | None] = []
        names: list[str] = []
        for segment in source.split("."):
            if not segment:
                raise RuleError(rule, "topic", f"empty segment in {source!r}")
            whole = _PLACEHOLDER.fullmatch(segment)
            if whole:
                if whole.group(1) in names:
                    raise RuleError(rule, "topic", f"placeholder {segment} is used twice")
                names.append(whole.group(1))
                segments.append(None)
            elif "{" in segment or "}" in segment:
                raise RuleError(
                    rule,
                    "topic",
                    f"bad segment {segment!r} in {source!r}: a placeholder is a whole "
                    "segment such as {userId}",
                )
            else:
                segments.append(segment)
        return cls(source, tuple(segments), tuple(names))

    def fill(self, bindings: Mapping[str, str]) -> str:
        """The concrete topic for ``bindings`` (every placeholder must be bound)."""
        names = iter(self.names)
        return ".".join(bindings[next(names)] if s is None else s for s in self.segments)

    def match(self, topic: str) -> dict[str, str] | None:
        """The placeholder bindings if ``topic`` fits the pattern, else None."""
        parts = topic.split(".")
        if len(parts) != len(self.segments):
            return None
        bindings: dict[str, str] = {}
        names = iter(self.names)
        for part, segment in zip(parts, self.segments, strict=True):
            if segment is None:
                bindings[next(names)] = part
            elif segment != part:
                return None
        return bindings


# When patterns

_Test = Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equals(expected: Any) -> _Test:
    # Type-aware, as in JSON: a bool is not a number and a number is not a string.
    if isinstance(expected, bool):
        return lambda v: isinstance(v, bool) and v is expected
    if _is_number(expected):
        return lambda v: _is_number(v) and v == expected
    if expected is None:
        return lambda v: v is None
    return lambda v: isinstance(v, str) and v == expected


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def _numeric(spec: Any, rule: str, where: str) -> _Test:
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise RuleError(
            rule,
            where,
            f'numeric wants [op, n] or [op, n, op, n], e.g. [">", 0, "<=", 5]; got {spec!r}',
        )
    checks: list[tuple[Callable[[float, float], bool], float]] = []
    for op, bound in zip(spec[::2], spec[1::2], strict=True):
        if op not in _NUMERIC_OPS:
            raise RuleError(
                rule, where, f"numeric operator {op!r} is not one of {', '.join(_NUMERIC_OPS)}"
            )
        if not _is_number(bound) or not math.isfinite(bound):
            raise RuleError(rule, where, f"numeric bound {bound!r} after {op!r} is not a number")
        checks.append((_NUMERIC_OPS[op], float(bound)))
    if len(checks) == 2 and "=" in spec[::2]:
        raise RuleError(rule, where, 'numeric "=" stands alone: ["=", n]')
    return lambda v: _is_number(v) and all(check(v, bound) for check, bound in checks)


def _string_op(name: str, arg: Any, rule: str, where: str) -> _Test:
    if not isinstance(arg, str):
        raise RuleError(rule, where, f"{name} wants a string, got {arg!r}")
    if name == "prefix":
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if name == "suffix":
        return lambda v: isinstance(v, str) and v.endswith(arg)
    folded = arg.casefold()
    return lambda v: isinstance(v, str) and v.casefold() == folded


def _anything_but(arg: Any, rule: str, where: str) -> _Test:
    inner: list[_Test]
    if isinstance(arg, dict):
        if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix", "equals-ignore-case"):
            raise RuleError(
                rule,
                where,
                "anything-but takes a value, a list, or one of "
                f"{{prefix|suffix|equals-ignore-case: ...}}; got {arg!r}",
            )
        ((name, value),) = arg.items()
        inner = [_string_op(name, value, rule, where)]
    elif isinstance(arg, list):
        if not arg or not all(_scalar(x) for x in arg):
            raise RuleError(rule, where, f"anything-but list must hold values, got {arg!r}")
        inner = [_equals(x) for x in arg]
    elif _scalar(arg):
        inner = [_equals(arg)]
    else:
        raise RuleError(rule, where, f"anything-but cannot use {arg!r}")
    # A missing field is not "anything but X": it is nothing (as in EventBridge).
    return lambda v: v is not _MISSING and not any(t(v) for t in inner)


def _operator(spec: Mapping[str, Any], rule: str, where: str) -> _Test:
    if len(spec) != 1:
        raise RuleError(rule, where, f"an operator object has exactly one key, got {dict(spec)!r}")
    ((name, arg),) = spec.items()
    if name in ("prefix", "suffix", "equals-ignore-case"):
        return _string_op(name, arg, rule, where)
    if name == "anything-but":
        return _anything_but(arg, rule, where)
    if name == "numeric":
        return _numeric(arg, rule, where)
    if name == "exists":
        if not isinstance(arg, bool):
            raise RuleError(rule, where, f"exists wants true or false, got {arg!r}")
        return (lambda v: v is not _MISSING) if arg else (lambda v: v is _MISSING)
    raise RuleError(
        rule,
        where,
        f"unknown operator {name!r}; known: prefix, suffix, equals-ignore-case, "
        "anything-but, numeric, exists (nested objects are written as dotted keys)",
    )


def _value_tests(value: Any, rule: str, where: str) -> list[_Test]:
    if isinstance(value, list):
        if not value:
            raise RuleError(rule, where, "an empty list matches nothing")
        tests: list[_Test] = []
        for item in value:
            if isinstance(item, list):
                raise RuleError(rule, where, f"nested list {item!r} is not a pattern")
            tests += _value_tests(item, rule, where)
        return tests
    if isinstance(value, dict):
        return [_operator(value, rule, where)]
    if _scalar(value):
        return [_equals(value)]
    raise RuleError(rule, where, f"cannot match against {value!r}")


class _Node:
    """One path segment of a compiled ``when``: the tests on its value, then its children."""

    __slots__ = ("children", "items", "path", "test", "tests")

    def __init__(self, path: str = "") -> None:
        self.path = path  # the dotted path from the body, precomputed for the match
        self.tests: list[_Test] | None = None  # any-of, on the value at this path
        self.children: dict[str, _Node] = {}
        # Filled by _freeze once the pattern is complete: what the match loop reads.
        self.test: _Test | None = None
        self.items: tuple[tuple[str, _Node], ...] = ()


def _any_of(tests: Sequence[_Test]) -> _Test:
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)
    return lambda v: any(test(v) for test in frozen)


def _freeze(node: _Node) -> None:
    node.test = None if node.tests is None else _any_of(node.tests)
    node.items = tuple(node.children.items())
    for child in node.children.values():
        _freeze(child)


# A leaf's result when nothing was chosen, shared so a match allocates no dict
# until some list element is chosen. Never handed out: WhenPattern.match copies it.
_NOTHING_CHOSEN: dict[str, Any] = {}


def _match_node(node: _Node, value: Any) -> dict[str, Any] | None:
    """Elements chosen per list path if ``value`` matches ``node``, else None.

    The result may be the shared ``_NOTHING_CHOSEN`` (never to be mutated);
    any other dict returned is fresh and belongs to the caller.
    """
    if isinstance(value, list):
        if value:
            # Trying the whole subtree on each element is what makes keys
            # under one list match the same element.
            for item in value:
                found = _match_node(node, item)
                if found is not None:
                    if found is _NOTHING_CHOSEN:
                        return {node.path: item}
                    found.setdefault(node.path, item)
                    return found
            return None
        value = _MISSING  # an empty list has nothing in it to match
    test = node.test
    if test is not None and not test(value):
        return None
    chosen = _NOTHING_CHOSEN
    if node.items:
        mapping = type(value) is dict or isinstance(value, Mapping)
        for key, child in node.items:
            found = _match_node(child, value.get(key, _MISSING) if mapping else _MISSING)
            if found is None:
                return None
            if found is not _NOTHING_CHOSEN:
                if chosen is _NOTHING_CHOSEN:
                    chosen = found
                else:
                    chosen.update(found)
    return chosen


@dataclass(frozen=True, slots=True)
class WhenPattern:
    """A compiled ``when`` pattern."""

    root: _Node

    @classmethod
    def compile(cls, when: Mapping[str, Any], rule: str = "?") -> WhenPattern:
        """Validate and compile ``when``; raise :class:`RuleError` at the first problem."""
        root = _Node()
        for key, value in when.items():
            where = f"when.{key}"
            parts = key.split(".")
            if not key or any(not p for p in parts):
                raise RuleError(rule, where, f"bad key {key!r}: want a dotted path such as a.b")
            node = root
            for part in parts:
                child = node.children.get(part)
                if child is None:
                    path = f"{node.path}.{part}" if node.path else part
                    child = node.children[part] = _Node(path)
                node = child
            node.tests = _value_tests(value, rule, where)
        _freeze(root)
        return cls(root)

    def match(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The list elements the pattern matched (by dotted path), or None if no match."""
        found = _match_node(self.root, body)
        return {} if found is _NOTHING_CHOSEN else found


# Matches and the index


class Match:
    """A rule (or custom handler) that matched one event.

    Immutable by contract (``Final``, checked by mypy); a plain slots class
    rather than a frozen dataclass because one is built per match on the hot
    path, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) cost 1.2 us against 0.3 us for this. Equality and hashing are the
    dataclass's: by fields.
    """

    __slots__ = ("bindings", "dial", "elements", "event", "name", "rule")

    def __init__(
        self,
        name: str,
        event: Event,
        bindings: Mapping[str, str],
        elements: Mapping[str, Any],
        rule: Rule | None = None,
        dial: DialTemplate | None = None,
    ) -> None:
        self.name: Final = name
        self.event: Final = event
        self.bindings: Final = bindings
        self.elements: Final = elements
        self.rule: Final = rule
        self.dial: Final = dial

    def _fields(self) -> tuple[Any, ...]:
        return (self.name, self.event, self.bindings, self.elements, self.rule, self.dial)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Match)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Match(name={self.name!r}, event={self.event!r}, bindings={self.bindings!r}, "
            f"elements={self.elements!r}, rule={self.rule!r}, dial={self.dial!r})"
        )

    def render_dial(self) -> RenderedDial:
        """The rule's dial spec filled from this match; raises :class:`TemplateError`."""
        if self.dial is None:
            raise TemplateError(self.name, "dial", "this match has no dial spec")
        return self.dial.render(self.bindings, self.event.body, self.elements)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    order: int
    name: str
    topic: TopicPattern
    when: WhenPattern
    payload: T
    rule: Rule | None = None  # _rule_parts(payload), computed once
    dial: DialTemplate | None = None


class PatternIndex(Generic[T]):
    """Topic patterns plus ``when`` patterns, indexed by concrete topic.

    An entry whose only placeholder is ``{userId}`` and that lists ``users``
    (or that has no placeholder) is indexed under each concrete topic. Other
    placeholders (allowed only when ``wildcards`` is set, for custom handlers)
    match any topic of the same shape that something else subscribed; those
    are indexed by their literal segments, so they cost one lookup per shape.
    """

    def __init__(self, *, wildcards: bool = False) -> None:
        self._wildcards = wildcards
        self._count = 0
        self._by_topic: dict[str, list[tuple[_Entry[T], dict[str, str]]]] = {}
        # (segment count, literal positions) -> literal values -> entries
        self._shapes: dict[tuple[int, tuple[int, ...]], dict[tuple[str, ...], list[_Entry[T]]]] = {}

    def add(
        self,
        name: str,
        topic: str,
        users: Sequence[str],
        when: Mapping[str, Any],
        payload: T,
    ) -> None:
        """Compile and index one entry; raise :class:`RuleError` when it cannot be."""
        pattern = TopicPattern.parse(topic, name)
        when_pattern = WhenPattern.compile(when, name)
        entry = _Entry(self._count, name, pattern, when_pattern, payload, *_rule_parts(payload))
        self._count += 1
        if not pattern.names:
            self._by_topic.setdefault(topic, []).append((entry, {}))
            return
        if pattern.names == ("userId",) and users:
            for user in users:
                if not user or "." in user:
                    raise RuleError(name, "users", f"bad user id {user!r}")
                bindings = {"userId": user}
                self._by_topic.setdefault(pattern.fill(bindings), []).append((entry, bindings))
            return
        if not self._wildcards:
            others = [n for n in pattern.names if n != "userId"]
            reason = (
                f"placeholder {{{others[0]}}} cannot be filled: only {{userId}} is, from users"
                if others
                else "topic has {userId}: list the agents in users = [...]"
            )
            raise RuleError(name, "topic", reason)
        literal = tuple(i for i, s in enumerate(pattern.segments) if s is not None)
        values = tuple(s for s in pattern.segments if s is not None)
        shape = self._shapes.setdefault((len(pattern.segments), literal), {})
        shape.setdefault(values, []).append(entry)

    def topics(self) -> set[str]:
        """Every concrete topic some entry needs subscribed."""
        return set(self._by_topic)

    def match(self, event: Event) -> list[tuple[T, Match]]:
        """Entries whose topic and ``when`` match ``event``, in the order they were added."""
        if not self._shapes:
            # Only concrete topics: one bucket, already in the order entries were added.
            body = event.body
            out: list[tuple[T, Match]] = []
            for entry, bindings in self._by_topic.get(event.topic, ()):
                elements = entry.when.match(body)
                if elements is not None:
                    match = Match(entry.name, event, bindings, elements, entry.rule, entry.dial)
                    out.append((entry.payload, match))
            return out
        found: list[tuple[int, T, Match]] = []
        for entry, bindings in self._by_topic.get(event.topic, ()):
            self._try(entry, bindings, event, found)
        parts = event.topic.split(".")
        for (count, literal), table in self._shapes.items():
            if count != len(parts):
                continue
            for wild in table.get(tuple(parts[i] for i in literal), ()):
                bound = wild.topic.match(event.topic)
                if bound is not None:
                    self._try(wild, bound, event, found)
        if len(found) > 1:
            found.sort(key=lambda item: item[0])
        return [(payload, match) for _, payload, match in found]

    def matches(self, event: Event) -> list[Match]:
        """``match(event)`` without the payloads."""
        if self._shapes:
            return [match for _, match in self.match(event)]
        body = event.body
        out: list[Match] = []
        for entry, bindings in self._by_topic.get(event.topic, ()):
            elements = entry.when.match(body)
            if elements is not None:
                out.append(Match(entry.name, event, bindings, elements, entry.rule, entry.dial))
        return out

    @staticmethod
    def _try(
        entry: _Entry[T],
        bindings: dict[str, str],
        event: Event,
        found: list[tuple[int, T, Match]],
    ) -> None:
        elements = entry.when.match(event.body)
        if elements is None:
            return
        match = Match(entry.name, event, bindings, elements, entry.rule, entry.dial)
        found.append((entry.order, entry.payload, match))


def _rule_parts(payload: object) -> tuple[Rule | None, DialTemplate | None]:
    if isinstance(payload, tuple) and len(payload) == 2 and isinstance(payload[0], Rule):
        rule, dial = payload
        return rule, dial if isinstance(dial, DialTemplate) else None
    return None, None


class RuleIndex:
    """The config's rules, compiled: topics to subscribe and the matches for an event."""

    def __init__(self, index: PatternIndex[tuple[Rule, DialTemplate]], rules: Sequence[Rule]):
        self._index = index
        self.rules = tuple(rules)

    @classmethod
    def compile(cls, rules: Iterable[Rule]) -> RuleIndex:
        """Compile every rule; raise :class:`RuleError` for the first one that cannot be."""
        index: PatternIndex[tuple[Rule, DialTemplate]] = PatternIndex()
        kept = list(rules)
        for rule in kept:
            try:
                dial = DialTemplate.compile(rule.name, rule.dial)
            except TemplateError as exc:
                raise RuleError(rule.name, f"dial.{exc.field}", exc.reason) from None
            index.add(rule.name, rule.topic, rule.users, rule.when, (rule, dial))
        return cls(index, kept)

    def topics(self) -> set[str]:
        """Every concrete topic the rules need subscribed."""
        return self._index.topics()

    def match(self, event: Event) -> list[Match]:
        """The rules matching ``event``, in config order."""
        return self._index.matches(event)
