"""Typed views of Assured Workloads v1 answers (SOV-09): the workload and its violations.

Google spells these as in the discovery document `assuredworkloads.v1`: camelCase, RFC 3339 times,
enums as strings, `resources[].resourceId` an int64 carried as a string, unset fields omitted (so an
omitted boolean such as `resourceMonitoringEnabled` is false and an omitted `resolveTime` means the
violation is still unresolved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import EvidenceIncomplete, complete_items

WORKLOAD = "assuredworkloads.workload"
VIOLATIONS = "assuredworkloads.violations"


def enum_name(value: Any, enum: str) -> str:
    """An enum of the Workload message as its name. GetWorkload goes through the generated REST client,
    which asks for `enum-encoding=int`, so Google answers numbers (CONSUMER_FOLDER is 4, not 2: the
    numbers are not in declaration order); the client library's own enum maps them back."""
    if isinstance(value, bool):
        return str(value)
    number = value if isinstance(value, int) else int(value) if isinstance(value, str) and value.isdigit() else None
    if number is None:
        return str(value or "")
    from google.cloud.assuredworkloads_v1 import types

    enum_type: Any = {"ComplianceRegime": types.Workload.ComplianceRegime, "Partner": types.Workload.Partner,
                 "ResourceType": types.Workload.ResourceInfo.ResourceType}[enum]
    try:
        return str(enum_type(number).name)
    except ValueError:
        return f"{enum}({number})"   # a value newer than the installed client: shown, never guessed


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time as Google writes it (`Z`, up to nanoseconds); None when absent."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    # Python keeps microseconds only: cut a longer fraction (Google may send nanoseconds).
    if "." in value:
        head, rest = value.split(".", 1)
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        value = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (RFC 3339 requires Z or an offset)")
    return moment


@dataclass(frozen=True)
class WorkloadResource:
    resource_id: str
    resource_type: str


@dataclass(frozen=True)
class Workload:
    """What SOV-09 reads of the workload: what it governs, its regime, and whether Google watches it."""

    name: str
    display_name: str
    compliance_regime: str
    enable_sovereign_controls: bool
    partner: str
    resource_monitoring_enabled: bool
    resources: tuple[WorkloadResource, ...]
    # complianceStatus: Google's own count of current (unresolved) violations, by kind.
    open_counts: Mapping[str, int]
    evidence: tuple[str, ...]

    @property
    def open_total(self) -> int:
        return sum(self.open_counts.values())

    @classmethod
    def from_log(cls, log: EvidenceLog) -> Workload:
        items = complete_items(log, WORKLOAD)
        body: Mapping[str, Any] = items[-1].parsed
        ids = (items[-1].id,)
        resources = []
        for entry in body.get("resources") or ():
            if isinstance(entry, Mapping):
                resources.append(WorkloadResource(
                    str(entry.get("resourceId") or ""),
                    enum_name(entry.get("resourceType"), "ResourceType") or "RESOURCE_TYPE_UNSPECIFIED"))
        status = body.get("complianceStatus") or {}
        counts: dict[str, int] = {}
        for key in ("activeViolationCount", "acknowledgedViolationCount", "activeResourceViolationCount",
                    "acknowledgedResourceViolationCount"):
            try:
                counts[key] = int(status.get(key) or 0)
            except (TypeError, ValueError) as exc:
                raise EvidenceIncomplete(f"{WORKLOAD}: complianceStatus.{key} is not a number",
                                         ids) from exc
        return cls(name=str(body.get("name") or ""), display_name=str(body.get("displayName") or ""),
                   compliance_regime=enum_name(body.get("complianceRegime"), "ComplianceRegime")
                   or "COMPLIANCE_REGIME_UNSPECIFIED",
                   enable_sovereign_controls=body.get("enableSovereignControls") is True,
                   partner=enum_name(body.get("partner"), "Partner"),
                   resource_monitoring_enabled=body.get("resourceMonitoringEnabled") is True,
                   resources=tuple(resources), open_counts=counts, evidence=ids)


@dataclass(frozen=True)
class ExceptionContext:
    user_name: str
    comment: str
    acknowledgement_time: str


@dataclass(frozen=True)
class Violation:
    """One violation as Google reports it, with the evidence page it came on."""

    name: str
    description: str
    category: str
    state: str
    violation_type: str
    begin_time: datetime | None
    resolve_time: datetime | None
    acknowledged: bool
    acknowledgement_time: str
    non_compliant_org_policy: str
    resource_name: str
    parent_project_number: str
    exception_contexts: tuple[ExceptionContext, ...]
    evidence: str

    @property
    def short_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def subject(self) -> str:
        """What the violation is about: the org policy or the resource, for messages."""
        return self.non_compliant_org_policy or self.resource_name or self.category or "the workload"


def violations(log: EvidenceLog) -> tuple[Violation, ...]:
    """Every violation on every page of the listing (EvidenceIncomplete unless all pages came back)."""
    found: list[Violation] = []
    for item in complete_items(log, VIOLATIONS):
        for raw in item.parsed.get("violations") or ():
            if not isinstance(raw, Mapping):
                raise EvidenceIncomplete(f"{VIOLATIONS}: evidence {item.id} holds a violation that is not an object",
                                         (item.id,))
            try:
                found.append(_violation(raw, item.id))
            except ValueError as exc:
                raise EvidenceIncomplete(f"{VIOLATIONS}: violation {raw.get('name')!r} in evidence {item.id}: {exc}",
                                         (item.id,)) from exc
    return tuple(found)


def _violation(raw: Mapping[str, Any], item_id: str) -> Violation:
    contexts = tuple(ExceptionContext(str(c.get("userName") or ""), str(c.get("comment") or ""),
                                      str(c.get("acknowledgementTime") or ""))
                     for c in raw.get("exceptionContexts") or () if isinstance(c, Mapping))
    return Violation(
        name=str(raw.get("name") or ""), description=str(raw.get("description") or ""),
        category=str(raw.get("category") or ""), state=str(raw.get("state") or "STATE_UNSPECIFIED"),
        violation_type=str(raw.get("violationType") or "VIOLATION_TYPE_UNSPECIFIED"),
        begin_time=parse_time(raw.get("beginTime")), resolve_time=parse_time(raw.get("resolveTime")),
        acknowledged=raw.get("acknowledged") is True, acknowledgement_time=str(raw.get("acknowledgementTime") or ""),
        # orgPolicyConstraint is the deprecated spelling of nonCompliantOrgPolicy; read either.
        non_compliant_org_policy=str(raw.get("nonCompliantOrgPolicy") or raw.get("orgPolicyConstraint") or ""),
        resource_name=str(raw.get("resourceName") or ""),
        parent_project_number=str(raw.get("parentProjectNumber") or ""),
        exception_contexts=contexts, evidence=item_id,
    )
