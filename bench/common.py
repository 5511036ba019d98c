"""Shared pieces of the verifier and simulator benchmarks: a busy node, request counts, the machine.

A real sovereign node's audit log is mostly other people's activity: analysts reading objects and
tables, monitoring listing VMs, operators starting and stopping other workloads. The seeded run
alone leaves about 9 entries per task, so `busy_node` tops the log up with that kind of traffic,
spread over the run's own window, until the window holds the number of entries asked for. The
noise is built with the simulator's own audit-log builders, so it has the shape every other entry
has, and none of it is a violation: the verdict on a busy node must stay the verdict on a quiet one.

Only the benchmarks import this module; it reaches into the simulator's state (as tests do) and
never edits the simulator.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sovaudit.simulator import audit_log, clock, start
from sovaudit.simulator.server import SimServer
from sovaudit.simulator.state import SimState

# Entries the seed writes outside any run window (an earlier run three days ago, uploads five hours
# before): the window count below checks timestamps rather than trusting a total.
ANALYSTS = ("analyst@example.org", "analyst-2@example.org", "qc-bot@fed-node-us.iam.gserviceaccount.com")
MONITORING = "monitoring@fed-node-us.iam.gserviceaccount.com"
OPERATOR = "genomics-admin@example.org"
# Another team's nightly QC workload: its VMs' inserts share the log, resource type and method with
# the audited run's, so only the job uid tells them apart (what CC-03 must get right).
OTHER_WORKLOAD_VMS = 24


@dataclass(frozen=True)
class BusyNode:
    """A started simulator plus what was added to it."""

    sim: SimServer
    job_tasks: int
    seeded_entries: int
    noise_entries: int
    window_entries: int
    seed_seconds: float
    noise_seconds: float

    @property
    def url(self) -> str:
        return self.sim.url


def busy_node(job_tasks: int, window_entries: int) -> BusyNode:
    """Start the us node with a `job_tasks` run and at least `window_entries` audit entries in its window."""
    started = time.perf_counter()
    sim = start(node="us", job_tasks=job_tasks)
    seeded = time.perf_counter()
    state = sim.state
    seed = state.extras["seed"]
    window = (clock.parse(seed.window_start), clock.parse(seed.window_end))
    in_window = sum(1 for entry in state.log_entries if _inside(entry, window))
    wanted = max(0, window_entries - in_window)
    noise = list(noise_entries(state, window, wanted)) if wanted else []
    with state.lock:
        state.log_entries.extend(noise)
    finished = time.perf_counter()
    return BusyNode(sim=sim, job_tasks=job_tasks, seeded_entries=in_window, noise_entries=len(noise),
                    window_entries=in_window + len(noise), seed_seconds=seeded - started,
                    noise_seconds=finished - seeded)


def _inside(entry: dict[str, Any], window: tuple[datetime, datetime]) -> bool:
    return window[0] <= clock.parse(entry["timestamp"]) <= window[1]


def noise_entries(state: SimState, window: tuple[datetime, datetime], count: int) -> Iterator[dict[str, Any]]:
    """`count` unrelated audit entries (at least the other workload's), spread over `window` in a fixed mix.

    Entries are built with `audit_log.audit_entry` and given ids and receive times by
    `audit_log.record` on a scratch state, then returned for the caller to append under the lock in
    one go (one lock hold instead of a hundred thousand).
    """
    scratch = SimState(project_id=state.project_id, project_number=state.project_number,
                       organization=state.organization, region=state.region, zones=list(state.zones),
                       iam_policy=state.iam_policy)
    scratch.extras["_ids"] = Counter({"log_insert": 10_000_000})   # insertIds distinct from the seed's
    kinds = _KINDS
    regular = max(0, count - 2 * OTHER_WORKLOAD_VMS)
    span = (window[1] - window[0]) / max(regular, 1)
    for index in range(regular):
        moment = window[0] + span * index + timedelta(microseconds=index % 997)
        entry = kinds[index % len(kinds)](scratch, index, moment)
        if entry is not None:
            yield audit_log.record(scratch, entry)
    scratch.log_entries.clear()
    # The other workload's VM inserts, once, in the middle of the window.
    middle = window[0] + (window[1] - window[0]) / 2
    for index in range(OTHER_WORKLOAD_VMS):
        zone = state.zones[index % len(state.zones)]
        name = f"qc-nightly-7c1e-group0-{index}-q{index:03d}"
        vm = {"zone": f"https://www.googleapis.com/compute/v1/projects/{state.project_id}/zones/{zone}",
              "name": name, "id": str(6_000_000_000_000_000_000 + index)}
        body = {"name": name, "labels": {"batch-job-id": "qc-nightly", "batch-job-uid": "qc-nightly-7c1e-0000-00000"},
                "confidentialInstanceConfig": {"enableConfidentialCompute": True, "confidentialInstanceType": "SEV"}}
        yield from audit_log.instance_insert(
            scratch, instance=vm, request_body=body, principal=audit_log.cloudservices_account(state),
            operation={"name": f"operation-qc-{index}", "operationType": "insert", "status": "RUNNING"},
            timestamp=middle + timedelta(seconds=index))
    scratch.log_entries.clear()


def _object_read(state: SimState, index: int, moment: datetime) -> dict[str, Any]:
    bucket = f"{state.project_id}-processed" if index % 3 else f"{state.project_id}-raw-vcfs"
    return audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service="storage.googleapis.com", method="storage.objects.get",
        resource_name=f"projects/_/buckets/{bucket}/objects/variants/archive/sample-{index % 5000:04d}.parquet",
        resource_type="gcs_bucket", resource_labels={"project_id": state.project_id, "bucket_name": bucket,
                                                     "location": state.region},
        principal=ANALYSTS[index % len(ANALYSTS)], timestamp=moment, severity="INFO",
        permission="storage.objects.get", permission_type="DATA_READ", locations=[state.region],
        caller_ip="198.51.100.9")


def _object_list(state: SimState, index: int, moment: datetime) -> dict[str, Any]:
    bucket = f"{state.project_id}-raw-vcfs"
    return audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service="storage.googleapis.com", method="storage.objects.list",
        resource_name=f"projects/_/buckets/{bucket}", resource_type="gcs_bucket",
        resource_labels={"project_id": state.project_id, "bucket_name": bucket, "location": state.region},
        principal=ANALYSTS[index % len(ANALYSTS)], timestamp=moment, severity="INFO",
        permission="storage.objects.list", permission_type="DATA_READ", locations=[state.region],
        caller_ip="198.51.100.9")


def _table_read(state: SimState, index: int, moment: datetime) -> dict[str, Any]:
    table = f"projects/{state.project_id}/datasets/hospital_data/tables/variants"
    return audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service="bigquery.googleapis.com",
        method="google.cloud.bigquery.v2.TableDataService.List", resource_name=table,
        resource_type="bigquery_dataset", resource_labels={"project_id": state.project_id,
                                                           "dataset_id": "hospital_data"},
        principal=ANALYSTS[index % len(ANALYSTS)], timestamp=moment, severity="INFO",
        permission="bigquery.tables.getData", permission_type="DATA_READ", locations=[state.region],
        metadata={"@type": audit_log.BQ_METADATA_TYPE,
                  "tableDataRead": {"reason": "TABLEDATA_LIST_REQUEST", "fields": ["reference_name",
                                                                                   "start_position"]}})


def _vm_get(state: SimState, index: int, moment: datetime) -> dict[str, Any]:
    zone = state.zones[index % len(state.zones)]
    name = f"bastion-{index % 3}"
    return audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service="compute.googleapis.com", method="v1.compute.instances.get",
        resource_name=f"projects/{state.project_id}/zones/{zone}/instances/{name}", resource_type="gce_instance",
        resource_labels={"instance_id": str(5_551_234_567_890_123_000 + index % 3), "project_id": state.project_id,
                         "zone": zone},
        principal=MONITORING, timestamp=moment, severity="INFO", permission="compute.instances.get",
        permission_type="ADMIN_READ", locations=[zone], caller_ip="10.20.0.9")


def _vm_admin(state: SimState, index: int, moment: datetime) -> dict[str, Any]:
    """Activity-log entries on gce_instance: same log and resource type as the run's inserts."""
    zone = state.zones[index % len(state.zones)]
    verb = ("stop", "start", "setLabels", "setMetadata")[index % 4]
    name = f"dev-workstation-{index % 40}"
    return audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service="compute.googleapis.com", method=f"v1.compute.instances.{verb}",
        resource_name=f"projects/{state.project_id}/zones/{zone}/instances/{name}", resource_type="gce_instance",
        resource_labels={"instance_id": str(4_000_000_000_000_000_000 + index % 40), "project_id": state.project_id,
                         "zone": zone},
        principal=OPERATOR, timestamp=moment, permission=f"compute.instances.{verb}",
        permission_type="ADMIN_WRITE", locations=[zone], request={"@type": f"type.googleapis.com/compute.instances.{verb}"},
        caller_ip="203.0.113.24", user_agent="google-cloud-sdk gcloud/503.0.0")


