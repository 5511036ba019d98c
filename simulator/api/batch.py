"""Cloud Batch v1, as `google.cloud.batch_v1.BatchServiceClient(transport="rest")` calls it.

Served: jobs create/get/list/delete/cancel; taskGroups.tasks get/list; operations get (the delete and
cancel LROs). A job lives QUEUED → SCHEDULED → RUNNING → SUCCEEDED/FAILED, driven by time for the
first steps and by its tasks after that (`batch_runner`); every change is a `STATUS_CHANGED`
status event worded as Batch words it, with the project *number* in the job name.

Why the details matter: SOV-02 submits a job to a disallowed region and must see either the
synchronous refusal (`options["batch_refusal"] == "submit"`, the default: 400 FAILED_PRECONDITION
with a PreconditionFailure) or a job that fails citing the constraint with no VM created
(`"fail"`); CC-01, SEC-02, SEC-03 and SOV-06 read the job's allocation policy and the VMs it made
(labels `batch-job-id`, `batch-job-uid`, `batch-node`), so VMs are built from the instance template
or the instance policy exactly as Batch builds them.

Wire format: the REST client sends enums as numbers and asks for numbers back
(`$alt=json;enum-encoding=int`). Jobs are stored with enum names (readable, filterable) and
rendered through the batch_v1 protos when a caller asks for numbers, as Google does.

Knowingly not Google (each a choice, not an accident):
* VMs stay after the job ends (Google deletes them with the job's instance group) so that a run can
  be audited afterwards, like the seeded job; `options["batch_delete_vms"] = True` deletes them.
* Delete and cancel finish before they answer: their LROs come back `done`.
* Refusal by `gcp.resourceLocations` is not documented for Batch; `options["batch_refusal"]` picks
  the synchronous 400 ("submit") or a job that fails with `CODE_GCE_CONDITION_NOT_MET` ("fail").
* Job state changes are status events only; the admin-activity log gets CreateJob, DeleteJob and
  CancelJob (the ADMIN_WRITE methods in Batch's audit-logging page), as on Google.
* Task output reaches Cloud Logging only with `logsPolicy.destination = CLOUD_LOGGING`, as on Google.
* `maxRunDuration`, `taskCountPerNode` packing beyond VM counting, barriers, volumes and the task
  `lifecyclePolicies` other than retry-on-exit-code are not simulated.
* Timing: QUEUED → SCHEDULED → RUNNING take `options["batch_step_seconds"]` (default 0.05 s) each.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sovaudit.simulator import audit_log, batch_runner, clock, enforcement
from sovaudit.simulator.aip160 import FilterError, parse_filter
from sovaudit.simulator.api import compute
from sovaudit.simulator.http import ApiError, Router, SimRequest, rpc_error
from sovaudit.simulator.state import SimState

API = "batch"
_JOBS = "/v1/projects/<project>/locations/<location>/jobs"
_JOB_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_DEFAULT_PAGE_SIZE = 100
_MAX_PAGE_SIZE = 1000
_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_PRECONDITION = "type.googleapis.com/google.rpc.PreconditionFailure"
_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def register(router: Router) -> None:
    add = router.add
    add("POST", _JOBS, create_job, api=API)
    add("GET", _JOBS, list_jobs, api=API)
    add("GET", f"{_JOBS}/<job>", get_job, api=API)
    add("DELETE", f"{_JOBS}/<job>", delete_job, api=API)
    add("POST", f"{_JOBS}/<job>:cancel", cancel_job, api=API)
    add("GET", f"{_JOBS}/<job>/taskGroups/<group>/tasks", list_tasks, api=API)
    add("GET", f"{_JOBS}/<job>/taskGroups/<group>/tasks/<task>", get_task, api=API)
    add("GET", "/v1/projects/<project>/locations/<location>/operations/<operation>", get_operation, api=API)


# ---------------------------------------------------------------------------------------------
# runtime bookkeeping (not part of the REST resource)


@dataclass
class TaskRecord:
    index: int
    state: str = "PENDING"
    attempts: int = 0
    exit_code: int | None = None
    vm: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class JobRuntime:
    """What the lifecycle driver needs beside the Job JSON: tasks, VMs, the simulator URL, a stop flag."""

    name: str
    job_id: str
    uid: str
    region: str
    target_url: str
    tasks: list[TaskRecord]
    vms: list[tuple[str, str]] = field(default_factory=list)  # (zone, name)
    stop: threading.Event = field(default_factory=threading.Event)
    running_since: datetime | None = None
    thread: threading.Thread | None = None


def _runtimes(state: SimState) -> dict[str, JobRuntime]:
    with state.lock:
        return state.extras.setdefault("batch_runtimes", {})  # type: ignore[no-any-return]


def shutdown(state: SimState, timeout: float = 5.0) -> None:
    """Stop every job driver (the server calls this on stop, so no task outlives the simulator)."""
    runtimes = list(_runtimes(state).values())
    for runtime in runtimes:
        runtime.stop.set()
    for runtime in runtimes:
        if runtime.thread is not None and runtime.thread is not threading.current_thread():
            runtime.thread.join(timeout=timeout)


# ---------------------------------------------------------------------------------------------
# names, times, errors


def _now() -> datetime:
    return clock.now()


def _ts(moment: datetime | None = None) -> str:
    """Batch's timestamps carry nanoseconds (`2022-09-22T15:52:40.877994657Z` in real describes)."""
    micro = clock.rfc3339(moment or _now())[:-1]
    return f"{micro}{time.time_ns() % 1000:03d}Z"


