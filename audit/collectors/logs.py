"""Audit-log questions, each with an explicit time window.

google-cloud-logging silently appends `timestamp>="<24 hours ago>"` to any filter that does not
mention `timestamp`; every filter here carries its own window so that clause never applies and a
job older than a day is still judged on its own logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sovaudit import cloud
from sovaudit.audit.collectors.context import CollectContext, utc_text

PAGE_SIZE = 1000
# Not an audit log: platform entries that pass through `_Default` (an exclusion can drop them).
SHIELDED_VM_INTEGRITY_LOG = "compute.googleapis.com/shielded_vm_integrity"
# The Cloud Storage methods that put bytes into an object (SEC-04 judges exactly these).
STORAGE_WRITE_METHODS = ("storage.objects.create", "storage.objects.compose", "storage.objects.rewrite",
                         "storage.objects.copy", "storage.objects.update")


def _log(project: str, log_id: str) -> str:
    return f'logName="projects/{project}/logs/{log_id.replace("/", "%2F")}"'


def _window(start: datetime, end: datetime) -> str:
    return f'timestamp>="{utc_text(start)}" AND timestamp<="{utc_text(end)}"'


ACCESS_TRANSPARENCY_LOG = "cloudaudit.googleapis.com/access_transparency"
KMS_SERVICE = "cloudkms.googleapis.com"
KAJ_REASON_FIELD = "protoPayload.metadata.entries.key_access_justification.reason"
KAJ_POLICY_FIELD = "protoPayload.metadata.entries.key_access_justification_policy_metadata"


def kms_uses_clause(allowed_reasons: Sequence[str] | None) -> str:
    """SOV-08's part of the data_access question: Cloud KMS uses whose Key Access Justification is
    not on the pack's list. Uses with an allowed reason stay on the server (a busy node's CMEK traffic
    costs no pages); without a list every justified use comes back and SOV-08 is ERROR anyway.
    Whether `key_access_justification` is absent or empty on a use made without KAJ enrolment is [U];
    such a use says nothing about Google's reasons and is left out either way."""
    allowed = " OR ".join(f'{KAJ_REASON_FIELD}="{reason}"' for reason in allowed_reasons or ())
    # A use the key's policy did not judge (the key not enrolled in enforcement) comes back too.
    not_enforced = f'{KAJ_POLICY_FIELD}.customer_configured_policy_enforced="false"'
    unwanted = f" AND (NOT ({allowed}) OR {not_enforced})" if allowed else ""
    return f'(protoPayload.serviceName="{KMS_SERVICE}" AND {KAJ_REASON_FIELD}:*{unwanted})'



def filters(project: str, start: datetime, end: datetime,
            kaj_reasons: Sequence[str] | None = None) -> dict[str, str]:
    """The three audit questions of a run, by purpose (shown in the report as they were sent).

    Two more questions ride in them at no extra request: Access Transparency entries (SOV-07) with the
    Policy Denied ones, and Cloud KMS uses with a disallowed justification (SOV-08) with the data
    writes; the controls that read each purpose tell the two apart by logName / serviceName."""
    window = _window(start, end)
    return {
        # An insert is a long-running operation logged twice: the `first` entry carries the request
        # body, the `last` only its type. Leaving the `last` half on the server halves what a 1000-VM
        # run lists (2000 entries -> 1000: one page fewer) and keeps every entry with a body, and any
        # insert logged without an operation.
        #
        # The same request also brings each VM's launch attestation report (CC-04): Google writes it
        # into the Shielded VM integrity log (a jsonPayload, not an audit entry) when a Confidential VM
        # boots. Folding it in keeps "every VM of the run" one query, paged, whatever the VM count; the
        # views tell the two kinds apart by logName.
        "logging.instance_inserts": (
            f'(({_log(project, "cloudaudit.googleapis.com/activity")} AND resource.type="gce_instance" '
            f'AND protoPayload.methodName:"compute.instances.insert" AND NOT operation.last=true) '
            f'OR ({_log(project, SHIELDED_VM_INTEGRITY_LOG)} AND resource.type="gce_instance" '
            f'AND jsonPayload.sevLaunchAttestationReportEvent:*)) AND {window}'
        ),
        # Every write path SEC-04 judges, and nothing else: the storage methods that put bytes into
        # an object, and BigQuery's new-format (BigQueryAuditMetadata) entries except reads. A job is
        # logged twice (jobInsertion, jobChange); the insertion carries the whole config, so only
        # the changes that add something come back: a failed job, or one inserted before the
        # window. Legacy AuditData duplicates (`serviceData`) are left on the server. Anything else
        # BigQuery logs here comes back and is ERROR until SEC-04 learns it.
        "logging.data_writes": (
            f'{_log(project, "cloudaudit.googleapis.com/data_access")} AND '
            '(' + " OR ".join(f'protoPayload.methodName="{m}"' for m in STORAGE_WRITE_METHODS) + ' '
            'OR (protoPayload.serviceName="bigquery.googleapis.com" '
            'AND NOT protoPayload.metadata.tableDataRead:* AND NOT protoPayload.serviceData:* '
            'AND NOT (protoPayload.metadata.jobChange:* '
            'AND NOT protoPayload.metadata.jobChange.job.jobStatus.errorResult:* '
            f'AND protoPayload.metadata.jobChange.job.jobStats.createTime>="{utc_text(start)}")) '
            f"OR {kms_uses_clause(kaj_reasons)}) "
            f"AND {window}"
        ),
        "logging.policy_denied": (f'({_log(project, "cloudaudit.googleapis.com/policy")} OR '
                                  f'{_log(project, ACCESS_TRANSPARENCY_LOG)}) AND {window}'),
    }


def collect(ctx: CollectContext, purpose: str, filter_text: str) -> None:
    client = ctx.client(cloud.logging, ctx.project)
    from google.cloud import logging as cloud_logging

    def list_all() -> int:
        entries = client.list_entries(resource_names=[f"projects/{ctx.project}"], filter_=filter_text,
                                      order_by=cloud_logging.ASCENDING, page_size=PAGE_SIZE)
        return sum(1 for _ in entries)

    ctx.recorder.call(purpose, "logging", "entries.list", list_all)
