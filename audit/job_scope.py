"""Judging several jobs at once: each job-scoped control runs once per judged job, on that job's
evidence, and its findings are merged; window-dependent controls become ERROR when the window leaves
out part of a judged job's life.

Why per job rather than teaching every control about lists of jobs: the job controls read one
`batch.job`, one template and the VMs of one uid. Running them per job (with `batch.job:<id>` etc.
presented under the plain purpose) judges every job exactly as a one-job run would, so a violating
job cannot hide behind a clean one, and controls stay unchanged.
"""

from __future__ import annotations

import dataclasses

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.models import ControlContext, ControlMeta, Finding, JobRef

# Purposes kept per job when several are judged (`<purpose>:<job id>`, audit/collectors/scope.py).
SUFFIXED_PURPOSES = ("batch.job", "compute.instance_template", "storage.manifests")
# A control reading any of these judges one job at a time.
PER_JOB_PURPOSES = frozenset({*SUFFIXED_PURPOSES, "compute.job_instances"})
# Evidence searched over the audit-log window: incomplete when the window leaves part of a job out.
WINDOW_PURPOSES = frozenset({"logging.instance_inserts", "logging.data_writes", "logging.policy_denied",
                             "logging.network_changes", "logging.config_changes", "logging.data_reads"})
# (`bigquery.load_jobs` is read over the judged jobs' whole lives whatever the window: engine.collect.)


def judges_per_job(meta: ControlMeta, ctx: ControlContext) -> bool:
    return len(ctx.scope.jobs) > 1 and bool(PER_JOB_PURPOSES & set(meta.reads))


def for_job(ctx: ControlContext, ref: JobRef) -> ControlContext:
    """The context a one-job run on `ref` would have had: its items under the plain purposes."""
    renamed = {f"{base}:{ref.name}": base for base in SUFFIXED_PURPOSES}
    items = tuple(dataclasses.replace(item, purpose=renamed[item.purpose]) if item.purpose in renamed else item
                  for item in ctx.evidence.items)
    scope = dataclasses.replace(ctx.scope, job=ref.name, job_uid=ref.uid)
    return dataclasses.replace(ctx, evidence=EvidenceLog(items), scope=scope)


def merge(per_job: list[list[Finding]]) -> list[Finding]:
    """Every job's findings, in job order, each distinct finding once (window controls repeat)."""
    merged: list[Finding] = []
    for findings in per_job:
        for finding in findings:
            if finding not in merged:
                merged.append(finding)
    return merged


def window_gap_findings(meta: ControlMeta, ctx: ControlContext) -> list[Finding]:
    """ERROR findings for a window that does not cover every judged job's whole life."""
    if not ctx.scope.window_gaps or not WINDOW_PURPOSES & set(meta.reads):
        return []
    return [Finding.error(f"projects/{ctx.policy.project}",
                          f"the audit-log window {ctx.scope.window_text} does not cover the whole run, so what "
                          f"happened outside it is unknown: {gap}; widen --since/--until (or omit them)")
            for gap in ctx.scope.window_gaps]
