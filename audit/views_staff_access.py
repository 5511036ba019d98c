"""Typed views of Google's own access to the node: Access Transparency entries (SOV-07), the CMEK
keys' Key Access Justifications policies and the Cloud KMS uses that carried a justification (SOV-08).

Neither question costs a request of its own: Access Transparency entries come back with the Policy
Denied ones (`logging.policy_denied`), KMS uses with a disallowed justification with the data writes
(`logging.data_writes`), and the keys are the `kms.key:<name>` items SOV-04/SOV-05 already read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import EvidenceIncomplete, LogEntry, complete_items, log_entries
from sovaudit.policies.staff_access import KAJ_REASONS

TRANSPARENCY_LOG_SUFFIX = "/logs/cloudaudit.googleapis.com%2Faccess_transparency"
KMS_SERVICE = "cloudkms.googleapis.com"


def is_transparency_entry(entry: LogEntry) -> bool:
    """An Access Transparency entry (they share `logging.policy_denied` with the Policy Denied log)."""
    return entry.log_name.endswith(TRANSPARENCY_LOG_SUFFIX)


def is_kms_use(entry: LogEntry) -> bool:
    """A Cloud KMS Data Access entry (they share `logging.data_writes` with the data writes)."""
    return entry.service_name == KMS_SERVICE


def _kaj_reason(value: Any) -> str:
    """A KMS AccessReason as a name. The KMS client asks for `enum-encoding=int`, so Google answers
    numbers (google.cloud.kms_v1.AccessReason; KAJ_REASONS is in that order, checked by a test)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return KAJ_REASONS[value] if 0 <= value < len(KAJ_REASONS) else f"UNKNOWN_REASON_{value}"
    return str(value)


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ((str(value),) if value else ())


@dataclass(frozen=True)
class StaffReason:
    type: str
    detail: str


@dataclass(frozen=True)
class StaffAccess:
    """One Access Transparency entry: a Google employee's access to the node's content.

    Fields as `jsonPayload` (type.googleapis.com/google.cloud.audit.TransparencyLog) spells them;
    a field Google left out is '' or (), never guessed."""

    timestamp: str
    event_id: str
    physical_country: str
    office_country: str
    employing_entity: str
    job_title: str
    products: tuple[str, ...]
    reasons: tuple[StaffReason, ...]
    accesses: tuple[tuple[str, str], ...]     # (methodName, resourceName)
    approvals: tuple[str, ...]
    ref: str
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, entry: LogEntry) -> StaffAccess:
        payload = entry.payload
        location = payload.get("location") or {}
        # The reading-logs page prints `reason` as key/value pairs; it is taken as a list of {type, detail}
        # and a single object is accepted too.
        raw_reasons = payload.get("reason") or []
        if isinstance(raw_reasons, Mapping):
            raw_reasons = [raw_reasons]
        reasons = tuple(StaffReason(str(r.get("type", "")), str(r.get("detail", "")))
                        for r in raw_reasons if isinstance(r, Mapping))
        accesses = tuple((str(a.get("methodName", "")), str(a.get("resourceName", "")))
                         for a in payload.get("accesses") or [] if isinstance(a, Mapping))
        return cls(entry.timestamp, str(payload.get("eventId", "")),
                   str(location.get("principalPhysicalLocationCountry", "")),
                   str(location.get("principalOfficeCountry", "")), str(location.get("principalEmployingEntity", "")),
                   str(payload.get("principalJobTitle", "")), _texts(payload.get("product")), reasons, accesses,
                   _texts(payload.get("accessApprovals")), entry.ref, entry.evidence)

    def describe(self) -> str:
        """Everything a reader needs to recognise the access, in one line."""
        what = ", ".join(f"{method} {resource}".strip() for method, resource in self.accesses) or "no resource named"
        why = "; ".join(f"{r.type}" + (f" ({r.detail})" if r.detail else "") for r in self.reasons) or "no reason"
        who = " ".join(p for p in (self.job_title, f"of {self.employing_entity}" if self.employing_entity else "") if p)
        approvals = f"; approved by {', '.join(self.approvals)}" if self.approvals else "; no Access Approval"
        return (f"{self.timestamp} {who or 'Google staff'} (physically in {self.physical_country or 'unstated'}, "
                f"office {self.office_country or 'unstated'}) accessed {', '.join(self.products) or 'a product'}: "
                f"{what}; reason {why}{approvals}")


