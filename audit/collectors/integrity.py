"""Integrity evidence: the run's BigQuery load jobs and the task manifests in the output bucket.

Manifests are read from the object listing (their counts ride in each object's custom metadata),
so a 1000-task run costs one or two list pages rather than a download per task.
"""

from __future__ import annotations

from datetime import datetime

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext


def load_jobs(ctx: CollectContext, start: datetime, end: datetime) -> None:
    client = ctx.client(cloud.bigquery, ctx.project)
    ctx.recorder.call("bigquery.load_jobs", "bigquery", "jobs.list",
                      lambda: sum(1 for _ in client.list_jobs(all_users=True, min_creation_time=start,
                                                              max_creation_time=end, page_size=1000, retry=None,
                                                              timeout=REQUEST_TIMEOUT_SECONDS)))


def manifests(ctx: CollectContext, job_name: str, purpose: str = "storage.manifests") -> None:
    client = ctx.client(cloud.storage, ctx.project)
    prefix = f"manifests/{job_name}/"
    ctx.recorder.call(purpose, "storage", "objects.list",
                      lambda: sum(1 for _ in client.list_blobs(ctx.pack.buckets.output, prefix=prefix,
                                                               page_size=1000, retry=None,
                                                               timeout=REQUEST_TIMEOUT_SECONDS)))
