"""The project's ancestors over REST: Resource Manager v3 folders and organizations, and the Org Policy
v2 policies set on them (reference gcp-escape-routes §6.1, §6.3).

Served: folders.get, folders.getIamPolicy, folders.setIamPolicy and the same on organizations (v3),
and policies.get / list / getEffectivePolicy / create / patch / delete under `folders/*` and
`organizations/*` (v2). A change is written to the Admin Activity log *of that folder or
organization* (`folders/F/logs/cloudaudit.googleapis.com%2Factivity`), where Google keeps it, not to
the project's. A folder or organization the node file does not declare answers 403, as Resource Manager does
for what does not exist or is not visible; a level without a policy for a constraint answers 404.
The state and the merge live in simulator/hierarchy.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from sovaudit.simulator import admin_audit, audit_log, clock, hierarchy
from sovaudit.simulator.api._common import paged_body
from sovaudit.simulator.api.orgpolicy import CONSTRAINTS, _validated_spec
from sovaudit.simulator.http import Router, SimRequest, rpc_error
from sovaudit.simulator.node import iam_etag

RM_TYPES = "google.cloud.resourcemanager_v3.types"
OP_TYPES = "google.cloud.orgpolicy_v2.types"
IAM_POLICY = "google.iam.v1.policy_pb2:Policy"


def _level(req: SimRequest, kind: str) -> tuple[str, dict[str, Any]]:
    resource = f"{kind}/{req.path_args['id']}"
    level = hierarchy.levels(req.state).get(resource)
    if level is None:
        raise rpc_error(403, "The caller does not have permission", status="PERMISSION_DENIED")
    return resource, level


def _read(kind: str, part: str) -> Any:
    """A handler serving one stored part of a folder or the organization ("resource" or "iam_policy")."""
    def handler(req: SimRequest) -> dict[str, Any]:
        _, level = _level(req, kind)
        with req.state.lock:
            return copy.deepcopy(level[part])
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


# ------------------------------------------------------------------------------------------ mutations

def _audit(req: SimRequest, resource: str, *, service: str, method: str, permission: str,
           request: dict[str, Any], response: dict[str, Any] | None, resource_name: str = "") -> None:
    """An Admin Activity entry in the folder's or organization's own log; `resource_name` names the
    policy for Org Policy calls (`folders/F/policies/C`, as the project-level entries do)."""
    kind, number = resource.split("/", 1)
    resource_type, label = ("folder", "folder_id") if kind == "folders" else ("organization", "organization_id")
    entry = audit_log.audit_entry(
        req.state, log_id=audit_log.ACTIVITY, service=service, method=method, resource_name=resource_name or resource,
        resource_type=resource_type, resource_labels={label: number}, principal=admin_audit.caller(req),
        timestamp=clock.now(), permission=permission, permission_type="ADMIN_WRITE",
        caller_ip=req.http.remote_addr or "127.0.0.1", request=request, response=response)
    entry["logName"] = f"{resource}/logs/{audit_log.ACTIVITY}"
    audit_log.record(req.state, entry)


def _set_iam(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        resource, level = _level(req, kind)
        body = req.json()
        policy = body.get("policy") if isinstance(body, dict) else None
        if not isinstance(policy, dict):
            raise rpc_error(400, "Invalid JSON payload: `policy` is required.")
        with req.state.lock:
            current = level["iam_policy"]
            if policy.get("etag") and policy["etag"] != current.get("etag"):
                raise rpc_error(409, "There were concurrent policy changes. Please retry the whole read-modify-write "
                                     "with exponential backoff.", status="ABORTED")
            updated = copy.deepcopy(current)
            for name in (f.strip() for f in (body.get("updateMask") or "bindings,etag").split(",")):
                if name in {"bindings", "auditConfigs", "version"}:
                    if name in policy:
                        updated[name] = copy.deepcopy(policy[name])
                    else:
                        updated.pop(name, None)
            if "auditConfigs" in updated:
                updated["auditConfigs"] = hierarchy.normalized_audit_configs(updated["auditConfigs"])
            updated["etag"] = iam_etag(json.dumps(updated, sort_keys=True))
            level["iam_policy"] = updated
        _audit(req, resource, service="cloudresourcemanager.googleapis.com", method="SetIamPolicy",
               permission=f"resourcemanager.{kind}.setIamPolicy",
               request={"@type": "type.googleapis.com/google.iam.v1.SetIamPolicyRequest", "resource": resource,
                        "policy": policy},
               response={"@type": "type.googleapis.com/google.iam.v1.Policy", **updated})
        return copy.deepcopy(updated)
    return handler


def _store(req: SimRequest, resource: str, level: dict[str, Any], constraint: str, body: dict[str, Any],
           method: str) -> dict[str, Any]:
    now = clock.rfc3339(clock.now())
    stored: dict[str, Any] = {"name": f"{resource}/policies/{constraint}"}
    etag = ""
    for key in ("spec", "dryRunSpec"):
        if body.get(key):
            spec = _validated_spec(constraint, body[key])
            if not spec.get("rules"):
                spec.pop("rules", None)   # a reset carries no rules, and Google omits the empty list
            etag = hashlib.sha256(json.dumps([resource, constraint, key, spec, now]).encode()).hexdigest()[:16]
            stored[key] = {"etag": etag, "updateTime": now, **spec}
    stored["etag"] = etag or hashlib.sha256(f"{resource}{constraint}{now}".encode()).hexdigest()[:16]
    with req.state.lock:
        level["org_policies"][constraint] = stored
    _audit(req, resource, service="orgpolicy.googleapis.com", method=f"google.cloud.orgpolicy.v2.OrgPolicy.{method}",
           permission=f"orgpolicy.policies.{method.removesuffix('Policy').lower()}",
           resource_name=f"{resource}/policies/{constraint}",
           request={"@type": f"type.googleapis.com/google.cloud.orgpolicy.v2.{method}Request", "policy": body},
           response={"@type": "type.googleapis.com/google.cloud.orgpolicy.v2.Policy", **stored})
    return copy.deepcopy(stored)


def _create_policy(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        resource, level = _level(req, kind)
        body = req.json()
        match = re.fullmatch(rf"{re.escape(resource)}/policies/([^/]+)", str((body or {}).get("name") or ""))
        if not isinstance(body, dict) or not match:
            raise rpc_error(400, f"Invalid policy name: expected {resource}/policies/CONSTRAINT.")
        if match.group(1) not in CONSTRAINTS:
            raise rpc_error(404, f"Constraint `constraints/{match.group(1)}` not found.")
        with req.state.lock:
            if match.group(1) in level["org_policies"]:
                raise rpc_error(409, f"Policy {resource}/policies/{match.group(1)} already exists.",
                                status="ALREADY_EXISTS")
            return _store(req, resource, level, match.group(1), body, "CreatePolicy")
    return handler


def _update_policy(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        resource, level = _level(req, kind)
        constraint = _constraint(req)
        body = req.json()
        if not isinstance(body, dict):
            raise rpc_error(400, "Invalid JSON payload: the request body must be a Policy.")
        with req.state.lock:
            current = level["org_policies"].get(constraint)
            if current is None:
                raise rpc_error(404, f"Policy {resource}/policies/{constraint} not found.")
            if body.get("etag") and body["etag"] != current.get("etag"):
                raise rpc_error(409, "The policy was changed concurrently; read it again and retry.", status="ABORTED")
            return _store(req, resource, level, constraint, body, "UpdatePolicy")
    return handler


def _delete_policy(kind: str) -> Any:
    def handler(req: SimRequest) -> dict[str, Any]:
        resource, level = _level(req, kind)
        constraint = _constraint(req)
        with req.state.lock:
            if level["org_policies"].pop(constraint, None) is None:
                raise rpc_error(404, f"Policy {resource}/policies/{constraint} not found.")
        _audit(req, resource, service="orgpolicy.googleapis.com", method="google.cloud.orgpolicy.v2.OrgPolicy.DeletePolicy",
               permission="orgpolicy.policies.delete", resource_name=f"{resource}/policies/{constraint}",
               request={"@type": "type.googleapis.com/google.cloud.orgpolicy.v2.DeletePolicyRequest",
                        "name": f"{resource}/policies/{constraint}"}, response=None)
        return {}
    return handler


def register(router: Router) -> None:
    for kind in ("folders", "organizations"):
        message = "Folder" if kind == "folders" else "Organization"
        router.add("GET", f"/v3/{kind}/<id>", _read(kind, "resource"), api="resourcemanager",
                   response_type=f"{RM_TYPES}:{message}")
        router.add("POST", f"/v3/{kind}/<id>:getIamPolicy", _read(kind, "iam_policy"), api="resourcemanager",
                   response_type=IAM_POLICY)
        base = f"/v2/{kind}/<id>/policies"
        router.add("GET", f"{base}/<constraint>:getEffectivePolicy", _effective(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:Policy")
        router.add("GET", f"{base}/<constraint>", _get_policy(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:Policy")
        router.add("GET", base, _list_policies(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:ListPoliciesResponse")
        router.add("POST", f"/v3/{kind}/<id>:setIamPolicy", _set_iam(kind), api="resourcemanager",
                   response_type=IAM_POLICY)
        router.add("POST", base, _create_policy(kind), api="orgpolicy", response_type=f"{OP_TYPES}:Policy")
        router.add("PATCH", f"{base}/<constraint>", _update_policy(kind), api="orgpolicy",
                   response_type=f"{OP_TYPES}:Policy")
        router.add("DELETE", f"{base}/<constraint>", _delete_policy(kind), api="orgpolicy")
