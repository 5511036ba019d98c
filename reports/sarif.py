"""SARIF 2.1.0: one rule per control, one result per finding, for code-scanning dashboards.

Our "locations" are cloud resources, not source files, so each result carries a logical location
whose fully qualified name is the resource name; when the bundle's evidence paths are known, the
evidence files are attached as related (physical) locations relative to the bundle.

GitHub code scanning refuses a result without a physical location (an artifactLocation uri and a
region whose startLine is at least 1), so every result's first location is the policy pack the run
was judged against, as the bundle stores it (`policy.yaml`), at the line of the field the control
holds the node to (`reports/policy_lines.py`; a waived result at its waiver; line 1 when the bundle
carries no pack): the rule that was broken lives there; the cloud resource stays in the same
location's logicalLocations. A partial fingerprint of
rule and resource keeps two resources of one rule two alerts (GitHub would otherwise hash line 1).

By default only what needs attention is emitted: FAIL, ERROR and WAIVED findings (passes,
not-applicable and skipped-by-choice ones would flood the alert list; a skipped control is not a
failure); `include_passes` (`report render --sarif-all`) emits every finding, SKIPPED ones as kind
"review", level "none". Rules are always emitted for every control, so a clean run still names what it checked.

ERROR (incomplete evidence) is emitted as kind "fail", level "error": SARIF's "open" kind would
force level "none", and dashboards would then show an unprovable control as harmless.
WAIVED findings are emitted as failures with an accepted external suppression naming the owner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sovaudit.reports.interface import ResultFormat, check_result
from sovaudit.reports.policy_lines import PolicyLines
from sovaudit.reports.view import control_reason, findings, text, waiver_text

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# GitHub code scanning reads this property to rank security results (0.0–10.0).
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
# SKIPPED (not run by the user's choice) is "review": nothing was evaluated, so it is neither a failure
# nor "notApplicable" (the policy's word), and a human must decide whether the unproven promise is acceptable.
_KIND = {"PASS": "pass", "FAIL": "fail", "ERROR": "fail", "WAIVED": "fail", "NOT_APPLICABLE": "notApplicable",
         "SKIPPED": "review"}
#: the finding outcomes a default (attention-only) log carries
_ATTENTION = frozenset({"FAIL", "ERROR", "WAIVED"})
#: the bundle's copy of the policy pack (reports.bundle.POLICY_FILE), each result's physical location
POLICY_ARTIFACT = "policy.yaml"


class SarifFormat(ResultFormat):
    name = "sarif"
    file_name = "results.sarif"
    media_type = "application/sarif+json"

    def __init__(self, evidence_paths: Mapping[str, str] | None = None, include_passes: bool = False,
                 policy_lines: PolicyLines | None = None) -> None:
        self.evidence_paths = dict(evidence_paths or {})
        self.include_passes = include_passes
        self.policy_lines = policy_lines or PolicyLines()

    def render(self, result: Mapping[str, Any]) -> bytes:
        check_result(result)
        controls = result["controls"]
        rules = [self._rule(control) for control in controls]
        results: list[dict[str, Any]] = []
        for index, control in enumerate(controls):
            control_findings = findings(control)
            chosen: list[Mapping[str, Any] | None] = list(control_findings) if control_findings else [None]
            for finding in chosen:
                outcome = text(finding.get("outcome")) if finding else text(control["outcome"])
                if self.include_passes or outcome in _ATTENTION:
                    results.append(self._result(control, index, finding))
        tool = result.get("tool") or {}
        driver: dict[str, Any] = {"name": text(tool.get("name")) or "sovaudit", "rules": rules}
        if tool.get("version"):
            driver["version"] = text(tool["version"])
        invocation: dict[str, Any] = {"executionSuccessful": result.get("verdict") != "INCOMPLETE"}
        if result.get("started_at"):
            invocation["startTimeUtc"] = text(result["started_at"])
        if result.get("finished_at"):
            invocation["endTimeUtc"] = text(result["finished_at"])
        policy = result.get("policy") or {}
        run: dict[str, Any] = {
            "tool": {"driver": driver},
            "automationDetails": {"id": f"sovaudit/{text(policy.get('name')) or 'policy'}/{text(result['run_id'])}"},
            "invocations": [invocation],
            "results": results,
            "properties": {
                "verdict": text(result.get("verdict")),
                "target": text(result.get("target")),
                "project": text(result.get("project")),
                "policySha256": text(policy.get("sha256")),
                # What was judged: the jobs, the window, and pipeline jobs or window parts left out.
                "jobsJudged": [text(ref.get("job")) for ref in (result.get("scope") or {}).get("jobs") or ()],
                "window": (result.get("scope") or {}).get("window") or {},
                "notJudged": [text(x) for x in (result.get("scope") or {}).get("not_judged") or ()],
                "windowGaps": [text(x) for x in (result.get("scope") or {}).get("window_gaps") or ()],
                # Not run by choice (--no-probes, --posture-only): named even in an attention-only log.
                "skippedControls": [text(c.get("id")) for c in controls if c.get("outcome") == "SKIPPED"],
            },
        }
        log = {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}
        return json.dumps(log, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8") + b"\n"

    @staticmethod
    def _rule(control: Mapping[str, Any]) -> dict[str, Any]:
        severity = text(control.get("severity")).lower()
        frameworks = control.get("frameworks") or {}
        tags = ["security", "compliance", text(control.get("pillar"))]
        tags += [f"{name}:{ref}" for name, refs in frameworks.items() for ref in refs or []]
        rule: dict[str, Any] = {
            "id": text(control["id"]),
            "shortDescription": {"text": text(control.get("title")) or text(control["id"])},
            "defaultConfiguration": {"level": _LEVEL.get(severity, "warning")},
            "properties": {
                "pillar": text(control.get("pillar")),
                "severity": severity,
                "security-severity": _SECURITY_SEVERITY.get(severity, "5.5"),
                "frameworks": {str(k): [str(r) for r in v or []] for k, v in frameworks.items()},
                "tags": [t for t in tags if t],
            },
        }
        if control.get("rationale"):
            rule["fullDescription"] = {"text": text(control["rationale"])}
        if control.get("remediation"):
            rule["help"] = {"text": text(control["remediation"])}
        return rule

    def _result(self, control: Mapping[str, Any], index: int, finding: Mapping[str, Any] | None) -> dict[str, Any]:
        outcome = control["outcome"]
        finding_outcome = text(finding.get("outcome")) if finding else outcome
        # A passing finding inside a failed control is still a pass for its resource.
        kind = _KIND.get(finding_outcome, _KIND[outcome])
        severity = text(control.get("severity")).lower()
        level = _LEVEL.get(severity, "warning") if kind == "fail" else "none"
        if finding_outcome == "ERROR":
            level = "error"
        message = text(finding.get("message")) if finding else control_reason(control)
        sarif_result: dict[str, Any] = {
            "ruleId": text(control["id"]),
            "ruleIndex": index,
            "kind": kind,
            "level": level,
            "message": {"text": message or f"{control['id']}: {outcome}"},
            "properties": {"outcome": finding_outcome, "controlOutcome": outcome},
        }
        resource = text(finding.get("resource")) if finding else ""
        location: dict[str, Any] = {
            "physicalLocation": {"artifactLocation": {"uri": POLICY_ARTIFACT},
                                 "region": {"startLine": self.policy_lines.line_for(control)}},
        }
        if resource:
            location["logicalLocations"] = [
                {"fullyQualifiedName": resource, "name": resource.rsplit("/", 1)[-1], "kind": "resource"}
            ]
        sarif_result["locations"] = [location]
        identity = f"{control['id']}\n{resource}".encode()
        sarif_result["partialFingerprints"] = {"primaryLocationLineHash": hashlib.sha256(identity).hexdigest()}
        evidence_ids = (finding.get("evidence") if finding else None) or control.get("evidence") or []
        related = [
            {
                "id": position,
                "physicalLocation": {"artifactLocation": {"uri": self.evidence_paths[str(eid)], "uriBaseId": "BUNDLE"}},
                "message": {"text": f"evidence {eid}"},
            }
            for position, eid in enumerate(evidence_ids)
            if str(eid) in self.evidence_paths
        ]
        if related:
            sarif_result["relatedLocations"] = related
        if outcome == "WAIVED" and kind == "fail":
            sarif_result["suppressions"] = [
                {"kind": "external", "status": "accepted", "justification": waiver_text(control.get("waiver"))}
            ]
        return sarif_result
