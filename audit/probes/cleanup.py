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
        for job in jobs:
            label = dict(job.labels).get(PROBE_LABEL)
            if label is None or label == mine:
                continue
            deleted = batch.delete_job(ctx, client, job.name, f"probe.cleanup:{job.name}")
            found.append(SweptResource("batch-job", job.name, deleted))
    return found


def _sweep_buckets(ctx: CollectContext, mine: str) -> list[SweptResource]:
    client = ctx.client(cloud.storage, ctx.project)
    try:
        buckets = ctx.recorder.call(
            "cleanup.list:buckets", "storage", "buckets.list",
            lambda: list(client.list_buckets(prefix=PROBE_PREFIX, retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return []
    found = []
    for bucket in buckets:
        label = (bucket.labels or {}).get(PROBE_LABEL)
        if label is None or label == mine:
            continue
        deleted = storage.delete_bucket(ctx, client, bucket.name, f"probe.cleanup:buckets/{bucket.name}")
        found.append(SweptResource("bucket", bucket.name, deleted))
    return found


def _sweep_datasets(ctx: CollectContext, mine: str) -> list[SweptResource]:
    client = ctx.client(cloud.bigquery, ctx.project)
    try:
        datasets = ctx.recorder.call(
            "cleanup.list:datasets", "bigquery", "datasets.list",
            lambda: list(client.list_datasets(include_all=True, retry=None, timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return []
    found = []
    for item in datasets:
        if not item.dataset_id.startswith(bigquery.DATASET_PREFIX):
            continue
        label = (item.labels or {}).get(PROBE_LABEL)
        if label == mine:
            continue
        ref = f"{item.project}.{item.dataset_id}"
        deleted = bigquery.delete_dataset(ctx, client, ref, f"probe.cleanup:datasets/{ref}")
        found.append(SweptResource("dataset", ref, deleted))
    return found
