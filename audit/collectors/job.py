"""The job in scope: which Batch job, its uid, its template, its VMs and its time window.

VMs are found by the `batch-job-uid` label that Batch puts on every VM it creates, with the filter
evaluated by Compute (one aggregated list, paged), never one `instances.get` per VM: a 1000-VM run
must cost a handful of requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.views import BATCH_JOB_STATES, enum_name

# Audit entries reach Logging a little after the call; a window that ends at the job's last event
# would miss the last writes. Google documents no bound, minutes are the norm.
WINDOW_MARGIN = timedelta(minutes=10)
AGGREGATED_PAGE_SIZE = 500


@dataclass(frozen=True)
class JobScope:
    name: str
    uid: str
    created: datetime
    finished: datetime | None
    template: str | None  # "projects/P/global/instanceTemplates/NAME" or None when the job uses a policy

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        end = (self.finished or now) + WINDOW_MARGIN
        return self.created - WINDOW_MARGIN, min(end, now)


class JobNotFound(LookupError):
    """No job matched --job, or no pipeline job exists to pick."""


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _job_json(ctx: CollectContext, purpose: str) -> dict[str, Any]:
    bodies = list(ctx.recorder.log().bodies(purpose))
    return bodies[-1] if bodies else {}


def job_scope_from_json(raw: dict[str, Any]) -> JobScope:
    """A job's scope facts from its REST JSON (a jobs.get body or one entry of a jobs.list page)."""
    instances = (raw.get("allocationPolicy") or {}).get("instances") or [{}]
    created = _parse_time(raw.get("createTime")) or datetime.now(UTC)
    # The REST clients ask for int-encoded enums, so the state may arrive as 4 rather than "SUCCEEDED".
    state = enum_name((raw.get("status") or {}).get("state", ""), BATCH_JOB_STATES)
    finished = None
    if state in {"SUCCEEDED", "FAILED", "CANCELLED"}:
        events = [(_parse_time(e.get("eventTime"))) for e in (raw.get("status") or {}).get("statusEvents", [])]
        finished = max([e for e in events if e] or [_parse_time(raw.get("updateTime")) or created])
    return JobScope(name=str(raw.get("name", "")).rsplit("/", 1)[-1], uid=str(raw.get("uid", "")), created=created,
                    finished=finished, template=instances[0].get("instanceTemplate"))


def get_job(ctx: CollectContext, job_name: str, purpose: str = "batch.job") -> JobScope:
    """Read one job (`jobs.get`, kept as `purpose`); JobNotFound when Batch answers 404."""
    client = ctx.client(cloud.batch)
    name = f"projects/{ctx.project}/locations/{ctx.region}/jobs/{job_name}"
    from google.api_core import exceptions

    try:
        ctx.recorder.call(purpose, "batch", "jobs.get",
                          lambda: client.get_job(name=name, retry=None, timeout=REQUEST_TIMEOUT_SECONDS))
    except Exception as exc:
        if isinstance(exc.__cause__, exceptions.NotFound):
            raise JobNotFound(f"Batch job {name} does not exist") from exc
        raise
    job = job_scope_from_json(_job_json(ctx, purpose))
    return JobScope(name=str(job_name), uid=job.uid, created=job.created, finished=job.finished, template=job.template)


def instance_template(ctx: CollectContext, template: str, purpose: str = "compute.instance_template") -> None:
    client = ctx.client(cloud.compute_templates)
    parts = template.split("/")
    project = parts[parts.index("projects") + 1] if "projects" in parts else ctx.project
    name = parts[-1]
    ctx.recorder.call(purpose, "compute", "instanceTemplates.get",
                      lambda: client.get(project=project, instance_template=name, retry=None,
                                                 timeout=REQUEST_TIMEOUT_SECONDS))


def job_instances(ctx: CollectContext, job_uids: str | tuple[str, ...]) -> None:
    """The VMs of every judged job in one filtered aggregated list (Compute ORs parenthesised terms)."""
    uids = (job_uids,) if isinstance(job_uids, str) else tuple(dict.fromkeys(job_uids))
    client = ctx.client(cloud.compute_instances)
    terms = [f'labels.batch-job-uid = "{uid}"' for uid in uids]
    text = terms[0] if len(terms) == 1 else " OR ".join(f"({term})" for term in terms)
    request = {"project": ctx.project, "filter": text, "max_results": AGGREGATED_PAGE_SIZE}
    # Iterating the pager fetches every page; the recorder keeps each page.
    ctx.recorder.call("compute.job_instances", "compute", "instances.aggregatedList",
                      lambda: sum(1 for _ in client.aggregated_list(request=request, retry=None,
                                                                   timeout=REQUEST_TIMEOUT_SECONDS)))
