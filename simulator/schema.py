"""A tiny declarative validator for the simulator's YAML files (node files and scenarios).

Why not jsonschema: it is a test-only dependency here, and its messages name JSON pointers rather than
the dotted field a person edits. Each spec below says what a field must hold; `validate` returns every
problem as (dotted field, message), so a bad file is reported completely in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Spec:
    """Base of every field spec: `check(value, path, problems)` appends (path, message) pairs."""

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        raise NotImplementedError


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {str: "text", bool: "true/false", int: "a number", float: "a number",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Text(Spec):
    pattern: str | None = None
    hint: str = ""

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if not isinstance(value, str):
            problems.append((path, f"expected text, got {_kind(value)}"))
        elif self.pattern and not re.fullmatch(self.pattern, value):
            problems.append((path, f"{value!r} is not {self.hint or 'of the form ' + self.pattern}"))


@dataclass(frozen=True)
class OneOf(Spec):
    choices: tuple[Any, ...]

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if value not in self.choices:
            problems.append((path, f"{value!r} is not one of {', '.join(map(repr, self.choices))}"))


@dataclass(frozen=True)
class Integer(Spec):
    minimum: int | None = None

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append((path, f"expected a whole number, got {_kind(value)}"))
        elif self.minimum is not None and value < self.minimum:
            problems.append((path, f"{value} is below the minimum {self.minimum}"))


@dataclass(frozen=True)
class Boolean(Spec):
    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if not isinstance(value, bool):
            problems.append((path, f"expected true or false, got {_kind(value)}"))


@dataclass(frozen=True)
class AnyValue(Spec):
    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        return None


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    min_items: int = 0

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if not isinstance(value, list):
            problems.append((path, f"expected a list, got {_kind(value)}"))
            return
        if len(value) < self.min_items:
            problems.append((path, f"needs at least {self.min_items} item(s)"))
        for index, item in enumerate(value):
            self.item.check(item, f"{path}[{index}]", problems)


@dataclass(frozen=True)
class MapOf(Spec):
    """A mapping with free keys (e.g. bucket roles), each value matching `value`."""

    value: Spec
    key_pattern: str | None = None
    min_items: int = 0

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if not isinstance(value, dict):
            problems.append((path, f"expected a mapping, got {_kind(value)}"))
            return
        if len(value) < self.min_items:
            problems.append((path, f"needs at least {self.min_items} entr(y/ies)"))
        for key, item in value.items():
            if self.key_pattern and not (isinstance(key, str) and re.fullmatch(self.key_pattern, key)):
                problems.append((f"{path}.{key}", f"key {key!r} is not of the form {self.key_pattern}"))
            self.value.check(item, f"{path}.{key}", problems)


@dataclass(frozen=True)
class Struct(Spec):
    """A mapping with known keys. `open=True` allows extra keys (REST bodies carry many more fields)."""

    required: Mapping[str, Spec] = field(default_factory=dict)
    optional: Mapping[str, Spec] = field(default_factory=dict)
    open: bool = False

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        if not isinstance(value, dict):
            problems.append((path or "(top level)", f"expected a mapping, got {_kind(value)}"))
            return
        prefix = f"{path}." if path else ""
        for key, spec in self.required.items():
            if key not in value:
                problems.append((f"{prefix}{key}", "is required but missing"))
            else:
                spec.check(value[key], f"{prefix}{key}", problems)
        for key, spec in self.optional.items():
            if key in value and value[key] is not None:
                spec.check(value[key], f"{prefix}{key}", problems)
        if not self.open:
            known = set(self.required) | set(self.optional)
            for key in value:
                if key not in known:
                    problems.append((f"{prefix}{key}",
                                     f"is not a known field (known: {', '.join(sorted(known))})"))


@dataclass(frozen=True)
class Check(Spec):
    """A spec plus a custom rule over the whole value (e.g. a cross-field constraint)."""

    inner: Spec
    rule: Callable[[Any], str | None]

    def check(self, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
        before = len(problems)
        self.inner.check(value, path, problems)
        if len(problems) == before:
            message = self.rule(value)
            if message:
                problems.append((path or "(top level)", message))


def validate(value: Any, spec: Spec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    spec.check(value, "", problems)
    return problems
