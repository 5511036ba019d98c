"""The Shielded VM integrity log: what Google writes when a VM boots (gcp-escape-routes.md §8.1).

Each time an AMD SEV-based Confidential VM boots, Google writes a launch attestation report event
into `projects/P/logs/compute.googleapis.com%2Fshielded_vm_integrity`: a `jsonPayload` (not an
AuditLog `protoPayload`) with `@type type.googleapis.com/cloud_integrity.IntegrityEvent`,
`bootCounter` (an int64, so a JSON string), and `sevLaunchAttestationReportEvent` carrying
`integrityEvaluationPassed` and the SEV policy bits, severity NOTICE, on the `gce_instance`
resource (labels instance_id, project_id, zone). A Shielded VM with integrity monitoring also gets
`earlyBootReportEvent` / `lateBootReportEvent`, whose pass/fail field is `policyEvaluationPassed`.

The log is not an audit log: it goes through `_Default`, so an exclusion or a disabled `_Default`
drops it (`audit_log.record` applies the node's Log Router, as for every entry).

Which technologies write the SEV event is [U] beyond "AMD SEV-based". The simulator takes one
reading: SEV and SEV_SNP (both AMD SEV-based) write it, TDX (Intel) and non-confidential VMs do not.
CC-04 is written to hold under either reading.

Scenarios stage what the hardware said through `seed.launch_attestation` (by task index): `omit`
(no event: the VM booted without SEV although its configuration says SEV), or `set` edits of the
event (`integrityEvaluationPassed: false`, `sevPolicy.debugEnabled: true`, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sovaudit.simulator import clock
from sovaudit.simulator.state import SimState

LOG_ID = "compute.googleapis.com%2Fshielded_vm_integrity"
EVENT_TYPE = "type.googleapis.com/cloud_integrity.IntegrityEvent"
# Technologies whose VMs write `sevLaunchAttestationReportEvent` in the simulator (see module docstring).
SEV_EVENT_TYPES = frozenset({"SEV", "SEV_SNP"})
# The policy a Confidential VM launches with on Google (the documented example).
DEFAULT_SEV_POLICY: dict[str, Any] = {"debugEnabled": False, "domainOnly": False, "esRequired": False,
                                      "keySharingAllowed": False, "minApiMajor": 0, "minApiMinor": 0,
                                      "sendAllowed": True, "sevOnly": True}


def confidential_type(instance: Mapping[str, Any]) -> str:
    """The VM's confidential technology ('' when not confidential); enabled without a type means SEV."""
    config = instance.get("confidentialInstanceConfig") or {}
    if not isinstance(config, Mapping):
        return ""
    kind = str(config.get("confidentialInstanceType") or "")
    if kind and kind != "CONFIDENTIAL_INSTANCE_TYPE_UNSPECIFIED":
        return kind
    return "SEV" if config.get("enableConfidentialCompute") else ""


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    if value is None:
        target.pop(parts[-1], None)
    else:
        target[parts[-1]] = value


def _entry(state: SimState, instance: Mapping[str, Any], zone: str, when: datetime, boot_counter: int,
           event_key: str, event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "jsonPayload": {"@type": EVENT_TYPE, "bootCounter": str(boot_counter), event_key: copy.deepcopy(dict(event))},
        "logName": f"projects/{state.project_id}/logs/{LOG_ID}",
        "resource": {"type": "gce_instance", "labels": {"instance_id": str(instance.get("id", "")),
                                                        "project_id": state.project_id, "zone": zone}},
        "severity": "NOTICE",
        "timestamp": clock.rfc3339(when),
    }


def record_boot(state: SimState, instance: Mapping[str, Any], booted: datetime, *,
                knob: Mapping[str, Any] | None = None) -> None:
    """Write what Google logs when `instance` boots: Shielded VM boot reports when integrity monitoring
    is on, and the SEV launch attestation report for an AMD SEV-based Confidential VM. `bootCounter`
    counts the VM's boots (0 at creation, then one more per start); `knob` (a scenario's staging)
    applies to the first boot only."""
    from sovaudit.simulator import audit_log

    zone = str(instance.get("zone", "")).rsplit("/", 1)[-1]
    with state.lock:
        counters = state.extras.setdefault("boot_counters", {})
        key = str(instance.get("selfLink") or instance.get("id", ""))
        boot_counter = counters.get(key, -1) + 1
        counters[key] = boot_counter
    if boot_counter:
        knob = None
    shielded = instance.get("shieldedInstanceConfig") or {}
    if isinstance(shielded, Mapping) and shielded.get("enableIntegrityMonitoring"):
        # Within the first second of the boot: a live simulator runs the VM's task at once, and a verify
        # started right after a short job must find the reports of boots that preceded its tasks.
        for offset, key in ((0.0, "earlyBootReportEvent"), (0.8, "lateBootReportEvent")):
            audit_log.record(state, _entry(state, instance, zone, booted + timedelta(seconds=offset), boot_counter,
                                           key, {"policyEvaluationPassed": True}), receive_delay_ms=2000)
    if confidential_type(instance) not in SEV_EVENT_TYPES or (knob or {}).get("omit"):
        return
    event: dict[str, Any] = {"integrityEvaluationPassed": True, "sevPolicy": copy.deepcopy(DEFAULT_SEV_POLICY)}
    for path, value in ((knob or {}).get("set") or {}).items():
        _set_path(event, str(path), value)
    audit_log.record(state, _entry(state, instance, zone, booted + timedelta(seconds=0.5), boot_counter,
                                   "sevLaunchAttestationReportEvent", event), receive_delay_ms=2000)
