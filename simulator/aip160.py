"""List filters as Compute Engine and Batch evaluate them: AIP-160 and Compute's regex form.

Why a real parser: the auditor finds a job's VMs with `labels.batch-job-uid = "UID"` and the
probes look for leftovers with `name eq '.*-group0-.*'`. A substring match would find VMs that
Google would not (and the reverse), and the evidence would prove nothing. The two forms
follow the `filter` text of the compute.v1 discovery document:

* AIP-160: `field OP value` with OP one of `=`, `!=`, `<`, `<=`, `>`, `>=`, `:`; `field:*` tests
  presence; nested fields (`scheduling.automaticRestart = false`, `labels.owner`); juxtaposition
  means AND; explicit `AND`, `OR`, `NOT` / `-`; parentheses. As in AIP-160, `OR` binds tighter
  than `AND` (`a OR b AND c` is `(a OR b) AND c`), which is what the discovery example means.
* Regex form: `field eq RE2` / `field ne RE2`, one bare expression or several parenthesised
  ones; the pattern must match the whole field. The two forms cannot be mixed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, VisitError

_GRAMMAR = r"""
?start: conjunction
?conjunction: disjunction (_AND? disjunction)*
?disjunction: unary (_OR unary)*
?unary: _NOT unary           -> negate
      | "-" unary            -> negate
      | "(" conjunction ")"
      | restriction
restriction: FIELD OP value  -> compare
           | FIELD REOP value -> regex
value: ESCAPED_STRING | SINGLE_STRING | BARE

_AND: "AND"
_OR: "OR"
_NOT: "NOT"
OP: "<=" | ">=" | "!=" | "=" | "<" | ">" | ":"
REOP: "eq" | "ne"
FIELD: /[A-Za-z_][A-Za-z0-9_.\-]*/
SINGLE_STRING: /'[^']*'/
BARE: /[^\s()"']+/

%import common.ESCAPED_STRING
%import common.WS
%ignore WS
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)

_MISSING = object()
Predicate = Callable[[Mapping[str, Any]], bool]


class FilterError(ValueError):
    """The filter text is not a valid list filter; the message quotes it, as Compute does."""


@dataclass(frozen=True)
class _Value:
    text: str
    quoted: bool


@dataclass(frozen=True)
class CompiledFilter:
    """A parsed filter; `matches(resource_json)` tells whether a resource is kept."""

    text: str
    form: str  # "empty" | "aip160" | "regex"
    predicate: Predicate

    def matches(self, resource: Mapping[str, Any]) -> bool:
        return self.predicate(resource)


def parse_filter(text: str | None) -> CompiledFilter:
    """Compile a Compute/Batch `filter` parameter; raises FilterError on bad syntax or mixed forms."""
    source = (text or "").strip()
    if not source:
        return CompiledFilter("", "empty", lambda _resource: True)
    try:
        tree = _PARSER.parse(source)
    except LarkError as exc:
        raise FilterError(f"Invalid value for field 'filter': '{source}'. Invalid list filter expression.") from exc
    builder = _Builder()
    try:
        predicate = builder.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, FilterError):
            raise exc.orig_exc from None
        raise
    forms = builder.forms
    if forms == {"aip160", "regex"}:
        raise FilterError(f"Invalid value for field 'filter': '{source}'. "
                          "Regular expression and AIP-160 filter expressions cannot be mixed.")
    form = "regex" if forms == {"regex"} else "aip160"
    if form == "regex" and builder.boolean_keywords:
        raise FilterError(f"Invalid value for field 'filter': '{source}'. "
                          "Regular expression filters combine parenthesised expressions only, without AND/OR/NOT.")
    return CompiledFilter(source, form, predicate)


# --- evaluation ------------------------------------------------------------------------------------

