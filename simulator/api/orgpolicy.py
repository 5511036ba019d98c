"""Organization Policy API v2 (orgpolicy.googleapis.com), for a project of the node.

Served: policies.getEffectivePolicy, policies.get, policies.list, constraints.list (projects/*).
Names echo the project **number** (`projects/314159265358/policies/gcp.resourceLocations`), whether
the caller used the id or the number; `in:` value groups come back unexpanded, as Google returns them.
"""

from __future__ import annotations

import copy
from typing import Any

from sovaudit.simulator.api._common import page, require_project
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
    with req.state.lock:
        stored = req.state.org_policies.get(constraint)
        rules = copy.deepcopy(stored["spec"].get("rules", [])) if stored else []
    if not rules:
        rules = [{"allowAll": True}] if CONSTRAINTS[constraint].get("listConstraint") is not None else [{}]
    # The effective policy carries no etag, updateTime or conditions.
    for rule in rules:
        rule.pop("condition", None)
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
    items, token = page(req, policies, default_size=100)
    body: dict[str, Any] = {}
    if items:
        body["policies"] = items
    if token:
        body["nextPageToken"] = token
    return body


def list_constraints(req: SimRequest) -> dict[str, Any]:
    require_project(req.state, req.path_args["project"])
    constraints = [{"name": f"projects/{req.state.project_number}/constraints/{name}", **copy.deepcopy(body)}
                   for name, body in sorted(CONSTRAINTS.items())]
    items, token = page(req, constraints, default_size=100)
    result: dict[str, Any] = {"constraints": items}
    if token:
        result["nextPageToken"] = token
    return result


def register(router: Router) -> None:
    base = "/v2/projects/<project>"
    router.add("GET", f"{base}/policies/<constraint>:getEffectivePolicy", get_effective_policy, api=API,
               response_type=f"{TYPES}:Policy")
    router.add("GET", f"{base}/policies/<constraint>", get_policy, api=API, response_type=f"{TYPES}:Policy")
    router.add("GET", f"{base}/policies", list_policies, api=API, response_type=f"{TYPES}:ListPoliciesResponse")
    router.add("GET", f"{base}/constraints", list_constraints, api=API,
               response_type=f"{TYPES}:ListConstraintsResponse")
