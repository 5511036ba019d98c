"""Which Batch jobs a run judges, and over which window: the scope rules of `verify`.

An insider who picks what the gate looks at wins without touching the node: a violating job followed
by a clean one with the same labels, or a `--until` that stops before the violating write. So:

* `--job` (repeatable) names the jobs; each must exist (else `NamedJobMissing`: bad input, exit 2
  before any probe runs or anything is written).
* Without `--job`, every job carrying the pack's pipeline labels whose life overlaps the search
  window is judged: [--since, --until] when given, else [newest pipeline job's creation - the pack's
  `scope.lookback`, now]. Pipeline jobs seen but not judged are named in the result.
* The audit-log window is the union of the judged jobs' lives (plus a margin) unless --since/--until
  say otherwise; a window that leaves out part of a judged job's life (create .. end) is recorded as a
  gap, and every window-dependent control is then ERROR naming it (audit/evaluate.py).

One `jobs.list` (label filter, paged) and one `jobs.get` per judged job: a clean one-job run costs
what it did before, plus the listing when --job is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext, utc_text
from sovaudit.audit.collectors.job import WINDOW_MARGIN, JobNotFound, JobScope, job_scope_from_json
from sovaudit.audit.models import JobRef
from sovaudit.audit.recorder import CollectionError

SEARCH_PURPOSE = "batch.job_search"


class NamedJobMissing(JobNotFound):
    """A job named with --job does not exist: bad input (exit 2), not a finding about the node."""


@dataclass(frozen=True)
class ResolvedScope:
    """The judged jobs (newest first), the audit-log window, and what the scope leaves out."""

    jobs: tuple[JobScope, ...]
    window_start: datetime | None
    window_end: datetime | None
    not_judged: tuple[str, ...] = ()
    gaps: tuple[str, ...] = ()

    @property
    def refs(self) -> tuple[JobRef, ...]:
        return tuple(JobRef(job.name, job.uid, job.created, job.finished) for job in self.jobs)


def job_purpose(base: str, job_id: str, count: int) -> str:
    """The evidence purpose of one job's item: the plain purpose when one job is judged (as every
    bundle before multi-job scope had it), `<purpose>:<job id>` for each when several are."""
    return base if count == 1 else f"{base}:{job_id}"


def _overlaps(job: JobScope, start: datetime, end: datetime, now: datetime) -> bool:
    return job.created <= end and (job.finished or now) >= start


def _listed(ctx: CollectContext) -> list[JobScope]:
    """Every job with the pack's pipeline labels in the node's region, from one paged jobs.list."""
    client = ctx.client(cloud.batch)
    parent = f"projects/{ctx.project}/locations/{ctx.region}"
    labels = dict(ctx.pack.pipeline.labels)
    label_filter = " AND ".join(f'labels.{k}="{v}"' for k, v in sorted(labels.items()))
    request: dict[str, Any] = {"parent": parent, "page_size": 100}
    if label_filter:
        request["filter"] = label_filter
    ctx.recorder.call(SEARCH_PURPOSE, "batch", "jobs.list",
                      lambda: sum(1 for _ in client.list_jobs(request=request, retry=None,
                                                              timeout=REQUEST_TIMEOUT_SECONDS)))
    found: list[JobScope] = []
    for page in ctx.recorder.log().bodies(SEARCH_PURPOSE):
        for raw in (page or {}).get("jobs") or ():
            job = job_scope_from_json(raw)
            # The server filtered already; checking again keeps an ignored filter from widening scope.
            if all((raw.get("labels") or {}).get(k) == v for k, v in labels.items()):
                found.append(job)
    return sorted(found, key=lambda job: job.created, reverse=True)


def resolve(ctx: CollectContext, named: Sequence[str], since: datetime | None, until: datetime | None,
            now: datetime | None = None) -> ResolvedScope:
    """Decide the judged jobs and the window (see the module docstring). Raises NamedJobMissing for a
    --job that does not exist, JobNotFound when no pipeline job is there to judge."""
    from sovaudit.audit.collectors import job as job_collector

    moment = now or datetime.now(UTC)
    unlisted: tuple[str, ...] = ()
    try:
        listed = _listed(ctx)
    except CollectionError as error:
        if not named:
            raise
        # The named jobs can still be judged; what else ran is unknown, and the result says so.
        listed = []
        unlisted = (f"the pipeline jobs could not be listed ({error.message}): other jobs may have run "
                    "in the window unjudged",)
    if named:
        judged = []
        for name in dict.fromkeys(named):
            try:
                judged.append(job_collector.get_job(ctx, name, job_purpose("batch.job", name, len(set(named)))))
            except JobNotFound as missing:
                raise NamedJobMissing(str(missing)) from missing
        judged.sort(key=lambda job: job.created, reverse=True)
    else:
        if not listed:
            labels = dict(ctx.pack.pipeline.labels)
            raise JobNotFound(f"no Batch job in projects/{ctx.project}/locations/{ctx.region} carries the labels "
                              f"{labels}; pass --job NAME")
        search_start = since or (listed[0].created - ctx.pack.scope.lookback)
        search_end = until or moment
        candidates = [job for job in listed if _overlaps(job, search_start, search_end, moment)]
        if not candidates:
            raise JobNotFound(f"no pipeline job ran between {utc_text(search_start)} and {utc_text(search_end)}; "
                              "widen --since/--until or pass --job NAME")
        judged = [job_collector.get_job(ctx, job.name, job_purpose("batch.job", job.name, len(candidates)))
                  for job in candidates]
    start = since or min(job.created for job in judged) - WINDOW_MARGIN
    ends = [job.finished for job in judged]
    default_end = moment if any(end is None for end in ends) else \
        min(max(end for end in ends if end) + WINDOW_MARGIN, moment)
    end = until or default_end
    judged_names = {job.name for job in judged}
    not_judged = tuple(
        f"{job.name} (created {utc_text(job.created)}"
        f"{', ended ' + utc_text(job.finished) if job.finished else ', still running'}): "
        + ("overlaps the window but was not named with --job" if named and _overlaps(job, start, end, moment)
           else "not named with --job" if named
           else f"outside the scope's search window (before {utc_text(since or listed[0].created - ctx.pack.scope.lookback)})")
        for job in listed if job.name not in judged_names)
    return ResolvedScope(tuple(judged), start, end, unlisted + not_judged, _gaps(judged, start, end, moment))


def _gaps(jobs: Sequence[JobScope], start: datetime, end: datetime, now: datetime) -> tuple[str, ...]:
    """What part of each judged job's life (create .. end) the window leaves out."""
    gaps = []
    for job in jobs:
        if start > job.created:
            gaps.append(f"job {job.name} was created at {utc_text(job.created)}, before the window starts "
                        f"({utc_text(start)}): {utc_text(job.created)} .. {utc_text(min(start, job.finished or now))} "
                        "is not searched")
        life_end = job.finished or now
        if end < life_end:
            what = f"ended at {utc_text(job.finished)}" if job.finished else "is still running"
            gaps.append(f"job {job.name} {what}, after the window ends ({utc_text(end)}): "
                        f"{utc_text(max(end, job.created))} .. {utc_text(life_end)} is not searched")
    return tuple(gaps)
