"""Compute Engine v1 instance mutations: what an insider can change on a running (or stopped) worker.

Served: instances addAccessConfig, deleteAccessConfig, updateAccessConfig, updateNetworkInterface
(PATCH), setServiceAccount, setLabels, setMachineType, stop, start and update (PUT).

Why they exist: SEC-02, SEC-03, CC-02 and the run's scope used to judge a worker by its insert body
and its state at audit time. An access config added during the run and the VM since deleted by Batch,
a service account swapped while the VM was stopped, a relabel that moves a VM out of the job's
`batch-job-uid` scope: each leaves only its Admin Activity entry. So every handler here changes the
stored Instance as Google does (fingerprints renewed), answers a zonal Operation (DONE at once, see
compute.py's docstring) and writes the `first`/`last` pair `v1.compute.instances.<method>` whose
`first` entry carries the request body (`@type type.googleapis.com/compute.instances.<method>`),
as the insert does (gcp-escape-routes.md §5.1).

Google's preconditions that make the staging faithful: setServiceAccount and setMachineType need a
stopped (TERMINATED) instance; setLabels needs the current `labelFingerprint` (412 otherwise);
updateNetworkInterface needs the NIC's current `fingerprint`; a NIC holds at most one IPv4 access
config. Knowingly simplified: error messages are close to, not copies of, Google's; `update` applies
only labels, serviceAccounts, machineType, confidentialInstanceConfig, shieldedInstanceConfig and
metadata; stop/start finish at once (no STOPPING/STAGING states).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sovaudit.simulator import clock, integrity_log
from sovaudit.simulator.api import compute
from sovaudit.simulator.http import Router, SimRequest, classic_error
from sovaudit.simulator.state import SimState

_INSTANCE = f"{compute._V1}/zones/<zone>/instances/<instance>"   # noqa: SLF001 - same API, one rule prefix

# The permission each method checks (Compute's IAM permissions reference: compute.instances.<verb>).
_PERMISSIONS = {
    "addAccessConfig": "compute.instances.addAccessConfig",
    "deleteAccessConfig": "compute.instances.deleteAccessConfig",
    "updateAccessConfig": "compute.instances.updateAccessConfig",
    "updateNetworkInterface": "compute.instances.updateNetworkInterface",
    "setServiceAccount": "compute.instances.setServiceAccount",
    "setLabels": "compute.instances.setLabels",
    "setMachineType": "compute.instances.setMachineType",
    "stop": "compute.instances.stop",
    "start": "compute.instances.start",
    "update": "compute.instances.update",
}


def register(router: Router) -> None:
    add = router.add
    add("POST", f"{_INSTANCE}/addAccessConfig", add_access_config, api=compute.API)
    add("POST", f"{_INSTANCE}/deleteAccessConfig", delete_access_config, api=compute.API)
    add("POST", f"{_INSTANCE}/updateAccessConfig", update_access_config, api=compute.API)
    add("PATCH", f"{_INSTANCE}/updateNetworkInterface", update_network_interface, api=compute.API)
    add("POST", f"{_INSTANCE}/setServiceAccount", set_service_account, api=compute.API)
    add("POST", f"{_INSTANCE}/setLabels", set_labels, api=compute.API)
    add("POST", f"{_INSTANCE}/setMachineType", set_machine_type, api=compute.API)
    add("POST", f"{_INSTANCE}/stop", stop_instance, api=compute.API)
    add("POST", f"{_INSTANCE}/start", start_instance, api=compute.API)
    add("PUT", _INSTANCE, update_instance, api=compute.API)


# ---------------------------------------------------------------------------------------------
# the shared mutation path

Mutator = Callable[[SimState, str, dict[str, Any]], None]


def mutate(request: SimRequest, verb: str, change: Mutator, *, audit_body: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `change` to the stored instance under the lock, then answer and log it as Google does.

    `change` raises an ApiError to refuse (nothing is changed or logged then, as a refused call
    creates no operation)."""
    state, zone, name = request.state, request.path_args["zone"], request.path_args["instance"]
    compute._check_project(state, request.path_args["project"])   # noqa: SLF001
    with state.lock:
        stored = state.instances.get((zone, name))
        if stored is None:
            raise compute._not_found(f"projects/{state.project_id}/zones/{zone}/instances/{name}")  # noqa: SLF001
        working = copy.deepcopy(stored)
        change(state, zone, working)
        working["fingerprint"] = compute._fingerprint()   # noqa: SLF001 - any change renews it
        state.instances[(zone, name)] = working
        instance = copy.deepcopy(working)
    principal = compute.caller_principal(request)
    operation = compute.record_operation(state, kind=verb, target_link=instance["selfLink"],
                                         target_id=str(instance["id"]), user=principal, zone=zone)
    audit_mutation(state, verb, zone, instance, principal=principal, request_body=audit_body, operation=operation,
                   caller_ip=request.http.headers.get("X-Sim-Caller-Ip"))
    return operation


