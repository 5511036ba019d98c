"""Integrity: every input was processed and every normalized record was loaded (INT-01).

Evidence: each task writes a counts manifest to `gs://<output bucket>/manifests/<job>/<task>.json`
(format in `sovaudit.audit.views.Manifest`), and BigQuery's own count of what a load job wrote,
`statistics.load.outputRows`. The two come from different systems; agreement is the proof.
"""

from __future__ import annotations

from collections.abc import Iterator

from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import (
    BatchJob,
    EvidenceIncomplete,
    Manifest,
    last_segment,
    listed_manifests,
    load_jobs,
    manifest,
    manifest_objects,
)


def _table_path(table: str) -> str:
    """`project.dataset.table` / `project:dataset.table` -> `projects/P/datasets/D/tables/T`."""
    if table.startswith("projects/"):
        return table
    parts = table.replace(":", ".").split(".")
    return f"projects/{parts[0]}/datasets/{parts[1]}/tables/{parts[2]}" if len(parts) == 3 else table


@control(
    id="INT-01", pillar=Pillar.INTEGRITY, severity=Severity.HIGH,
    title="Every input VCF was processed and every normalized record was loaded",
    rationale="A sovereign pipeline that silently drops a file or half a file is not trustworthy: each task's "
              "manifest must exist, and the rows BigQuery says it loaded must equal the records after "
              "normalization, file by file.",
    remediation="Rerun the failed or missing tasks (`sovaudit pipeline submit` with the same run id: load job "
                "ids are deterministic, so nothing is loaded twice) and inspect the task logs",
    frameworks={"GDPR": ["Art. 5(1)(d)", "Art. 32"], "HIPAA": ["164.312(c)(1)"], "NIST-800-53": ["SI-7", "AU-10"],
                "ISO27001-2022": ["A.8.34", "A.5.33"]},
    reads=["batch.job", "storage.manifests", "storage.manifest:<object>", "bigquery.load_jobs"],
    needs_job=True,
)
def inputs_processed_and_loaded(ctx: ControlContext) -> Iterator[Finding]:
    job = BatchJob.from_log(ctx.evidence)
    job_id = last_segment(job.name) if job.name else (ctx.scope.job or "")
    names, list_ids = manifest_objects(ctx.evidence)
    if not names:
        # Verifying a job that has not ended is the likely cause: say so rather than leave a bare ERROR.
        unfinished = (f" (the job is {job.state}: verify it again once it has ended)"
                      if job.state and job.state not in {"SUCCEEDED", "FAILED", "CANCELLED"} else "")
        yield Finding.error(job.name, f"no task manifests were found under gs://{ctx.policy.buckets.output}/"
                            f"manifests/{job_id}/; what the tasks processed cannot be shown{unfinished}", list_ids)
        return
    loads = load_jobs(ctx.evidence)
    manifests: list[Manifest] = []
    listed = listed_manifests(ctx.evidence)
    for name in names:
        try:
            manifests.append(manifest(ctx.evidence, name, listed))
        except EvidenceIncomplete as exc:
            yield Finding.error(f"gs://{ctx.policy.buckets.output}/{name}", exc.message, exc.evidence_ids)

    by_index: dict[int, Manifest] = {}
    for m in manifests:
        resource = f"gs://{ctx.policy.buckets.output}/{m.object_name}"
        if m.job != job_id:
            yield Finding.fail(resource, f"manifest names job {m.job!r}, not {job_id!r}", m.evidence)
            continue
        by_index[m.task_index] = m
    unreadable = len(names) - len(manifests)
    for index in range(job.task_count):
        if index not in by_index:
            named = job.task_inputs[index] if index < len(job.task_inputs) and job.task_inputs[index] else ""
            resource = f"{job.name}/tasks/{index}"
            if unreadable:
                # One of the unreadable manifests may be this task's: that is unknown, not a failure.
                yield Finding.error(resource, f"task {index} has no readable manifest ({unreadable} could not be "
                                    "read)", job.evidence + list_ids)
            else:
                yield Finding.fail(resource, f"task {index} left no manifest: its input "
                                   f"{named or '(not named in the job)'} is not shown processed",
                                   job.evidence + list_ids)
    for index in sorted(i for i in by_index if i >= job.task_count or i < 0):
        yield Finding.fail(by_index[index].object_name, f"manifest for task {index}, but the job has "
                           f"{job.task_count} tasks", by_index[index].evidence)
    for index, listed in enumerate(job.task_inputs):
        done = by_index.get(index)
        if listed and done is not None and done.input != listed:
            yield Finding.fail(listed, f"input {listed} is named by the job for task {index}, but that task's "
                               f"manifest records processing {done.input}", job.evidence + done.evidence)

    for index in sorted(by_index):
        m = by_index[index]
        resource = m.input or f"{job.name}/tasks/{index}"
        load = loads.get(m.load_job_id)
        if load is None:
            yield Finding.fail(resource, f"task {index}: load job {m.load_job_id!r} is not among the run's "
                               "BigQuery load jobs", m.evidence)
            continue
        evidence = m.evidence + load.evidence
        if load.state != "DONE" or load.error:
            reason = (load.error or {}).get("message", "") if load.error else f"state {load.state}"
            yield Finding.fail(resource, f"task {index}: load job {load.job_id} did not succeed: {reason}", evidence)
            continue
        if load.output_rows is None:
            yield Finding.error(resource, f"task {index}: load job {load.job_id} carries no "
                                "statistics.load.outputRows", evidence)
            continue
        counts = f"normalized {m.records_normalized}, manifest rows_loaded {m.rows_loaded}, BigQuery " \
                 f"outputRows {load.output_rows}"
        if not (m.records_normalized == m.rows_loaded == load.output_rows):
            yield Finding.fail(resource, f"task {index}: counts disagree: {counts}", evidence)
        elif load.destination and m.table and _table_path(m.table) != load.destination:
            yield Finding.fail(resource, f"task {index}: manifest says table {m.table}, the load job wrote "
                               f"{load.destination}", evidence)
        else:
            yield Finding.ok(resource, f"task {index}: {m.records_in} records in, {counts}", evidence)
