"""Launch attestation reports from the Shielded VM integrity log (CC-04), parsed from the raw entries.

When an AMD SEV-based Confidential VM boots, Google writes a `sevLaunchAttestationReportEvent` into
`projects/P/logs/compute.googleapis.com%2Fshielded_vm_integrity` (gcp-escape-routes.md §8.1): a
`jsonPayload` of `@type type.googleapis.com/cloud_integrity.IntegrityEvent` with `bootCounter` (int64,
a JSON string), `integrityEvaluationPassed` and the SEV policy bits, on the `gce_instance` resource
(labels instance_id, zone, project_id). The entries ride in the `logging.instance_inserts` query
(audit/collectors/logs.py), so this view picks them out by exact logName and @type.

This is what the hardware measured at launch, not what was asked for; it is still a log entry, so
the view also keeps what tells Google's record from a late copy (`receiveTimestamp`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import complete_items

PURPOSE = "logging.instance_inserts"
_FRACTION = re.compile(r"\.\d+")
LOG_ID = "compute.googleapis.com%2Fshielded_vm_integrity"
EVENT_TYPE = "type.googleapis.com/cloud_integrity.IntegrityEvent"
SEV_EVENT = "sevLaunchAttestationReportEvent"
# The technology each launch event key attests. Google documents only the SEV one ("each time an AMD
# SEV-based Confidential VM instance boots"); whether SEV-SNP or TDX VMs write it, or another event,
# is [U]. The SEV event is read as "an AMD SEV-family launch": it does not tell SEV from SEV-SNP.
EVENT_TECHNOLOGY = {SEV_EVENT: "SEV"}
# SEV policy bits that break the promise when set (AMD SEV guest policy): a debuggable guest's memory
# can be read by the hypervisor, and a guest that shares keys shares its memory encryption key.
FORBIDDEN_POLICY_BITS = {"debugEnabled": "allows debugging (the hypervisor can read and write guest memory)",
                         "keySharingAllowed": "allows key sharing with other guests"}


@dataclass(frozen=True)
class LaunchAttestation:
    """One launch attestation report event for one boot of one VM."""

    instance_id: str
    zone: str
    boot_counter: str
    technology: str
    evaluation_passed: Any      # as logged: True, False, or absent (None)
    sev_policy: Mapping[str, Any] | None
    timestamp: str
    receive_timestamp: str
    insert_id: str
    evidence: tuple[str, ...]

    @property
    def first_boot(self) -> bool:
        # int64 in JSON is a string ("0", as Google's example shows); a serializer that omits proto3
        # defaults would leave a zero counter out, so absent reads as 0 too.
        return self.boot_counter in {"", "0"}

    @property
    def receive_lag_seconds(self) -> float | None:
        """How long after the boot it reports the entry reached Logging (None when not computable)."""
        try:
            return (_parse_time(self.receive_timestamp) - _parse_time(self.timestamp)).total_seconds()
        except ValueError:
            return None

    def problems(self) -> list[str]:
        """What in this report breaks the confidential-computing promise ([] when nothing does)."""
        found = []
        if self.evaluation_passed is not True:
            # Absent is not a pass: a proto3 serializer omits a false bool, so both readings mean "not passed".
            given = "absent" if self.evaluation_passed is None else repr(self.evaluation_passed)
            found.append("integrityEvaluationPassed is false: the launch measurement did not pass the integrity "
                         "check" if self.evaluation_passed is False else
                         f"integrityEvaluationPassed is {given}, not true")
        if self.sev_policy is None:
            found.append("the report carries no sevPolicy: whether debugging or key sharing was allowed cannot "
                         "be shown")
        else:
            for bit, meaning in FORBIDDEN_POLICY_BITS.items():
                value = self.sev_policy.get(bit)
                # Absent reads as false (proto3 JSON omits false bools); anything but false/absent is set.
                if value is not None and value is not False:
                    found.append(f"sevPolicy.{bit} is {str(value).lower()}: the guest {meaning}")
        return found


def _parse_time(text: str) -> datetime:
    # Logging gives nanoseconds; Python parses at most microseconds. A time without a zone is refused.
    cleaned = _FRACTION.sub(lambda m: m.group(0)[:7], text.strip().replace("Z", "+00:00"))
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def launch_attestations(log: EvidenceLog, project: str) -> tuple[LaunchAttestation, ...]:
    """Every launch attestation event of `project` in the query's answer.

    Raises EvidenceIncomplete when the query failed or lost a page: absence is then unknown. Only
    entries of the node's own integrity log (exact logName), on a `gce_instance`, whose jsonPayload
    is an IntegrityEvent with a known launch event count; anything else in the answer is another
    question's (the insert audit entries)."""
    log_name = f"projects/{project}/logs/{LOG_ID}"
    found = []
    for item in complete_items(log, PURPOSE):
        for data in item.parsed.get("entries") or ():
            if not isinstance(data, Mapping) or data.get("logName") != log_name:
                continue
            payload = data.get("jsonPayload")
            resource = data.get("resource") or {}
            if not isinstance(payload, Mapping) or payload.get("@type") != EVENT_TYPE or \
                    not isinstance(resource, Mapping) or resource.get("type") != "gce_instance":
                continue
            labels = resource.get("labels") or {}
            for key, technology in EVENT_TECHNOLOGY.items():
                event = payload.get(key)
                if not isinstance(event, Mapping):
                    continue
                policy = event.get("sevPolicy")
                found.append(LaunchAttestation(
                    instance_id=str(labels.get("instance_id") or ""), zone=str(labels.get("zone") or ""),
                    boot_counter=str(payload.get("bootCounter", "")), technology=technology,
                    evaluation_passed=event.get("integrityEvaluationPassed"),
                    sev_policy=policy if isinstance(policy, Mapping) else None,
                    timestamp=str(data.get("timestamp") or ""), receive_timestamp=str(data.get("receiveTimestamp") or ""),
                    insert_id=str(data.get("insertId") or ""), evidence=(item.id,)))
    return tuple(found)
