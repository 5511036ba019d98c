"""Policy enforcement shared by every API that creates or writes: org-policy locations and VPC-SC.

Google answers a create outside `constraints/gcp.resourceLocations` in two shapes (reference §2):
the classic JSON APIs (Compute, Cloud Storage) with HTTP 412 `conditionNotMet`, and the
gRPC-transcoded ones (Batch; BigQuery here too) with HTTP 400 `FAILED_PRECONDITION` carrying a
`google.rpc.PreconditionFailure`. Over REST, google-api-core maps by HTTP status only, so the python
clients raise `PreconditionFailed` (412) and `BadRequest` (400) respectively; the body is what tells
a careful caller that the location constraint refused it. Every refusal is also written to the
admin-activity log with `policyViolationInfo`.

VPC Service Controls: every call is judged by all perimeters of the access policy (simulator/vpcsc.py:
regular and bridge, status and dry-run spec, ingress and egress policies, access levels); a refused
call answers 403 in its API's shape and leaves a Policy Denied entry in each in-perimeter project
involved; a violation of a dry-run configuration only is logged with `dryRun` and allowed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.simulator import audit_log, clock, projects, vpcsc
from sovaudit.simulator.http import ApiError, classic_error
from sovaudit.simulator.state import SimState

CONSTRAINT = "constraints/gcp.resourceLocations"
POLICY_DOC = "https://cloud.google.com/resource-manager/docs/organization-policy/defining-locations"
LOCATION_APIS = ("compute", "storage", "batch", "bigquery")


def _is_allowed(location: str, allowed: Iterable[str], denied: Iterable[str], *, allow_all: bool,
                deny_all: bool) -> bool:
    """One answer for the whole project: `sovaudit.audit.locations.is_allowed` (value groups, deny
    beats allow, `global` unrestricted); a minimal local rule only if that module is absent."""
    try:
        from sovaudit.audit.locations import is_allowed
    except ImportError:   # pragma: no cover - the audit package ships with the simulator
        return _minimal_is_allowed(location, allowed, denied, allow_all=allow_all, deny_all=deny_all)
    try:
        return is_allowed(location, allowed, denied, allow_all=allow_all, deny_all=deny_all)
    except ValueError:   # a location or group unknown to the table: fail closed, like an unlisted value
        return _minimal_is_allowed(location, allowed, denied, allow_all=allow_all, deny_all=deny_all)


def _minimal_is_allowed(location: str, allowed: Iterable[str], denied: Iterable[str], *, allow_all: bool,
                        deny_all: bool) -> bool:
    where = location.lower().removeprefix("zones/").removeprefix("regions/")
    if where == "global":
        return True

    def covers(value: str) -> bool:
        value = value.lower()
        if value.startswith("in:") and value.endswith("-locations"):
            region = value[3:-len("-locations")]
            return where == region or where.startswith(region + "-") and where.count("-") == region.count("-") + 1
        return where == value

    if deny_all or any(covers(v) for v in denied):
        return False
    allowed = list(allowed)
    if allow_all or not allowed:
        return True
    return any(covers(v) for v in allowed)


def effective_location_rules(state: SimState) -> tuple[list[str], list[str], bool, bool]:
    """(allowedValues, deniedValues, allowAll, denyAll) of the project's effective gcp.resourceLocations
    policy: merged over its folders and organization exactly as getEffectivePolicy answers it."""
    from sovaudit.simulator import hierarchy

    merged = hierarchy.effective_list(state, "gcp.resourceLocations")
    return list(merged.allowed), list(merged.denied), merged.allow_all, merged.deny_all


def location_allowed(state: SimState, location: str) -> bool:
    allowed, denied, allow_all, deny_all = effective_location_rules(state)
    return _is_allowed(location, allowed, denied, allow_all=allow_all, deny_all=deny_all)


@dataclass(frozen=True)
class LocationViolation:
    """A create refused by gcp.resourceLocations: the message and the error the API answers with."""

    api: str
    location: str
    resource: str
    message: str
    error: ApiError


def _is_zone(location: str) -> bool:
    parts = location.lower().removeprefix("zones/").split("-")
    return len(parts) == 3 and len(parts[2]) == 1


def location_violation(state: SimState, location: str, *, api: str, resource: str) -> LocationViolation | None:
    """None when the org policy allows `location`; otherwise the refusal in `api`'s own error shape.

    `resource` is the resource path the API names (`projects/P/zones/Z/instances/N`, a bucket name,
    `projects/P/datasets/D`, `projects/N/locations/R/jobs/J`).
    """
    if api not in LOCATION_APIS:
        raise ValueError(f"unknown api {api!r} for a location check; one of {', '.join(LOCATION_APIS)}")
    if location_allowed(state, location):
        return None
    bare = location.lower().removeprefix("zones/").removeprefix("regions/")
    if api == "compute":
        kind = "ZONE" if _is_zone(bare) else "REGION"
        message = f"Location {kind}:{bare} violates constraint {CONSTRAINT} on the resource {resource}."
        error = classic_error(412, message, "conditionNotMet")
    elif api == "storage":
        message = f"'{bare}' violates constraint '{CONSTRAINT}'"
        error = classic_error(412, message, "conditionNotMet", location="If-Match", location_type="header")
    else:
        subject = f"orgpolicy:projects/{state.project_number}"
        what = "a job" if api == "batch" else "a dataset"
        message = (f"Constraint {CONSTRAINT} violated for [{subject}] attempting to create {what} in [{bare}]. "
                   f"For more information, see {POLICY_DOC}.")
        body: dict[str, Any] = {"code": 400, "message": message, "status": "FAILED_PRECONDITION",
                                "details": [{"@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                                             "violations": [{"type": CONSTRAINT, "subject": subject,
                                                             "description": message}]}]}
        if api == "bigquery":   # BigQuery's REST errors carry the classic `errors` list as well
            body["errors"] = [{"message": message, "domain": "global", "reason": "failedPrecondition"}]
        error = ApiError(400, {"error": body})
    return LocationViolation(api=api, location=bare, resource=resource, message=message, error=error)


_AUDIT_SHAPE: Mapping[str, tuple[str, str, str, str]] = {
    # api -> (serviceName, methodName, resource.type, permission)
    "compute": ("compute.googleapis.com", "v1.compute.instances.insert", "gce_instance", "compute.instances.create"),
    "storage": ("storage.googleapis.com", "storage.buckets.create", "gcs_bucket", "storage.buckets.create"),
    "batch": ("batch.googleapis.com", "google.cloud.batch.v1.BatchService.CreateJob", "batch.googleapis.com/Job",
              "batch.jobs.create"),
    "bigquery": ("bigquery.googleapis.com", "google.cloud.bigquery.v2.DatasetService.InsertDataset",
                 "bigquery_dataset", "bigquery.datasets.create"),
}


def record_violation(state: SimState, violation: LocationViolation, *, principal: str = "anonymous") -> None:
    """Write the admin-activity entry of a refused create (severity ERROR, `policyViolationInfo`)."""
    service, method, resource_type, permission = _AUDIT_SHAPE[violation.api]
    labels = {"project_id": state.project_id}
    resource_name = violation.resource
    if violation.api == "storage":
        labels["bucket_name"] = violation.resource
        labels["location"] = violation.location
        resource_name = f"projects/_/buckets/{violation.resource}"
    grpc_code = 9   # FAILED_PRECONDITION, for the classic 412 as for the gRPC 400
    audit_log.org_policy_violation(state, service=service, method=method, resource_name=resource_name,
                                   resource_type=resource_type, resource_labels=labels, principal=principal,
                                   timestamp=clock.now(), location=violation.location, message=violation.message,
                                   grpc_code=grpc_code, permission=permission)


def check_location(state: SimState, location: str, *, api: str, resource: str,
                   principal: str = "anonymous") -> None:
    """Raise the API's refusal (and log it) when the org policy does not allow `location`."""
    violation = location_violation(state, location, api=api, resource=resource)
    if violation is not None:
        record_violation(state, violation, principal=principal)
        raise violation.error