def _project_number(state: SimState, project: str) -> str:
    if project not in {state.project_id, state.project_number}:
        raise rpc_error(403, f"Permission denied on resource project {project}.", status="PERMISSION_DENIED")
    return state.project_number


def _job_name(state: SimState, project: str, location: str, job_id: str) -> str:
    return f"projects/{_project_number(state, project)}/locations/{location}/jobs/{job_id}"


def _as_requested(job: dict[str, Any], project: str) -> dict[str, Any]:
    """Google echoes the job's `name` with the project as the caller spelled it (a describe by project
    id shows `projects/<id>/...`), while task-group names and status events keep the number."""
    name = str(job.get("name", ""))
    head, sep, rest = name.partition("/locations/")
    if sep and head.startswith("projects/"):
        job["name"] = f"projects/{project}/locations/{rest}"
    return job


def _invalid(message: str, field_name: str | None = None) -> ApiError:
    details = None
    if field_name:
        details = [{"@type": _BAD_REQUEST, "fieldViolations": [{"field": field_name, "description": message}]}]
    return rpc_error(400, message, status="INVALID_ARGUMENT", details=details)


def _job_not_found(name: str) -> ApiError:
    return rpc_error(404, f"Job not found: {name}", status="NOT_FOUND")


def _region_of_location(location: str) -> str:
    """`regions/us-central1` → us-central1; `zones/us-central1-a` → us-central1."""
    kind, _, value = location.partition("/")
    if kind == "zones":
        return compute.region_of(value)
    return value


def _state_changed(job_name: str, old: str, new: str, suffix: str = "") -> dict[str, Any]:
    description = f"Job state is set from {old} to {new} for job {job_name}."
    if suffix:
        description = f"{description} {suffix}"
    return {"type": "STATUS_CHANGED", "description": description, "eventTime": _ts()}


# ---------------------------------------------------------------------------------------------
# proto round trips: canonical storage, numeric enums on request


def _job_pb_class() -> Any:
    from google.cloud.batch_v1.types import job as job_types

    return job_types.Job.pb()


def normalise_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Job body in canonical REST JSON (enum names, int64 as strings, unset fields omitted).

    Unknown fields are refused as Google refuses them, naming the field."""
    from google.protobuf import json_format

    try:
        message = json_format.ParseDict(dict(body), _job_pb_class()(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise _invalid(f"Invalid JSON payload received. {exc}") from exc
    return json_format.MessageToDict(message)


def render(resource: Mapping[str, Any], request: SimRequest, pb_class: Any | None = None) -> dict[str, Any]:
    """Answer with numeric enums when the client asked for them (`$alt=json;enum-encoding=int`)."""
    if "enum-encoding=int" not in (request.arg("$alt") or ""):
        return dict(resource)
    from google.protobuf import json_format

    message = json_format.ParseDict(dict(resource), (pb_class or _job_pb_class())(), ignore_unknown_fields=True)
    return json_format.MessageToDict(message, use_integers_for_enums=True)


# ---------------------------------------------------------------------------------------------
# create


def _validate_job_id(job_id: str) -> None:
    if len(job_id) > 63 or not _JOB_ID.fullmatch(job_id):
        raise _invalid(f"Job id '{job_id}' is invalid: it must be 1-63 characters, start with a lowercase letter, "
                       "contain only lowercase letters, digits and hyphens, and not end with a hyphen "
                       "(^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$).", "job_id")


def _make_uid(job_id: str, generated: bool) -> str:
    if generated:
        return job_id
    # Observed shape: the job id's first 18 characters, then 8-4-5 hex digits
    # (e.g. `phase19-targeted-f-8f0eaf56-aa9c-40b50`); never ends with a hyphen.
    digits = uuid.uuid4().hex
    return f"{job_id[:18]}-{digits[:8]}-{digits[8:12]}-{digits[12:17]}"


def _allowed_locations(state: SimState, job: dict[str, Any], region: str) -> list[str]:
    """The job's allowedLocations; unset, Batch fills in the zones of the job's region (a real describe
    shows `zones/us-central1-a` ... `-f` for a job that named none)."""
    policy = job.setdefault("allocationPolicy", {})
    location = policy.setdefault("location", {})
    allowed = [str(x) for x in location.get("allowedLocations", [])]
    if not allowed:
        allowed = [f"zones/{z}" for z in compute.zones_of_region(state, region)]
        location["allowedLocations"] = allowed
    return allowed


def _check_single_region(allowed: list[str], region: str) -> None:
    regions = sorted({_region_of_location(x) for x in allowed})
    if len(regions) > 1:
        raise _invalid("job.allocation_policy field is invalid. all specified locations end up in more than one "
                       f"regions [{' '.join(regions)}].", "job.allocation_policy.location.allowed_locations")
    for entry in allowed:
        kind, _, value = entry.partition("/")
        if kind not in {"regions", "zones"} or not value:
            raise _invalid(f"job.allocation_policy field is invalid. location {entry!r} must be "
                           "'regions/REGION' or 'zones/ZONE'.", "job.allocation_policy.location.allowed_locations")
    if regions and regions[0] != region:
        raise _invalid(f"job.allocation_policy field is invalid. allowed locations {allowed} are outside the "
                       f"job's region {region}.", "job.allocation_policy.location.allowed_locations")


def _refused_location(state: SimState, region: str, allowed: list[str]) -> str | None:
    """The first of the job's locations the org policy refuses (region first), else None."""
    for location in [region] + [x.partition("/")[2] for x in allowed]:
        if not enforcement.location_allowed(state, location):
            return location
    return None


