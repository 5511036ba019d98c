"""SOV-03's dataset probe: a dataset in a forbidden location must be refused."""

from __future__ import annotations

from typing import Any

from sovaudit import cloud
from sovaudit.audit import probes
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.probes import PROBE_LABEL, label_value, resource_suffix
from sovaudit.audit.recorder import CollectionError

DATASET_PREFIX = "sovaudit_probe_"


def dataset_id(run_id: str, region: str) -> str:
    return (DATASET_PREFIX + resource_suffix(run_id, region)).replace("-", "_")[:1024]


def run(ctx: CollectContext, region: str) -> None:
    from google.cloud import bigquery

    client = ctx.client(cloud.bigquery, ctx.project)
    ref = f"{ctx.project}.{dataset_id(ctx.run_id, region)}"
    created: Any = None
    try:
        dataset = bigquery.Dataset(ref)
        dataset.location = region
        dataset.labels = {PROBE_LABEL: label_value(ctx.run_id)}
        try:
            created = ctx.recorder.call(
                f"probe.dataset:{region}", "bigquery", "datasets.insert",
                lambda: client.create_dataset(dataset, timeout=REQUEST_TIMEOUT_SECONDS, retry=None),
                retry=False)
        except CollectionError:
            return
    finally:
        if created is not None:
            delete_dataset(ctx, client, ref, f"probe.cleanup:datasets/{ref}")


def delete_dataset(ctx: CollectContext, client: Any, ref: str, purpose: str) -> bool:
    """Delete a probe dataset; True when it is gone (see `probes.delete`)."""
    return probes.delete(ctx, purpose, "bigquery", "datasets.delete",
                         lambda: client.delete_dataset(ref, delete_contents=True, not_found_ok=False,
                                                        timeout=REQUEST_TIMEOUT_SECONDS, retry=None))
