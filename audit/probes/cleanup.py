"""Sweep probe leftovers: anything named and labelled as a probe by an earlier run.

A probe deletes what it created in `finally`, but `kill -9` skips `finally`. The next `verify` and
`sovaudit cleanup` therefore look for labelled probe resources of other runs and delete them, and the
report lists what was swept.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.probes import PROBE_LABEL, PROBE_PREFIX, batch, bigquery, label_value, storage
from sovaudit.audit.recorder import CollectionError


@dataclass(frozen=True)
class SweptResource:
    kind: str  # "batch-job" | "bucket" | "dataset"
    name: str
    deleted: bool


def sweep(ctx: CollectContext, regions: list[str]) -> list[SweptResource]:
    """Delete probe resources that do not belong to this run; returns what was found."""
    mine = label_value(ctx.run_id)
    swept: list[SweptResource] = []
    swept += _sweep_jobs(ctx, regions, mine)
    swept += _sweep_buckets(ctx, mine)
    swept += _sweep_datasets(ctx, mine)
    return swept


def _others(labelled: list[tuple[str, dict[str, str] | None]], mine: str) -> list[str]:
    """Names of resources labelled as probes of another run. The label is required: a resource that
    merely looks like a probe by name is never deleted, since it might be someone's real data."""
    return [name for name, labels in labelled
            if (labels or {}).get(PROBE_LABEL) not in (None, mine)]


def _sweep_jobs(ctx: CollectContext, regions: list[str], mine: str) -> list[SweptResource]:
    client = ctx.client(cloud.batch)
    found: list[SweptResource] = []
    for region in dict.fromkeys(regions):
        parent = f"projects/{ctx.project}/locations/{region}"
        try:
            jobs = ctx.recorder.call(
                f"cleanup.list:batch:{region}", "batch", "jobs.list",
                lambda parent=parent: list(client.list_jobs(request={"parent": parent, "page_size": 100},
                                                            retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
        except CollectionError:
            continue
        for name in _others([(job.name, dict(job.labels)) for job in jobs], mine):
            found.append(SweptResource("batch-job", name,
                                       batch.delete_job(ctx, client, name, f"probe.cleanup:{name}")))
    return found


def _sweep_buckets(ctx: CollectContext, mine: str) -> list[SweptResource]:
    client = ctx.client(cloud.storage, ctx.project)
    try:
        buckets = ctx.recorder.call(
            "cleanup.list:buckets", "storage", "buckets.list",
            lambda: list(client.list_buckets(prefix=PROBE_PREFIX, retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return []
    return [SweptResource("bucket", name,
                          storage.delete_bucket(ctx, client, name, f"probe.cleanup:buckets/{name}"))
            for name in _others([(b.name, b.labels) for b in buckets], mine)]


def _sweep_datasets(ctx: CollectContext, mine: str) -> list[SweptResource]:
    client = ctx.client(cloud.bigquery, ctx.project)
    try:
        datasets = ctx.recorder.call(
            "cleanup.list:datasets", "bigquery", "datasets.list",
            lambda: list(client.list_datasets(include_all=True, retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return []
    probes = [(f"{d.project}.{d.dataset_id}", d.labels) for d in datasets
              if d.dataset_id.startswith(bigquery.DATASET_PREFIX)]
    return [SweptResource("dataset", ref,
                          bigquery.delete_dataset(ctx, client, ref, f"probe.cleanup:datasets/{ref}"))
            for ref in _others(probes, mine)]