def _task_count(job: Mapping[str, Any]) -> tuple[int, int]:
    group = job["taskGroups"][0]
    count = int(group.get("taskCount", 1))
    parallelism = int(group.get("parallelism", count))
    return count, max(1, min(parallelism, count))


def create_job(request: SimRequest) -> dict[str, Any]:
    state = request.state
    project, location = request.path_args["project"], request.path_args["location"]
    job_id = request.arg("jobId") or ""
    generated = not job_id
    if generated:
        job_id = f"j-{uuid.uuid4()}"
    _validate_job_id(job_id)
    name = _job_name(state, project, location, job_id)
    body = request.json()
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. The body must be a Job.")
    job = normalise_job(body)
    for read_only in ("name", "uid", "status", "createTime", "updateTime"):
        job.pop(read_only, None)
    groups = job.get("taskGroups") or []
    if len(groups) != 1:
        raise _invalid("job.task_groups field is invalid. Exactly one task group is supported.", "job.task_groups")
    if not groups[0].get("taskSpec", {}).get("runnables"):
        raise _invalid("job.task_groups[0].task_spec.runnables field is invalid. At least one runnable is required.",
                       "job.task_groups[0].task_spec.runnables")
    if location not in compute.KNOWN_ZONES and location != state.region:
        raise rpc_error(400, f"Location {location} is not supported by Cloud Batch in this simulator.",
                        status="INVALID_ARGUMENT")
    with state.lock:
        if name in state.jobs:
            raise rpc_error(409, f"Job {name} already exists.", status="ALREADY_EXISTS")
    allowed = _allowed_locations(state, job, location)
    _check_single_region(allowed, location)
    refused = _refused_location(state, location, allowed)
    if refused is not None and str(state.options.get("batch_refusal", "submit")) != "fail":
        # Refusal mode "submit": CreateJob answers 400 FAILED_PRECONDITION with a PreconditionFailure.
        enforcement.check_location(state, refused, api="batch", resource=name,
                                   principal=compute.caller_principal(request))

    uid = _make_uid(job_id, generated)
    group = groups[0]
    group["name"] = f"{name}/taskGroups/group0"
    group.setdefault("taskCount", "1")
    count, parallelism = _task_count(job)
    group.setdefault("parallelism", str(parallelism))
    # Defaults Batch fills in, as a real describe shows them.
    spec = group.setdefault("taskSpec", {})
    spec.setdefault("computeResource", {"cpuMilli": "2000", "memoryMib": "2000"})
    now = _ts()
    job.update({"name": name, "uid": uid, "createTime": now, "updateTime": now,
                "status": {"state": "QUEUED", "runDuration": "0s"}})
    ordered: dict[str, Any] = {k: job[k] for k in ("name", "uid") if k in job}
    ordered.update({k: v for k, v in job.items() if k not in ordered})
    runtime = JobRuntime(name=name, job_id=job_id, uid=uid, region=location, target_url=request.base_url,
                         tasks=[TaskRecord(i) for i in range(count)])
    with state.lock:
        if name in state.jobs:
            raise rpc_error(409, f"Job {name} already exists.", status="ALREADY_EXISTS")
        state.jobs[name] = ordered
        _runtimes(state)[name] = runtime
        answer = copy.deepcopy(ordered)
    _audit_job(state, "CreateJob", name, location, principal=compute.caller_principal(request),
               request_body={"@type": "type.googleapis.com/google.cloud.batch.v1.CreateJobRequest",
                             "parent": f"projects/{project}/locations/{location}", "jobId": job_id,
                             "job": normalise_job(body)}, response=answer)
    start_driver(state, name)
    return render(_as_requested(answer, project), request)


def _audit_job(state: SimState, method: str, name: str, location: str, *, principal: str,
               request_body: Mapping[str, Any], response: Mapping[str, Any] | None = None) -> None:
    permission = {"CreateJob": "batch.jobs.create", "DeleteJob": "batch.jobs.delete",
                  "CancelJob": "batch.jobs.cancel"}[method]
    response_body = None
    if response is not None:
        response_body = {"@type": "type.googleapis.com/google.cloud.batch.v1.Job", **dict(response)}
    audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service="batch.googleapis.com",
        method=f"google.cloud.batch.v1.BatchService.{method}", resource_name=name,
        resource_type="batch.googleapis.com/Job",
        resource_labels={"project_id": state.project_id, "location": location,
                         "job_id": name.rsplit("/", 1)[-1]},
        principal=principal, timestamp=_now(), permission=permission, permission_type="ADMIN_WRITE",
        request=request_body, response=response_body, locations=[location]))


