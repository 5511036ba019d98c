"""Builders for Cloud Audit Log entries, in the REST JSON Cloud Logging returns.

Every API of the simulator records its audit trail through these functions, so the entries share one
shape (the AuditLog proto in camelCase under `protoPayload`) and one rule for data-access logging:
it happens only when the project's IAM `auditConfigs` enable the log type for the service, exactly
as on Google — the reason SEC-05 exists. Each builder appends the entry to `state.log_entries` and
returns it (or None when the audit config suppressed it).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sovaudit.simulator import clock, log_router
from sovaudit.simulator.state import SimState

AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"
ACTIVITY = "cloudaudit.googleapis.com%2Factivity"
DATA_ACCESS = "cloudaudit.googleapis.com%2Fdata_access"
POLICY = "cloudaudit.googleapis.com%2Fpolicy"
SYSTEM_EVENT = "cloudaudit.googleapis.com%2Fsystem_event"
BATCH_TASK_LOGS = "batch_task_logs"
VPCSC_METADATA_TYPE = "type.googleapis.com/google.cloud.audit.VpcServiceControlAuditMetadata"
BQ_METADATA_TYPE = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
# Requests made by Google's own agents carry these; a user's call would carry its own.
INTERNAL_CALLER_IP = "private"


def log_name(state: SimState, log_id: str, project: str | None = None) -> str:
    """The log of `project` (an id; default the node's): Google logs a call in the project that owns
    the resource it touched, so an entry about another project's bucket belongs to that project."""
    return f"projects/{project or state.project_id}/logs/{log_id}"


def cloudservices_account(state: SimState) -> str:
    """The Google APIs service agent that creates Batch's VMs through a managed instance group."""
    return f"{state.project_number}@cloudservices.gserviceaccount.com"


# "Data Access audit logs—except for BigQuery—are disabled by default" (Cloud Logging, Enable Data
# Access audit logs): BigQuery writes them whatever the project's auditConfigs say.
ALWAYS_LOGGED_DATA_ACCESS = frozenset({"bigquery.googleapis.com"})


def data_access_enabled(state: SimState, service: str, log_type: str, project: str | None = None,
                        principal: str | None = None) -> bool:
    """Whether Data Access entries of `log_type` (DATA_WRITE/DATA_READ) are written for `service` in
    `project` (default the node): always for BigQuery, otherwise only when that project's IAM policy
    auditConfigs enable them (a foreign project's come from the node file's `foreign_projects`).
    For the node's project, `principal` (an email) exempted at any level gets no entry."""
    if service in ALWAYS_LOGGED_DATA_ACCESS:
        return True
    if project and project not in {state.project_id, state.project_number}:
        configs = (state.extras.get("foreign_projects", {}).get(project) or {}).get("auditConfigs") or []
    else:
        # The node's project: its own auditConfigs and every ancestor's, combined (simulator/hierarchy.py).
        from sovaudit.simulator import hierarchy

        return (hierarchy.data_access_enabled(state, service, log_type)
                and not (principal and hierarchy.exempted(state, service, log_type, principal)))
    for config in configs:
        if config.get("service") in {service, "allServices"}:
            if any(c.get("logType") == log_type for c in config.get("auditLogConfigs", [])):
                return True
    return False


def _insert_id(state: SimState) -> str:
    serial = state.next_id("log_insert")
    return hashlib.sha1(f"{state.project_id}/{serial}".encode()).hexdigest()[:12]


def record(state: SimState, entry: dict[str, Any], *, receive_delay_ms: int = 180) -> dict[str, Any]:
    """Ingest an entry, filling `insertId` and `receiveTimestamp` the way Logging does, and store it
    only where the node's Log Router puts it (`log_router.route`: sinks, exclusions, `_Required`).
    The entry is returned either way: the caller made the call whatever Logging kept of it."""
    with state.lock:
        entry.setdefault("insertId", _insert_id(state))
        if "receiveTimestamp" not in entry:
            moment = clock.parse(entry["timestamp"]) + timedelta(milliseconds=receive_delay_ms)
            entry["receiveTimestamp"] = clock.rfc3339(moment)
        # The node's Log Router decides for the node's own entries; an entry Google wrote into another
        # project's log is that project's to route, and the node never lists it either way.
        own = entry.get("logName", "").startswith(f"projects/{state.project_id}/")
        if not own or log_router.route(state, entry):
            state.log_entries.append(entry)
    return entry


def audit_entry(state: SimState, *, log_id: str, service: str, method: str, resource_name: str,
                resource_type: str, resource_labels: Mapping[str, str], principal: str, timestamp: datetime,
                severity: str = "NOTICE", permission: str | None = None, permission_type: str | None = None,
                request: Mapping[str, Any] | None = None, response: Mapping[str, Any] | None = None,
                metadata: Mapping[str, Any] | None = None, status: Mapping[str, Any] | None = None,
                locations: Sequence[str] = (), operation: Mapping[str, Any] | None = None,
                caller_ip: str = INTERNAL_CALLER_IP, user_agent: str | None = None,
                policy_violation: Mapping[str, Any] | None = None,
                extra_payload: Mapping[str, Any] | None = None, project: str | None = None) -> dict[str, Any]:
    """One AuditLog LogEntry (not yet recorded), in the log of `project` (default the node's). Unset
    fields are omitted, as Logging omits them."""
    payload: dict[str, Any] = {"@type": AUDIT_LOG_TYPE}
    if status is not None:
        payload["status"] = dict(status)
    payload["authenticationInfo"] = {"principalEmail": principal}
    request_metadata: dict[str, Any] = {"callerIp": caller_ip}
    if user_agent:
        request_metadata["callerSuppliedUserAgent"] = user_agent
    request_metadata.update({"requestAttributes": {}, "destinationAttributes": {}})
    payload["requestMetadata"] = request_metadata
    payload["serviceName"] = service
    payload["methodName"] = method
    if permission:
        authorization: dict[str, Any] = {"resource": resource_name, "permission": permission,
                                         "granted": status is None or status.get("code", 0) == 0,
                                         "resourceAttributes": {}}
        if permission_type:
            authorization["permissionType"] = permission_type
        payload["authorizationInfo"] = [authorization]
    payload["resourceName"] = resource_name
    if locations:
        payload["resourceLocation"] = {"currentLocations": list(locations)}
    if request is not None:
        payload["request"] = copy.deepcopy(dict(request))
    if response is not None:
        payload["response"] = copy.deepcopy(dict(response))
    if metadata is not None:
        payload["metadata"] = copy.deepcopy(dict(metadata))
    if policy_violation is not None:
        payload["policyViolationInfo"] = copy.deepcopy(dict(policy_violation))
    if extra_payload:
        payload.update(copy.deepcopy(dict(extra_payload)))
    entry: dict[str, Any] = {
        "protoPayload": payload,
        "resource": {"type": resource_type, "labels": dict(resource_labels)},
        "timestamp": clock.rfc3339(timestamp),
        "severity": severity,
        "logName": log_name(state, log_id, project),
    }
    if operation is not None:
        entry["operation"] = dict(operation)
    return entry


# ------------------------------------------------------------------------------------------ compute

def instance_insert(state: SimState, *, instance: Mapping[str, Any], request_body: Mapping[str, Any],
                    operation: Mapping[str, Any], principal: str, timestamp: datetime,
                    done_after: timedelta | None = timedelta(seconds=21),
                    links: Sequence[Mapping[str, str]] = ()) -> list[dict[str, Any]]:
    """The admin-activity pair for `v1.compute.instances.insert`: the `first` entry carries the full
    request body (`@type type.googleapis.com/compute.instances.insert`), the `last` one only its type."""
    zone = instance["zone"].rsplit("/", 1)[-1]
    name = instance["name"]
    resource_name = f"projects/{state.project_id}/zones/{zone}/instances/{name}"
    labels = {"instance_id": str(instance.get("id", "")), "project_id": state.project_id, "zone": zone}
    request = {"@type": "type.googleapis.com/compute.instances.insert", **copy.deepcopy(dict(request_body))}
    if links:
        request["links"] = [dict(link) for link in links]
    response = {"@type": "type.googleapis.com/operation", **{k: v for k, v in operation.items() if k != "kind"}}
    op = {"id": operation.get("name", ""), "producer": "compute.googleapis.com"}
    entries = [record(state, audit_entry(
        state, log_id=ACTIVITY, service="compute.googleapis.com", method="v1.compute.instances.insert",
        resource_name=resource_name, resource_type="gce_instance", resource_labels=labels,
        principal=principal, timestamp=timestamp, permission="compute.instances.create",
        permission_type="ADMIN_WRITE", request=request, response=response, locations=[zone],
        operation={**op, "first": True}, user_agent="GCE Managed Instance Group for Batch"
        if principal.endswith("@cloudservices.gserviceaccount.com") else None))]
    if done_after is not None:
        entries.append(record(state, audit_entry(
            state, log_id=ACTIVITY, service="compute.googleapis.com", method="v1.compute.instances.insert",
            resource_name=resource_name, resource_type="gce_instance", resource_labels=labels,
            principal=principal, timestamp=timestamp + done_after,
            request={"@type": "type.googleapis.com/compute.instances.insert"}, locations=[zone],
            operation={**op, "last": True})))
    return entries


# ------------------------------------------------------------------------------------------ storage

def storage_object_access(state: SimState, *, bucket: str, object_name: str, principal: str,
                          timestamp: datetime, location: str, method: str = "storage.objects.create",
                          caller_ip: str = INTERNAL_CALLER_IP, project: str | None = None) -> dict[str, Any] | None:
    """A Cloud Storage data-access entry (objects.create/get/delete) in the log of `project` (the
    bucket's owner; default the node), if that project's audit config enables it."""
    log_type = "DATA_READ" if method in {"storage.objects.get", "storage.objects.list"} else "DATA_WRITE"
    if not data_access_enabled(state, "storage.googleapis.com", log_type, project, principal):
        return None
    owner = project or state.project_id
    resource_name = f"projects/_/buckets/{bucket}/objects/{object_name}"
    return record(state, audit_entry(
        state, log_id=DATA_ACCESS, service="storage.googleapis.com", method=method,
        resource_name=resource_name, resource_type="gcs_bucket",
        resource_labels={"project_id": owner, "bucket_name": bucket, "location": location.lower()},
        principal=principal, timestamp=timestamp, severity="INFO", permission=method,
        locations=[location.lower()], caller_ip=caller_ip,
        metadata=None, project=owner))


def storage_admin(state: SimState, *, bucket: str, method: str, principal: str, timestamp: datetime,
                  location: str, request: Mapping[str, Any] | None = None,
                  status: Mapping[str, Any] | None = None, project: str | None = None) -> dict[str, Any]:
    """An admin-activity entry for a bucket mutation (storage.buckets.create/delete/update), in the
    log of the bucket's project (default the node)."""
    owner = project or state.project_id
    return record(state, audit_entry(
        state, log_id=ACTIVITY, service="storage.googleapis.com", method=method,
        resource_name=f"projects/_/buckets/{bucket}", resource_type="gcs_bucket",
        resource_labels={"project_id": owner, "bucket_name": bucket, "location": location.lower()},
        principal=principal, timestamp=timestamp, severity="ERROR" if status else "NOTICE",
        permission=method, permission_type="ADMIN_WRITE", request=request, status=status,
        locations=[location.lower()], project=owner))


# ------------------------------------------------------------------------------------------ bigquery

def bigquery_table_write(state: SimState, *, job: Mapping[str, Any], principal: str,
                         timestamp: datetime) -> list[dict[str, Any]]:
    """The data-access entries of a completed load job, as BigQuery writes them (always on): the
    job's jobInsertion and jobChange (DONE) in its project, and the tableDataChange (reason JOB) in
    the destination table's project (simulator/bq_audit.py holds the shapes)."""
    from sovaudit.simulator import bq_audit

    reference = job["jobReference"]
    destination = job["configuration"]["load"]["destinationTable"]
    location = reference.get("location", state.region)
    rows = job.get("statistics", {}).get("load", {}).get("outputRows", "0")
    method = bq_audit.INSERT_JOB
    return [
        bq_audit.job_insertion(state, job, method=method, principal=principal, timestamp=timestamp),
        bq_audit.table_data_change(
            state, project=destination["projectId"], dataset=destination["datasetId"], table=destination["tableId"],
            job_name=f"projects/{reference['projectId']}/jobs/{reference['jobId']}", method=method,
            principal=principal, location=location, inserted=int(rows), timestamp=timestamp),
        bq_audit.job_change(state, job, method=method, principal=principal, timestamp=timestamp),
    ]


# ------------------------------------------------------------------------------------------ policy

def vpcsc_violation(state: SimState, *, service: str, method: str, target_resource: str,
                    resource_names: Sequence[str], principal: str, timestamp: datetime,
                    violation_reason: str = "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER",
                    perimeter: str | None = None, dry_run: bool = False,
                    permission: str | None = None, project: str | None = None, source: str | None = None,
                    direction: str = "egress", unique_id: str | None = None,
                    caller_ip: str | None = None,
                    violations: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A Policy Denied entry as VPC Service Controls writes it (log `cloudaudit.googleapis.com/policy`),
    in the log of `project` (an id or number; default the node's): Google writes one into each
    in-perimeter project the request involved (reference §1.5, [U] as a general rule).

    `violations` ({direction, perimeter, source, target}) lists every perimeter the request broke;
    without it one violation is built from `direction`/`perimeter`/`source`/`target_resource`.
    `dryRun` is set only on a dry-run violation and left out otherwise (reference §1.5: one
    third-party measurement says it is absent, not false, on enforced ones)."""
    perimeter_name = perimeter or next(iter(state.perimeters), "")
    owner = _project_of(state, project)
    unique_id = unique_id or hashlib.sha256(
        f"{state.project_id}/{state.next_id('vpcsc')}".encode()).hexdigest()[:40].upper()
    found = list(violations or [{"direction": direction, "perimeter": perimeter_name,
                                 "source": source or f"projects/{state.project_number}",
                                 "target": target_resource}])
    metadata: dict[str, Any] = {
        "@type": VPCSC_METADATA_TYPE,
        "violationReason": violation_reason,
        "resourceNames": list(resource_names),
        "securityPolicyInfo": {"servicePerimeterName": perimeter_name,
                               "organizationId": state.organization.split("/", 1)[-1]},
        "deviceState": "Unknown",
        "vpcServiceControlsUniqueId": unique_id,
    }
    egress = [{"servicePerimeter": v["perimeter"], "source": v["source"],
               "sourceType": "Resource" if str(v["source"]).startswith("projects/") else "Network",
               "targetResource": v["target"], **({"targetResourcePermissions": [permission]} if permission else {})}
              for v in found if v["direction"] == "egress"]
    ingress = [{"servicePerimeter": v["perimeter"], "source": v["source"], "targetResource": v["target"],
                **({"targetResourcePermissions": [permission]} if permission else {})}
               for v in found if v["direction"] == "ingress"]
    if ingress:
        metadata["ingressViolations"] = ingress
    if egress:
        metadata["egressViolations"] = egress
    if dry_run:
        metadata["dryRun"] = True
    status = {"code": 7, "details": [{"@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                                      "violations": [{"type": "VPC_SERVICE_CONTROLS", "description": unique_id}]}]}
    if not dry_run:
        status["message"] = "Request is prohibited by organization's policy"
    return record(state, audit_entry(
        state, log_id=POLICY, service=service, method=method, resource_name=f"projects/{owner[1]}",
        resource_type="audited_resource",
        resource_labels={"service": service, "method": method, "project_id": owner[0]},
        principal=principal, timestamp=timestamp, severity="ERROR", metadata=metadata, status=status,
        caller_ip=caller_ip or ("10.20.0.2" if state.region.startswith("us") else "10.40.0.2"), project=owner[0]))


def _project_of(state: SimState, project: str | None) -> tuple[str, str]:
    """(id, number) of a project named by id, number or `projects/NUMBER` (default the node)."""
    if not project:
        return state.project_id, state.project_number
    bare = project.removeprefix("projects/")
    if bare in {state.project_id, state.project_number}:
        return state.project_id, state.project_number
    for project_id, facts in (state.extras.get("foreign_projects") or {}).items():
        if bare in {project_id, str(facts.get("number"))}:
            return project_id, str(facts.get("number"))
    return (f"project-{bare}", bare) if bare.isdigit() else (bare, "0")


def org_policy_violation(state: SimState, *, service: str, method: str, resource_name: str,
                         resource_type: str, resource_labels: Mapping[str, str], principal: str,
                         timestamp: datetime, location: str, message: str, grpc_code: int = 9,
                         permission: str | None = None) -> dict[str, Any]:
    """The admin-activity entry of a create refused by `constraints/gcp.resourceLocations`."""
    violation = {"orgPolicyViolationInfo": {
        "resourceType": resource_type,
        "violationInfo": [{"constraint": "constraints/gcp.resourceLocations", "errorMessage": message,
                           "checkedValue": location, "policyType": "LIST_CONSTRAINT"}]}}
    return record(state, audit_entry(
        state, log_id=ACTIVITY, service=service, method=method, resource_name=resource_name,
        resource_type=resource_type, resource_labels=resource_labels, principal=principal,
        timestamp=timestamp, severity="ERROR", permission=permission, permission_type="ADMIN_WRITE",
        status={"code": grpc_code, "message": message}, locations=[location], policy_violation=violation))


# ------------------------------------------------------------------------------------------ batch

def batch_task_log(state: SimState, *, job_uid: str, job_id: str, task_index: int, text: str,
                   timestamp: datetime, severity: str = "INFO", task_group: str = "group0",
                   generic_task: bool = False) -> dict[str, Any]:
    """One line a Batch task wrote, as Batch ships it to Cloud Logging (log `batch_task_logs`).

    The monitored resource is `batch.googleapis.com/Job` unless the job's
    `logsPolicy.cloudLoggingOption.useGenericTaskMonitoredResource` asks for the former `generic_task`
    (Batch v1 reference). The resource's label set is our best understanding, not confirmed."""
    task_id = f"task/{job_uid}-{task_group}-{task_index}/0/0"
    if generic_task:
        resource = {"type": "generic_task", "labels": {"project_id": state.project_id, "location": state.region,
                                                       "namespace": "", "job": job_uid, "task_id": task_id}}
    else:
        resource = {"type": "batch.googleapis.com/Job", "labels": {
            "resource_container": state.project_number, "location": state.region, "job": job_uid}}
    return record(state, {
        "textPayload": text,
        "resource": resource,
        "timestamp": clock.rfc3339(timestamp),
        "severity": severity,
        "labels": {"job_uid": job_uid, "job_id": job_id, "task_group_name":
                   f"projects/{state.project_number}/locations/{state.region}/jobs/{job_id}/taskGroups/{task_group}",
                   "task_id": task_id},
        "logName": log_name(state, BATCH_TASK_LOGS),
    }, receive_delay_ms=900)
