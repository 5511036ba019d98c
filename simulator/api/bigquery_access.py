"""Dataset access lists (`Dataset.access[]`), as BigQuery v2 keeps and reports them.

Reference gcp-escape-routes §3.6: each entry names one principal (userByEmail, groupByEmail, domain,
specialGroup, iamMember, view, routine, dataset) and a role; the role may be sent as
`roles/bigquery.dataOwner|dataEditor|dataViewer` but is returned as OWNER|WRITER|READER, and
datasets.patch replaces the whole array. The Admin Activity entry of the change carries
`datasetChange.dataset.acl.policy`; how `access[]` entries map into those IAM bindings is [U]
(§11 item 12): the simulator writes one binding per role with the entries' IAM member forms
(user:/serviceAccount:/group:/domain:/allAuthenticatedUsers/projectOwners:P ...), which is the
reading Google's IAM-on-datasets documentation suggests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from sovaudit.simulator.http import ApiError

ROLES = {"roles/bigquery.dataowner": "OWNER", "roles/bigquery.dataeditor": "WRITER",
         "roles/bigquery.dataviewer": "READER", "owner": "OWNER", "writer": "WRITER", "reader": "READER"}
IAM_ROLES = {"OWNER": "roles/bigquery.dataOwner", "WRITER": "roles/bigquery.dataEditor",
             "READER": "roles/bigquery.dataViewer"}
_PRINCIPAL_KEYS = ("userByEmail", "groupByEmail", "domain", "specialGroup", "iamMember", "view", "routine", "dataset")
_SPECIAL = {"projectOwners": "projectOwner", "projectWriters": "projectEditor", "projectReaders": "projectViewer"}


def _invalid(message: str) -> ApiError:
    return ApiError(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT",
                                    "errors": [{"message": message, "domain": "global", "reason": "invalid"}]}})


def normalize_access(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate each entry (exactly one principal) and return it with the role BigQuery reports."""
    found = []
    for index, entry in enumerate(entries):
        keys = [k for k in _PRINCIPAL_KEYS if entry.get(k)]
        if len(keys) != 1:
            raise _invalid(f"Invalid value at 'dataset.access[{index}]': exactly one of "
                           f"{', '.join(_PRINCIPAL_KEYS)} must be set.")
        item = copy.deepcopy(dict(entry))
        if keys[0] not in ("view", "routine", "dataset"):
            role = ROLES.get(str(entry.get("role") or "").lower())
            if role is None:
                raise _invalid(f"Invalid value at 'dataset.access[{index}].role': {entry.get('role')!r}.")
            item["role"] = role
        found.append(item)
    return found


def iam_member(entry: Mapping[str, Any], project: str) -> str | None:
    if entry.get("userByEmail"):
        email = str(entry["userByEmail"])
        return f"{'serviceAccount' if email.endswith('.gserviceaccount.com') else 'user'}:{email}"
    if entry.get("groupByEmail"):
        return f"group:{entry['groupByEmail']}"
    if entry.get("domain"):
        return f"domain:{entry['domain']}"
    if entry.get("iamMember"):
        return str(entry["iamMember"])
    special = str(entry.get("specialGroup") or "")
    if special in _SPECIAL:
        return f"{_SPECIAL[special]}:{project}"
    return special or None


def acl_policy(access: Iterable[Mapping[str, Any]], project: str) -> dict[str, Any]:
    """`datasetChange.dataset.acl.policy`: one binding per role, members in entry order ([U] mapping)."""
    bindings: dict[str, list[str]] = {}
    for entry in access:
        member = iam_member(entry, project)
        role = IAM_ROLES.get(str(entry.get("role") or ""))
        if member and role:
            bindings.setdefault(role, []).append(member)
    return {"bindings": [{"role": role, "members": members} for role, members in bindings.items()]}