# ----------------------------------------------------------------------------------------- VPC-SC

VPCSC_STORAGE_MESSAGE = "Request violates VPC Service Controls."


def vpcsc_error(service: str, unique_id: str) -> ApiError:
    """The refusal a client gets. Cloud Storage's JSON API answers the classic shape with reason
    `vpcServiceControls` (reference §1.4, confirmed). One-platform APIs (BigQuery, Batch, Logging...)
    answer 403 PERMISSION_DENIED with a PreconditionFailure of type VPC_SERVICE_CONTROLS: each piece
    is confirmed, the whole HTTP body is [U] (reference §11.1); BigQuery's REST errors also carry the
    classic `errors` list, as its other errors do here."""
    if service == "storage.googleapis.com":
        return classic_error(403, VPCSC_STORAGE_MESSAGE, "vpcServiceControls")
    message = f"Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: {unique_id}"
    body: dict[str, Any] = {"code": 403, "message": message, "status": "PERMISSION_DENIED", "details": [
        {"@type": "type.googleapis.com/google.rpc.PreconditionFailure",
         "violations": [{"type": "VPC_SERVICE_CONTROLS", "description": unique_id}]}]}
    if service == "bigquery.googleapis.com":
        body["errors"] = [{"message": message, "domain": "global", "reason": "accessDenied"}]
    return ApiError(403, {"error": body})