# ---------------------------------------------------------------------------------------------
# lifecycle


def _step_seconds(state: SimState) -> float:
    return float(state.options.get("batch_step_seconds", 0.05))


def start_driver(state: SimState, name: str) -> None:
    runtime = _runtimes(state)[name]
    thread = threading.Thread(target=_drive, args=(state, runtime), name=f"sim-batch-{runtime.job_id}",
                              daemon=True)
    runtime.thread = thread
    thread.start()


def _set_state(state: SimState, runtime: JobRuntime, new: str, *, suffix: str = "",
               extra_events: list[dict[str, Any]] | None = None) -> bool:
    """Move the job to `new` with its status event; False when it is gone or already finished."""
    with state.lock:
        job = state.jobs.get(runtime.name)
        if job is None:
            return False
        status = job["status"]
        old = status["state"]
        if old in _TERMINAL or old in {"DELETION_IN_PROGRESS", "CANCELLATION_IN_PROGRESS"} and new not in {
                "CANCELLED"}:
            return False
        events = status.setdefault("statusEvents", [])
        events.extend(extra_events or [])
        events.append(_state_changed(runtime.name, old, new, suffix))
        status["state"] = new
        if new == "RUNNING":
            runtime.running_since = _now()
        _refresh_counts(state, runtime, job)
        job["updateTime"] = _ts()
        return True


def _refresh_counts(state: SimState, runtime: JobRuntime, job: dict[str, Any]) -> None:
    status = job["status"]
    counts: dict[str, str] = {}
    for task in runtime.tasks:
        counts[task.state] = str(int(counts.get(task.state, "0")) + 1)
    group = status.setdefault("taskGroups", {}).setdefault("group0", {})
    group["counts"] = counts
    if runtime.running_since is not None:
        seconds = (_now() - runtime.running_since).total_seconds()
        status["runDuration"] = f"{seconds:.6f}s"


def _drive(state: SimState, runtime: JobRuntime) -> None:
    """QUEUED → SCHEDULED (VMs) → RUNNING (tasks) → SUCCEEDED / FAILED."""
    step = _step_seconds(state)
    if runtime.stop.wait(step):
        return
    if not _set_state(state, runtime, "SCHEDULED"):
        return
    if runtime.stop.wait(step):
        return
    failure = _create_vms(state, runtime)
    if runtime.stop.is_set():
        return
    if failure is not None:
        _set_state(state, runtime, "FAILED", extra_events=[failure],
                   suffix=f"Job failed due to {failure['description']}")
        return
    if not _set_state(state, runtime, "RUNNING"):
        return
    failed_task = _run_tasks(state, runtime)
    if runtime.stop.is_set():
        return
    if failed_task is None:
        _set_state(state, runtime, "SUCCEEDED")
    else:
        task_event = failed_task.events[-1]
        suffix = (f"Job failed due to task failure. Specifically, task with index {failed_task.index} failed due "
                  f"to the following task event: \"{task_event['description']}\"")
        _set_state(state, runtime, "FAILED", suffix=suffix)
        with state.lock:
            job = state.jobs.get(runtime.name)
            if job is not None:
                last = job["status"]["statusEvents"][-1]
                last["taskExecution"] = {"exitCode": failed_task.exit_code}
                last["taskState"] = "FAILED"
    if state.options.get("batch_delete_vms"):
        _delete_vms(state, runtime)


# ---------------------------------------------------------------------------------------------
# VMs


def _vm_count(job: Mapping[str, Any], task_count: int) -> int:
    group = job["taskGroups"][0]
    parallelism = int(group.get("parallelism", task_count))
    per_node = int(group.get("taskCountPerNode", 1) or 1)
    return max(1, math.ceil(min(parallelism, task_count) / per_node))


def _vm_zones(state: SimState, allowed: list[str], region: str) -> list[str]:
    zones = [x.partition("/")[2] for x in allowed if x.startswith("zones/")]
    return zones or list(compute.zones_of_region(state, region)) or [f"{region}-a"]


def _suffix() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(4))


