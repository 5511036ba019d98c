"""The vocabulary of an audit: outcomes, findings, control metadata and results, the run result.

Everything here is a frozen value, so a result can be rendered, signed and compared with a
re-verification without anyone having mutated it on the way. `RunResult.to_json()` produces the
`sovaudit/result/v1` document of docs/architecture.md, and `from_json` reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sovaudit.audit.evidence import EvidenceLog

if TYPE_CHECKING:
    from sovaudit.policies.pack import PolicyPack, Waiver

RESULT_SCHEMA = "sovaudit/result/v1"


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    WAIVED = "WAIVED"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    #: not run because the user chose so (--no-probes, --posture-only): nothing was proven, and unlike
    #: NOT_APPLICABLE (the signed policy says the control does not apply: passes, shown) the run is
    #: WARNED, never a clean PASS.
    SKIPPED = "SKIPPED"


class Pillar(StrEnum):
    SOVEREIGNTY = "sovereignty"
    CONFIDENTIAL = "confidential"
    CONTROLS = "controls"
    INTEGRITY = "integrity"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


def _ids(evidence: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(evidence, str):
        return (evidence,) if evidence else ()
    return tuple(dict.fromkeys(e for e in evidence if e))


@dataclass(frozen=True)
class Finding:
    """One observation of a control about one resource, with the evidence items that show it."""

    outcome: Outcome
    resource: str
    message: str
    evidence: tuple[str, ...] = ()

    @classmethod
    def ok(cls, resource: str, message: str, evidence: Iterable[str] | str = ()) -> Finding:
        return cls(Outcome.PASS, resource, message, _ids(evidence))

    @classmethod
    def fail(cls, resource: str, message: str, evidence: Iterable[str] | str = ()) -> Finding:
        return cls(Outcome.FAIL, resource, message, _ids(evidence))

    @classmethod
    def error(cls, resource: str, message: str, evidence: Iterable[str] | str = ()) -> Finding:
        return cls(Outcome.ERROR, resource, message, _ids(evidence))

    @classmethod
    def not_applicable(cls, resource: str, message: str, evidence: Iterable[str] | str = ()) -> Finding:
        return cls(Outcome.NOT_APPLICABLE, resource, message, _ids(evidence))

    @classmethod
    def skipped(cls, resource: str, message: str, evidence: Iterable[str] | str = ()) -> Finding:
        return cls(Outcome.SKIPPED, resource, message, _ids(evidence))

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "resource": self.resource, "message": self.message,
                "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(Outcome(data["outcome"]), str(data.get("resource", "")), str(data.get("message", "")),
                   tuple(data.get("evidence", ())))


@dataclass(frozen=True)
class ControlMeta:
    """What a control proves and why; what it reads; when it applies."""

    id: str
    title: str
    pillar: Pillar
    severity: Severity
    rationale: str
    remediation: str
    frameworks: Mapping[str, tuple[str, ...]]
    reads: tuple[str, ...]
    needs_job: bool = False
    probe: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "pillar": self.pillar.value, "severity": self.severity.value,
                "rationale": self.rationale, "remediation": self.remediation,
                "frameworks": {k: list(v) for k, v in self.frameworks.items()},
                "reads": list(self.reads), "needs_job": self.needs_job, "probe": self.probe}


@dataclass(frozen=True)
class ControlResult:
    """A control's verdict for one run: the aggregated outcome, its findings, and any waiver used."""

    meta: ControlMeta
    outcome: Outcome
    findings: tuple[Finding, ...]
    severity: Severity
    waiver: Waiver | None = None
    #: wall-clock seconds the engine spent judging this control (None when not measured, e.g. a
    #: result read back from an older result.json); JUnit reports it as the testcase time.
    duration_seconds: float | None = None

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(sorted({e for f in self.findings for e in f.evidence}))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.meta.id, "title": self.meta.title, "pillar": self.meta.pillar.value,
            "severity": self.severity.value, "outcome": self.outcome.value,
            "rationale": self.meta.rationale, "remediation": self.meta.remediation,
            "frameworks": {k: list(v) for k, v in self.meta.frameworks.items()},
            "findings": [f.to_json() for f in self.findings],
            "evidence": list(self.evidence),
            "waiver": self.waiver.to_json() if self.waiver is not None else None,
            **({"duration_seconds": self.duration_seconds} if self.duration_seconds is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ControlResult:
        from sovaudit.policies.pack import Waiver

        meta = ControlMeta(
            id=data["id"], title=data.get("title", ""), pillar=Pillar(data["pillar"]),
            severity=Severity(data["severity"]), rationale=data.get("rationale", ""),
            remediation=data.get("remediation", ""),
            frameworks={k: tuple(v) for k, v in (data.get("frameworks") or {}).items()}, reads=(),
        )
        w = data.get("waiver")
        waiver = Waiver(w["control"], w["resource"], w["owner"], w["justification"],
                        date.fromisoformat(w["expires"])) if w else None
        duration = data.get("duration_seconds")
        return cls(meta, Outcome(data["outcome"]), tuple(Finding.from_json(f) for f in data.get("findings", ())),
                   Severity(data["severity"]), waiver,
                   float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None)


@dataclass(frozen=True)
class JobRef:
    """One Batch job the run judged: its id, uid and life (create .. end; end None while it runs)."""

    name: str
    uid: str
    created: datetime | None = None
    ended: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"job": self.name, "job_uid": self.uid, "created": _time(self.created), "ended": _time(self.ended)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRef:
        return cls(str(data.get("job") or ""), str(data.get("job_uid") or ""),
                   _parse_time(data.get("created")), _parse_time(data.get("ended")))


@dataclass(frozen=True)
class Scope:
    """What the run looks at: the Batch jobs it judged and their time window, or the node's posture alone.

    `job`/`job_uid` name the newest judged job (the result.json fields every reader knew before a run
    could judge several); `jobs` lists every judged job. `not_judged` names pipeline jobs the run saw
    but did not judge (and why), so a gate cannot silently look past one; `window_gaps` says which part
    of a judged job's life the window leaves out (the window-dependent controls are then ERROR).
    """

    job: str | None = None
    job_uid: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    posture_only: bool = False
    probes_enabled: bool = True
    reasons: tuple[str, ...] = ()
    jobs: tuple[JobRef, ...] = ()
    not_judged: tuple[str, ...] = ()
    window_gaps: tuple[str, ...] = ()

    @property
    def window_text(self) -> str:
        """The audit-log window as RFC 3339, for messages."""
        return f"{_time(self.window_start) or 'unbounded'} .. {_time(self.window_end) or 'now'}"

    @property
    def has_job(self) -> bool:
        return bool(self.job) and not self.posture_only

    @property
    def job_uids(self) -> tuple[str, ...]:
        """Every judged job's uid (the one `job_uid` for a bundle written before `jobs` existed)."""
        uids = tuple(ref.uid for ref in self.jobs if ref.uid)
        return uids or ((self.job_uid,) if self.job_uid else ())

    def to_json(self) -> dict[str, Any]:
        # Exactly the result.json scope; why a control did not apply is in its findings.
        return {"job": self.job, "job_uid": self.job_uid, "posture_only": self.posture_only,
                "window": {"start": _time(self.window_start), "end": _time(self.window_end)},
                "jobs": [ref.to_json() for ref in self.jobs], "not_judged": list(self.not_judged),
                "window_gaps": list(self.window_gaps)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        window = data.get("window") or {}
        return cls(data.get("job"), data.get("job_uid"), _parse_time(window.get("start")),
                   _parse_time(window.get("end")), bool(data.get("posture_only")),
                   bool(data.get("probes_enabled", True)), tuple(data.get("reasons", ())),
                   tuple(JobRef.from_json(ref) for ref in data.get("jobs") or ()),
                   tuple(str(x) for x in data.get("not_judged") or ()),
                   tuple(str(x) for x in data.get("window_gaps") or ()))


@dataclass(frozen=True)
class ControlContext:
    """All a control may look at: the evidence, the policy it judges against, the scope, today's date."""

    evidence: EvidenceLog
    policy: PolicyPack
    scope: Scope
    today: date
    # Who ran the verify (manifest `principal`): INT-02 recognises the tool's own probes by it.
    principal: str = ""


@dataclass(frozen=True)
class ProbeRecord:
    """One active negative test and what became of it (result.json `probes`)."""

    control: str
    resource: str
    refused: bool
    reason: str
    evidence: tuple[str, ...]
    cleanup: str

    def to_json(self) -> dict[str, Any]:
        return {"control": self.control, "resource": self.resource, "refused": self.refused,
                "reason": self.reason, "evidence": list(self.evidence), "cleanup": self.cleanup}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeRecord:
        return cls(data["control"], data.get("resource", ""), bool(data.get("refused")), data.get("reason", ""),
                   tuple(data.get("evidence", ())), data.get("cleanup", ""))


@dataclass(frozen=True)
class RunResult:
    run_id: str
    target: str
    project: str
    policy_name: str
    policy_path: str
    policy_sha256: str
    tool_version: str
    principal: str
    started_at: datetime
    finished_at: datetime
    scope: Scope
    controls: tuple[ControlResult, ...]
    probes: tuple[ProbeRecord, ...] = field(default_factory=tuple)
    tool_name: str = "sovaudit"
    #: the machine the audit ran on (socket.gethostname()), never the target URL; "" when unknown.
    hostname: str = ""
    #: the node's jurisdiction (the pack's jurisdiction.name) and its allowed regions, so a report's
    #: first screen says what node was audited without the pack at hand; empty in older results.
    jurisdiction: str = ""
    regions: tuple[str, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts = {o.value: 0 for o in Outcome}
        for result in self.controls:
            counts[result.outcome.value] += 1
        return counts

    @property
    def verdict(self) -> str:
        """FAIL beats INCOMPLETE beats WARNED beats PASS; a run with no control results is INCOMPLETE.

        WARNED (a control waived, skipped by choice or not applicable) is what the attestation's
        test-result predicate says for the same controls, so the banner and the signature agree.
        """
        from sovaudit.reports.view import verdict_of

        return verdict_of(r.outcome.value for r in self.controls)

    @property
    def exit_code(self) -> int:
        # WARNED exits 0 like the waivers it covers: the gate passes, every format names what was not
        # proven, and the signed attestation says WARNED with the skipped controls listed.
        return {"PASS": 0, "WARNED": 0, "FAIL": 1, "INCOMPLETE": 3}[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "run_id": self.run_id,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "target": self.target,
            "project": self.project,
            **({"node": {"project": self.project, "jurisdiction": self.jurisdiction,
                         "regions": list(self.regions)}} if self.jurisdiction or self.regions else {}),
            "policy": {"name": self.policy_name, "path": self.policy_path, "sha256": self.policy_sha256},
            "tool": {"name": self.tool_name, "version": self.tool_version},
            **({"hostname": self.hostname} if self.hostname else {}),
            "principal": self.principal,
            "started_at": _time(self.started_at),
            "finished_at": _time(self.finished_at),
            "scope": self.scope.to_json(),
            "summary": self.summary,
            "controls": [c.to_json() for c in self.controls],
            "probes": [p.to_json() for p in self.probes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        if data.get("schema") != RESULT_SCHEMA:
            raise ValueError(f"result.json: schema is {data.get('schema')!r}, expected {RESULT_SCHEMA!r}")
        policy = data.get("policy") or {}
        tool = data.get("tool") or {}
        started, finished = _parse_time(data.get("started_at")), _parse_time(data.get("finished_at"))
        if started is None or finished is None:
            raise ValueError("result.json: started_at and finished_at are required RFC 3339 times")
        return cls(
            run_id=data["run_id"], target=data.get("target", ""), project=data.get("project", ""),
            policy_name=policy.get("name", ""), policy_path=policy.get("path", ""),
            policy_sha256=policy.get("sha256", ""), tool_version=tool.get("version", ""),
            principal=data.get("principal", ""), started_at=started, finished_at=finished,
            scope=Scope.from_json(data.get("scope") or {}),
            controls=tuple(ControlResult.from_json(c) for c in data.get("controls", ())),
            probes=tuple(ProbeRecord.from_json(p) for p in data.get("probes", ())),
            tool_name=tool.get("name", "sovaudit"),
            hostname=str(data.get("hostname") or ""),
            jurisdiction=str((data.get("node") or {}).get("jurisdiction") or ""),
            regions=tuple(str(r) for r in (data.get("node") or {}).get("regions") or ()),
        )


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
