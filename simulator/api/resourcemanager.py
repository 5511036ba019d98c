"""Cloud Resource Manager API v3: the node's project and its IAM policy (with `auditConfigs`).

Served: projects.get (by id or number), projects.getIamPolicy, projects.setIamPolicy (so a test
or the demo can switch data-access logs off and see SEC-05 react), projects.search (by `id:`/`name:`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from sovaudit.simulator import admin_audit, audit_log, clock
from sovaudit.simulator.api._common import project_matches
from sovaudit.simulator.http import Router, SimRequest, rpc_error
from sovaudit.simulator.node import iam_etag

API = "resourcemanager"
TYPES = "google.cloud.resourcemanager_v3.types"
IAM_POLICY = "google.iam.v1.policy_pb2:Policy"


def _project(req: SimRequest) -> str:
    project = req.path_args["project"]
    if not project_matches(req.state, project):
        # Resource Manager answers 403 for a project that does not exist or is not visible.
        raise rpc_error(403, "The caller does not have permission", status="PERMISSION_DENIED")
    return project


def get_project(req: SimRequest) -> dict[str, Any]:
    _project(req)
    with req.state.lock:
        return copy.deepcopy(req.state.project)


def search_projects(req: SimRequest) -> dict[str, Any]:
    query = (req.arg("query") or "").strip()
    with req.state.lock:
        project = copy.deepcopy(req.state.project)
    if query:
        wanted = {part.split(":", 1)[1].strip() for part in query.split() if ":" in part}
        if wanted and not wanted & {project["projectId"], req.state.project_number, project["displayName"]}:
            return {}
    return {"projects": [project]}


def get_iam_policy(req: SimRequest) -> dict[str, Any]:
    _project(req)
    with req.state.lock:
        return copy.deepcopy(req.state.iam_policy)


def set_iam_policy(req: SimRequest) -> dict[str, Any]:
    _project(req)
    body = req.json()
    policy = body.get("policy")
    if not isinstance(policy, dict):
        raise rpc_error(400, "Invalid JSON payload: `policy` is required.")
    with req.state.lock:
        current = req.state.iam_policy
        if policy.get("etag") and policy["etag"] != current.get("etag"):
            raise rpc_error(409, "There were concurrent policy changes. Please retry the whole read-modify-write "
                                 "with exponential backoff.", status="ABORTED")
        mask = body.get("updateMask") or "bindings,etag"
        updated = copy.deepcopy(current)
        for field_name in (f.strip() for f in mask.split(",")):
            if field_name in {"bindings", "auditConfigs", "version"}:
                if field_name in policy:
                    updated[field_name] = copy.deepcopy(policy[field_name])
                else:
                    updated.pop(field_name, None)
        updated["etag"] = iam_etag(json.dumps(updated, sort_keys=True))
        delta = admin_audit.policy_delta(current, updated)
        req.state.iam_policy = updated
        audit_log.record(req.state, audit_log.audit_entry(
            req.state, log_id=audit_log.ACTIVITY, service="cloudresourcemanager.googleapis.com",
            method="SetIamPolicy", resource_name=f"projects/{req.state.project_id}", resource_type="project",
            resource_labels={"project_id": req.state.project_id}, principal=admin_audit.caller(req),
            timestamp=clock.now(), permission="resourcemanager.projects.setIamPolicy",
            permission_type="ADMIN_WRITE", caller_ip=req.http.remote_addr or "127.0.0.1",
            request={"@type": "type.googleapis.com/google.iam.v1.SetIamPolicyRequest",
                     "resource": f"projects/{req.state.project_id}", "policy": policy},
            response={"@type": "type.googleapis.com/google.iam.v1.Policy", **updated},
            # AuditData.policyDelta: what the change added and removed (reference §7).
            extra_payload={"serviceData": delta}))
        return copy.deepcopy(updated)


def register(router: Router) -> None:
    router.add("GET", "/v3/projects/<project>", get_project, api=API, response_type=f"{TYPES}:Project")
    router.add("GET", "/v3/projects:search", search_projects, api=API, response_type=f"{TYPES}:SearchProjectsResponse")
    router.add("POST", "/v3/projects/<project>:getIamPolicy", get_iam_policy, api=API, response_type=IAM_POLICY)
    router.add("POST", "/v3/projects/<project>:setIamPolicy", set_iam_policy, api=API, response_type=IAM_POLICY)