def instance_body(state: SimState, job: Mapping[str, Any], runtime: JobRuntime, vm_name: str,
                  zone: str) -> dict[str, Any]:
    """The instances.insert body Batch's managed instance group sends for one VM of the job."""
    policy = job.get("allocationPolicy", {})
    first = (policy.get("instances") or [{}])[0]
    labels = {**policy.get("labels", {}), "batch-job-id": runtime.job_id, "batch-job-uid": runtime.uid,
              "batch-node": ""}
    service_account = policy.get("serviceAccount", {})
    if first.get("instanceTemplate"):
        # The template's machine, network and confidential settings win over the job's (Batch docs).
        body = compute.template_properties(state, str(first["instanceTemplate"]))
        body["labels"] = {**body.get("labels", {}), **labels}
    else:
        instance_policy = first.get("policy", {})
        body = {"machineType": instance_policy.get("machineType", "e2-standard-4"), "labels": labels}
        model = instance_policy.get("provisioningModel", "STANDARD")
        if model in {"PROVISIONING_MODEL_UNSPECIFIED", ""}:
            model = "STANDARD"
        scheduling: dict[str, Any] = {"provisioningModel": model, "onHostMaintenance": "TERMINATE",
                                      "automaticRestart": model == "STANDARD"}
        if model in {"SPOT", "PREEMPTIBLE"}:
            scheduling.update({"preemptible": True, "instanceTerminationAction": "DELETE"})
        body["scheduling"] = scheduling
        if instance_policy.get("minCpuPlatform"):
            body["minCpuPlatform"] = instance_policy["minCpuPlatform"]
        boot = instance_policy.get("bootDisk", {})
        body["disks"] = [{"boot": True, "autoDelete": True, "type": "PERSISTENT", "initializeParams": {
            "sourceImage": boot.get("image", "projects/batch-custom-image/global/images/family/batch-debian-12-official"),
            "diskSizeGb": str(boot.get("sizeGb", "30")), "diskType": boot.get("type", "pd-balanced")}}]
        nics = []
        for given in policy.get("network", {}).get("networkInterfaces", []) or [{}]:
            nic: dict[str, Any] = {k: given[k] for k in ("network", "subnetwork") if given.get(k)}
            if given.get("nicType") and given["nicType"] != "NIC_TYPE_UNSPECIFIED":
                nic["nicType"] = given["nicType"]
            if not given.get("noExternalIpAddress"):
                nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "external-nat"}]
            nics.append(nic)
        body["networkInterfaces"] = nics
        email = service_account.get("email") or compute.default_service_account(state)
        body["serviceAccounts"] = [{"email": email, "scopes": list(service_account.get("scopes") or [_SCOPE])}]
    if not body.get("serviceAccounts"):
        # A template without a service account: the job's, else the default compute one (as Batch does).
        email = service_account.get("email") or compute.default_service_account(state)
        body["serviceAccounts"] = [{"email": email, "scopes": list(service_account.get("scopes") or [_SCOPE])}]
    metadata_items = [{"key": "cloudbatch-job-uid", "value": runtime.uid},
                      {"key": "cloudbatch-job-id", "value": runtime.job_id},
                      {"key": "cloudbatch-taskgroup-id", "value": "group0"}]
    existing = body.get("metadata", {}).get("items", [])
    body["metadata"] = {"items": [*existing, *metadata_items]}
    body["name"] = vm_name
    body["zone"] = zone
    return body


def _create_vms(state: SimState, runtime: JobRuntime) -> dict[str, Any] | None:
    """Create the job's VMs; on a Compute refusal, the status event Batch records (and no VM)."""
    with state.lock:
        job = copy.deepcopy(state.jobs.get(runtime.name) or {})
    if not job:
        return {"description": "job deleted"}
    allowed = job.get("allocationPolicy", {}).get("location", {}).get("allowedLocations", [])
    zones = _vm_zones(state, allowed, runtime.region)
    count = _vm_count(job, len(runtime.tasks))
    principal = audit_log.cloudservices_account(state)
    mig = f"{runtime.uid}-group0-0"
    bodies = []
    for n in range(count):
        zone = zones[n % len(zones)]
        bodies.append((zone, instance_body(state, job, runtime, f"{runtime.uid}-group0-{n}-{_suffix()}", zone)))
    # Compute checks the location before any VM exists: one refusal and the whole group fails.
    for zone, body in bodies:
        resource = f"projects/{state.project_id}/zones/{zone}/instances/{body['name']}"
        violation = enforcement.location_violation(state, zone, api="compute", resource=resource)
        if violation is not None:
            enforcement.record_violation(state, violation, principal=principal)
            return {"eventTime": _ts(),
                    "description": "VM in Managed Instance Group meets error: Batch Error: code - "
                                   f"CODE_GCE_CONDITION_NOT_MET, description - {violation.message}"}
    for zone, body in bodies:
        if runtime.stop.is_set():  # deleted or cancelled while the group was being created
            break
        request_body = {k: v for k, v in body.items() if k != "zone"}
        links = [{"type": "MEMBER_OF", "source": f"projects/{state.project_number}/zones/{zone}/"
                                                  f"instanceGroupManagers/{mig}"}]
        try:
            compute.create_instance(state, zone, request_body, principal=principal, links=links, enforce=False)
        except ApiError as error:
            return {"eventTime": _ts(),
                    "description": "VM in Managed Instance Group meets error: Batch Error: code - "
                                   f"CODE_GCE_{_error_code(error)}, description - {error.message}"}
        runtime.vms.append((zone, str(body["name"])))
    if runtime.stop.is_set():
        _delete_vms(state, runtime)
        return None
    with state.lock:
        job_now = state.jobs.get(runtime.name)
        if job_now is not None:
            machine = str(bodies[0][1].get("machineType", ""))
            model = bodies[0][1].get("scheduling", {}).get("provisioningModel", "STANDARD")
            job_now["status"].setdefault("taskGroups", {}).setdefault("group0", {})["instances"] = [
                {"machineType": machine.rsplit("/", 1)[-1], "provisioningModel": model,
                 "taskPack": str(job.get("taskGroups", [{}])[0].get("taskCountPerNode", "1"))}]
    return None