def audit_mutation(state: SimState, verb: str, zone: str, instance: Mapping[str, Any], *, principal: str,
                   request_body: Mapping[str, Any], operation: Mapping[str, Any],
                   caller_ip: str | None = None) -> list[dict[str, Any]]:
    """The Admin Activity pair of an instance LRO: `first` with the request, `last` with only its type."""
    from sovaudit.simulator import audit_log

    name = str(instance["name"])
    common: dict[str, Any] = {
        "log_id": audit_log.ACTIVITY, "service": "compute.googleapis.com", "method": f"v1.compute.instances.{verb}",
        "resource_name": f"projects/{state.project_id}/zones/{zone}/instances/{name}",
        "resource_type": "gce_instance",
        "resource_labels": {"instance_id": str(instance.get("id", "")), "project_id": state.project_id,
                            "zone": zone},
        "principal": principal, "locations": [zone],
    }
    if caller_ip:
        common["caller_ip"] = caller_ip
    op = {"id": operation.get("name", ""), "producer": "compute.googleapis.com"}
    now = clock.now()
    first = audit_log.record(state, audit_log.audit_entry(
        state, **common, timestamp=now, permission=_PERMISSIONS[verb], permission_type="ADMIN_WRITE",
        request={"@type": f"type.googleapis.com/compute.instances.{verb}", **copy.deepcopy(dict(request_body))},
        response={"@type": "type.googleapis.com/operation",
                  **{k: v for k, v in operation.items() if k != "kind"}},
        operation={**op, "first": True}))
    last = audit_log.record(state, audit_log.audit_entry(
        state, **common, timestamp=now + timedelta(milliseconds=50),
        request={"@type": f"type.googleapis.com/compute.instances.{verb}"}, operation={**op, "last": True}))
    return [first, last]


def _body(request: SimRequest, what: str) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise classic_error(400, f"Invalid value for field 'resource': the body must be {what}.", "invalid")
    return body


def _nic(instance: dict[str, Any], name: str | None) -> dict[str, Any]:
    if not name:
        raise classic_error(400, "Required field 'networkInterface' not specified", "required")
    for nic in instance.get("networkInterfaces") or []:
        if nic.get("name") == name:
            return nic  # type: ignore[no-any-return]
    raise classic_error(400, f"Invalid value for field 'networkInterface': '{name}'. "
                             "No such network interface.", "invalid")


def _require_stopped(instance: Mapping[str, Any], what: str) -> None:
    if instance.get("status") != "TERMINATED":
        raise classic_error(400, f"The instance must be stopped before {what}. Instance "
                                 f"'{instance.get('name')}' is {instance.get('status', 'RUNNING')}.",
                            "invalid")


def _access_config(state: SimState, given: Mapping[str, Any], *, ipv6: bool) -> dict[str, Any]:
    config = copy.deepcopy(dict(given))
    config["kind"] = "compute#accessConfig"
    if ipv6:
        config.setdefault("type", "DIRECT_IPV6")
        config.setdefault("name", "external-ipv6")
        config.setdefault("networkTier", "PREMIUM")
        n = state.next_id("compute.external_ipv6")
        config.setdefault("externalIpv6", f"2600:1900:4000:{n % 0xffff:x}:0:0:0:0")
        config.setdefault("externalIpv6PrefixLength", 96)
    else:
        config.setdefault("type", "ONE_TO_ONE_NAT")
        config.setdefault("name", "External NAT")
        config.setdefault("networkTier", "PREMIUM")
        config.setdefault("natIP", compute._next_external_ip(state))   # noqa: SLF001
    return config


