"""Submit the planned job and follow it, through the official Batch, Compute and Logging clients.

The template is created when absent. When present it must still be confidential with the
required type: a job would otherwise run on whatever an earlier hand put there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sovaudit.pipeline.errors import PipelineError
from sovaudit.pipeline.spec import Plan

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
TASK_STATES = ("PENDING", "ASSIGNED", "RUNNING", "SUCCEEDED", "FAILED")


class SubmitError(PipelineError):
    """The job could not be created or the template is not what the policy requires."""


@dataclass(frozen=True)
class JobStatus:
    name: str
    uid: str
    state: str
    counts: dict[str, int]
    events: tuple[str, ...]
    failed_tasks: tuple[str, ...] = ()

    @property
    def task_total(self) -> int:
        return sum(self.counts.values())


def ensure_template(target: Any, pack: Any, plan: Plan) -> str:
    """Create the instance template if absent; refuse one that is not confidential as required."""
    from google.api_core import exceptions
    from google.cloud import compute_v1

    from sovaudit import cloud

    client = cloud.compute_templates(target)
    try:
        existing = client.get(project=pack.project, instance_template=plan.template_name)
    except exceptions.NotFound:
        resource = compute_v1.InstanceTemplate.from_json(json.dumps(plan.template))
        operation = client.insert(project=pack.project, instance_template_resource=resource)
        operation.result()
        return "created"
    config = existing.properties.confidential_instance_config
    wanted = pack.confidential.required_type
    if not config.enable_confidential_compute or (config.confidential_instance_type or "SEV") != wanted:
        raise SubmitError(f"instance template {plan.template_name} exists but is not {wanted} confidential "
                          f"(enableConfidentialCompute={config.enable_confidential_compute}, "
                          f"confidentialInstanceType={config.confidential_instance_type or 'unset'}); delete it or "
                          "name another template in the policy's pipeline.instance_template")
    if existing.properties.network_interfaces and any(nic.access_configs
                                                       for nic in existing.properties.network_interfaces):
        raise SubmitError(f"instance template {plan.template_name} gives VMs an external IP (accessConfigs)")
    return "exists"


def create_job(target: Any, pack: Any, plan: Plan) -> Any:
    from google.cloud import batch_v1

    from sovaudit import cloud

    client = cloud.batch(target)
    job = batch_v1.Job.from_json(json.dumps(plan.job))
    return client.create_job(parent=f"projects/{pack.project}/locations/{pack.region}", job=job,
                             job_id=plan.job_id)


def job_name(pack: Any, job: str) -> str:
    return job if job.startswith("projects/") else f"projects/{pack.project}/locations/{pack.region}/jobs/{job}"


def status(target: Any, name: str) -> JobStatus:
    from sovaudit import cloud

    client = cloud.batch(target)
    job = client.get_job(name=name)
    return _status_of(client, job)


def _status_of(client: Any, job: Any) -> JobStatus:
    from google.cloud import batch_v1

    state = batch_v1.JobStatus.State(job.status.state).name
    counts: dict[str, int] = {}
    for group in job.status.task_groups.values():
        for key, value in group.counts.items():
            counts[key] = counts.get(key, 0) + int(value)
    events = tuple(f"{e.event_time.isoformat() if e.event_time else ''} {e.description}".strip()
                   for e in job.status.status_events)
    failed: list[str] = []
    if state == "FAILED" or counts.get("FAILED"):
        for group in job.task_groups:
            for task in client.list_tasks(parent=group.name):
                if batch_v1.TaskStatus.State(task.status.state).name == "FAILED":
                    last = [e.description for e in task.status.status_events][-1:] or ["(no event)"]
                    failed.append(f"{task.name.rsplit('/', 1)[-1]}: {last[0]}")
    return JobStatus(name=job.name, uid=job.uid, state=state, counts=counts, events=events,
                     failed_tasks=tuple(failed))


@dataclass
class LogCursor:
    """Where the next read of task logs starts: a time a little before the newest entry seen
    (entries can arrive late) and the ids already shown, so a long job's logs are not re-read
    from its start on every poll."""

    since: datetime
    seen: set[str]

    def advance(self, newest: datetime | None) -> None:
        if newest is not None:
            self.since = max(self.since, newest - timedelta(seconds=30))


def task_log_lines(target: Any, project: str, uid: str, cursor: LogCursor) -> list[str]:
    """New task log lines of the job (Cloud Logging ``batch_task_logs``), oldest first."""
    from sovaudit import cloud

    client = cloud.logging(target, project)
    # The Logging client silently adds a 24-hour window unless the filter names a timestamp.
    query = (f'logName="projects/{project}/logs/batch_task_logs" AND labels.job_uid="{uid}" '
             f'AND timestamp>="{cursor.since.strftime("%Y-%m-%dT%H:%M:%SZ")}"')
    lines = []
    newest: datetime | None = None
    for entry in client.list_entries(filter_=query, order_by="timestamp asc", page_size=1000):
        if entry.timestamp is not None:
            newest = entry.timestamp if newest is None else max(newest, entry.timestamp)
        key = entry.insert_id or f"{entry.timestamp}{entry.payload}"
        if key in cursor.seen:
            continue
        cursor.seen.add(key)
        # task_id looks like "task/<uid>-group0-<index>/<retry>/0"
        match = re.search(r"-(\d+)/\d+/\d+$", (entry.labels or {}).get("task_id", ""))
        payload = entry.payload if isinstance(entry.payload, str) else json.dumps(entry.payload)
        lines.append(f"[task {match.group(1) if match else '?'}] {payload}")
    cursor.advance(newest)
    return lines


def follow(target: Any, pack: Any, name: str, *, poll_seconds: float = 2.0, timeout: float | None = None,
           on_update: Callable[[JobStatus], None] | None = None,
           on_log: Callable[[str], None] | None = None) -> JobStatus:
    """Poll the job until it ends, reporting counts and new task log lines as they appear."""
    from sovaudit import cloud

    client = cloud.batch(target)
    started = time.monotonic()
    # A margin for clock skew between this machine and the API; the seen-set drops duplicates.
    cursor = LogCursor(since=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10), seen=set())
    while True:
        current = _status_of(client, client.get_job(name=name))
        if on_update:
            on_update(current)
        if on_log and current.uid:
            try:
                for line in task_log_lines(target, pack.project, current.uid, cursor):
                    on_log(line)
            except Exception as error:  # logs are a courtesy; the job state decides the exit code
                on_log(f"(task logs unavailable: {type(error).__name__}: {error})")
                on_log = None
        if current.state in TERMINAL:
            return current
        if timeout is not None and time.monotonic() - started > timeout:
            raise SubmitError(f"job {name} still {current.state} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def upload_inputs(target: Any, pack: Any, paths: list[Any], prefix: str = "") -> list[str]:
    """Upload local VCFs to the policy's input bucket; their ``gs://`` URIs, in order."""
    from sovaudit import cloud

    bucket = cloud.storage(target, pack.project).bucket(pack.buckets.input)
    uris = []
    for path in paths:
        name = f"{prefix}{path.name}"
        bucket.blob(name).upload_from_filename(str(path))
        uris.append(f"gs://{pack.buckets.input}/{name}")
    return uris


def run_pipeline(target: Any, pack: Any, inputs: list[str], *, run_id: str | None = None,
                 table: str | None = None, timeout: float | None = 600, poll_seconds: float = 1.0,
                 on_update: Callable[[JobStatus], None] | None = None,
                 on_log: Callable[[str], None] | None = None) -> tuple[Plan, JobStatus]:
    """Plan, create the template if absent, submit and follow one run to its end (the demo's path:
    on the simulator started with ``task_runner=sovaudit.pipeline.simrunner:run_task`` the tasks
    run the real task code). Returns the plan (``plan.job_id`` is the job to verify) and the end state."""
    from sovaudit.pipeline.spec import PlanOptions, build_plan

    plan = build_plan(pack, PlanOptions(inputs=tuple(inputs), run_id=run_id, table=table))
    ensure_template(target, pack, plan)
    job = create_job(target, pack, plan)
    final = follow(target, pack, job.name, poll_seconds=poll_seconds, timeout=timeout, on_update=on_update,
                   on_log=on_log)
    return plan, final
