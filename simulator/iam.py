"""Who may read and write the node's data: bucket IAM, project IAM and dataset access lists.

Google judges every object read or write against the bucket's IAM policy plus the project's (a
project-level storage role reaches every bucket of the project), and every table read against the
dataset's `access[]` plus the project's IAM policy. Without this, a staged outside reader would read
as freely as the node's service account and the reads control could never be shown refusing or
catching anything, so the simulator answers Google's 403 to a principal with no granting role.

Modelled: exact `user:`/`serviceAccount:`/`group:` members (group members from the node file's
`groups`), `domain:`, `allUsers`, `allAuthenticatedUsers`, and Cloud Storage's convenience values
(`projectOwner:P`, `projectEditor:P`, `projectViewer:P` = the holders of roles/owner, roles/editor,
roles/viewer on P). Not modelled: IAM conditions (a conditional binding is treated as granting),
deny policies, custom roles, and permissions other than object read/list/write and table reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sovaudit.simulator.state import SimState

# Roles that carry storage.objects.get (reading an object's data or metadata).
STORAGE_READ_ROLES = frozenset({
    "roles/storage.objectViewer", "roles/storage.objectUser", "roles/storage.objectAdmin", "roles/storage.admin",
    "roles/storage.legacyObjectReader", "roles/storage.legacyObjectOwner",
})
# storage.objects.list: the readers, plus the legacy bucket roles (which carry list, not get).
STORAGE_LIST_ROLES = STORAGE_READ_ROLES | frozenset({
    "roles/storage.legacyBucketReader", "roles/storage.legacyBucketWriter", "roles/storage.legacyBucketOwner",
})
# storage.objects.create / delete.
STORAGE_WRITE_ROLES = frozenset({
    "roles/storage.objectCreator", "roles/storage.objectUser", "roles/storage.objectAdmin", "roles/storage.admin",
    "roles/storage.legacyBucketWriter", "roles/storage.legacyBucketOwner",
})
# bigquery.tables.getData at the project level (basic roles included, as BigQuery grants them).
BIGQUERY_READ_ROLES = frozenset({
    "roles/bigquery.dataViewer", "roles/bigquery.dataEditor", "roles/bigquery.dataOwner", "roles/bigquery.admin",
    "roles/owner", "roles/editor", "roles/viewer",
})
_CONVENIENCE = {"projectOwner": "roles/owner", "projectEditor": "roles/editor", "projectViewer": "roles/viewer"}
# BigQuery's special groups name the holders of the project's basic roles.
_SPECIAL_GROUPS = {"projectOwners": "roles/owner", "projectWriters": "roles/editor", "projectReaders": "roles/viewer"}


def identity_members(state: SimState, principal: str) -> frozenset[str]:
    """Every IAM member string that names `principal` (an email): itself under its kind, the groups
    the node file puts it in, its domain, and the two public members."""
    email = principal.strip()
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    members = {f"{kind}:{email}", "allUsers"}
    if email:
        members.add("allAuthenticatedUsers")
        members.add(f"domain:{email.rsplit('@', 1)[-1]}")
    groups: Mapping[str, Sequence[str]] = state.node.get("groups") or {}
    for group, group_members in groups.items():
        if email in (group_members or ()):
            members.add(f"group:{group}")
    return frozenset(members)


def _project_role_holders(state: SimState, role: str) -> set[str]:
    return {member for binding in state.iam_policy.get("bindings") or () if binding.get("role") == role
            for member in binding.get("members") or ()}


def _holds(state: SimState, identities: frozenset[str], members: Iterable[str]) -> bool:
    for member in members:
        if member in identities:
            return True
        kind, _, project = member.partition(":")
        # projectOwner:P and friends reach the holders of P's basic role; only the node's project is known.
        if kind in _CONVENIENCE and project in (state.project_id, state.project_number):
            if identities & _project_role_holders(state, _CONVENIENCE[kind]):
                return True
    return False


def _granted(state: SimState, identities: frozenset[str], bindings: Iterable[Mapping[str, Any]],
             roles: frozenset[str]) -> bool:
    return any(binding.get("role") in roles and _holds(state, identities, binding.get("members") or ())
               for binding in bindings)


def may_use_bucket(state: SimState, bucket_policy: Mapping[str, Any], principal: str, roles: frozenset[str]) -> bool:
    """Whether `principal` holds one of `roles` on the bucket (its policy) or on the node's project."""
    identities = identity_members(state, principal)
    return (_granted(state, identities, bucket_policy.get("bindings") or (), roles)
            or _granted(state, identities, state.iam_policy.get("bindings") or (), roles))


def may_read_dataset(state: SimState, dataset: Mapping[str, Any], principal: str) -> bool:
    """Whether `principal` may read the dataset's tables: any role in its `access[]` (READER and up),
    or a project role carrying bigquery.tables.getData."""
    identities = identity_members(state, principal)
    if _granted(state, identities, state.iam_policy.get("bindings") or (), BIGQUERY_READ_ROLES):
        return True
    for entry in dataset.get("access") or ():
        if entry.get("view") or entry.get("routine") or entry.get("dataset"):
            continue  # authorized views/datasets grant other resources, not a principal
        if entry.get("userByEmail"):
            email = str(entry["userByEmail"])
            if {f"user:{email}", f"serviceAccount:{email}"} & identities:
                return True
        elif entry.get("groupByEmail"):
            if f"group:{entry['groupByEmail']}" in identities:
                return True
        elif entry.get("domain"):
            if f"domain:{entry['domain']}" in identities:
                return True
        elif entry.get("iamMember"):
            if _holds(state, identities, [str(entry["iamMember"])]):
                return True
        elif entry.get("specialGroup"):
            group = str(entry["specialGroup"])
            if group == "allAuthenticatedUsers" and "allAuthenticatedUsers" in identities:
                return True
            role = _SPECIAL_GROUPS.get(group)
            if role and identities & _project_role_holders(state, role):
                return True
    return False
