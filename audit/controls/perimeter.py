"""SEC-01: the VPC Service Controls perimeter, judged whole.

A perimeter that is "enforced and holds the project" proves little on its own: one more project in
its resources, one egress rule to `*`, one ingress rule from anywhere, a bridge to another project,
an access level for some subnet or a pending dry-run spec waiting for `commit` each open a route out
while the perimeter still looks enforced (reference gcp-escape-routes §1.3). So every part of the
perimeter is held to an exact allow-list in the policy pack (`perimeter.extra_resources`,
`allowed_ingress`, `allowed_egress`, `allowed_bridges`, `allowed_access_levels`), rules and access
levels by their full content, never by title.

A pending dry-run spec that differs from the enforced status is judged with the same rules: when it
would open something the pack does not allow, SEC-01 FAILs, because one `servicePerimeters:commit`
(by anyone who may edit the perimeter) makes it the enforced configuration, and an insider stages
exactly that. A spec that differs but opens nothing unlisted (e.g. it only narrows) is a PASS whose
finding says what differs, so a reviewer sees the pending change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import EvidenceIncomplete, Project
from sovaudit.audit.views_perimeter import (
    AccessLevel,
    PerimeterConfig,
    PerimeterRule,
    ServicePerimeter,
    access_levels,
    canonical,
    service_perimeters,
)
from sovaudit.policies.pack import PolicyPack

FRAMEWORKS = {"GDPR": ["Art. 32", "Art. 44"], "HIPAA": ["164.312(e)(1)"],
              "NIST-800-53": ["SC-7", "AC-4", "CM-3"], "ISO27001-2022": ["A.8.20", "A.8.22"]}


@control(
    id="SEC-01", pillar=Pillar.CONTROLS, severity=Severity.CRITICAL,
    title="An enforced VPC-SC perimeter holds only the node and opens no route the pack does not list",
    rationale="VPC Service Controls stop data leaving through Google APIs even with valid credentials, but only "
              "as far as the whole perimeter goes: it must be a regular perimeter in enforced mode that restricts "
              "the pipeline's services and holds only the node's project (and what the pack lists); every ingress "
              "and egress rule, every bridge it takes part in and every access level it admits is a route across "
              "it and must be one the pack lists by its full content. A pending dry-run spec that would open more "
              "is one commit away from being enforced.",
    remediation="gcloud access-context-manager perimeters describe NAME --policy=POLICY; remove unlisted resources "
                "(perimeters update NAME --remove-resources=projects/N), rules (--set-ingress-policies/"
                "--set-egress-policies=FILE with only the listed rules), access levels (--remove-access-levels) and "
                "bridge memberships; drop a pending spec with `perimeters dry-run drop NAME`; promote a dry-run-only "
                "perimeter with `perimeters dry-run enforce NAME`. Terraform: google_access_context_manager_"
                "service_perimeter with use_explicit_dry_run_spec=false. List a deliberate rule in the pack's "
                "perimeter.allowed_* fields.",
    frameworks=FRAMEWORKS,
    reads=["acm.perimeters", "acm.access_levels", "resourcemanager.project"],
)
def perimeter_enforced(ctx: ControlContext) -> Iterator[Finding]:
    pack = ctx.policy
    perimeters = service_perimeters(ctx.evidence)
    project = Project.from_log(ctx.evidence)
    listed_ids = ctx.evidence.by_purpose("acm.perimeters").ids
    found = next((p for p in perimeters if p.name == pack.perimeter.name), None)
    if found is None:
        names = ", ".join(p.name for p in perimeters) or "none"
        yield Finding.fail(pack.perimeter.name, f"perimeter {pack.perimeter.name} does not exist in "
                           f"{pack.perimeter.access_policy} (found: {names})", listed_ids)
        return
    member = f"projects/{project.project_number}"
    evidence = found.evidence + project.evidence
    judge = _Judge(ctx, pack, member)
    problems: list[str] = []
    notes: list[str] = []
    if found.is_bridge:
        problems.append(f"it is a {found.perimeter_type}, not a regular perimeter")
    if found.status is None:
        problems.append("it has no enforced configuration (status): it only runs in dry-run mode, nothing is "
                        "refused" if found.spec is not None else "it has no enforced configuration (status)")
    else:
        if member not in found.status.resources:
            problems.append(f"{member} ({pack.project}) is not among its enforced resources")
        problems += judge.config(found.status, "its enforced status ")
    if found.status is not None and found.use_explicit_dry_run_spec and found.spec is not None:
        differences = _differences(found.status, found.spec)
        if differences:
            where = "its pending dry-run spec (one `commit` from enforced) "
            pending = judge.config(found.spec, where)
            if member not in found.spec.resources:
                pending.insert(0, f"{where}no longer holds {member} ({pack.project}): committed, the node would "
                                  "leave the perimeter")
            what = f"its pending dry-run spec differs from the enforced status ({'; '.join(differences)})"
            if pending:
                problems += pending
            else:
                notes.append(what + "; it opens nothing the pack does not list")
    yield from judge.errors
    for text in problems:
        yield Finding.fail(found.name, text, evidence + judge.level_evidence)
    for bridge in _bridges_holding(perimeters, member):
        allowed = next((b for b in pack.perimeter.allowed_bridges if b.name == bridge.name), None)
        others = [r for r in bridge.members() if r != member]
        widened = [r for r in others if allowed is None or r not in allowed.resources]
        if widened:
            why = "is not listed in the pack" if allowed is None else "holds projects the pack does not list for it"
            yield Finding.fail(bridge.name, f"bridge perimeter {bridge.name} joins {member} with "
                               f"{', '.join(others)} (requests between them pass both perimeters); it {why}: "
                               f"{', '.join(widened)}", bridge.evidence)
            problems.append(bridge.name)
    for other in perimeters:
        if other is found or other.is_bridge:
            continue
        held = [r for r in other.members() if r == member or r.startswith(judge.network_prefix)]
        if held:
            # A project or network sits in one regular perimeter only; another one holding the node means its
            # calls are judged by that perimeter's rules, which the pack does not govern.
            yield Finding.fail(other.name, f"another regular perimeter, {other.name}, holds {', '.join(held)}: the "
                               "node's calls would be judged by its rules, not by "
                               f"{pack.perimeter.name}", other.evidence)
            problems.append(other.name)
    if not problems and not judge.errors:
        summary = (f"enforced regular perimeter holding only {', '.join(found.status.resources)}, restricting "
                   f"{', '.join(pack.perimeter.restricted_services)}; every rule, bridge and access level is listed "
                   f"in the pack" if found.status else "")
        yield Finding.ok(found.name, "; ".join([summary, *notes]), evidence + judge.level_evidence)


class _Judge:
    """Holds one perimeter configuration to the pack; collects access-level evidence as it goes."""

    def __init__(self, ctx: ControlContext, pack: PolicyPack, member: str) -> None:
        self.ctx = ctx
        self.pack = pack
        self.member = member
        self.errors: list[Finding] = []
        self.level_evidence: tuple[str, ...] = ()
        self._levels: dict[str, AccessLevel] | None = None

    @property
    def network_prefix(self) -> str:
        """Every VPC network of the node's project, as a perimeter resource names it."""
        return f"//compute.googleapis.com/projects/{self.pack.project}/global/networks/"

    def allowed_resources(self) -> set[str]:
        network = (f"//compute.googleapis.com/projects/{self.pack.project}/global/networks/"
                   f"{self.pack.network.network}")
        return {self.member, network, *self.pack.perimeter.extra_resources}

    def config(self, config: PerimeterConfig, where: str) -> list[str]:
        problems = []
        outside = [r for r in config.resources if r not in self.allowed_resources()]
        if outside:
            problems.append(f"{where}holds {', '.join(outside)} beside the node (members of one perimeter exchange "
                            "data freely); the pack's perimeter.extra_resources does not list it")
        missing = [s for s in self.pack.perimeter.restricted_services if s not in config.restricted_services]
        if missing:
            problems.append(f"{where}does not restrict {', '.join(missing)}")
        problems += self._vpc_services(config, where)
        problems += self._rules(config.ingress, self.pack.perimeter.allowed_ingress, where)
        problems += self._rules(config.egress, self.pack.perimeter.allowed_egress, where)
        problems += self._access_levels(config, where)
        return problems

    def _vpc_services(self, config: PerimeterConfig, where: str) -> list[str]:
        vpc = config.vpc_accessible_services
        if vpc.get("enableRestriction") is not True:
            return [f"{where}does not restrict the services its VPC networks may reach "
                    "(vpcAccessibleServices.enableRestriction is not true)"]
        allowed = {"RESTRICTED-SERVICES", *config.restricted_services}
        extra = [str(s) for s in vpc.get("allowedServices") or () if s not in allowed]
        if extra:
            return [f"{where}lets its VPC networks reach services it does not restrict: {', '.join(extra)}"]
        if vpc.get("allowedServicePatterns"):
            return [f"{where}lets its VPC networks reach service patterns {', '.join(vpc['allowedServicePatterns'])}"]
        return []

    def _rules(self, rules: tuple[PerimeterRule, ...], listed: tuple[object, ...], where: str) -> list[str]:
        listed_bodies = [body for body in listed if isinstance(body, dict)]
        allowed = {canonical(body) for body in listed_bodies}
        titles = {str(body.get("title", "")) for body in listed_bodies if body.get("title")}
        problems = []
        for rule in rules:
            if rule.canonical in allowed:
                continue
            name = f"{rule.direction} rule {rule.title!r}" if rule.title else f"an untitled {rule.direction} rule"
            if rule.title in titles:
                problems.append(f"{where}has {name} whose body differs from the pack's rule of that title; it "
                                f"opens: {rule.describe()}")
            else:
                problems.append(f"{where}has {name} the pack does not list; it opens: {rule.describe()}")
        return problems

    def _access_levels(self, config: PerimeterConfig, where: str) -> list[str]:
        referenced = config.referenced_access_levels
        if not referenced:
            return []
        listed = {str(level.get("name", "")): canonical(level) for level in self.pack.perimeter.allowed_access_levels}
        levels = self._load_levels()
        # A level may require others (basic.conditions[].requiredAccessLevels): widening one of those widens it.
        pending, seen = list(referenced), []
        while pending:
            name = pending.pop(0)
            if name in seen:
                continue
            seen.append(name)
            level = (levels or {}).get(name)
            for condition in ((level.body.get("basic") or {}).get("conditions") or ()) if level else ():
                pending += [str(n) for n in condition.get("requiredAccessLevels") or ()]
        problems = []
        for name in seen:
            level = (levels or {}).get(name)
            described = level.describe() if level is not None else "not found in the access policy"
            if name not in listed:
                problems.append(f"{where}admits callers through access level {name} ({described}), which the pack "
                                "does not list")
            elif levels is not None and (level is None or level.canonical != listed[name]):
                problems.append(f"{where}relies on access level {name} whose conditions differ from the pack's: "
                                f"{described}")
        return problems

    def _load_levels(self) -> dict[str, AccessLevel] | None:
        if self._levels is None:
            try:
                found = access_levels(self.ctx.evidence)
            except EvidenceIncomplete as exc:
                if not self.errors:
                    self.errors.append(Finding.error(self.pack.perimeter.access_policy, "the perimeter relies on "
                                                     f"access levels but they could not be read: {exc.message}",
                                                     exc.evidence_ids))
                return None
            self._levels = {level.name: level for level in found}
            self.level_evidence = tuple(dict.fromkeys(i for level in found for i in level.evidence)) or \
                self.ctx.evidence.by_purpose("acm.access_levels").ids
        return self._levels


def _bridges_holding(perimeters: tuple[ServicePerimeter, ...], member: str) -> list[ServicePerimeter]:
    return [p for p in perimeters if p.is_bridge and member in p.members()]


def _differences(status: PerimeterConfig, spec: PerimeterConfig) -> list[str]:
    """What a pending spec changes, field by field, in words a reviewer can check."""
    changes = []
    before, after = dict(status.raw or {}), dict(spec.raw or {})
    for key in sorted(set(before) | set(after)):
        if canonical({"v": before.get(key)}) == canonical({"v": after.get(key)}):
            continue
        old, new = before.get(key), after.get(key)
        if isinstance(old, list) or isinstance(new, list):
            old_items = {json.dumps(i, sort_keys=True) for i in old or ()}
            new_items = {json.dumps(i, sort_keys=True) for i in new or ()}
            added = sorted(new_items - old_items)
            removed = sorted(old_items - new_items)
            parts = ([f"adds {', '.join(added)}"] if added else []) + (
                [f"removes {', '.join(removed)}"] if removed else [])
            changes.append(f"{key} {' and '.join(parts) or 'reordered'}")
        else:
            changes.append(f"{key} {json.dumps(old, sort_keys=True)} -> {json.dumps(new, sort_keys=True)}")
    return changes
