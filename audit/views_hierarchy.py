"""Typed views of the project's ancestry: the chain of folders up to the organization, their audit
configs, and the gcp.resourceLocations policy set at each level (collected by
audit/collectors/hierarchy.py; reference gcp-escape-routes §6).

Fail closed: a folder whose parent could not be read, an ancestor's IAM policy that failed, or a
level's policy that answered anything but the policy or a 404 raises EvidenceIncomplete naming the
level, so the controls that rest on the chain report ERROR rather than judge half of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.orgpolicy_merge import EffectiveList, merge_list
from sovaudit.audit.views import EvidenceIncomplete, _one, api_of, complete_items

FOLDER = "resourcemanager.folder"
ANCESTOR_IAM = "resourcemanager.ancestor_iam"
LEVEL_POLICY = "orgpolicy.level"
PROJECT_LEVEL = "project"
MAX_DEPTH = 12


@dataclass(frozen=True)
class Ancestry:
    """`projects/NUMBER` and its ancestors, nearest first (`folders/2`, `folders/1`, `organizations/9`)."""

    project: str
    ancestors: tuple[str, ...]
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog) -> Ancestry:
        body, item_id = _one(log, "resourcemanager.project")
        project = str(body.get("name") or f"projects/{body.get('projectId', '')}")
        evidence = [item_id]
        chain: list[str] = []
        parent = str(body.get("parent") or "")
        while parent.startswith("folders/"):
            if parent in chain or len(chain) >= MAX_DEPTH:
                raise EvidenceIncomplete(f"the folders above {project} form a loop or exceed {MAX_DEPTH} levels "
                                         f"at {parent}", tuple(evidence))
            chain.append(parent)
            try:
                items = complete_items(log, f"{FOLDER}:{parent}")
            except EvidenceIncomplete as exc:
                raise EvidenceIncomplete(f"ancestor {parent} of {project} could not be read: {exc.message}",
                                         tuple(evidence) + exc.evidence_ids) from exc
            evidence.append(items[-1].id)
            parent = str(items[-1].parsed.get("parent") or "")
        if parent.startswith("organizations/"):
            chain.append(parent)
        elif parent:
            raise EvidenceIncomplete(f"the chain above {project} ends in {parent!r}, neither a folder nor an "
                                     "organization", tuple(evidence))
        return cls(project, tuple(chain), tuple(evidence))


def ancestor_iam_policies(log: EvidenceLog) -> list[tuple[str, Mapping[str, Any], str]]:
    """(level, IAM policy JSON, evidence id) for every ancestor, nearest first."""
    ancestry = Ancestry.from_log(log)
    found = []
    for level in ancestry.ancestors:
        try:
            items = complete_items(log, f"{ANCESTOR_IAM}:{level}")
        except EvidenceIncomplete as exc:
            raise EvidenceIncomplete(f"the IAM policy (audit configs) of ancestor {level} could not be read: "
                                     f"{exc.message}", ancestry.evidence + exc.evidence_ids) from exc
        found.append((level, items[-1].parsed, items[-1].id))
    return found


# ------------------------------------------------------------------------------------------------
# gcp.resourceLocations at each level


@dataclass(frozen=True)
class LevelRule:
    """One rule of a level's spec (or dryRunSpec), as set there."""

    allow_all: bool
    deny_all: bool
    allowed: tuple[str, ...]
    denied: tuple[str, ...]
    condition: str   # the CEL expression ('' when unconditional)
    condition_title: str

    @classmethod
    def parse(cls, rule: Mapping[str, Any]) -> LevelRule:
        values = rule.get("values") or {}
        condition = rule.get("condition") or {}
        return cls(bool(rule.get("allowAll")), bool(rule.get("denyAll")),
                   tuple(values.get("allowedValues") or ()), tuple(values.get("deniedValues") or ()),
                   str(condition.get("expression") or ""), str(condition.get("title") or ""))

    def describe(self) -> str:
        if self.allow_all:
            return "allowAll"
        if self.deny_all:
            return "denyAll"
        parts = []
        if self.allowed:
            parts.append("allows " + ", ".join(self.allowed))
        if self.denied:
            parts.append("denies " + ", ".join(self.denied))
        return "; ".join(parts) or "an empty rule"


