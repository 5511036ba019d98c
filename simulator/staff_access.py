"""Google's own access to the node, as Google logs it: Access Transparency entries and Cloud KMS
Data Access entries carrying a Key Access Justification (SOV-07, SOV-08).

Nothing in the simulator is a Google employee, so these are seeded by scenarios (`seed:` knobs
`access_transparency` and `kms_uses`), at minutes into the recorded run:

```yaml
seed:
  access_transparency:
    - {at_minutes: 30, physical_country: IN, office_country: US, reason: CUSTOMER_INITIATED_SUPPORT,
       detail: "Case number: 4711", product: Cloud Storage, method: GoogleInternal.Read,
       resource: "//googleapis.com/storage/buckets/${project_id}-raw-vcfs/objects/vcfs/sample-0000.vcf.gz"}
  kms_uses:
    - {at_minutes: 40, key: gcs-raw, reason: THIRD_PARTY_DATA_REQUEST, method: Decrypt}
```

Access Transparency entries go to `cloudaudit.googleapis.com%2Faccess_transparency`, a `_Required`
log (jsonPayload `TransparencyLog`, resource type `project`). KMS uses are Data Access entries of
`cloudkms.googleapis.com`, written only when the project's audit config enables them, with the
justification under `metadata.entries` in Google's snake_case and string booleans (reference §8.3, §8.4).
The pipeline's own CMEK traffic is not logged as KMS uses: every such use would carry an allowed
justification, which the verifier's query leaves on the server anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sovaudit.policies.staff_access import AT_REASONS, KAJ_REASONS  # Google's enums: one list
from sovaudit.simulator import audit_log, clock
from sovaudit.simulator import schema as s
from sovaudit.simulator.state import SimState

TRANSPARENCY_LOG = "cloudaudit.googleapis.com%2Faccess_transparency"
TRANSPARENCY_TYPE = "type.googleapis.com/google.cloud.audit.TransparencyLog"
ACCESS_REASON_TYPE = "type.googleapis.com/google.cloud.ekms.v0.AccessReasonContext"
# ISO 3166-1 alpha-2, '??' (unknown) or a 3-letter continent code, as Access Transparency writes them.
COUNTRY = s.Text(r"[A-Z]{2}|\?\?|[A-Z]{3}", "an ISO 3166-1 alpha-2 code, ?? or a continent code")

KEY_POLICY_SPEC = s.Struct(optional={"allowedAccessReasons": s.ListOf(s.OneOf(KAJ_REASONS))})

ACCESS_TRANSPARENCY_SPEC = s.ListOf(s.Struct(
    required={"physical_country": COUNTRY, "reason": s.OneOf(AT_REASONS)},
    optional={"at_minutes": s.Integer(minimum=0), "office_country": COUNTRY, "detail": s.Text(),
              "product": s.Text(), "method": s.Text(), "resource": s.Text(), "job_title": s.Text(),
              "employing_entity": s.Text(), "approval": s.Text()}))

KMS_USES_SPEC = s.ListOf(s.Struct(
    required={"key": s.Text(), "reason": s.OneOf(KAJ_REASONS)},
    optional={"at_minutes": s.Integer(minimum=0), "method": s.OneOf(("Encrypt", "Decrypt")),
              "principal": s.Text(), "policy_enforced": s.Boolean(),
              # The key's allowedAccessReasons at the time of use, when it differed from today's.
              "allowed_at_use": s.ListOf(s.OneOf(KAJ_REASONS))}))


def _key_name(state: SimState, key: str) -> str:
    """A key id of the node's ring (`gcs-raw`) or a full key name."""
    if key.startswith("projects/"):
        return key
    ring = state.node["kms"]["key_ring"]
    return f"{ring}/cryptoKeys/{key}"


