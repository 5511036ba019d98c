"""SOV-09: Google's own verdict on the node, reconciled — Assured Workloads violations.

When the pack names the Assured Workloads workload that governs the node, Google itself monitors it
and records every non-compliant change (an org policy widened, a resource created outside the
regime) as a violation. This control lists each violation that was in force at any moment of the
run's window or is still open, and judges it:

- UNRESOLVED (acknowledged or not): FAIL — the violation is open; acknowledging it changes nothing.
- RESOLVED inside the window: FAIL. A violation that existed while the run was going broke the
  promise for that run, however quickly it was reverted (the insider who widens a policy for twenty
  minutes and reverts it is the case this catches); a warning would let such a run pass a gate.
- RESOLVED before the window started, or begun and resolved after it ended: listed, PASS.
- EXCEPTION: FAIL, listed with its exception context (who, when, why). An exception is the node
  owner's own acceptance recorded in Google, not Google's verdict that the node complies, and the
  non-compliant state is still in place.
- any other state: FAIL — a state this version does not know is not evidence of resolution.

The workload must govern the node's project (the project sits under the workload's CONSUMER_FOLDER;
for a workload listing no folder, the project is its CONSUMER_PROJECT), else FAIL: a clean workload
elsewhere, or one the project was moved out of, proves nothing about this node. Resource monitoring off means Google does not report resource violations, so an
empty list proves nothing for resources: FAIL. A workload or listing that cannot be read is ERROR.
Google's own count of open violations (`complianceStatus`) must be covered by the listing, else
ERROR. No sovaudit waiver can hide any of this (audit/waivers.py refuses, and says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import EvidenceIncomplete
from sovaudit.audit.views_assured_workloads import Violation, Workload, violations
from sovaudit.audit.views_hierarchy import Ancestry

NOT_NAMED = "the pack names no Assured Workloads workload"
# Google's enum values for what a workload governs (discovery: WorkloadResourceInfo.resourceType).
GOVERNING_TYPES = {"CONSUMER_PROJECT": "projects/", "CONSUMER_FOLDER": "folders/"}


@control(
    id="SOV-09", pillar=Pillar.SOVEREIGNTY, severity=Severity.CRITICAL,
    title="No Assured Workloads violation was in force during the run",
    rationale="Assured Workloads is Google's own monitor of a regulated boundary: it records every change that "
              "breaks the workload's compliance regime (an org policy allowing locations outside it, a resource "
              "created elsewhere, a disallowed service) as a violation with its begin and resolve times. "
              "sovaudit reconciles its findings with that verdict: a violation open now, or open at any moment of "
              "the run's window (even if reverted since), or accepted as an exception, means the regime did not "
              "hold for the run. The workload must govern the node's project, resource monitoring must be on, "
              "and Google's count of open violations must be covered by the listing. A sovaudit waiver cannot "
              "hide Google's verdict; fix the cause or resolve the violation in Assured Workloads.",
    remediation="gcloud assured workloads violations list --organization=ORG --location=LOC --workload=WL   # then "
                "revert the non-compliant change (e.g. gcloud org-policies set-policy restoring "
                "gcp.resourceLocations) so Google resolves the violation; move the node's project into the "
                "workload's folder (gcloud projects move PROJECT --folder=FOLDER) if it is not governed  |  "
                "terraform: google_assured_workloads_workload (compliance_regime, resource_settings) and the "
                "google_org_policy_policy it enforces",
    frameworks={"GDPR": ["Art. 44", "Art. 46"], "HIPAA": ["164.308(a)(1)(ii)(D)"],
                "NIST-800-53": ["CA-7", "SA-9(5)", "SI-4"], "ISO27001-2022": ["A.5.23", "A.5.36"]},
    reads=["assuredworkloads.workload", "assuredworkloads.violations", "resourcemanager.project",
           "resourcemanager.folder"],
    # The pack's choice (not a skipped check): said so, and no request was made.
    not_applicable=lambda ctx: "" if ctx.policy.assured_workload else NOT_NAMED,
)
def assured_workload_violations(ctx: ControlContext) -> Iterator[Finding]:
    pack = ctx.policy
    name = pack.assured_workload
    workload: Workload | None = None
    try:
        workload = Workload.from_log(ctx.evidence)
    except EvidenceIncomplete as exc:
        yield Finding.error(name, f"the Assured Workloads workload could not be read, so Google's verdict on the "
                            f"node is unknown: {exc.message}", exc.evidence_ids)
    if workload is not None:
        yield from _judge_workload(workload, ctx)
    try:
        found = violations(ctx.evidence)
    except EvidenceIncomplete as exc:
        yield Finding.error(name, f"the workload's violations could not be listed, so none can be ruled out: "
                            f"{exc.message}", exc.evidence_ids)
        return
    start, end = run_window(ctx)
    for violation in found:
        yield judge_violation(violation, start, end)
    listed_open = sum(1 for v in found if v.state == "UNRESOLVED")
    if workload is not None and workload.open_total > listed_open:
        yield Finding.error(name, f"Google counts {workload.open_total} open violation(s) in complianceStatus but the "
                            f"listing returned {listed_open}: the listing is incomplete",
                            workload.evidence + tuple(v.evidence for v in found))
    if not found:
        ids = ctx.evidence.by_purpose("assuredworkloads.violations").ids
        yield Finding.ok(name, f"Google reports no violation of the workload active during {_window_text(start, end)}",
                         ids)


def run_window(ctx: ControlContext) -> tuple[datetime | None, datetime | None]:
    """From the earliest of the window's start and each judged job's creation to the latest of the window's
    end and each judged job's end (None: open-ended, i.e. now): a narrowed --since/--until must not hide a
    violation the run lived under."""
    starts = [moment for moment in (ctx.scope.window_start, *(ref.created for ref in ctx.scope.jobs)) if moment]
    if ctx.scope.window_end is None or any(ref.ended is None for ref in ctx.scope.jobs):
        return (min(starts) if starts else None), None   # a job still running: up to now
    end = max([ctx.scope.window_end, *(ref.ended for ref in ctx.scope.jobs if ref.ended)])
    return (min(starts) if starts else None), end


def _window_text(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "this posture check (no run window)"
    return f"the run's window {_t(start)} .. {_t(end) if end else 'now'}"


def _t(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else "unknown"


def _judge_workload(workload: Workload, ctx: ControlContext) -> Iterator[Finding]:
    name = ctx.policy.assured_workload
    if workload.name and workload.name != name:
        yield Finding.error(name, f"the answer is for another workload ({workload.name})", workload.evidence)
        return
    try:
        ancestry = Ancestry.from_log(ctx.evidence)
    except EvidenceIncomplete as exc:
        yield Finding.error(name, f"whether the workload governs the node's project cannot be shown: {exc.message}",
                            workload.evidence + exc.evidence_ids)
    else:
        yield _governs(workload, ancestry, name)
    if not workload.resource_monitoring_enabled:
        yield Finding.fail(name, "resourceMonitoringEnabled is not true: Google does not report resource "
                           "violations for this workload, so an empty list proves nothing about resources",
                           workload.evidence)
    regime = workload.compliance_regime + (" with sovereign controls" if workload.enable_sovereign_controls else "")
    yield Finding.ok(name, f"workload {workload.display_name or name}: compliance regime {regime}"
                     + (f", partner {workload.partner}" if workload.partner not in ("", "PARTNER_UNSPECIFIED") else ""),
                     workload.evidence)


def _governs(workload: Workload, ancestry: Ancestry, name: str) -> Finding:
    """Whether the workload's boundary holds the project. The boundary is the workload's folder
    (CONSUMER_FOLDER): when one is listed, it must be above the project — a project listed among
    `resources[]` (which records what was created with the workload) but moved out of that folder is
    no longer governed. Only a workload listing no folder is judged by CONSUMER_PROJECT alone."""
    evidence = workload.evidence + ancestry.evidence
    folders = {f"folders/{r.resource_id}" for r in workload.resources
               if r.resource_type == "CONSUMER_FOLDER" and r.resource_id.isdigit()}
    projects = {f"projects/{r.resource_id}" for r in workload.resources
                if r.resource_type == "CONSUMER_PROJECT" and r.resource_id.isdigit()}
    listed = ", ".join(f"{r.resource_type} {r.resource_id}" for r in workload.resources) or "none"
    if folders:
        above = sorted(folders & set(ancestry.ancestors))
        if above:
            return Finding.ok(name, f"the workload governs {ancestry.project} (it sits under the workload's folder "
                              f"{', '.join(above)})", evidence)
        moved = " although the project is listed among its resources (moved out of the folder?)" \
            if ancestry.project in projects else ""
        chain = " > ".join(ancestry.ancestors) or "no parent"
        return Finding.fail(name, f"the node's project {ancestry.project} is not under the workload's folder "
                            f"{', '.join(sorted(folders))} (its ancestors: {chain}){moved}: the workload's verdict "
                            "says nothing about this node", evidence)
    if ancestry.project in projects:
        return Finding.ok(name, f"the workload governs {ancestry.project} (listed as CONSUMER_PROJECT)", evidence)
    return Finding.fail(name, f"the workload does not govern the node's project {ancestry.project} (its resources: "
                        f"{listed}): the pack names a workload whose verdict says nothing about this node", evidence)


def judge_violation(v: Violation, start: datetime | None, end: datetime | None) -> Finding:
    """One violation's verdict for a run in [start, end] (start None: a posture check, judged as of now)."""
    what = f"violation {v.short_id} ({v.category or 'no category'}, {v.violation_type}): {v.description or v.subject}"
    since = f"began {_t(v.begin_time)}"
    if v.state == "EXCEPTION":
        contexts = "; ".join(f"{c.user_name or 'unknown user'} at {c.acknowledgement_time or 'unknown time'}: "
                             f"{c.comment or 'no justification given'}" for c in v.exception_contexts)
        return Finding.fail(v.name, f"{what}; {since}; marked as an EXCEPTION ({contexts or 'no exception context'}) "
                            "— the non-compliant state remains and an exception is not Google's verdict that the "
                            "node complies", v.evidence)
    if v.state == "UNRESOLVED" or v.resolve_time is None:
        acknowledged = (f"; acknowledged at {v.acknowledgement_time or 'an unknown time'} (acknowledging does not "
                        "resolve it)") if v.acknowledged else ""
        state = "UNRESOLVED" if v.state == "UNRESOLVED" else f"{v.state} without a resolveTime"
        return Finding.fail(v.name, f"{what}; {since}; still open ({state}){acknowledged}", v.evidence)
    resolved = f"resolved {_t(v.resolve_time)}"
    if v.state != "RESOLVED":
        return Finding.fail(v.name, f"{what}; {since}, {resolved}, but its state {v.state!r} is not one this "
                            "version knows as resolved", v.evidence)
    if start is None:
        return Finding.ok(v.name, f"{what}; {since}, {resolved} (a posture check judges the state now)", v.evidence)
    if v.resolve_time < start:
        return Finding.ok(v.name, f"{what}; {since}, {resolved}, before the run's window", v.evidence)
    if end is not None and v.begin_time is not None and v.begin_time > end:
        return Finding.ok(v.name, f"{what}; {since}, {resolved}, after the run's window", v.evidence)
    return Finding.fail(v.name, f"{what}; {since}, {resolved}: it was in force during the run's window "
                        f"{_t(start)} .. {_t(end) if end else 'now'}, so the regime did not hold for the run "
                        "however soon it was reverted", v.evidence)