def _error_code(error: ApiError) -> str:
    reasons = [e.get("reason", "") for e in error.body.get("error", {}).get("errors", [])]
    reason = reasons[0] if reasons else "internal"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", reason).upper()


def _delete_vms(state: SimState, runtime: JobRuntime) -> None:
    principal = audit_log.cloudservices_account(state)
    for zone, name in list(runtime.vms):
        try:
            compute.remove_instance(state, zone, name, principal=principal)
        except ApiError:
            pass  # already gone (deleted by hand): nothing left to clean
    runtime.vms.clear()


# ---------------------------------------------------------------------------------------------
# tasks


def _environment(job: Mapping[str, Any], runtime: JobRuntime, index: int, attempt: int) -> dict[str, str]:
    group = job["taskGroups"][0]
    spec = group.get("taskSpec", {})
    env: dict[str, str] = {}
    env.update(spec.get("environment", {}).get("variables", {}))
    environments = group.get("taskEnvironments", [])
    if index < len(environments):
        env.update(environments[index].get("variables", {}))
    runnable = (spec.get("runnables") or [{}])[0]
    env.update(runnable.get("environment", {}).get("variables", {}))
    env.update({"BATCH_TASK_INDEX": str(index), "BATCH_TASK_COUNT": str(len(runtime.tasks)),
                "BATCH_JOB_UID": runtime.uid, "BATCH_JOB_ID": runtime.job_id,
                "BATCH_TASK_RETRY_ATTEMPT": str(attempt), "SOVAUDIT_TARGET": runtime.target_url})
    return env


def _vm_identity(state: SimState, place: str) -> dict[str, str]:
    """What a task on Google reads from its VM's metadata server (project number, zone, instance id),
    as variables: a task process here has no metadata server (sovaudit.pipeline.attest, CC-05)."""
    match = re.fullmatch(r"zones/([^/]+)/instances/([^/]+)", place)
    if not match:
        return {}
    with state.lock:
        vm = state.instances.get((match.group(1), match.group(2))) or {}
    if not vm.get("id"):
        return {}
    return {"SOVAUDIT_SIM_PROJECT_NUMBER": str(state.project_number), "SOVAUDIT_SIM_ZONE": match.group(1),
            "SOVAUDIT_SIM_INSTANCE_ID": str(vm["id"])}


def _retries_allowed(spec: Mapping[str, Any], exit_code: int) -> bool:
    for policy in spec.get("lifecyclePolicies", []):
        codes = [int(c) for c in policy.get("actionCondition", {}).get("exitCodes", [])]
        if exit_code in codes:
            return policy.get("action") == "RETRY_TASK"
    return True


def _log_lines(state: SimState, job: Mapping[str, Any], runtime: JobRuntime, index: int, lines: list[str],
               exit_code: int) -> None:
    if job.get("logsPolicy", {}).get("destination") != "CLOUD_LOGGING":
        return  # Batch ships task output to Cloud Logging only when the job asks for it
    for line in lines:
        audit_log.batch_task_log(state, job_uid=runtime.uid, job_id=runtime.job_id, task_index=index, text=line,
                                 timestamp=_now(), severity="INFO" if exit_code == 0 else "ERROR")


def _task_event(task: TaskRecord, old: str, new: str, zone_vm: str, exit_code: int | None = None) -> None:
    description = f"Task state is updated from {old} to {new} on {zone_vm}"
    if exit_code is not None and new == "FAILED":
        description += f" with exit code {exit_code}"
    event: dict[str, Any] = {"type": "STATUS_CHANGED", "description": description + ".", "eventTime": _ts(),
                             "taskState": new}
    if exit_code is not None:
        event["taskExecution"] = {"exitCode": exit_code}
    task.events.append(event)
    task.state = new


