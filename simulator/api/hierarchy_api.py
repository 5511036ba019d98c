"""The project's ancestors over REST: Resource Manager v3 folders and organizations, and the Org Policy
v2 policies set on them (reference gcp-escape-routes §6.1, §6.3).

Served: folders.get, folders.getIamPolicy, organizations.get, organizations.getIamPolicy (v3), and
policies.get / policies.list / policies.getEffectivePolicy under `folders/*` and `organizations/*`
(v2). A folder or organization the node file does not declare answers 403, as Resource Manager does
for what does not exist or is not visible; a level without a policy for a constraint answers 404.
The state and the merge live in simulator/hierarchy.py.
"""

from __future__ import annotations

import copy
from typing import Any

from sovaudit.simulator import hierarchy
from sovaudit.simulator.api._common import paged_body
from sovaudit.simulator.api.orgpolicy import CONSTRAINTS
from sovaudit.simulator.http import Router, SimRequest, rpc_error

RM_TYPES = "google.cloud.resourcemanager_v3.types"
OP_TYPES = "google.cloud.orgpolicy_v2.types"
IAM_POLICY = "google.iam.v1.policy_pb2:Policy"


def _level(req: SimRequest, kind: str) -> tuple[str, dict[str, Any]]:
    resource = f"{kind}/{req.path_args['id']}"
    level = hierarchy.levels(req.state).get(resource)
    if level is None:
        raise rpc_error(403, "The caller does not have permission", status="PERMISSION_DENIED")
    return resource, level


def _get(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        _, level = _level(req, kind)
        with req.state.lock:
            return copy.deepcopy(level["resource"])
    return handler


def _get_iam(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        _, level = _level(req, kind)
        with req.state.lock:
            return copy.deepcopy(level["iam_policy"])
    return handler


def _constraint(req: SimRequest) -> str:
    constraint = req.path_args["constraint"]
    if constraint not in CONSTRAINTS:
        raise rpc_error(404, f"Constraint `constraints/{constraint}` not found.")
    return constraint


def _get_policy(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        resource, level = _level(req, kind)
        constraint = _constraint(req)
        with req.state.lock:
            policy = level["org_policies"].get(constraint)
            if policy is None:
                raise rpc_error(404, "Requested entity was not found.")
            return copy.deepcopy(policy)
    return handler


def _list_policies(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        _, level = _level(req, kind)
        with req.state.lock:
            policies = [copy.deepcopy(p) for _, p in sorted(level["org_policies"].items())]
        return paged_body(req, "policies", policies, default_size=100)
    return handler


def _effective(kind: str) -> Any:
    """The level's own effective policy: the chain from the organization down to this level."""
    def handler(req: SimRequest) -> dict[str, Any]:
        resource, _ = _level(req, kind)
        constraint = _constraint(req)
        with req.state.lock:
            chain = [r for r in reversed(hierarchy.ancestors(req.state))]
            if resource not in chain:
                chain = [resource]
            upto = chain[:chain.index(resource) + 1]
            specs = [(hierarchy.level_policy(req.state, r, constraint) or {}).get("spec") for r in upto]
        if CONSTRAINTS[constraint].get("listConstraint") is not None:
            rules = hierarchy.merge_list(specs).rules()
        else:
            rules = next(([{k: v for k, v in r.items() if k != "condition"} for r in s["rules"]]
                          for s in reversed(specs) if s and s.get("rules")), [{}])
        return {"name": f"{resource}/policies/{constraint}", "spec": {"rules": rules}}
    return handler


def register(router: Router) -> None:
    for kind in ("folders", "organizations"):
        message = "Folder" if kind == "folders" else "Organization"
        router.add("GET", f"/v3/{kind}/<id>", _get(kind), api="resourcemanager",
                   response_type=f"{RM_TYPES}:{message}")
        router.add("POST", f"/v3/{kind}/<id>:getIamPolicy", _get_iam(kind), api="resourcemanager",
                   response_type=IAM_POLICY)
        base = f"/v2/{kind}/<id>/policies"
        router.add("GET", f"{base}/<constraint>:getEffectivePolicy", _effective(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:Policy")
        router.add("GET", f"{base}/<constraint>", _get_policy(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:Policy")
        router.add("GET", base, _list_policies(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:ListPoliciesResponse")