def field_values(resource: Any, path: str) -> list[Any]:
    """Every value at a dotted path; lists along the way fan out (any element may match)."""
    current: list[Any] = [resource]
    for part in path.split("."):
        following: list[Any] = []
        for item in current:
            for element in item if isinstance(item, list) else [item]:
                if not isinstance(element, Mapping):
                    continue
                if part in element:
                    following.append(element[part])
                elif "_" in part and _camel(part) in element:  # Batch filters name fields in snake_case
                    following.append(element[_camel(part)])
        current = following
        if not current:
            return []
    flattened: list[Any] = []
    for item in current:
        flattened.extend(item if isinstance(item, list) else [item])
    return flattened


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _as_number(raw: Any) -> int | float | None:
    """A number from a JSON value or filter text; integers stay exact (19-digit ids exceed a float)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return raw
    text = str(raw).strip()
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return None


def _scalar_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def _equals(actual: Any, wanted: _Value) -> bool:
    if isinstance(actual, Mapping | list):
        return False
    if isinstance(actual, bool):
        return wanted.text.lower() == ("true" if actual else "false")
    if isinstance(actual, int | float):
        number = _as_number(wanted.text)
        return number is not None and actual == number
    text = str(actual)
    if "*" in wanted.text:  # AIP-160 wildcard on string values
        return fnmatch.fnmatchcase(text, wanted.text.replace("[", "[[]").replace("?", "[?]"))
    if text == wanted.text:
        return True
    # int64 fields (ids) travel as JSON strings; compare them as numbers when both sides are integers.
    left, right = _as_number(text), _as_number(wanted.text)
    return isinstance(left, int) and isinstance(right, int) and left == right


def _order(actual: Any, wanted: _Value, op: str) -> bool:
    if isinstance(actual, Mapping | list | bool):
        return False
    left, right = _as_number(actual), _as_number(wanted.text)
    if left is not None and right is not None:
        pair: tuple[Any, Any] = (left, right)
    else:
        pair = (str(actual), wanted.text)
    a, b = pair
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _has(actual: Any, wanted: _Value) -> bool:
    if isinstance(actual, Mapping):
        return wanted.text in actual
    if isinstance(actual, str):
        return wanted.text in actual
    return _equals(actual, wanted)


class _Builder(Transformer[Token, Predicate]):
    """Turns the parse tree into one predicate; records which filter forms were used."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: set[str] = set()
        self.boolean_keywords = False

    @v_args(inline=True)
    def value(self, token: Token) -> _Value:
        text = str(token)
        if token.type in {"ESCAPED_STRING", "SINGLE_STRING"}:
            inner = text[1:-1]
            if token.type == "ESCAPED_STRING":
                inner = re.sub(r"\\(.)", r"\1", inner)
            return _Value(inner, True)
        return _Value(text, False)

    @v_args(inline=True)
    def compare(self, field: Token, op: Token, wanted: _Value) -> Predicate:
        self.forms.add("aip160")
        path, operator = str(field), str(op)
        if operator == ":" and wanted.text == "*" and not wanted.quoted:
            return lambda resource: bool(field_values(resource, path))
        if operator == "!=":
            return lambda resource: not any(_equals(v, wanted) for v in field_values(resource, path))
        test: Callable[[Any], bool]
        if operator == "=":
            def test(v: Any) -> bool:
                return _equals(v, wanted)
        elif operator == ":":
            def test(v: Any) -> bool:
                return _has(v, wanted)
        else:
            def test(v: Any) -> bool:
                return _order(v, wanted, operator)
        return lambda resource: any(test(v) for v in field_values(resource, path))

    @v_args(inline=True)
    def regex(self, field: Token, op: Token, wanted: _Value) -> Predicate:
        self.forms.add("regex")
        path = str(field)
        try:
            pattern = re.compile(wanted.text)
        except re.error as exc:
            raise FilterError(f"Invalid value for field 'filter': the regular expression {wanted.text!r} "
                              f"is not valid RE2: {exc}") from exc

        def any_full_match(resource: Mapping[str, Any]) -> bool:
            return any(pattern.fullmatch(_scalar_text(v)) for v in field_values(resource, path)
                       if not isinstance(v, Mapping | list))

        if str(op) == "ne":
            return lambda resource: not any_full_match(resource)
        return any_full_match

    def negate(self, children: list[Predicate]) -> Predicate:
        self.boolean_keywords = True
        inner = children[0]
        return lambda resource: not inner(resource)

    def disjunction(self, children: list[Predicate]) -> Predicate:
        self.boolean_keywords = True
        parts = list(children)
        return lambda resource: any(p(resource) for p in parts)

    def conjunction(self, children: list[Predicate]) -> Predicate:
        parts = list(children)
        return lambda resource: all(p(resource) for p in parts)


def filter_resources(resources: Iterable[Mapping[str, Any]], text: str | None) -> list[Mapping[str, Any]]:
    """Convenience: the resources a filter keeps, in their original order."""
    compiled = parse_filter(text)
    return [r for r in resources if compiled.matches(r)]
