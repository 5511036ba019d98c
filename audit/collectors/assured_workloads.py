"""Assured Workloads (SOV-09): the workload the pack names, and its violations over the run's window.

Only when the pack names a workload: two questions, one request each on a clean node (a listing of
more than 1000 violations pages). The workload is read with google-cloud-assured-workloads over REST;
the violations through an authorized session, because that client's REST transport does not
implement ListViolations (see `sovaudit.cloud.assured_workloads_session`).

The listing asks for `interval.startTime` = the window's start and `interval.endTime` = now: the
API returns the violations "active between start_time and end_time" (ListViolationsRequest in the
client's proto docs), so one listing holds every violation open at any moment of the run and every
one still open today. SOV-09 re-checks each violation's own times, so a server that read the
interval another way could only add rows, never hide one the control needs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext, utc_text
from sovaudit.audit.collectors.paging import list_pages
from sovaudit.audit.views_assured_workloads import VIOLATIONS, WORKLOAD

# The API's maximum (larger values are coerced to 1000): a clean workload is one page.
PAGE_SIZE = "1000"


def workload(ctx: CollectContext) -> None:
    name = ctx.pack.assured_workload
    client = ctx.client(cloud.assured_workloads)
    ctx.recorder.call(WORKLOAD, "assuredworkloads", "workloads.get",
                      lambda: client.get_workload(name=name, retry=None, timeout=REQUEST_TIMEOUT_SECONDS))


def violations(ctx: CollectContext, window_start: datetime | None) -> None:
    session, base = cloud.assured_workloads_session(ctx.target)
    ctx.recorder.hook_session(session)
    url = f"{base}/v1/{ctx.pack.assured_workload}/violations"
    interval: dict[str, str] = {}
    if window_start is not None:
        # A posture-only run has no window: without an interval the listing holds every violation
        # the workload ever had, and SOV-09 judges which are open now.
        interval = {"interval.startTime": utc_text(window_start), "interval.endTime": utc_text(datetime.now(UTC))}

    ctx.recorder.call(VIOLATIONS, "assuredworkloads", "violations.list",
                      lambda: list_pages(session, url, {"pageSize": PAGE_SIZE, **interval}))
