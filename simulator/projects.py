"""Which project owns a resource, for the resources the simulator knows of outside the node.

Google writes an audit entry into the project that owns the resource a call touched (reference
gcp-escape-routes §2: a write into another project's bucket is logged in *that* project, not the
caller's). The node file names those other projects (`foreign_projects`) and their buckets
(`foreign_buckets`, by project number); a bucket of a project the file does not declare gets a
stable made-up project id, so its entries still land outside the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sovaudit.simulator.state import SimState


@dataclass(frozen=True)
class Owner:
    """The project a resource belongs to; `is_node` when it is the simulated node's own."""

    project_id: str
    project_number: str
    is_node: bool

    @property
    def resource(self) -> str:
        return f"projects/{self.project_number}"


def node_owner(state: SimState) -> Owner:
    return Owner(state.project_id, state.project_number, True)


def foreign_projects(state: SimState) -> dict[str, dict[str, Any]]:
    """project id -> {"number", "organization", "auditConfigs"} for every project outside the node."""
    found: dict[str, dict[str, Any]] = state.extras.setdefault("foreign_projects", {})
    return found


def project_for_number(state: SimState, number: str) -> Owner:
    if number == state.project_number:
        return node_owner(state)
    for project_id, project in foreign_projects(state).items():
        if str(project.get("number")) == number:
            return Owner(project_id, number, False)
    return Owner(f"project-{number}", number, False)


def project_for_id(state: SimState, project_id: str) -> Owner:
    if project_id in {state.project_id, state.project_number}:
        return node_owner(state)
    project = foreign_projects(state).get(project_id)
    if project is not None:
        return Owner(project_id, str(project.get("number")), False)
    if project_id.isdigit():
        return project_for_number(state, project_id)
    return Owner(project_id, "0", False)


def bucket_owner(state: SimState, bucket: str) -> Owner:
    """The node for its own buckets; the declared project for a foreign bucket; else an unknown one."""
    with state.lock:
        if bucket in state.buckets:
            number = str(state.buckets[bucket].get("projectNumber") or state.project_number)
            return project_for_number(state, number)
        foreign = state.extras.get("foreign_buckets", {}).get(bucket)
    if foreign is not None:
        return project_for_number(state, str(foreign.get("project_number") or "0"))
    return Owner("unknown-project", "0", False)
