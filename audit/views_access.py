"""Typed views of the access evidence: bucket IAM, dataset access lists, the project's buckets and
datasets, and the window's reads. Parsed from the raw JSON only, so `verify --evidence` re-judges.

The member rule (`outside_member`) is shared by SOV-04 (bucket IAM) and SOV-05 (dataset access):
a member is inside when it is the node's own project (convenience values, its service accounts and
service agents), a listed principal, or a user/group/domain of a listed domain. Everything else,
`allUsers` and `allAuthenticatedUsers` first, is outside. Comparisons are exact, never substrings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import Bucket, EvidenceIncomplete, complete_items
from sovaudit.policies.pack import PolicyPack

PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
_CONVENIENCE = ("projectOwner", "projectEditor", "projectViewer")
_PROJECT_SPECIAL_GROUPS = frozenset({"projectOwners", "projectReaders", "projectWriters"})


@dataclass(frozen=True)
class Binding:
    role: str
    members: tuple[str, ...]
    condition: str          # the condition's title or expression, '' when unconditional


@dataclass(frozen=True)
class BucketIam:
    bucket: str
    bindings: tuple[Binding, ...]
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog, bucket: str) -> BucketIam:
        items = complete_items(log, f"storage.bucket_iam:{bucket}")
        body, item_id = items[-1].parsed, items[-1].id
        bindings = []
        for binding in body.get("bindings") or ():
            condition = binding.get("condition") or {}
            bindings.append(Binding(str(binding.get("role", "")), tuple(str(m) for m in binding.get("members") or ()),
                                    str(condition.get("title") or condition.get("expression") or "")))
        return cls(bucket, tuple(bindings), (item_id,))


@dataclass(frozen=True)
class AccessEntry:
    """One `Dataset.access[]` item: a role and exactly one grantee (reference §3.6)."""

    role: str
    kind: str               # userByEmail, groupByEmail, domain, specialGroup, iamMember, view, routine, dataset
    value: str              # the email/domain/group/member, or `project.dataset[.table]` for views and datasets
    project: str            # for view/routine/dataset grants: the project they live in

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> AccessEntry:
        role = str(data.get("role", ""))
        for kind in ("userByEmail", "groupByEmail", "domain", "specialGroup", "iamMember"):
            if data.get(kind):
                return cls(role, kind, str(data[kind]), "")
        for kind in ("view", "routine"):
            ref = data.get(kind)
            if isinstance(ref, Mapping):
                name = ".".join(str(ref.get(k, "")) for k in ("projectId", "datasetId", "tableId" if kind == "view"
                                                               else "routineId"))
                return cls(role, kind, name, str(ref.get("projectId", "")))
        target = data.get("dataset")
        if isinstance(target, Mapping):
            ref = target.get("dataset") or {}
            return cls(role, "dataset", f"{ref.get('projectId', '')}.{ref.get('datasetId', '')}",
                       str(ref.get("projectId", "")))
        return cls(role, "unknown", str(dict(data)), "")


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset of the project as datasets.get returns it: where, under which key, shared with whom."""

    dataset_id: str
    location: str           # lower-cased
    kms_key_name: str | None
    access: tuple[AccessEntry, ...]
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog, purpose: str) -> DatasetInfo:
        items = complete_items(log, purpose)
        body, item_id = items[-1].parsed, items[-1].id
        ref = body.get("datasetReference") or {}
        return cls(str(ref.get("datasetId", "")), str(body.get("location", "")).lower(),
                   (body.get("defaultEncryptionConfiguration") or {}).get("kmsKeyName") or None,
                   tuple(AccessEntry.parse(a) for a in body.get("access") or () if isinstance(a, Mapping)),
                   (item_id,))


def project_buckets(log: EvidenceLog) -> tuple[tuple[Bucket, ...], tuple[str, ...]]:
    """Every bucket buckets.list showed for the project (all pages), and the evidence ids."""
    items = complete_items(log, "storage.project_buckets")
    found = [Bucket.parse(data, item.id) for item in items for data in item.parsed.get("items") or ()]
    return tuple(found), tuple(item.id for item in items)


def project_dataset_ids(log: EvidenceLog) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every dataset id datasets.list showed for the project (all pages), and the evidence ids."""
    items = complete_items(log, "bigquery.project_datasets")
    ids = [str((d.get("datasetReference") or {}).get("datasetId", ""))
           for item in items for d in item.parsed.get("datasets") or ()]
    return tuple(i for i in ids if i), tuple(item.id for item in items)


def _own_service_account(email: str, project_id: str, project_number: str) -> bool:
    """The node project's own service accounts and Google's service agents for it."""
    local, _, domain = email.partition("@")
    if domain == f"{project_id}.iam.gserviceaccount.com":
        return True
    if domain == "developer.gserviceaccount.com" and local == f"{project_number}-compute":
        return True
    if domain == "cloudservices.gserviceaccount.com" and local == project_number:
        return True
    # service-NUMBER@gcp-sa-*.iam.gserviceaccount.com / gs-project-accounts: per-project service agents.
    return local == f"service-{project_number}" and domain.endswith(".gserviceaccount.com")


def outside_member(member: str, pack: PolicyPack, project_number: str) -> str:
    """Why `member` (an IAM member string) is outside the node's allowed set; '' when it is inside."""
    if member in PUBLIC_MEMBERS:
        return f"{member} makes the data public"
    if member in pack.access.allowed_principals:
        return ""
    kind, _, value = member.partition(":")
    own = {str(pack.project), project_number}
    if kind in _CONVENIENCE:
        return "" if value in own else f"{member} grants the owners/editors/viewers of another project"
    if kind == "domain":
        return "" if value in pack.access.allowed_domains else f"{member} is a domain outside the allowed domains"
    if kind in ("user", "group"):
        domain = value.rsplit("@", 1)[-1] if "@" in value else ""
        if domain and domain in pack.access.allowed_domains:
            return ""
        return f"{member} is outside the allowed domains ({', '.join(pack.access.allowed_domains) or 'none'})"
    if kind == "serviceAccount":
        if _own_service_account(value, str(pack.project), project_number):
            return ""
        return f"{member} is a service account of another project and is not listed"
    return f"{member} is not a principal the pack allows"


def outside_access_entry(entry: AccessEntry, pack: PolicyPack, project_number: str) -> str:
    """Why a dataset access entry lets someone outside read the dataset; '' when it does not."""
    if entry.kind == "specialGroup":
        if entry.value in _PROJECT_SPECIAL_GROUPS:
            return ""
        if entry.value == "allAuthenticatedUsers":
            return "specialGroup allAuthenticatedUsers makes the dataset readable by any Google account"
        return f"specialGroup {entry.value} is not one the pack allows"
    if entry.kind == "iamMember":
        return outside_member(entry.value, pack, project_number)
    if entry.kind == "userByEmail":
        kind = "serviceAccount" if entry.value.endswith(".gserviceaccount.com") else "user"
        return outside_member(f"{kind}:{entry.value}", pack, project_number)
    if entry.kind == "groupByEmail":
        return outside_member(f"group:{entry.value}", pack, project_number)
    if entry.kind == "domain":
        return outside_member(f"domain:{entry.value}", pack, project_number)
    if entry.kind in ("view", "routine", "dataset"):
        if entry.project in {str(pack.project), project_number}:
            return ""
        return f"authorized {entry.kind} {entry.value} of another project can read the dataset"
    return f"an access entry of unknown shape ({entry.value}) cannot be judged"


def require(condition: bool, message: str, evidence: tuple[str, ...]) -> None:
    if not condition:
        raise EvidenceIncomplete(message, evidence)