def _run_tasks(state: SimState, runtime: JobRuntime) -> TaskRecord | None:
    """Run every task (retrying up to maxRetryCount); the first task that fails for good, or None."""
    with state.lock:
        job = copy.deepcopy(state.jobs[runtime.name])
    spec = job["taskGroups"][0].get("taskSpec", {})
    runnable = (spec.get("runnables") or [{}])[0]
    max_retries = int(spec.get("maxRetryCount", 0))
    _, parallelism = _task_count(job)
    runner = batch_runner.runner_for(state)
    executor = batch_runner.make_executor(runner, parallelism)
    failed: TaskRecord | None = None
    lock = threading.Lock()
    pending = list(runtime.tasks)
    in_flight: dict[Future[batch_runner.TaskOutcome], TaskRecord] = {}
    vm_places = [f"zones/{zone}/instances/{name}" for zone, name in runtime.vms] or ["zones/unknown/instances/0"]

    def submit(task: TaskRecord) -> None:
        task.vm = vm_places[task.index % len(vm_places)]
        environment = {**_environment(job, runtime, task.index, task.attempts), **_vm_identity(state, task.vm)}
        invocation = batch_runner.TaskInvocation(
            job_name=runtime.name, job_uid=runtime.uid, task_index=task.index, task_count=len(runtime.tasks),
            environment=environment, runnable=runnable, attempt=task.attempts)
        with state.lock:
            if task.state == "PENDING":
                _task_event(task, "PENDING", "ASSIGNED", task.vm)
            _task_event(task, task.state, "RUNNING", task.vm)
            _touch_counts(state, runtime)
        in_flight[executor.submit(batch_runner.run_attempt, runner, invocation)] = task

    try:
        while (pending or in_flight) and not runtime.stop.is_set():
            while pending and len(in_flight) < parallelism and failed is None:
                submit(pending.pop(0))
            if not in_flight:
                break
            done = _wait_any(list(in_flight), runtime.stop)
            for future in done:
                task = in_flight.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the pool itself broke (e.g. a runner that cannot be pickled)
                    outcome = batch_runner.TaskOutcome(1, [f"task could not run: {type(exc).__name__}: {exc}"])
                _log_lines(state, job, runtime, task.index, outcome.log_lines, outcome.exit_code)
                with lock, state.lock:
                    task.exit_code = outcome.exit_code
                    task.attempts += 1
                    if outcome.exit_code == 0:
                        _task_event(task, "RUNNING", "SUCCEEDED", task.vm, 0)
                    elif task.attempts <= max_retries and _retries_allowed(spec, outcome.exit_code):
                        _task_event(task, "RUNNING", "FAILED", task.vm, outcome.exit_code)
                        task.state = "PENDING"
                        pending.insert(0, task)
                    else:
                        _task_event(task, "RUNNING", "FAILED", task.vm, outcome.exit_code)
                        failed = failed or task
                    _touch_counts(state, runtime)
            if failed is not None:
                for task in pending:
                    task.state = "UNEXECUTED"
                pending.clear()
    finally:
        executor.shutdown(wait=not runtime.stop.is_set(), cancel_futures=True)
    with state.lock:
        _touch_counts(state, runtime)
    return failed


def _wait_any(futures: list[Future[Any]], stop: threading.Event) -> set[Future[Any]]:
    from concurrent.futures import FIRST_COMPLETED, wait

    while True:
        done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
        if done or stop.is_set():
            return set(done)


def _touch_counts(state: SimState, runtime: JobRuntime) -> None:
    job = state.jobs.get(runtime.name)
    if job is not None:
        _refresh_counts(state, runtime, job)
        job["updateTime"] = _ts()


# ---------------------------------------------------------------------------------------------
# get / list / delete / cancel / operations


def _find_job(request: SimRequest) -> tuple[str, dict[str, Any]]:
    state = request.state
    name = _job_name(state, request.path_args["project"], request.path_args["location"], request.path_args["job"])
    with state.lock:
        job = state.jobs.get(name)
        runtime = _runtimes(state).get(name)
        if job is not None:
            if runtime is not None and job["status"]["state"] == "RUNNING":
                _refresh_counts(state, runtime, job)
            return name, copy.deepcopy(job)
    raise _job_not_found(name)


def get_job(request: SimRequest) -> dict[str, Any]:
    return render(_as_requested(_find_job(request)[1], request.path_args["project"]), request)


def list_jobs(request: SimRequest) -> dict[str, Any]:
    state = request.state
    project, location = request.path_args["project"], request.path_args["location"]
    number = _project_number(state, project)
    prefix = f"projects/{number}/locations/{location}/jobs/" if location != "-" else f"projects/{number}/locations/"
    try:
        compiled = parse_filter(request.arg("filter"))
    except FilterError as exc:
        raise _invalid(str(exc), "filter") from exc
    with state.lock:
        jobs = [copy.deepcopy(job) for name, job in state.jobs.items() if name.startswith(prefix)]
    kept = [job for job in jobs if compiled.matches(job)]
    order = (request.arg("orderBy") or "").strip()
    if order in {"create_time desc", "createTime desc"}:
        kept.sort(key=lambda j: j.get("createTime", ""), reverse=True)
    elif order in {"create_time", "createTime"}:
        kept.sort(key=lambda j: j.get("createTime", ""))
    else:
        kept.sort(key=lambda j: j["name"])
    size = _page_size(request)
    offset = _offset(request.arg("pageToken"))
    page = kept[offset:offset + size]
    body: dict[str, Any] = {}
    if page:
        body["jobs"] = [render(_as_requested(job, project), request) for job in page]
    if offset + size < len(kept):
        body["nextPageToken"] = f"o{offset + size}"
    return body


def _page_size(request: SimRequest) -> int:
    raw = request.arg("pageSize")
    if not raw:
        return _DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError as exc:
        raise _invalid(f"page_size must be an integer, got {raw!r}.", "page_size") from exc
    if size < 0:
        raise _invalid("page_size must not be negative.", "page_size")
    cap = int(request.state.options.get("max_page_size") or _MAX_PAGE_SIZE)
    return min(size or _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE, cap)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not re.fullmatch(r"o\d+", token):
        raise _invalid(f"Invalid page token {token!r}.", "page_token")
    return int(token[1:])