def _iam_read(state: SimState, index: int, moment: datetime) -> dict[str, Any]:
    return audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service="cloudresourcemanager.googleapis.com", method="GetIamPolicy",
        resource_name=f"projects/{state.project_id}", resource_type="project",
        resource_labels={"project_id": state.project_id}, principal=MONITORING, timestamp=moment, severity="INFO",
        permission="resourcemanager.projects.getIamPolicy", permission_type="ADMIN_READ", caller_ip="10.20.0.9")


# The mix, by weight: object reads dominate a genomics node; every seventh is something else.
_KINDS: tuple[Callable[[SimState, int, datetime], dict[str, Any] | None], ...] = (
    _object_read, _object_read, _object_read, _table_read, _object_list, _vm_get, _object_read,
    _table_read, _vm_admin, _object_read, _iam_read, _object_read, _table_read, _vm_get,
)


# ------------------------------------------------------------------------------------ measuring

def verifier_queries(node: BusyNode) -> dict[str, str]:
    """The verifier's three Logging filters for the seeded run, by purpose, as verify sends them."""
    from sovaudit.audit.collectors import logs
    from sovaudit.audit.collectors.job import WINDOW_MARGIN

    seed = node.sim.state.extras["seed"]
    start = clock.parse(seed.window_start) - WINDOW_MARGIN
    end = clock.parse(seed.window_end) + WINDOW_MARGIN
    return logs.filters(node.sim.state.project_id, start, end)


