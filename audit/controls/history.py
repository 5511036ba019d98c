"""INT-02: the run lived under the promised posture (the window's change history).

Every other control reads the node's configuration when the verifier runs. An insider who relaxes
`gcp.resourceLocations`, switches Data Access logging off, opens the perimeter or widens a bucket's
IAM for an hour, uses the gap and restores everything, leaves a clean configuration behind — but not
a clean Admin Activity log, which cannot be turned off. INT-02 reads that log for the run's window
and FAILs on every change that weakened a promise, even when it was reverted, naming who and when.
Changes that tighten or do not matter are listed in the PASS. The tool's own probes are recognised by
name, label *and* principal (audit/views_history.py) and neither fail nor excuse anything.

Not re-judged here: Logging configuration changes (SEC-08) and network changes (SEC-09).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sovaudit.audit.controls.perimeter import _Judge
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import EvidenceIncomplete, Project, log_entries
from sovaudit.audit.views_history import (
    NEUTRAL,
    PROBE,
    PURPOSE,
    REFUSED,
    UNKNOWN,
    WEAKENED,
    PostureChange,
    posture_changes,
    verifier_identity,
)
from sovaudit.audit.views_perimeter import PerimeterConfig


@control(
    id="INT-02", pillar=Pillar.INTEGRITY, severity=Severity.CRITICAL,
    title="The run lived under the promised posture (no weakening change during its window)",
    rationale="Controls that read today's configuration are blind to a change made and reverted during the run: "
              "relax gcp.resourceLocations, create a bucket abroad, switch Data Access logging off, copy the "
              "genomes, restore everything. The Admin Activity log records every such step and cannot be "
              "disabled, so the state the run lived under is judged from it, not only the state at audit time.",
    remediation="Find out why the change was made (the finding names who and when), review what moved while it was "
                "in force, and restrict who may change posture: grant roles/orgpolicy.policyAdmin, "
                "resourcemanager.projects.setIamPolicy and accesscontextmanager.policyAdmin only to a break-glass "
                "group, and alert on these methods (gcloud logging sinks/alerting on "
                "protoPayload.methodName=\"google.cloud.orgpolicy.v2.OrgPolicy.UpdatePolicy\"; terraform: "
                "google_logging_metric + google_monitoring_alert_policy)",
    frameworks={"GDPR": ["Art. 5(1)(f)", "Art. 32", "Art. 44"], "HIPAA": ["164.312(b)", "164.308(a)(1)(ii)(D)"],
                "NIST-800-53": ["AU-6", "CM-3", "CM-5", "AU-12"], "ISO27001-2022": ["A.8.9", "A.8.15", "A.8.32"]},
    reads=[PURPOSE, "resourcemanager.project", "acm.access_levels"],
    needs_job=True,
)
def lived_under_promised_posture(ctx: ControlContext) -> Iterator[Finding]:
    scope = ctx.scope
    if scope.window_start is None or scope.window_end is None:
        yield Finding.error(ctx.policy.project, "no run window: no Batch job was resolved and no --since/--until "
                            "given, so the change history of the run cannot be read")
        return
    try:
        entries = log_entries(ctx.evidence, PURPOSE)
    except EvidenceIncomplete as exc:
        yield Finding.error(ctx.policy.project, "the window's Admin Activity log (project and organization) "
                            f"could not be read, so changes made and reverted during the run are unknown: {exc.message}",
                            exc.evidence_ids)
        return
    ids = tuple(ctx.evidence.by_purpose(PURPOSE).ids)
    try:
        project_number = Project.from_log(ctx.evidence).project_number
    except EvidenceIncomplete as exc:
        # Without the number, whether a perimeter or IAM change concerns the node cannot be judged.
        yield Finding.error(ctx.policy.project, f"the project's number is unknown, so the window's changes cannot be "
                            f"judged against it: {exc.message}", exc.evidence_ids + ids)
        return
    verifier = verifier_identity(ctx.principal, ctx.policy)
    changes = posture_changes(entries, ctx.policy, project_number, verifier)
    judge = _Judge(ctx, ctx.policy, f"projects/{project_number}")
    changes = tuple(_perimeter(change, judge, ctx) if change.kind == "perimeter" else change for change in changes)
    changes = tuple(c for c in changes if c is not None)
    failed = False
    for change in changes:
        if change.verdict == WEAKENED:
            failed = True
            yield Finding.fail(change.resource, f"during the run {change.describe()}", change.evidence)
        elif change.verdict == UNKNOWN:
            failed = True
            yield Finding.error(change.resource, f"cannot judge a change of the window: {change.describe()}",
                                change.evidence)
    yield from judge.errors
    if not failed and not judge.errors:
        listed = [c for c in changes if c.verdict in (NEUTRAL, PROBE, REFUSED)]
        summary = "; ".join(f"{c.describe()} [{c.verdict}]" for c in listed[:20])
        more = f" (+{len(listed) - 20} more)" if len(listed) > 20 else ""
        text = (f"{len(listed)} posture change(s) in {scope.window_text}, none weakening: {summary}{more}" if listed
                else f"no org policy, IAM/audit config, perimeter, bucket, dataset or KMS change in {scope.window_text} "
                     "(Admin Activity of the project and the organization; Logging and network changes: SEC-08, SEC-09)")
        yield Finding.ok(ctx.policy.project, text, ids)


def _perimeter(change: PostureChange, judge: _Judge, ctx: ControlContext) -> PostureChange | None:
    """Judge a perimeter LRO from its `last` entry's result; the `first` entry (the request) is dropped
    when its `last` entry is in the log, else the change cannot be judged."""
    from dataclasses import replace

    entry = change.entry
    if entry.operation.get("first") and not entry.operation.get("last"):
        return None
    response: Mapping[str, Any] = entry.payload.get("response") or {}
    if not response:
        return replace(change, verdict=UNKNOWN, detail="perimeter change without its result in the log")
    pack = ctx.policy
    perimeters = list(response.get("servicePerimeters") or ([response] if response.get("name") else []))
    verb = change.method.rsplit(".", 1)[-1]
    problems: list[str] = []
    node = next((p for p in perimeters if p.get("name") == pack.perimeter.name), None)
    if node is None and verb in ("ReplaceServicePerimeters", "CommitServicePerimeters", "DeleteServicePerimeter"):
        problems.append(f"left no perimeter {pack.perimeter.name}")
    if node is not None:
        status = PerimeterConfig.parse(node.get("status"))
        if status is None:
            problems.append(f"left {pack.perimeter.name} without an enforced configuration (dry-run only)")
        else:
            if judge.member not in status.resources:
                problems.append(f"took {judge.member} out of {pack.perimeter.name}")
            problems += judge.config(status, f"{pack.perimeter.name} ")
    for other in perimeters:
        if other is node:
            continue
        held = [r for cfg in (other.get("status"), other.get("spec")) for r in ((cfg or {}).get("resources") or ())
                if r == judge.member]
        if held:
            problems.append(f"perimeter {other.get('name')} now holds {judge.member} (a bridge or second perimeter "
                            "the pack does not govern)")
    if problems:
        return replace(change, verdict=WEAKENED, detail="; ".join(problems))
    return replace(change, verdict=NEUTRAL, detail=f"{verb}: the perimeter stayed as the pack requires")
