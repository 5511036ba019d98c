"""Sweep probe leftovers: only what this tool can prove it created.

A probe deletes what it created in `finally`, but `kill -9` skips `finally`. The next `verify` and
`sovaudit cleanup` therefore look for probe resources of other runs and delete them. A probe label is
only a claim anybody can make: an insider who creates a Batch job in a forbidden region (while the
location policy is briefly relaxed) and labels it as a probe would have the sweep destroy the evidence.
So a resource is deleted only when all three hold:

* its name has the probe pattern (`sovaudit-probe-…`, datasets `sovaudit_probe_…`);
* it carries the `sovaudit-probe` label of another run;
* its create entry in Admin Activity (which nobody can turn off or edit) names the verifier's own
  principal (`verifier_principal`).

Everything else that carries the label is kept and reported: SOV-02 / SOV-03 FAIL on it
(`sovaudit.audit.probe_lookalikes`), a resource outside the jurisdiction that nobody accounts for.
The one Admin Activity query is only made when there is something to sweep: a clean run pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors import logs
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext, utc_text
from sovaudit.audit.probe_lookalikes import CREATES_PURPOSE, creators_by_resource
from sovaudit.audit.probes import PROBE_LABEL, PROBE_PREFIX, batch, bigquery, label_value, storage
from sovaudit.audit.recorder import CollectionError

# Admin Activity methodNames of the creates a probe makes (BigQuery: BigQueryAuditMetadata and the
# legacy AuditData spelling, both seen in the wild).
CREATE_METHODS = ("google.cloud.batch.v1.BatchService.CreateJob", "storage.buckets.create",
                  "google.cloud.bigquery.v2.DatasetService.InsertDataset", "datasetservice.insert")


@dataclass(frozen=True)
class SweptResource:
    kind: str  # "batch-job" | "bucket" | "dataset"
    name: str
    deleted: bool
    kept: str = ""  # why it was kept (not provably the tool's own); "" when the sweep tried to delete it


@dataclass(frozen=True)
class _Candidate:
    kind: str
    name: str          # the name the delete call takes
    resource: str      # what the Admin Activity create entry names, matched exactly
    created: datetime | None


def verifier_principal(ctx: CollectContext) -> str:
    """Whom Admin Activity names for this tool's own creates.

    Against Google: the Application Default Credentials' account (`cloud.principal`); credentials that
    do not reveal it match nothing, so every labelled leftover is kept and reported (fail closed).
    Against the simulator the clients are anonymous and it logs them, as Google logs a workload on the
    node, under the node's service account: the pack's `service_account`."""
    if ctx.target.is_sim:
        return str(ctx.pack.service_account)
    return cloud.principal(ctx.target)


def sweep(ctx: CollectContext, regions: list[str]) -> list[SweptResource]:
    """Delete probe resources of other runs that the verifier provably created; keep and report the rest."""
    mine = label_value(ctx.run_id)
    candidates = _job_candidates(ctx, regions, mine) + _bucket_candidates(ctx, mine) + _dataset_candidates(ctx, mine)
    if not candidates:
        return []
    creators = _creators(ctx, candidates)
    principal = verifier_principal(ctx)
    swept: list[SweptResource] = []
    for candidate in candidates:
        who = creators.get(candidate.resource)
        if who is None:
            swept.append(SweptResource(candidate.kind, candidate.name, False,
                                       "no create entry in Admin Activity shows who created it"))
        elif principal not in who:
            swept.append(SweptResource(candidate.kind, candidate.name, False,
                                       f"created by {', '.join(sorted(who))}, not by the verifier {principal}"))
        else:
            swept.append(SweptResource(candidate.kind, candidate.name, _delete(ctx, candidate)))
    return swept


def is_probe_named(kind: str, name: str) -> bool:
    last = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return last.startswith(bigquery.DATASET_PREFIX if kind == "dataset" else PROBE_PREFIX)


def _theirs(labels: Mapping[str, str] | None, mine: str) -> bool:
    """Labelled as a probe of another run. The label is required: a resource that merely looks like a
    probe by name is never touched, since it might be someone's real data."""
    return (labels or {}).get(PROBE_LABEL) not in (None, mine)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _job_candidates(ctx: CollectContext, regions: list[str], mine: str) -> list[_Candidate]:
    client = ctx.client(cloud.batch)
    found: list[_Candidate] = []
    for region in dict.fromkeys(regions):
        parent = f"projects/{ctx.project}/locations/{region}"
        try:
            jobs = ctx.recorder.call(
                f"cleanup.list:batch:{region}", "batch", "jobs.list",
                lambda parent=parent: list(client.list_jobs(request={"parent": parent, "page_size": 100},
                                                            retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
        except CollectionError:
            continue
        for job in jobs:
            if _theirs(dict(job.labels), mine) and is_probe_named("batch-job", job.name):
                found.append(_Candidate("batch-job", job.name, job.name, _time(job.create_time)))
    return found


def _bucket_candidates(ctx: CollectContext, mine: str) -> list[_Candidate]:
    client = ctx.client(cloud.storage, ctx.project)
    try:
        buckets = ctx.recorder.call(
            "cleanup.list:buckets", "storage", "buckets.list",
            lambda: list(client.list_buckets(prefix=PROBE_PREFIX, retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return []
    return [_Candidate("bucket", b.name, f"projects/_/buckets/{b.name}", _time(b.time_created))
            for b in buckets if _theirs(b.labels, mine) and is_probe_named("bucket", b.name)]


def _dataset_candidates(ctx: CollectContext, mine: str) -> list[_Candidate]:
    client = ctx.client(cloud.bigquery, ctx.project)
    try:
        datasets = ctx.recorder.call(
            "cleanup.list:datasets", "bigquery", "datasets.list",
            lambda: list(client.list_datasets(include_all=True, retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return []
    return [_Candidate("dataset", f"{d.project}.{d.dataset_id}", f"projects/{d.project}/datasets/{d.dataset_id}", None)
            for d in datasets if _theirs(d.labels, mine) and is_probe_named("dataset", d.dataset_id)]


def _creators(ctx: CollectContext, candidates: list[_Candidate]) -> dict[str, set[str]]:
    """Who created each candidate, from one Admin Activity query (exact resource names matched here)."""
    from sovaudit.audit.views import log_entries

    known = [c.created for c in candidates if c.created]
    # Admin Activity is kept 400 days; a dataset listing carries no creation time, so look back that far.
    since = min(known) - timedelta(hours=1) if len(known) == len(candidates) else \
        datetime.now(UTC) - timedelta(days=400)
    methods = " OR ".join(f'protoPayload.methodName="{m}"' for m in CREATE_METHODS)
    text = (f'logName="projects/{ctx.project}/logs/cloudaudit.googleapis.com%2Factivity" AND ({methods}) '
            f'AND protoPayload.resourceName:"sovaudit" AND timestamp>="{utc_text(since)}"')
    try:
        logs.collect(ctx, CREATES_PURPOSE, text)
        entries = log_entries(ctx.recorder.log(), CREATES_PURPOSE)
    except Exception:   # unreadable: nothing is provably ours, so nothing is deleted
        return {}
    return creators_by_resource(entries, [c.resource for c in candidates])


def _delete(ctx: CollectContext, candidate: _Candidate) -> bool:
    if candidate.kind == "batch-job":
        return batch.delete_job(ctx, ctx.client(cloud.batch), candidate.name, f"probe.cleanup:{candidate.name}")
    if candidate.kind == "bucket":
        return storage.delete_bucket(ctx, ctx.client(cloud.storage, ctx.project), candidate.name,
                                     f"probe.cleanup:buckets/{candidate.name}")
    return bigquery.delete_dataset(ctx, ctx.client(cloud.bigquery, ctx.project), candidate.name,
                                   f"probe.cleanup:datasets/{candidate.name}")