def matching_entries(node: BusyNode, filter_text: str) -> int:
    """How many of the node's entries a Logging filter matches (the simulator's own evaluator)."""
    from sovaudit.simulator.logquery import compile_filter

    compiled = compile_filter(filter_text)
    with node.sim.state.lock:
        return sum(1 for entry in node.sim.state.log_entries if compiled.matches(entry))


def sim_requests(url: str) -> dict[str, int]:
    """The simulator's request counters by API (plus `requests`, the total), from `GET /_sim/stats`."""
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=10) as response:   # noqa: S310 - loopback only
        stats = json.loads(response.read())
    return {"requests": int(stats["requests"]), **{k: int(v) for k, v in stats["by_api"].items()}}


def request_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests made between two `sim_requests` readings, by API (zeros dropped)."""
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}


def reader_policy() -> str:
    """The us pack with the busy node's analysts as allowed readers (SEC-07), as a file path.

    Their reads of the node's buckets and table are this node's legitimate traffic; listed as
    readers, the reads query leaves them on the server, so they cost no pages and no FAIL."""
    import tempfile

    from sovaudit.policies.pack import resolve_policy

    text = Path(resolve_policy("us").path).read_text(encoding="utf-8")
    members = ", ".join(f"serviceAccount:{a}" if a.endswith(".gserviceaccount.com") else f"user:{a}"
                        for a in ANALYSTS)
    text = text.replace("readers: [", f"readers: [{members}, ", 1)
    handle, path = tempfile.mkstemp(prefix="bench-us-node-", suffix=".yaml")
    os.close(handle)
    Path(path).write_text(text, encoding="utf-8")
    return path


def sovaudit_command() -> list[str]:
    """The installed `sovaudit` entry point of this interpreter's environment (so start-up is measured)."""
    script = os.path.join(os.path.dirname(sys.executable), "sovaudit")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "sovaudit"]


def machine() -> dict[str, str]:
    """What the figures were measured on: CPUs, memory, CPU model, Python, date."""
    model = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        free = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()
        memory = free[1].split()[1] if len(free) > 1 else "?"
    except OSError:
        memory = "?"
    # Other people's work on a shared machine shows in every figure: say how busy it was.
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {"cpus": str(os.cpu_count()), "memory": memory, "cpu": model or "unknown",
            "python": platform.python_version(), "date": clock.rfc3339(clock.now())[:16] + "Z", "load": load}


def print_machine() -> None:
    info = machine()
    print(f"# {info['date']}  {info['cpus']} CPUs ({info['cpu']}), {info['memory']} RAM, Python {info['python']}, "
          f"load average {info['load']}")
