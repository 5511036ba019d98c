"""Organization Policy API v2 (orgpolicy.googleapis.com), for a project of the node.

Served: policies.getEffectivePolicy, policies.get, policies.list, policies.create, policies.patch,
policies.delete and constraints.list (projects/*). Names echo the project **number**
(`projects/314159265358/policies/gcp.resourceLocations`), whether the caller used the id or the number;
`in:` value groups come back unexpanded, as Google returns them.

Writes follow Google's rules for `gcp.resourceLocations` values: a region is stored as its value
group (`us-east1` → `in:us-east1-locations`), a bare group name gets `in:`, zones and multi-regions
stay as written, and an `in:` value naming an unknown group fails the write. Every write is
admin-activity logged.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from sovaudit.simulator import admin_audit, audit_log, clock, hierarchy
from sovaudit.simulator.api._common import page, paged_body, require_project
from sovaudit.simulator.http import Router, SimRequest, rpc_error

API = "orgpolicy"
TYPES = "google.cloud.orgpolicy_v2.types"

# The constraints the simulator knows; gcp.resourceLocations is the one that matters here.
CONSTRAINTS: dict[str, dict[str, Any]] = {
    "gcp.resourceLocations": {
        "displayName": "Google Cloud Platform - Resource Location Restriction",
        "description": ("This list constraint defines the set of locations where location-based Google Cloud "
                        "resources can be created. Policies for this constraint can specify multi-regions such "
                        "as asia and europe, regions such as us-east1 or europe-west1 as allowed or denied "
                        "locations. Allowing or denying a multi-region does not imply that all included "
                        "sub-locations should also be allowed or denied."),
        "constraintDefault": "ALLOW",
        "listConstraint": {"supportsIn": True},
        "supportsDryRun": True,
    },
    "compute.vmExternalIpAccess": {
        "displayName": "Define allowed external IPs for VM instances",
        "description": "This list constraint defines the set of Compute Engine VM instances that are allowed to use "
                       "external IP addresses.",
        "constraintDefault": "ALLOW",
        "listConstraint": {},
        "supportsDryRun": True,
    },
    "compute.restrictNonConfidentialComputing": {
        "displayName": "Restrict Non-Confidential Computing",
        "description": "The deny list of this list constraint defines the set of services that require all new "
                       "resources to be created with Confidential Computing enabled.",
        "constraintDefault": "ALLOW",
        "listConstraint": {},
        "supportsDryRun": True,
    },
    "iam.automaticIamGrantsForDefaultServiceAccounts": {
        "displayName": "Disable Automatic IAM Grants for Default Service Accounts",
        "description": "This boolean constraint, when enforced, prevents the default App Engine and Compute Engine "
                       "service accounts that are created in your projects from being automatically granted any "
                       "IAM role on the project when the accounts are created.",
        "constraintDefault": "ALLOW",
        "booleanConstraint": {},
        "supportsDryRun": True,
    },
}


def _policy_name(req: SimRequest, constraint: str) -> str:
    return f"projects/{req.state.project_number}/policies/{constraint}"


def _check(req: SimRequest) -> str:
    require_project(req.state, req.path_args["project"])
    constraint = req.path_args["constraint"]
    if constraint.startswith("constraints/"):
        raise rpc_error(400, f"Invalid policy name: the constraint part must not carry the 'constraints/' prefix "
                             f"({constraint!r}).")
    if constraint not in CONSTRAINTS:
        raise rpc_error(404, f"Constraint `constraints/{constraint}` not found.")
    return constraint


def get_effective_policy(req: SimRequest) -> dict[str, Any]:
    constraint = _check(req)
    # Merged over the project's folders and organization (simulator/hierarchy.py); the effective policy
    # carries no etag, updateTime or conditions.
    if CONSTRAINTS[constraint].get("listConstraint") is not None:
        default_allow = CONSTRAINTS[constraint].get("constraintDefault") != "DENY"
        rules = hierarchy.effective_list(req.state, constraint, default_allow=default_allow).rules()
    else:
        rules = hierarchy.effective_boolean_rules(req.state, constraint)
    return {"name": _policy_name(req, constraint), "spec": {"rules": rules}}


def get_policy(req: SimRequest) -> dict[str, Any]:
    constraint = _check(req)
    with req.state.lock:
        stored = req.state.org_policies.get(constraint)
        if stored is None:
            raise rpc_error(404, "Requested entity was not found.")
        return copy.deepcopy(stored)


def list_policies(req: SimRequest) -> dict[str, Any]:
    require_project(req.state, req.path_args["project"])
    with req.state.lock:
        policies = [copy.deepcopy(p) for _, p in sorted(req.state.org_policies.items())]
    return paged_body(req, "policies", policies, default_size=100)


def list_constraints(req: SimRequest) -> dict[str, Any]:
    require_project(req.state, req.path_args["project"])
    constraints = [{"name": f"projects/{req.state.project_number}/constraints/{name}", **copy.deepcopy(body)}
                   for name, body in sorted(CONSTRAINTS.items())]
    items, token = page(req, constraints, default_size=100)
    result: dict[str, Any] = {"constraints": items}
    if token:
        result["nextPageToken"] = token
    return result


_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


def _known_group(name: str) -> bool:
    try:
        from sovaudit.audit.locations import VALUE_GROUPS
    except ImportError:   # pragma: no cover - shipped together
        return name.endswith("-locations")
    return name in VALUE_GROUPS


def _normalize_location_value(value: Any, field_path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise rpc_error(400, f"Invalid value at '{field_path}': a location value must be non-empty text.")
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith("in:"):
        if not _known_group(lowered[3:]):
            raise rpc_error(400, f"Invalid value at '{field_path}': '{text}' does not name a known value group "
                                 "of constraints/gcp.resourceLocations.")
        return lowered
    if lowered.endswith("-locations"):
        if not _known_group(lowered):
            raise rpc_error(400, f"Invalid value at '{field_path}': '{text}' does not name a known value group.")
        return f"in:{lowered}"
    if _REGION.match(lowered):
        return f"in:{lowered}-locations"   # a region means the region and its zones, as Google stores it
    return lowered


def _validated_spec(constraint: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not isinstance(spec.get("rules", []), list):
        raise rpc_error(400, "Invalid policy: `spec.rules` must be a list of rules.")
    rules = copy.deepcopy(spec.get("rules") or [])
    is_list = CONSTRAINTS[constraint].get("listConstraint") is not None
    for index, rule in enumerate(rules):
        where = f"policy.spec.rules[{index}]"
        if not isinstance(rule, dict):
            raise rpc_error(400, f"Invalid value at '{where}': a rule must be an object.")
        kinds = [k for k in ("values", "allowAll", "denyAll", "enforce") if k in rule]
        if len(kinds) != 1:
            raise rpc_error(400, f"Invalid value at '{where}': set exactly one of values, allowAll, denyAll, "
                                 f"enforce (got {', '.join(kinds) or 'none'}).")
        if is_list and "enforce" in rule:
            raise rpc_error(400, f"Invalid value at '{where}.enforce': constraints/{constraint} is a list "
                                 "constraint; use values, allowAll or denyAll.")
        if not is_list and kinds[0] != "enforce":
            raise rpc_error(400, f"Invalid value at '{where}': constraints/{constraint} is a boolean "
                                 "constraint; use enforce.")
        values = rule.get("values")
        if constraint == "gcp.resourceLocations" and isinstance(values, dict):
            for key in ("allowedValues", "deniedValues"):
                if key in values:
                    values[key] = [_normalize_location_value(v, f"{where}.values.{key}[{i}]")
                                   for i, v in enumerate(values[key])]
    result = {k: copy.deepcopy(v) for k, v in spec.items() if k in {"inheritFromParent", "reset"}}
    result["rules"] = rules
    return result


def _store(req: SimRequest, constraint: str, body: Any, *, method: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise rpc_error(400, "Invalid JSON payload: the request body must be a Policy.")
    spec = _validated_spec(constraint, body.get("spec") or {"rules": []})
    now = clock.rfc3339(clock.now())
    etag = hashlib.sha256(json.dumps([constraint, spec, now]).encode()).hexdigest()[:16]
    stored = {"name": _policy_name(req, constraint), "spec": {"etag": etag, "updateTime": now, **spec},
              "etag": etag}
    if isinstance(body.get("dryRunSpec"), dict):   # audit-only: stored and served, never enforced
        stored["dryRunSpec"] = {"etag": etag, "updateTime": now,
                                **_validated_spec(constraint, body["dryRunSpec"])}
    with req.state.lock:
        req.state.org_policies[constraint] = stored
    _audit(req, method, constraint, request=body, response=stored)
    return copy.deepcopy(stored)


def _audit(req: SimRequest, method: str, constraint: str, *, request: Any = None, response: Any = None,
           request_fields: dict[str, Any] | None = None) -> None:
    state = req.state
    audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service="orgpolicy.googleapis.com",
        method=f"google.cloud.orgpolicy.v2.OrgPolicy.{method}",
        resource_name=f"projects/{state.project_number}/policies/{constraint}", resource_type="project",
        resource_labels={"project_id": state.project_id}, principal=admin_audit.caller(req), timestamp=clock.now(),
        permission=f"orgpolicy.policies.{method.removesuffix('Policy').lower()}", permission_type="ADMIN_WRITE",
        caller_ip=req.http.remote_addr or "127.0.0.1",
        request={"@type": f"type.googleapis.com/google.cloud.orgpolicy.v2.{method}Request",
                 **({"policy": request} if request is not None else {}), **(request_fields or {})},
        response={"@type": "type.googleapis.com/google.cloud.orgpolicy.v2.Policy", **response}
        if response is not None else None))


def _constraint_of(req: SimRequest, name: Any) -> str:
    match = re.fullmatch(r"projects/([^/]+)/policies/([^/]+)", name or "")
    if not match:
        raise rpc_error(400, f"Invalid policy name {name!r}: expected projects/PROJECT/policies/CONSTRAINT.")
    require_project(req.state, match.group(1))
    if match.group(2) not in CONSTRAINTS:
        raise rpc_error(404, f"Constraint `constraints/{match.group(2)}` not found.")
    return match.group(2)


def create_policy(req: SimRequest) -> dict[str, Any]:
    require_project(req.state, req.path_args["project"])
    body = req.json()
    constraint = _constraint_of(req, body.get("name") if isinstance(body, dict) else None)
    with req.state.lock:
        if constraint in req.state.org_policies:
            raise rpc_error(409, f"Policy projects/{req.state.project_number}/policies/{constraint} already exists.",
                            status="ALREADY_EXISTS")
        return _store(req, constraint, body, method="CreatePolicy")


def update_policy(req: SimRequest) -> dict[str, Any]:
    constraint = _check(req)
    body = req.json()
    if isinstance(body, dict) and body.get("name") and _constraint_of(req, body["name"]) != constraint:
        raise rpc_error(400, "The policy name in the body does not match the URL.")
    with req.state.lock:
        current = req.state.org_policies.get(constraint)
        if current is None:
            raise rpc_error(404, f"Policy projects/{req.state.project_number}/policies/{constraint} not found.")
        if isinstance(body, dict) and body.get("etag") and body["etag"] != current.get("etag"):
            raise rpc_error(409, "The policy was changed concurrently; read it again and retry.", status="ABORTED")
        return _store(req, constraint, body, method="UpdatePolicy")


def delete_policy(req: SimRequest) -> dict[str, Any]:
    constraint = _check(req)
    with req.state.lock:
        if req.state.org_policies.pop(constraint, None) is None:
            raise rpc_error(404, f"Policy projects/{req.state.project_number}/policies/{constraint} not found.")
    # DeletePolicyRequest carries only the name; the constraint falls back to its default (ALLOW for
    # gcp.resourceLocations), which is why a delete is a relaxation.
    _audit(req, "DeletePolicy", constraint, request_fields={"name": _policy_name(req, constraint)})
    return {}


def register(router: Router) -> None:
    base = "/v2/projects/<project>"
    router.add("GET", f"{base}/policies/<constraint>:getEffectivePolicy", get_effective_policy, api=API,
               response_type=f"{TYPES}:Policy")
    router.add("GET", f"{base}/policies/<constraint>", get_policy, api=API, response_type=f"{TYPES}:Policy")
    router.add("POST", f"{base}/policies", create_policy, api=API, response_type=f"{TYPES}:Policy")
    router.add("PATCH", f"{base}/policies/<constraint>", update_policy, api=API, response_type=f"{TYPES}:Policy")
    router.add("DELETE", f"{base}/policies/<constraint>", delete_policy, api=API)
    router.add("GET", f"{base}/policies", list_policies, api=API, response_type=f"{TYPES}:ListPoliciesResponse")
    router.add("GET", f"{base}/constraints", list_constraints, api=API,
               response_type=f"{TYPES}:ListConstraintsResponse")
