"""SOV-02's probe: a Batch job in a region the policy forbids must be refused.

Google's behaviour is not documented either way, so both refusals count: the create call fails
citing the location constraint, or the job is accepted and then FAILS citing it with no VM created.
The probe job runs nothing (`true`), and an accepted job is deleted at once.
"""

from __future__ import annotations

import time
from typing import Any

from sovaudit import cloud
from sovaudit.audit import probes
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.probes import PROBE_LABEL, PROBE_PREFIX, label_value, resource_suffix
from sovaudit.audit.recorder import CollectionError

# How long an accepted probe job may take to fail before it counts as accepted.
FAILURE_WAIT_SECONDS = 20.0
POLL_SECONDS = 0.5


def probe_job_spec(ctx: CollectContext, region: str) -> dict[str, Any]:
    return {
        "task_groups": [{
            "task_count": 1,
            "task_spec": {"runnables": [{"script": {"text": "true"}}], "max_run_duration": "60s",
                          "max_retry_count": 0},
        }],
        "allocation_policy": {
            "location": {"allowed_locations": [f"regions/{region}"]},
            "instances": [{"policy": {"machine_type": "e2-micro", "provisioning_model": "SPOT"}}],
            "service_account": {"email": ctx.pack.service_account},
            "labels": {PROBE_LABEL: label_value(ctx.run_id)},
        },
        "labels": {PROBE_LABEL: label_value(ctx.run_id)},
        "logs_policy": {"destination": "CLOUD_LOGGING"},
    }


def run(ctx: CollectContext, region: str) -> None:
    client = ctx.client(cloud.batch)
    parent = f"projects/{ctx.project}/locations/{region}"
    job_id = f"{PROBE_PREFIX}{resource_suffix(ctx.run_id, region)}"[:63].rstrip("-")
    created: Any = None
    try:
        try:
            created = ctx.recorder.call(
                f"probe.batch:{region}", "batch", "jobs.create",
                lambda: client.create_job(parent=parent, job=probe_job_spec(ctx, region), job_id=job_id,
                                          retry=None, timeout=REQUEST_TIMEOUT_SECONDS),
                retry=False)
        except CollectionError:
            return  # refused (or failed): the recorded answer is the evidence
        _await_failure(ctx, client, created.name, created.uid, region)
    finally:
        if created is not None:
            delete_job(ctx, client, created.name, f"probe.cleanup:{created.name}")


def _await_failure(ctx: CollectContext, client: Any, name: str, uid: str, region: str) -> None:
    from sovaudit import progress

    progress.say(f"probe job {name} was accepted in {region}: waiting up to {FAILURE_WAIT_SECONDS:.0f} s for "
                 "Batch to fail it citing the location constraint")
    deadline = time.monotonic() + FAILURE_WAIT_SECONDS
    while time.monotonic() < deadline and not ctx.stopping.is_set():
        try:
            job = ctx.recorder.call(f"probe.batch_status:{region}", "batch", "jobs.get",
                                    lambda: client.get_job(name=name, retry=None,
                                                           timeout=REQUEST_TIMEOUT_SECONDS))
        except CollectionError:
            return
        state = job.status.state.name
        if state in {"FAILED", "SUCCEEDED", "CANCELLED"}:
            break
        ctx.stopping.wait(POLL_SECONDS)  # an interrupt ends the wait, then the job is deleted
    instances = ctx.client(cloud.compute_instances)
    request = {"project": ctx.project, "filter": f'labels.batch-job-uid = "{uid}"', "max_results": 500}
    try:
        ctx.recorder.call(f"probe.batch_vms:{region}", "compute", "instances.aggregatedList",
                          lambda: sum(1 for _ in instances.aggregated_list(request=request, retry=None,
                                                                           timeout=REQUEST_TIMEOUT_SECONDS)))
    except CollectionError:
        return


def delete_job(ctx: CollectContext, client: Any, name: str, purpose: str) -> bool:
    """Delete a probe job; True when it is gone (see `probes.delete`)."""
    return probes.delete(ctx, purpose, "batch", "jobs.delete",
                         lambda: client.delete_job(name=name, retry=None, timeout=REQUEST_TIMEOUT_SECONDS))