def _operation(state: SimState, job_name: str, verb: str, location: str) -> dict[str, Any]:
    project_part = job_name.split("/locations/", 1)[0]
    name = f"{project_part}/locations/{location}/operations/operation-{int(_now().timestamp() * 1000)}-" \
           f"{secrets.token_hex(6)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
    now = _ts()
    # What each LRO unpacks to in batch_v1: DeleteJob → Empty, CancelJob → CancelJobResponse.
    response_type = ("type.googleapis.com/google.cloud.batch.v1.CancelJobResponse" if verb == "cancel"
                     else "type.googleapis.com/google.protobuf.Empty")
    operation = {"name": name, "metadata": {
        "@type": "type.googleapis.com/google.cloud.batch.v1.OperationMetadata", "createTime": now, "endTime": now,
        "target": job_name, "verb": verb, "apiVersion": "v1"},
        "done": True, "response": {"@type": response_type}}
    with state.lock:
        state.operations[name] = operation
    return copy.deepcopy(operation)


def delete_job(request: SimRequest) -> dict[str, Any]:
    """Deleting a job stops its tasks and deletes its VMs; done before the answer (see `_operation`)."""
    state = request.state
    name, job = _find_job(request)
    runtime = _runtimes(state).get(name)
    with state.lock:
        live = state.jobs.get(name)
        if live is not None:
            old = live["status"]["state"]
            live["status"]["state"] = "DELETION_IN_PROGRESS"
            live["status"].setdefault("statusEvents", []).append(
                _state_changed(name, old, "DELETION_IN_PROGRESS"))
    if runtime is not None:
        runtime.stop.set()
        _delete_vms(state, runtime)
    with state.lock:
        state.jobs.pop(name, None)
        _runtimes(state).pop(name, None)
    location = request.path_args["location"]
    _audit_job(state, "DeleteJob", name, location, principal=compute.caller_principal(request),
               request_body={"@type": "type.googleapis.com/google.cloud.batch.v1.DeleteJobRequest", "name": name,
                             **({"reason": request.arg("reason")} if request.arg("reason") else {})})
    return _operation(state, name, "delete", location)


def cancel_job(request: SimRequest) -> dict[str, Any]:
    state = request.state
    name, job = _find_job(request)
    current = job["status"]["state"]
    if current in _TERMINAL:
        raise rpc_error(400, f"Job {name} is in state {current} and cannot be cancelled.",
                        status="FAILED_PRECONDITION")
    runtime = _runtimes(state).get(name)
    if runtime is not None:
        runtime.stop.set()
    with state.lock:
        live = state.jobs.get(name)
        if live is not None:
            events = live["status"].setdefault("statusEvents", [])
            events.append(_state_changed(name, current, "CANCELLATION_IN_PROGRESS"))
            events.append(_state_changed(name, "CANCELLATION_IN_PROGRESS", "CANCELLED"))
            live["status"]["state"] = "CANCELLED"
            live["updateTime"] = _ts()
    if runtime is not None:
        _delete_vms(state, runtime)
    location = request.path_args["location"]
    _audit_job(state, "CancelJob", name, location, principal=compute.caller_principal(request),
               request_body={"@type": "type.googleapis.com/google.cloud.batch.v1.CancelJobRequest", "name": name})
    return _operation(state, name, "cancel", location)


def get_operation(request: SimRequest) -> dict[str, Any]:
    state = request.state
    number = _project_number(state, request.path_args["project"])
    name = f"projects/{number}/locations/{request.path_args['location']}/operations/{request.path_args['operation']}"
    with state.lock:
        operation = state.operations.get(name)
        if operation is not None:
            return copy.deepcopy(operation)
    raise rpc_error(404, f"Operation not found: {name}", status="NOT_FOUND")


def _task_json(runtime: JobRuntime, task: TaskRecord) -> dict[str, Any]:
    status: dict[str, Any] = {"state": task.state}
    if task.events:
        status["statusEvents"] = copy.deepcopy(task.events)
    return {"name": f"{runtime.name}/taskGroups/group0/tasks/{task.index}", "status": status}


def _task_pb_class() -> Any:
    from google.cloud.batch_v1.types import task as task_types

    return task_types.Task.pb()


def list_tasks(request: SimRequest) -> dict[str, Any]:
    name, _ = _find_job(request)
    runtime = _runtimes(request.state).get(name)
    if runtime is None or request.path_args["group"] != "group0":
        return {}
    with request.state.lock:
        tasks = [_task_json(runtime, t) for t in runtime.tasks]
    size = _page_size(request)
    offset = _offset(request.arg("pageToken"))
    body: dict[str, Any] = {}
    if tasks[offset:offset + size]:
        body["tasks"] = [render(t, request, _task_pb_class()) for t in tasks[offset:offset + size]]
    if offset + size < len(tasks):
        body["nextPageToken"] = f"o{offset + size}"
    return body


def get_task(request: SimRequest) -> dict[str, Any]:
    name, _ = _find_job(request)
    runtime = _runtimes(request.state).get(name)
    index = request.path_args["task"]
    if runtime is None or request.path_args["group"] != "group0" or not index.isdigit() \
            or int(index) >= len(runtime.tasks):
        raise rpc_error(404, f"Task not found: {name}/taskGroups/{request.path_args['group']}/tasks/{index}",
                        status="NOT_FOUND")
    with request.state.lock:
        return render(_task_json(runtime, runtime.tasks[int(index)]), request, _task_pb_class())