def _is_ipv6(config: Mapping[str, Any]) -> bool:
    return str(config.get("type", "")) == "DIRECT_IPV6"


# ---------------------------------------------------------------------------------------------
# handlers


def add_access_config(request: SimRequest) -> dict[str, Any]:
    body = _body(request, "an AccessConfig")
    nic_name = request.arg("networkInterface")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        nic = _nic(instance, nic_name)
        ipv6 = _is_ipv6(body)
        key = "ipv6AccessConfigs" if ipv6 else "accessConfigs"
        if nic.get(key):
            raise classic_error(400, "At most one access config currently supported.", "invalid")
        nic[key] = [_access_config(state, body, ipv6=ipv6)]
        nic["fingerprint"] = compute._fingerprint()   # noqa: SLF001

    return mutate(request, "addAccessConfig", change, audit_body=body)


def delete_access_config(request: SimRequest) -> dict[str, Any]:
    config_name, nic_name = request.arg("accessConfig"), request.arg("networkInterface")
    if not config_name:
        raise classic_error(400, "Required field 'accessConfig' not specified", "required")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        nic = _nic(instance, nic_name)
        for key in ("accessConfigs", "ipv6AccessConfigs"):
            kept = [c for c in nic.get(key) or [] if c.get("name") != config_name]
            if len(kept) != len(nic.get(key) or []):
                if kept:
                    nic[key] = kept
                else:
                    nic.pop(key, None)
                nic["fingerprint"] = compute._fingerprint()   # noqa: SLF001
                return
        raise classic_error(400, f"Invalid value for field 'accessConfig': '{config_name}'. "
                                 "No such access config.", "invalid")

    # Google's audit entry for a body-less POST carries only the request type.
    return mutate(request, "deleteAccessConfig", change, audit_body={})


def update_access_config(request: SimRequest) -> dict[str, Any]:
    body = _body(request, "an AccessConfig")
    nic_name = request.arg("networkInterface")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        nic = _nic(instance, nic_name)
        ipv6 = _is_ipv6(body)
        key = "ipv6AccessConfigs" if ipv6 else "accessConfigs"
        configs = nic.get(key) or []
        if not configs:
            raise classic_error(400, "Invalid value for field 'accessConfig': no access config to update on "
                                     f"'{nic_name}'.", "invalid")
        configs[0] = {**configs[0], **_access_config(state, {**configs[0], **body}, ipv6=ipv6)}
        nic["fingerprint"] = compute._fingerprint()   # noqa: SLF001

    return mutate(request, "updateAccessConfig", change, audit_body=body)


def update_network_interface(request: SimRequest) -> dict[str, Any]:
    """PATCH semantics: the fields given replace the NIC's; `fingerprint` must be the NIC's current one."""
    body = _body(request, "a NetworkInterface")
    nic_name = request.arg("networkInterface")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        nic = _nic(instance, nic_name)
        if body.get("fingerprint") != nic.get("fingerprint"):
            raise classic_error(412, "Supplied fingerprint does not match current network interface fingerprint.",
                                "conditionNotMet")
        moving = {k for k in ("network", "subnetwork") if k in body and body[k] != nic.get(k)}
        if moving:
            _require_stopped(instance, "its network interface can move to another network")
        for key, value in body.items():
            if key in {"fingerprint", "name", "kind"}:
                continue
            if key == "accessConfigs":
                value = [_access_config(state, c, ipv6=False) for c in value or []]
            elif key == "ipv6AccessConfigs":
                value = [_access_config(state, c, ipv6=True) for c in value or []]
            elif key == "network":
                value = compute.expand_url(state, str(value), kind="networks")
            elif key == "subnetwork":
                value = compute.expand_url(state, str(value))
            if value in ([], None):
                nic.pop(key, None)
            else:
                nic[key] = value
        nic["fingerprint"] = compute._fingerprint()   # noqa: SLF001

    return mutate(request, "updateNetworkInterface", change, audit_body=body)