@dataclass(frozen=True)
class LevelSpec:
    rules: tuple[LevelRule, ...]
    inherit_from_parent: bool
    reset: bool

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None) -> LevelSpec | None:
        if not spec:
            return None
        return cls(tuple(LevelRule.parse(r) for r in spec.get("rules") or ()),
                   bool(spec.get("inheritFromParent")), bool(spec.get("reset")))

    @property
    def sets_something(self) -> bool:
        return self.reset or bool(self.rules)

    def as_spec(self) -> dict[str, Any]:
        """Back to the JSON shape the merge reads."""
        rules: list[dict[str, Any]] = []
        for rule in self.rules:
            if rule.allow_all:
                rules.append({"allowAll": True})
            elif rule.deny_all:
                rules.append({"denyAll": True})
            else:
                rules.append({"values": {"allowedValues": list(rule.allowed), "deniedValues": list(rule.denied)}})
        return {"rules": rules, "inheritFromParent": self.inherit_from_parent, "reset": self.reset}


@dataclass(frozen=True)
class LevelPolicy:
    """The location policy set at one level (`spec` None: none enforced there)."""

    level: str
    spec: LevelSpec | None
    dry_run: LevelSpec | None
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class LocationChain:
    """Root (organization) first, the project last."""

    levels: tuple[LevelPolicy, ...]
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog) -> LocationChain:
        ancestry = Ancestry.from_log(log)
        levels = []
        evidence = list(ancestry.evidence)
        for label, level in [(a, a) for a in reversed(ancestry.ancestors)] + [(PROJECT_LEVEL, ancestry.project)]:
            purpose = f"{LEVEL_POLICY}:{label}"
            status = log.by_purpose(purpose)
            if not status.items:
                raise EvidenceIncomplete(f"the gcp.resourceLocations policy set at {level} was not read "
                                         f"({api_of(purpose)})", tuple(evidence))
            item = status.items[-1]
            evidence.append(item.id)
            if item.status == 404:
                levels.append(LevelPolicy(level, None, None, (item.id,)))
                continue
            if not item.ok or not isinstance(item.parsed, dict):
                raise EvidenceIncomplete(f"the gcp.resourceLocations policy set at {level} could not be read: "
                                         f"{item.error_message()}", tuple(evidence))
            body = item.parsed
            levels.append(LevelPolicy(level, LevelSpec.parse(body.get("spec")), LevelSpec.parse(body.get("dryRunSpec")),
                                      (item.id,)))
        return cls(tuple(levels), tuple(evidence))

    def in_force(self) -> tuple[LevelPolicy, ...]:
        """The levels whose enforced spec makes up the effective policy, nearest the project first:
        from the project up, through levels that set nothing or inherit, to the nearest root."""
        found: list[LevelPolicy] = []
        for level in reversed(self.levels):
            if level.spec is None or not level.spec.sets_something:
                continue
            found.append(level)
            if level.spec.reset or not level.spec.inherit_from_parent:
                break
        return tuple(found)

    def reaches_default(self) -> bool:
        """Whether the constraint default (ALLOW) is the base of the effective policy."""
        chain = self.in_force()
        return not chain or bool(chain[-1].spec and chain[-1].spec.reset)

    def merged(self) -> EffectiveList:
        return merge_list([level.spec.as_spec() if level.spec else None for level in self.levels])

    def origins(self, value: str) -> tuple[str, ...]:
        """The in-force levels whose rules allow `value`."""
        return tuple(level.level for level in self.in_force()
                     if level.spec and any(value in rule.allowed for rule in level.spec.rules))
