"""Admin Activity entries for posture changes: who called, the IAM policy delta, organization logs.

Issue 11 (change history as evidence): every mutation that can weaken the node's promises must leave
an Admin Activity entry with Google's method name and request body, because that log is what a
verifier reads to judge the state a run *lived under*. The pieces several APIs share live here:

* `caller`: the principal of a mutation (`X-Sim-Principal`, else the node's workload identity, as the
  other simulated APIs decide);
* `policy_delta`: `google.iam.v1.logging.AuditData.policyDelta` — bindingDeltas and auditConfigDeltas
  between two IAM policies (reference gcp-escape-routes §7; the AuditData/PolicyDelta shape is [C],
  the methodName `SetIamPolicy` is [T]);
* `org_activity`: an entry in the *organization's* Admin Activity log, where changes to org-level
  resources such as an ACM access policy land (reference §2 rule [C]; that perimeter changes land
  there is [U], §7/§11 item 11). The node's own Log Router never routes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sovaudit.simulator import audit_log, clock
from sovaudit.simulator.http import SimRequest
from sovaudit.simulator.state import SimState

IAM_AUDIT_DATA = "type.googleapis.com/google.iam.v1.logging.AuditData"


def caller(req: SimRequest) -> str:
    """Who made the call: `X-Sim-Principal`, else the node's workload identity (anonymous clients
    carry no identity; the simulator's other APIs make the same choice)."""
    return req.http.headers.get("X-Sim-Principal") or str(
        req.state.node.get("service_account") or f"{req.state.project_number}-compute@developer.gserviceaccount.com")


def _binding_keys(policy: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    keys = set()
    for binding in policy.get("bindings") or ():
        condition = binding.get("condition")
        text = repr(sorted(condition.items())) if isinstance(condition, Mapping) else ""
        for member in binding.get("members") or ():
            keys.add((str(binding.get("role", "")), str(member), text))
    return keys


def _conditions(policy: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for binding in policy.get("bindings") or ():
        condition = binding.get("condition")
        if isinstance(condition, Mapping):
            found[repr(sorted(condition.items()))] = dict(condition)
    return found


def _audit_keys(policy: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """(service, logType, exemptedMember or '') for every log type and every exemption."""
    keys = set()
    for config in policy.get("auditConfigs") or ():
        service = str(config.get("service", ""))
        for log_config in config.get("auditLogConfigs") or ():
            log_type = str(log_config.get("logType", ""))
            keys.add((service, log_type, ""))
            for member in log_config.get("exemptedMembers") or ():
                keys.add((service, log_type, str(member)))
    return keys


def policy_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """PolicyDelta between two IAM policies: one BindingDelta per (role, member, condition) added or
    removed, one AuditConfigDelta per log type or exempted member added or removed. Unset lists are
    omitted, as on the wire."""
    old_bindings, new_bindings = _binding_keys(before), _binding_keys(after)
    conditions = {**_conditions(before), **_conditions(after)}
    binding_deltas = []
    for action, keys in (("REMOVE", old_bindings - new_bindings), ("ADD", new_bindings - old_bindings)):
        for role, member, condition in sorted(keys):
            delta: dict[str, Any] = {"action": action, "role": role, "member": member}
            if condition:
                delta["condition"] = conditions[condition]
            binding_deltas.append(delta)
    old_audit, new_audit = _audit_keys(before), _audit_keys(after)
    audit_deltas = []
    for action, keys in (("REMOVE", old_audit - new_audit), ("ADD", new_audit - old_audit)):
        for service, log_type, member in sorted(keys):
            audit_delta = {"action": action, "service": service, "logType": log_type}
            if member:
                audit_delta["exemptedMember"] = member
            audit_deltas.append(audit_delta)
    delta_body: dict[str, Any] = {}
    if binding_deltas:
        delta_body["bindingDeltas"] = binding_deltas
    if audit_deltas:
        delta_body["auditConfigDeltas"] = audit_deltas
    return {"@type": IAM_AUDIT_DATA, "policyDelta": delta_body}


def org_activity(state: SimState, *, service: str, method: str, resource_name: str, principal: str,
                 caller_ip: str, permission: str, request: Mapping[str, Any] | None = None,
                 response: Mapping[str, Any] | None = None,
                 operation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Record an Admin Activity entry in the organization's log (`organizations/N/logs/...`), with the
    `audited_resource` resource type Google uses for services without a monitored resource [U]."""
    entry = audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service=service, method=method, resource_name=resource_name,
        resource_type="audited_resource", resource_labels={"service": service, "method": method},
        principal=principal, timestamp=clock.now(), permission=permission, permission_type="ADMIN_WRITE",
        caller_ip=caller_ip, request=request, response=response, operation=operation)
    entry["logName"] = f"{state.organization}/logs/{audit_log.ACTIVITY}"
    return audit_log.record(state, entry)


def first_last(operation_id: str, producer: str) -> Iterable[dict[str, Any]]:
    """The `operation` fields of an LRO's two entries (reference §5.1: `first` holds the request,
    `last` the result)."""
    yield {"id": operation_id, "producer": producer, "first": True}
    yield {"id": operation_id, "producer": producer, "last": True}
