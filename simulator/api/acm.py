"""Access Context Manager API v1: the node's access policy, its service perimeters and access levels.

Served: accessPolicies.list (`parent=organizations/N`), accessPolicies.get,
accessPolicies.servicePerimeters.list / get (the node's perimeter and the node file's
`extra_perimeters`: other projects' regular perimeters and bridges), accessPolicies.accessLevels.list /
get (basic levels; `accessLevelFormat` is accepted, CEL conversion is not modelled), and
projects.lookupConfiguredServicePerimeter. An enforced perimeter has `status`; a dry-run one only
`spec` with `useExplicitDryRunSpec: true`; a pending change has both — the differences SEC-01 must see.
Requests are judged by these perimeters in simulator/vpcsc.py.
"""

from __future__ import annotations

import copy
from typing import Any

from sovaudit.simulator.api._common import paged_body
from sovaudit.simulator.http import Router, SimRequest, rpc_error

API = "acm"


def list_access_policies(req: SimRequest) -> dict[str, Any]:
    parent = req.arg("parent")
    if not parent:
        raise rpc_error(400, "Invalid request: parent is required and must be of the form organizations/{id}.")
    with req.state.lock:
        policies = [copy.deepcopy(p) for p in req.state.access_policies.values() if p.get("parent") == parent]
    return paged_body(req, "accessPolicies", policies, default_size=100)


def _policy(req: SimRequest) -> str:
    name = f"accessPolicies/{req.path_args['policy']}"
    if name not in req.state.access_policies:
        raise rpc_error(403, f"Permission 'accesscontextmanager.policies.get' denied on resource "
                             f"'{name}' (or it may not exist).", status="PERMISSION_DENIED")
    return name


def get_access_policy(req: SimRequest) -> dict[str, Any]:
    with req.state.lock:
        return copy.deepcopy(req.state.access_policies[_policy(req)])


def list_perimeters(req: SimRequest) -> dict[str, Any]:
    name = _policy(req)
    with req.state.lock:
        perimeters = [copy.deepcopy(p) for key, p in sorted(req.state.perimeters.items())
                      if key.startswith(name + "/servicePerimeters/")]
    return paged_body(req, "servicePerimeters", perimeters, default_size=100)


def get_perimeter(req: SimRequest) -> dict[str, Any]:
    name = f"{_policy(req)}/servicePerimeters/{req.path_args['perimeter']}"
    with req.state.lock:
        perimeter = req.state.perimeters.get(name)
        if perimeter is None:
            raise rpc_error(404, f"Service Perimeter '{name}' not found.")
        return copy.deepcopy(perimeter)


def list_access_levels(req: SimRequest) -> dict[str, Any]:
    name = _policy(req)
    with req.state.lock:
        levels = [copy.deepcopy(level) for key, level in sorted((req.state.extras.get("access_levels") or {}).items())
                  if key.startswith(name + "/accessLevels/")]
    return paged_body(req, "accessLevels", levels, default_size=100)


def get_access_level(req: SimRequest) -> dict[str, Any]:
    name = f"{_policy(req)}/accessLevels/{req.path_args['level']}"
    with req.state.lock:
        level = (req.state.extras.get("access_levels") or {}).get(name)
        if level is None:
            raise rpc_error(404, f"Access Level '{name}' not found.")
        return copy.deepcopy(level)


def lookup_configured_perimeter(req: SimRequest) -> dict[str, Any]:
    """The regular perimeter whose enforced (status) and dry-run configuration holds the project."""
    project = req.path_args["project"]
    state = req.state
    if project not in {state.project_number, state.project_id}:
        raise rpc_error(403, f"Permission 'accesscontextmanager.policies.get' denied on resource "
                             f"'projects/{project}' (or it may not exist).", status="PERMISSION_DENIED")
    member = f"projects/{state.project_number}"
    body: dict[str, Any] = {}
    with state.lock:
        for name, perimeter in sorted(state.perimeters.items()):
            if perimeter.get("perimeterType") == "PERIMETER_TYPE_BRIDGE":
                continue
            status = perimeter.get("status") or {}
            spec = perimeter.get("spec") if perimeter.get("useExplicitDryRunSpec") else status
            if member in (status.get("resources") or ()):
                body.update(servicePerimeter=name, restrictedResource=member)
            if member in ((spec or {}).get("resources") or ()):
                body.update(servicePerimeterDryRun=name, restrictedResourceDryRun=member)
    return body


def register(router: Router) -> None:
    router.add("GET", "/v1/accessPolicies", list_access_policies, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>", get_access_policy, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>/servicePerimeters", list_perimeters, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>/servicePerimeters/<perimeter>", get_perimeter, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>/accessLevels", list_access_levels, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>/accessLevels/<level>", get_access_level, api=API)
    router.add("GET", "/v1/projects/<project>:lookupConfiguredServicePerimeter", lookup_configured_perimeter, api=API)
