"""Policy enforcement shared by every API that creates or writes: org-policy locations and VPC-SC.

Google answers a create outside `constraints/gcp.resourceLocations` in two shapes (reference §2):
the classic JSON APIs (Compute, Cloud Storage) with HTTP 412 `conditionNotMet`, and the
gRPC-transcoded ones (Batch; BigQuery here too) with HTTP 400 `FAILED_PRECONDITION` carrying a
`google.rpc.PreconditionFailure`. Over REST, google-api-core maps by HTTP status only, so the python
clients raise `PreconditionFailed` (412) and `BadRequest` (400) respectively; the body is what tells
a careful caller that the location constraint refused it. Every refusal is also written to the
admin-activity log with `policyViolationInfo`.

VPC Service Controls: a write from inside the perimeter to a bucket outside it is refused with 403
and leaves a Policy Denied entry; under a dry-run perimeter it is allowed and logged with `dryRun`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.simulator import audit_log, clock
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
    """(allowedValues, deniedValues, allowAll, denyAll) of the project's gcp.resourceLocations policy."""
    with state.lock:
        policy = state.org_policies.get("gcp.resourceLocations")
        rules = list(policy["spec"].get("rules", [])) if policy else []
    allowed: list[str] = []
    denied: list[str] = []
    allow_all = deny_all = False
    for rule in rules:
        values = rule.get("values") or {}
        allowed += values.get("allowedValues", [])
        denied += values.get("deniedValues", [])
        allow_all = allow_all or bool(rule.get("allowAll"))
        deny_all = deny_all or bool(rule.get("denyAll"))
    if not rules:
        allow_all = True   # no policy anywhere: the constraint default, ALLOW
    return allowed, denied, allow_all, deny_all


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

def _enforced_perimeter(state: SimState) -> tuple[str, dict[str, Any], bool] | None:
    """(name, config, dry_run) of the perimeter holding this project and restricting storage, if any."""
    project = f"projects/{state.project_number}"
    for name, perimeter in state.perimeters.items():
        for key, dry_run in (("status", False), ("spec", True)):
            config = perimeter.get(key)
            if key == "spec" and not perimeter.get("useExplicitDryRunSpec"):
                continue
            if config and project in config.get("resources", []) and \
                    "storage.googleapis.com" in config.get("restrictedServices", []):
                return name, config, dry_run
    return None


def check_bucket_write(state: SimState, bucket: str, object_name: str, *, principal: str = "anonymous",
                       method: str = "google.storage.objects.create") -> None:
    """Refuse (403) a write to a bucket outside the perimeter, logging the Policy Denied entry.

    Buckets of this node are inside; any other bucket is in another project, outside the perimeter.
    A dry-run perimeter logs the violation (`dryRun: true`) and lets the write through.
    """
    with state.lock:
        if bucket in state.buckets:
            return
        found = _enforced_perimeter(state)
        foreign = state.extras.get("foreign_buckets", {}).get(bucket, {})
    if found is None:
        return
    perimeter, _, dry_run = found
    entry = audit_log.vpcsc_violation(
        state, service="storage.googleapis.com", method=method,
        target_resource=f"projects/{foreign.get('project_number', 'unknown')}",
        resource_names=[f"projects/_/buckets/{bucket}/objects/{object_name}"], principal=principal,
        timestamp=clock.now(), perimeter=perimeter, dry_run=dry_run, permission="storage.objects.create")
    if dry_run:
        return
    unique_id = entry["protoPayload"]["metadata"]["vpcServiceControlsUniqueId"]
    message = f"Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: {unique_id}"
    raise classic_error(403, message, "vpcServiceControls")


def location_refusal(state: SimState, location: str) -> str | None:
    """None when the org policy allows `location`, else a short reason naming the constraint
    (for APIs that build their own error body around it)."""
    if location_allowed(state, location):
        return None
    return f"{location.lower()} violates constraint {CONSTRAINT}"


def check_perimeter_egress(state: SimState, *, service: str, method: str, target_resource: str,
                           principal: str = "anonymous", permission: str | None = None,
                           resource_names: Iterable[str] = ()) -> None:
    """Refuse (403, classic shape) a call from inside the perimeter that reaches a resource outside it
    (e.g. a BigQuery load reading another project's bucket), logging the Policy Denied entry.
    No perimeter holding the project: allowed. Dry-run perimeter: logged with `dryRun`, allowed."""
    with state.lock:
        found = _enforced_perimeter(state)
    if found is None:
        return
    perimeter, _, dry_run = found
    entry = audit_log.vpcsc_violation(
        state, service=service, method=method, target_resource=target_resource,
        resource_names=list(resource_names) or [target_resource], principal=principal, timestamp=clock.now(),
        perimeter=perimeter, dry_run=dry_run, permission=permission)
    if dry_run:
        return
    unique_id = entry["protoPayload"]["metadata"]["vpcServiceControlsUniqueId"]
    raise classic_error(403, f"Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: "
                             f"{unique_id}", "vpcServiceControls")
