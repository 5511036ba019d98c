"""Access Context Manager API v1: the node's access policy and its service perimeter.

Served: accessPolicies.list (`parent=organizations/N`), accessPolicies.get,
accessPolicies.servicePerimeters.list / get. An enforced perimeter has `status`; a dry-run one only
`spec` with `useExplicitDryRunSpec: true` — the difference SEC-01 must see.
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


def register(router: Router) -> None:
    router.add("GET", "/v1/accessPolicies", list_access_policies, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>", get_access_policy, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>/servicePerimeters", list_perimeters, api=API)
    router.add("GET", "/v1/accessPolicies/<policy>/servicePerimeters/<perimeter>", get_perimeter, api=API)