def check_vpcsc(state: SimState, request: vpcsc.Request, *, resource_names: Iterable[str] = ()) -> None:
    """Judge one call by every perimeter (simulator/vpcsc.py); write the Policy Denied entry into each
    in-perimeter project involved; raise the API's 403 when an enforced configuration refuses it.
    A violation of a dry-run configuration only is logged with `dryRun: true` and the call goes on."""
    service, method, permission = request.service, request.method, request.permission
    principal, target_project, caller_ip = request.principal, request.target_project, request.caller_ip
    decision = vpcsc.judge(state, request)
    found = decision.enforced or decision.dry_run
    if not found:
        return
    names = list(resource_names) or [target_project]
    unique_id = hashlib.sha256(f"{state.project_id}/{state.next_id('vpcsc')}".encode()).hexdigest()[:40].upper()
    violations = [{"direction": v.direction, "perimeter": v.perimeter, "source": v.source, "target": v.target}
                  for v in found]
    for project in decision.involved:
        # The entry names the perimeter that holds this project when it is the one refusing.
        own = next((v for v in found if (v.direction == "egress" and project == request.caller_project)
                    or (v.direction == "ingress" and project == request.target_project)), found[0])
        audit_log.vpcsc_violation(
            state, service=service, method=method, target_resource=target_project, resource_names=names,
            principal=principal, timestamp=clock.now(), violation_reason=own.reason, perimeter=own.perimeter,
            dry_run=not decision.enforced, permission=permission, project=project, unique_id=unique_id,
            caller_ip=caller_ip, violations=violations)
    if decision.refused:
        raise vpcsc_error(service, unique_id)


def check_bucket_write(state: SimState, bucket: str, object_name: str, *, principal: str = "anonymous",
                       method: str = "google.storage.objects.create", permission: str | None = None,
                       caller_ip: str | None = None) -> None:
    """Judge a Cloud Storage call on `bucket` (any bucket: the node's, a foreign one) by the
    perimeters; refuse with Cloud Storage's 403 and log the Policy Denied entries. The bucket's
    project comes from simulator/projects.py."""
    owner = projects.bucket_owner(state, bucket)
    if permission is None:
        permission = "storage.objects.get" if method.endswith((".get", "Read", ".list")) else "storage.objects.create"
    target = f"projects/_/buckets/{bucket}" + (f"/objects/{object_name}" if object_name else "")
    check_vpcsc(state, vpcsc.Request(principal=principal, caller_project=vpcsc.caller_project(state, principal),
                                     service="storage.googleapis.com", method=method, target_project=owner.resource,
                                     permission=permission, caller_ip=caller_ip), resource_names=[target])


def location_refusal(state: SimState, location: str) -> str | None:
    """None when the org policy allows `location`, else a short reason naming the constraint
    (for APIs that build their own error body around it)."""
    if location_allowed(state, location):
        return None
    return f"{location.lower()} violates constraint {CONSTRAINT}"


def check_perimeter_egress(state: SimState, *, service: str, method: str, target_resource: str,
                           principal: str = "anonymous", permission: str | None = None,
                           resource_names: Iterable[str] = (), caller_project: str | None = None) -> None:
    """A call made by a resource of the node (a BigQuery job reading a bucket, an extract writing
    one) that reaches `target_resource` ("projects/NUMBER", "projects/ID" or
    "projects/_/buckets/NAME[/...]"): judged by the perimeters like any call, with the node's
    project as the caller (`caller_project` to say otherwise). Refused: 403 in the API's shape."""
    if target_resource.startswith("projects/_/buckets/"):
        bucket = target_resource.removeprefix("projects/_/buckets/").split("/", 1)[0]
        target_project = projects.bucket_owner(state, bucket).resource
        names = list(resource_names) or [target_resource]
    else:
        target_project = projects.project_for_id(state, target_resource.removeprefix("projects/").split("/")[0]).resource
        names = list(resource_names) or [target_resource]
    check_vpcsc(state, vpcsc.Request(principal=principal,
                                     caller_project=caller_project or f"projects/{state.project_number}",
                                     service=service, method=method, target_project=target_project,
                                     permission=permission, resource_caller=True), resource_names=names)


# The one-platform APIs whose calls name their project in the path; Cloud Storage names a bucket,
# so storage.py judges each call with its bucket's project (check_bucket_write).
_PATH_SERVICES = {"bigquery": "bigquery.googleapis.com", "batch": "batch.googleapis.com",
                  "compute": "compute.googleapis.com", "logging": "logging.googleapis.com"}
_PROJECT_IN_PATH = re.compile(r"/projects/([^/:]+)")


def check_api_call(state: SimState, api: str, http_method: str, path: str, principal: str | None,
                   caller_ip: str | None = None) -> None:
    """Judge a call of a named principal (`X-Sim-Principal`) to BigQuery, Batch, Compute or Logging
    on the project its path names: from outside every perimeter it needs an access level or an
    ingress policy, like any call Google receives. Calls without the header are the node's own
    workload (inside its perimeter) and are not judged here; cross-project work a job does is
    judged where it happens (check_perimeter_egress). The method is recorded as `HTTP /path`: the
    simulator does not map every route of these APIs to Google's method name, so an ingress or egress
    rule grants such a call only through `serviceName: "*"` or `methodSelectors: [{method: "*"}]`
    (a rule naming one BigQuery method does not match here: a simplification, said so in
    docs/reliability.md)."""
    service = _PATH_SERVICES.get(api)
    match = _PROJECT_IN_PATH.search(path)
    if not principal or service is None or match is None:
        return
    target = projects.project_for_id(state, match.group(1)).resource
    check_vpcsc(state, vpcsc.Request(principal=principal, caller_project=vpcsc.caller_project(state, principal),
                                     service=service, method=f"{http_method} {path}", target_project=target,
                                     caller_ip=caller_ip), resource_names=[path.split("?", 1)[0]])
