"""Org Policy v2 list-constraint inheritance, as Google merges it (reference gcp-escape-routes §6.3).

Walking from the organization down to the project, a level's `spec`:
- absent, or without rules and without `reset`: the parent's effective policy passes through;
- `reset: true`: "ignores policies set above this resource and restores the constraint_default";
- `inheritFromParent` false (the v2 default): the level is a new root, its rules alone count;
- `inheritFromParent` true: its values are added to the inherited ones (allowed ∪ allowed,
  denied ∪ denied, denied beats allowed); `allowAll` at the child wins over a parent's list,
  `denyAll` admits nothing.
These rules are documented for v1 (`ListPolicy.inherit_from_parent`, Examples 1-7) and assumed
unchanged in v2 ([U] §11.9). v1's Example 3 shows a child `{denied_values}` without inheritance still
combining with the parent's allowed list; this module follows the v2 text (false = new root), which
is the reading under which a child policy can *widen* what the parent allowed — the one an auditor
must catch. `dryRunSpec` never enters the merge: it does not enforce.

Pure and shared: the simulator's getEffectivePolicy and enforcement use it, and SOV-01 uses it to say
where each effective rule came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EffectiveList:
    """A list constraint's merged rules: what `getEffectivePolicy` answers and what enforcement uses."""

    allow_all: bool
    deny_all: bool
    allowed: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()

    def rules(self) -> list[dict[str, Any]]:
        """Serialised as one rule. How Google serialises a merged list (one rule with combined values,
        or one rule per contributing level) is unconfirmed ([U] §11.9); sovaudit's view of the
        effective policy merges all rules, so either shape reads the same there."""
        if self.deny_all:
            return [{"denyAll": True}]
        if self.allow_all and not self.denied:
            return [{"allowAll": True}]
        values: dict[str, list[str]] = {}
        if self.allowed and not self.allow_all:
            values["allowedValues"] = list(self.allowed)
        if self.denied:
            values["deniedValues"] = list(self.denied)
        return [{"values": values}]


def _union(*groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for group in groups for v in group))


def _own(rules: Sequence[Mapping[str, Any]]) -> EffectiveList:
    """One level's rules taken together (rules of a list constraint OR together). A rule with a
    `condition` counts as if its condition held: the simulator binds no tags to resources, and a
    condition on a tag is exactly what lets a tagged resource escape ([U] how Google shows it: the
    effective policy drops `condition`), so the widest reading is the one modelled and enforced."""
    allow_all = any(bool(r.get("allowAll")) for r in rules)
    deny_all = any(bool(r.get("denyAll")) for r in rules) and not allow_all
    allowed = _union(*[(r.get("values") or {}).get("allowedValues") or () for r in rules])
    denied = _union(*[(r.get("values") or {}).get("deniedValues") or () for r in rules])
    return EffectiveList(allow_all, deny_all, allowed, denied)


def merge_list(chain: Sequence[Mapping[str, Any] | None], *, default_allow: bool = True) -> EffectiveList:
    """Merge the `spec`s of a list constraint from the root (organization) down to the project.

    Each entry is one level's Policy `spec` (None: no policy there). `dryRunSpec` is never passed in:
    a dry run does not enforce. A level with no policy above it inherits nothing: the constraint
    default applies only where no level sets anything, or where a level resets to it (and a child
    that inherits from a reset level then inherits the default itself)."""
    default = EffectiveList(allow_all=default_allow, deny_all=not default_allow)
    current: EffectiveList | None = None
    for spec in chain:
        if not spec:
            continue
        if spec.get("reset"):
            current = default   # "ignores policies set above this resource and restores the constraint_default"
            continue
        rules = list(spec.get("rules") or [])
        if not rules:
            continue            # no rules, no reset: nothing set here, the parent's policy passes through
        own = _own(rules)
        if current is None or not spec.get("inheritFromParent"):
            current = own       # a new root for evaluation (or nothing above to inherit)
        elif own.allow_all:
            current = EffectiveList(True, False, (), current.denied)   # allowAll at the child wins (v1 Example 6)
        elif own.deny_all:
            current = EffectiveList(False, True)                        # v1 Example 7
        elif current.deny_all:
            current = EffectiveList(False, False, own.allowed, own.denied)
        else:
            # Values combine (v1 Example 2); allowed stays "all" when the parent allowed all.
            current = EffectiveList(current.allow_all, False,
                                    () if current.allow_all else _union(current.allowed, own.allowed),
                                    _union(current.denied, own.denied))
    return current if current is not None else default
