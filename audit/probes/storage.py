"""SOV-03's bucket probe: a bucket in a forbidden location must be refused (HTTP 412)."""

from __future__ import annotations

from typing import Any

from sovaudit import cloud
from sovaudit.audit import probes
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.probes import PROBE_LABEL, PROBE_PREFIX, label_value, resource_suffix
from sovaudit.audit.recorder import CollectionError


def bucket_name(run_id: str, region: str) -> str:
    return f"{PROBE_PREFIX}{resource_suffix(run_id, region)}"[:63].rstrip("-")


def run(ctx: CollectContext, region: str) -> None:
    client = ctx.client(cloud.storage, ctx.project)
    name = bucket_name(ctx.run_id, region)
    created: Any = None
    try:
        bucket = client.bucket(name)
        bucket.labels = {PROBE_LABEL: label_value(ctx.run_id)}
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = "enforced"
        try:
            created = ctx.recorder.call(
                f"probe.bucket:{region}", "storage", "buckets.insert",
                lambda: client.create_bucket(bucket, location=region, timeout=REQUEST_TIMEOUT_SECONDS,
                                             retry=None),
                retry=False)
        except CollectionError:
            return
    finally:
        if created is not None:
            delete_bucket(ctx, client, name, f"probe.cleanup:buckets/{name}")


def delete_bucket(ctx: CollectContext, client: Any, name: str, purpose: str) -> bool:
    """Delete a probe bucket; True when it is gone (see `probes.delete`)."""
    return probes.delete(ctx, purpose, "storage", "buckets.delete",
                         lambda: client.bucket(name).delete(force=True, timeout=REQUEST_TIMEOUT_SECONDS,
                                                             retry=None))