def staff_accesses(log: EvidenceLog) -> tuple[StaffAccess, ...]:
    """Every Access Transparency entry of the window (raises EvidenceIncomplete: the query failed)."""
    return tuple(StaffAccess.parse(e) for e in log_entries(log, "logging.policy_denied") if is_transparency_entry(e))


def private_logs_readable(log: EvidenceLog) -> bool:
    """Whether the verifier was shown private (Data Access) log entries at all in the window.

    Without `logging.privateLogEntries.list` Logging returns no private entries rather than an error
    (docs/permissions.md note 3), and Access Transparency is a private log too. Every run writes its
    outputs, so an answer to the data-writes question holding at least one entry shows the
    permission works; an empty one leaves "no Access Transparency entry" unproven. Raises
    EvidenceIncomplete when that question failed."""
    return any(item.parsed.get("entries") for item in complete_items(log, "logging.data_writes"))


def transparency_evidence(log: EvidenceLog) -> tuple[str, ...]:
    return tuple(log.by_purpose("logging.policy_denied").ids)


# ------------------------------------------------------------------------------------------------
# Key Access Justifications


@dataclass(frozen=True)
class KeyJustificationPolicy:
    """A CryptoKey's keyAccessJustificationsPolicy.

    `present` False: the field is absent, and Google then allows every justification. Present with no
    reasons: every encrypt/decrypt fails. proto3 JSON omits an empty repeated field, so Google answers
    that policy as `{}`; `{"allowedAccessReasons": []}` is read the same way."""

    key: str
    present: bool
    allowed_reasons: tuple[str, ...]
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog, key_name: str) -> KeyJustificationPolicy:
        key_name = key_name.split("/cryptoKeyVersions/", 1)[0]
        items = complete_items(log, f"kms.key:{key_name}")
        body = items[-1].parsed
        policy = body.get("keyAccessJustificationsPolicy")
        if policy is not None and not isinstance(policy, Mapping):
            raise EvidenceIncomplete(f"kms.key:{key_name}: keyAccessJustificationsPolicy is not an object",
                                     (items[-1].id,))
        reasons = (policy or {}).get("allowedAccessReasons") or []
        if not isinstance(reasons, list):
            raise EvidenceIncomplete(f"kms.key:{key_name}: allowedAccessReasons is not a list", (items[-1].id,))
        return cls(str(body.get("name", key_name)), policy is not None,
                   tuple(_kaj_reason(r) for r in reasons), (items[-1].id,))


@dataclass(frozen=True)
class KeyUse:
    """A Cloud KMS Data Access entry that records the justification Google presented for a key use."""

    timestamp: str
    method: str
    key: str
    principal: str
    reason: str
    policy_enforced: str          # "true"/"false" as Google prints it, '' when absent
    ref: str
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, entry: LogEntry) -> KeyUse:
        # `metadata.entries` keys are snake_case with string booleans, as Google prints them (§8.4).
        entries = entry.metadata.get("entries") or {}
        justification = entries.get("key_access_justification") or {}
        policy_meta = entries.get("key_access_justification_policy_metadata") or {}
        return cls(entry.timestamp, entry.method_name, entry.resource_name.split("/cryptoKeyVersions/", 1)[0],
                   entry.principal, str(justification.get("reason", "")),
                   str(policy_meta.get("customer_configured_policy_enforced", "")), entry.ref, entry.evidence)


def key_uses(log: EvidenceLog) -> tuple[KeyUse, ...]:
    """The window's KMS uses the data-access question returned (raises EvidenceIncomplete)."""
    return tuple(KeyUse.parse(e) for e in log_entries(log, "logging.data_writes") if is_kms_use(e))