def set_service_account(request: SimRequest) -> dict[str, Any]:
    body = _body(request, "an InstancesSetServiceAccountRequest")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        _require_stopped(instance, "its service account can be changed")
        email = body.get("email")
        if email in (None, "", "default"):
            email = compute.default_service_account(state)
        instance["serviceAccounts"] = [{"email": email, "scopes": list(body.get("scopes") or [])}]

    return mutate(request, "setServiceAccount", change, audit_body=body)


def set_labels(request: SimRequest) -> dict[str, Any]:
    body = _body(request, "an InstancesSetLabelsRequest")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        if body.get("labelFingerprint") != instance.get("labelFingerprint"):
            raise classic_error(412, "Labels fingerprint either invalid or resource labels have changed",
                                "conditionNotMet")
        labels = body.get("labels") or {}
        if labels:
            instance["labels"] = dict(labels)
        else:
            instance.pop("labels", None)
        instance["labelFingerprint"] = compute._fingerprint()   # noqa: SLF001

    return mutate(request, "setLabels", change, audit_body=body)


def set_machine_type(request: SimRequest) -> dict[str, Any]:
    body = _body(request, "an InstancesSetMachineTypeRequest")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        _require_stopped(instance, "its machine type can be changed")
        if not body.get("machineType"):
            raise classic_error(400, "Required field 'machineType' not specified", "required")
        instance["machineType"] = compute.expand_url(state, str(body["machineType"]), zone=zone, kind="machineTypes")
        instance["cpuPlatform"] = compute._CPU_PLATFORMS.get(   # noqa: SLF001
            compute._machine_series(instance["machineType"]), "Intel Broadwell")   # noqa: SLF001

    return mutate(request, "setMachineType", change, audit_body=body)


def stop_instance(request: SimRequest) -> dict[str, Any]:
    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        instance["status"] = "TERMINATED"
        instance["lastStopTimestamp"] = compute.timestamp()

    return mutate(request, "stop", change, audit_body={})


def start_instance(request: SimRequest) -> dict[str, Any]:
    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        instance["status"] = "RUNNING"
        instance["lastStartTimestamp"] = compute.timestamp()

    operation = mutate(request, "start", change, audit_body={})
    with request.state.lock:
        started = copy.deepcopy(request.state.instances.get((request.path_args["zone"], request.path_args["instance"])))
    if started:
        integrity_log.record_boot(request.state, started, clock.now())   # each boot writes its own events
    return operation


# Fields `update` applies (module docstring); those marked stopped-only need a TERMINATED instance.
_UPDATABLE = ("labels", "serviceAccounts", "machineType", "confidentialInstanceConfig", "shieldedInstanceConfig",
              "metadata")
_STOPPED_ONLY = frozenset({"serviceAccounts", "machineType", "confidentialInstanceConfig"})


def update_instance(request: SimRequest) -> dict[str, Any]:
    """instances.update (PUT): the body is the whole Instance; its `fingerprint` must be the current one."""
    body = _body(request, "an Instance")

    def change(state: SimState, zone: str, instance: dict[str, Any]) -> None:
        if body.get("fingerprint") != instance.get("fingerprint"):
            raise classic_error(412, "Supplied fingerprint does not match current instance fingerprint.",
                                "conditionNotMet")
        changed = [k for k in _UPDATABLE if k in body and body[k] != instance.get(k)]
        # PUT semantics: a field left out of the body is cleared (for confidentialInstanceConfig Google
        # documents no default for update; the auditor reads an omission the same way).
        if "confidentialInstanceConfig" not in body and instance.get("confidentialInstanceConfig"):
            changed.append("confidentialInstanceConfig")
        if _STOPPED_ONLY & set(changed):
            _require_stopped(instance, f"{', '.join(sorted(_STOPPED_ONLY & set(changed)))} can be updated")
        for key in changed:
            if key not in body:
                instance.pop(key, None)
            elif key == "machineType":
                instance[key] = compute.expand_url(state, str(body[key]), zone=zone, kind="machineTypes")
            else:
                instance[key] = copy.deepcopy(body[key])
        if "labels" in changed:
            instance["labelFingerprint"] = compute._fingerprint()   # noqa: SLF001

    return mutate(request, "update", change, audit_body=body)