def access_transparency(state: SimState, accesses: Sequence[Mapping[str, Any]], running: datetime) -> None:
    """One Access Transparency entry per access (a `_Required` log: no exclusion drops it)."""
    for index, access in enumerate(accesses):
        moment = running + timedelta(minutes=int(access.get("at_minutes", 30)))
        event = hashlib.sha256(f"{state.project_id}/axt/{index}".encode()).hexdigest()[:30]
        reason: dict[str, Any] = {"type": access["reason"]}
        if access.get("detail"):
            reason["detail"] = access["detail"]
        resource = access.get("resource") or f"//googleapis.com/storage/buckets/{state.node['buckets']['raw']['name']}"
        payload: dict[str, Any] = {
            "@type": TRANSPARENCY_TYPE,
            "location": {"principalOfficeCountry": access.get("office_country", access["physical_country"]),
                         "principalEmployingEntity": access.get("employing_entity", "Google LLC"),
                         "principalPhysicalLocationCountry": access["physical_country"]},
            "principalJobTitle": access.get("job_title", "Engineering"),
            "product": [access.get("product", "Cloud Storage")],
            "reason": [reason],
            "permissionDetails": [{"permissionType": "DATA_READ"}],
            "eventId": event,
            "accesses": [{"methodName": access.get("method", "GoogleInternal.Read"), "resourceName": resource}],
        }
        if access.get("approval"):
            payload["accessApprovals"] = [access["approval"]]
        audit_log.record(state, {
            "jsonPayload": payload,
            "logName": audit_log.log_name(state, TRANSPARENCY_LOG),
            "operation": {"id": event[:12]},
            # Google labels the project resource with the project's number here (reference §8.3 example).
            "resource": {"type": "project", "labels": {"project_id": state.project_number}},
            "severity": "NOTICE",
            "timestamp": clock.rfc3339(moment),
        })


def kms_uses(state: SimState, uses: Sequence[Mapping[str, Any]], running: datetime) -> None:
    """Cloud KMS Data Access entries (DATA_READ) that record the justification Google presented."""
    storage_agent = f"service-{state.project_number}@gs-project-accounts.iam.gserviceaccount.com"
    for use in uses:
        key = _key_name(state, str(use["key"]))
        principal = str(use.get("principal") or storage_agent)
        if not audit_log.data_access_enabled(state, "cloudkms.googleapis.com", "DATA_READ", principal=principal):
            continue
        moment = running + timedelta(minutes=int(use.get("at_minutes", 30)))
        policy = (state.crypto_keys.get(key) or {}).get("keyAccessJustificationsPolicy")
        if use.get("allowed_at_use") is not None:
            policy = {"allowedAccessReasons": list(use["allowed_at_use"])}
        entries: dict[str, Any] = {"key_access_justification": {"@type": ACCESS_REASON_TYPE, "reason": use["reason"]}}
        enforced = use.get("policy_enforced", policy is not None)
        policy_meta: dict[str, Any] = {"customer_configured_policy_enforced": "true" if enforced else "false",
                                       "justification_propagated_to_ekm": "false"}
        if policy is not None:
            policy_meta["customer_configured_policy"] = {
                "allowed_access_reasons": list(policy.get("allowedAccessReasons") or [])}
        entries["key_access_justification_policy_metadata"] = policy_meta
        method = str(use.get("method", "Decrypt"))
        version = f"{key}/cryptoKeyVersions/1"
        location = key.split("/locations/", 1)[1].split("/", 1)[0] if "/locations/" in key else "global"
        audit_log.record(state, audit_log.audit_entry(
            state, log_id=audit_log.DATA_ACCESS, service="cloudkms.googleapis.com", method=method,
            resource_name=version, resource_type="cloudkms_cryptokeyversion",
            resource_labels={"project_id": state.project_id, "location": location,
                             "key_ring_id": key.split("/keyRings/", 1)[1].split("/", 1)[0] if "/keyRings/" in key else "",
                             "crypto_key_id": key.rsplit("/", 1)[-1], "crypto_key_version_id": "1"},
            principal=principal, timestamp=moment,
            permission=f"cloudkms.cryptoKeyVersions.useTo{method}", permission_type="DATA_READ",
            request={"@type": f"type.googleapis.com/google.cloud.kms.v1.{method}Request", "name": key},
            metadata={"entries": entries}))
