"""The window's posture changes: one Admin Activity `entries.list` for INT-02.

Admin Activity cannot be switched off or excluded (it goes to `_Required`), so it is the record of
the state a run lived under: an org policy relaxed and restored, Data Access logging switched off for
an hour, a perimeter opened and closed, a bucket created abroad. One server-side-filtered query over
the project's log *and* the organization's (where ACM perimeter changes land, reference
gcp-escape-routes §7 [U]) collects every such change; SEC-08 (Logging config) and SEC-09 (network)
read their own method families and are not re-judged here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sovaudit import cloud
from sovaudit.audit.collectors.context import CollectContext, utc_text

PURPOSE = "logging.posture_changes"
ANCESTRY_WAIT_SECONDS = 30.0
PAGE_SIZE = 1000
ACTIVITY = "cloudaudit.googleapis.com%2Factivity"

# The method families INT-02 judges, by service (reference §7). `:` is a substring match on the
# server; the view compares method names exactly.
SERVICE_FILTERS = (
    'protoPayload.serviceName="orgpolicy.googleapis.com"',
    '(protoPayload.serviceName="cloudresourcemanager.googleapis.com" AND protoPayload.methodName:"SetIamPolicy")',
    'protoPayload.serviceName="accesscontextmanager.googleapis.com"',
    '(protoPayload.serviceName="storage.googleapis.com" AND (protoPayload.methodName:"storage.buckets." '
    'OR protoPayload.methodName="storage.setIamPermissions"))',
    '(protoPayload.serviceName="bigquery.googleapis.com" AND (protoPayload.methodName:"DatasetService" '
    'OR protoPayload.methodName:"SetIamPolicy"))',
    'protoPayload.serviceName="cloudkms.googleapis.com"',
)


def change_filter(project: str, organization: str, start: datetime, end: datetime,
                  folders: Sequence[str] = ()) -> str:
    logs = [f'logName="projects/{project}/logs/{ACTIVITY}"']
    # A change made on a folder or the organization above the project (its IAM audit configs, its org
    # policies) is logged in that level's own Admin Activity log (reference §2, §7).
    logs += [f'logName="{folder}/logs/{ACTIVITY}"' for folder in folders]
    if organization:
        logs.append(f'logName="{organization}/logs/{ACTIVITY}"')
    return (f"({' OR '.join(logs)}) AND ({' OR '.join(SERVICE_FILTERS)}) "
            f'AND timestamp>="{utc_text(start)}" AND timestamp<="{utc_text(end)}"')


def resource_names(project: str, organization: str, folders: Sequence[str] = ()) -> list[str]:
    return [f"projects/{project}", *folders, *([organization] if organization else [])]


def collect(ctx: CollectContext, start: datetime, end: datetime) -> None:
    organization = str(ctx.pack.organization or "")
    client = ctx.client(cloud.logging, ctx.project)
    from google.cloud import logging as cloud_logging

    # The folders come from the hierarchy collector (running beside this one); without them in time,
    # the query still reads the project and the organization.
    ctx.ancestry_read.wait(timeout=ANCESTRY_WAIT_SECONDS)
    folders = list(ctx.folders)
    text = change_filter(ctx.project, organization, start, end, folders)

    def list_all() -> int:
        entries = client.list_entries(resource_names=resource_names(ctx.project, organization, folders),
                                      filter_=text,
                                      order_by=cloud_logging.ASCENDING, page_size=PAGE_SIZE)
        return sum(1 for _ in entries)

    ctx.recorder.call(PURPOSE, "logging", "entries.list", list_all)
