"""Dial fields as templates over the matched event.

``"{userId}"`` is a placeholder bound from the topic; ``"{participants.address}"``
is a dotted path into the event body. ``{{`` and ``}}`` are literal braces.
Templates are parsed once when the rules are compiled, so a typo such as
``"{participants.address"`` is reported at startup, not at the first event.

A path through a list takes the element the rule's ``when`` pattern matched
for that list (so ``{participants.address}`` is the address of the participant
whose ``purpose`` was ``customer``); when the pattern did not constrain the
list, the first element that has the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from outdial.config import DialSpec

__all__ = [
    "DialTemplate",
    "RenderedDial",
    "Template",
    "TemplateError",
    "is_missing",
    "resolve_path",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
_MISSING = object()


class TemplateError(ValueError):
    """A template that cannot be parsed, or a field the event does not have."""

    def __init__(self, rule: str, field: str, reason: str) -> None:
        self.rule = rule
        self.field = field
        self.reason = reason
        super().__init__(f"rule {rule!r}, dial.{field}: {reason}")


def resolve_path(body: Any, path: str, elements: Mapping[str, Any] | None = None) -> Any:
    """The value at dotted ``path`` in ``body``; lists are crossed as described above.

    Returns a module-private sentinel when the path is missing; use
    :meth:`Template.render` for a checked lookup.
    """
    return _resolve(body, path.split("."), 0, "", elements or {})


def _resolve(
    value: Any, parts: list[str], index: int, prefix: str, elements: Mapping[str, Any]
) -> Any:
    if isinstance(value, list):
        if prefix in elements:
            return _resolve(elements[prefix], parts, index, prefix, elements)
        for item in value:
            found = _resolve(item, parts, index, prefix, elements)
            if found is not _MISSING:
                return found
        return _MISSING
    if index == len(parts):
        return value
    if not isinstance(value, Mapping) or parts[index] not in value:
        return _MISSING
    key = parts[index]
    child_prefix = f"{prefix}.{key}" if prefix else key
    return _resolve(value[key], parts, index + 1, child_prefix, elements)


def is_missing(value: Any) -> bool:
    """True for the sentinel :func:`resolve_path` returns for a missing path."""
    return value is _MISSING


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and ``{name}`` fields, alternating."""

    source: str
    parts: tuple[tuple[str, str | None], ...]  # (literal, field name or None)

    @classmethod
    def parse(cls, source: str, rule: str, field_name: str) -> Template:
        """Parse ``source``; raise :class:`TemplateError` naming the rule and field."""
        parts: list[tuple[str, str | None]] = []
        literal: list[str] = []
        i = 0
        while i < len(source):
            ch = source[i]
            if ch == "{" and source.startswith("{{", i):
                literal.append("{")
                i += 2
            elif ch == "}" and source.startswith("}}", i):
                literal.append("}")
                i += 2
            elif ch == "{":
                close = source.find("}", i + 1)
                if close < 0:
                    raise TemplateError(rule, field_name, f"unclosed '{{' in {source!r}")
                name = source[i + 1 : close].strip()
                if not _NAME.fullmatch(name):
                    raise TemplateError(
                        rule,
                        field_name,
                        f"bad placeholder {{{name}}} in {source!r}: want {{name}} or "
                        "{dotted.path} (use {{ and }} for literal braces)",
                    )
                parts.append(("".join(literal), name))
                literal = []
                i = close + 1
            elif ch == "}":
                raise TemplateError(rule, field_name, f"unmatched '}}' in {source!r}")
            else:
                literal.append(ch)
                i += 1
        if literal or not parts:
            parts.append(("".join(literal), None))
        return cls(source, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholder names and paths used."""
        return tuple(name for _, name in self.parts if name is not None)

    @property
    def is_literal(self) -> bool:
        """True when the template has no placeholder."""
        return not self.fields

    def render(
        self,
        rule: str,
        field_name: str,
        bindings: Mapping[str, str],
        body: Mapping[str, Any],
        elements: Mapping[str, Any],
    ) -> str:
        """Fill the fields: topic bindings first, then body paths."""
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is None:
                continue
            if name in bindings:
                out.append(bindings[name])
                continue
            value = resolve_path(body, name, elements)
            if is_missing(value) or value is None:
                raise TemplateError(rule, field_name, f"the event has no field {name!r}")
            if isinstance(value, (Mapping, list)):
                raise TemplateError(
                    rule, field_name, f"field {name!r} is an object or list, not a value"
                )
            out.append(str(value).lower() if isinstance(value, bool) else str(value))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class RenderedDial:
    """A rule's dial spec with every template filled in."""

    rule: str
    user_id: str
    contact: str | None
    phone_number: str | None
    caller_id: str | None = None
    caller_id_name: str | None = None
    queue_id: str | None = None
    label: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """What is dialed, for the idempotency key: ``next`` or the phone number."""
        return self.contact if self.contact is not None else (self.phone_number or "")


@dataclass(frozen=True, slots=True)
class DialTemplate:
    """A rule's :class:`~outdial.config.DialSpec`, parsed."""

    rule: str
    user: Template
    contact: str | None
    phone_number: Template | None
    caller_id: Template | None
    caller_id_name: Template | None
    queue_id: Template | None
    label: Template | None
    attributes: tuple[tuple[str, Template], ...]

    @classmethod
    def compile(cls, rule: str, spec: DialSpec) -> DialTemplate:
        """Parse every template in ``spec``; raise :class:`TemplateError` on the first bad one."""

        def opt(value: str | None, name: str) -> Template | None:
            return None if value is None else Template.parse(value, rule, name)

        return cls(
            rule=rule,
            user=Template.parse(spec.user, rule, "user"),
            contact=spec.contact,
            phone_number=opt(spec.phone_number, "phone_number"),
            caller_id=opt(spec.caller_id, "caller_id"),
            caller_id_name=opt(spec.caller_id_name, "caller_id_name"),
            queue_id=opt(spec.call_from_queue_id, "call_from_queue_id"),
            label=opt(spec.label, "label"),
            attributes=tuple(
                (key, Template.parse(value, rule, f"attributes.{key}"))
                for key, value in spec.attributes.items()
            ),
        )

    def render(
        self,
        bindings: Mapping[str, str],
        body: Mapping[str, Any],
        elements: Mapping[str, Any],
    ) -> RenderedDial:
        """Fill every field from the match; raise :class:`TemplateError` for a missing one."""

        def fill(template: Template | None, name: str) -> str | None:
            if template is None:
                return None
            return template.render(self.rule, name, bindings, body, elements)

        user = fill(self.user, "user")
        assert user is not None  # user is required by DialSpec
        return RenderedDial(
            rule=self.rule,
            user_id=user,
            contact=self.contact,
            phone_number=fill(self.phone_number, "phone_number"),
            caller_id=fill(self.caller_id, "caller_id"),
            caller_id_name=fill(self.caller_id_name, "caller_id_name"),
            queue_id=fill(self.queue_id, "call_from_queue_id"),
            label=fill(self.label, "label"),
            attributes={
                key: template.render(self.rule, f"attributes.{key}", bindings, body, elements)
                for key, template in self.attributes
            },
        )
