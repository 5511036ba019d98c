"""Who can reach the node's data, and who did: bucket IAM, the project's buckets and datasets, reads.

Requests per verify: one getIamPolicy per pack bucket (the pack names two), one buckets.list and
one datasets.list for the whole project, a datasets.get only for a dataset the pack does not name
(none on a clean node), and one entries.list for the reads of the run's window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext, utc_text
from sovaudit.audit.collectors.logs import PAGE_SIZE
from sovaudit.audit.recorder import CollectionError
from sovaudit.policies.pack import PolicyPack

# Object reads Cloud Storage records as DATA_READ (objects.list names the bucket, get the object).
STORAGE_READ_METHODS = ("storage.objects.get", "storage.objects.list")


def pack_buckets(pack: PolicyPack) -> list[str]:
    return list(dict.fromkeys([pack.buckets.input, pack.buckets.output, *pack.buckets.allowed]))


def bucket_iam(ctx: CollectContext) -> None:
    """`storage.bucket_iam:<name>`: each pack bucket's IAM policy (version 3, so conditions show)."""
    client = ctx.client(cloud.storage, ctx.project)
    for name in pack_buckets(ctx.pack):
        try:
            ctx.recorder.call(f"storage.bucket_iam:{name}", "storage", "buckets.getIamPolicy",
                              lambda name=name: client.bucket(name).get_iam_policy(
                                  requested_policy_version=3, timeout=REQUEST_TIMEOUT_SECONDS, retry=None))
        except CollectionError:
            continue  # recorded; SOV-04 reports it as incomplete


def project_storage(ctx: CollectContext) -> list[str]:
    """`storage.project_buckets`: every bucket of the project; returns the CMEK keys of the buckets
    the pack does not name (the pack's own are fetched by `posture.buckets`)."""
    client = ctx.client(cloud.storage, ctx.project)
    found: list[Any] = ctx.recorder.call(
        "storage.project_buckets", "storage", "buckets.list",
        lambda: list(client.list_buckets(project=ctx.project, timeout=REQUEST_TIMEOUT_SECONDS, retry=None)))
    own = set(pack_buckets(ctx.pack))
    return [b.default_kms_key_name for b in found or () if b.name not in own and b.default_kms_key_name]


def project_datasets(ctx: CollectContext) -> list[str]:
    """`bigquery.project_datasets`, then `bigquery.dataset:<id>` for each dataset the pack does not
    name (datasets.list carries no encryption); returns those datasets' CMEK keys."""
    client = ctx.client(cloud.bigquery, ctx.project)
    listed: list[Any] = ctx.recorder.call(
        "bigquery.project_datasets", "bigquery", "datasets.list",
        lambda: list(client.list_datasets(project=ctx.project, include_all=True,
                                          timeout=REQUEST_TIMEOUT_SECONDS, retry=None)))
    keys: list[str] = []
    for item in listed or ():
        dataset_id = item.dataset_id
        if dataset_id == ctx.pack.dataset:
            continue
        ref = f"{ctx.project}.{dataset_id}"
        try:
            found: Any = ctx.recorder.call(f"bigquery.dataset:{dataset_id}", "bigquery", "datasets.get",
                                           lambda ref=ref: client.get_dataset(ref, timeout=REQUEST_TIMEOUT_SECONDS,
                                                                              retry=None))
        except CollectionError:
            continue
        config = found.default_encryption_configuration
        if config is not None and config.kms_key_name:
            keys.append(config.kms_key_name)
    return keys


def _member_email(member: str) -> str:
    kind, _, email = member.partition(":")
    return email if kind in ("user", "serviceAccount") else ""


def reads_filter(pack: PolicyPack, start: datetime, end: datetime) -> str:
    """Reads of the project's objects and tables in the window, by anyone but the listed human or
    service readers other than the node's own service account.

    The node's service account stays in the answer: its reads of the run's inputs are the proof that
    read logging worked in this window (an empty answer is ERROR). The other allowed readers are left
    on the server, so a busy node's permitted analysts cost no pages; every entry that comes back is
    judged again, exactly, by SEC-07.
    """
    log = f'logName="projects/{pack.project}/logs/cloudaudit.googleapis.com%2Fdata_access"'
    storage = " OR ".join(f'protoPayload.methodName="{m}"' for m in STORAGE_READ_METHODS)
    # BigQuery reads: every tableDataRead event, whatever method carried it (TableDataService.List,
    # JobService.InsertJob/Query/GetQueryResults, Storage Read API sessions).
    bigquery = 'protoPayload.serviceName="bigquery.googleapis.com" AND protoPayload.metadata.tableDataRead:*'
    window = f'timestamp>="{utc_text(start)}" AND timestamp<="{utc_text(end)}"'
    skipped = [email for email in map(_member_email, pack.readers or ())
               if email and email != pack.service_account]
    exclude = "".join(f' AND NOT protoPayload.authenticationInfo.principalEmail="{email}"' for email in skipped)
    return (f'{log} AND ((protoPayload.serviceName="storage.googleapis.com" AND ({storage})) OR ({bigquery}))'
            f"{exclude} AND {window}")


def reads(ctx: CollectContext, start: datetime, end: datetime) -> None:
    """`logging.data_reads`: the window's reads (see `reads_filter`)."""
    client = ctx.client(cloud.logging, ctx.project)
    from google.cloud import logging as cloud_logging

    text = reads_filter(ctx.pack, start, end)

    def list_all() -> int:
        entries = client.list_entries(resource_names=[f"projects/{ctx.project}"], filter_=text,
                                      order_by=cloud_logging.ASCENDING, page_size=PAGE_SIZE)
        return sum(1 for _ in entries)

    ctx.recorder.call("logging.data_reads", "logging", "entries.list", list_all)
