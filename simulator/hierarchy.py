"""The node's resource hierarchy: folders and the organization above the project.

Google attaches IAM policies (with `auditConfigs`) and org policies at every level of the hierarchy
(reference gcp-escape-routes §6). What is in force for the project is a *combination* of the
project's own settings and its ancestors':

- Data Access logging: the log types enabled anywhere up the chain are enabled for the project ("you
  can't disable Data Access audit logs that are enabled in the project's parent organization", §6.2),
  so the effective set is the union over project, folders and organization. How `exemptedMembers`
  combine across levels is unconfirmed ([U] §11.9); the simulator models a union (an exemption at any
  level exempts), the reading under which an exemption set above the project hides the most.
- Org policy (§6.3): walking from the organization down, a level's policy with `inheritFromParent`
  true adds its values to what it inherits (allowed values union, denied values union, and denied
  beats allowed), `inheritFromParent` false (the default) makes the level a new root, `reset` restores
  the constraint default, `allowAll`/`denyAll` replace the lists. `dryRunSpec` is audit-only and never
  enforced. A level without a policy passes its parent's through.

The node file declares it (`hierarchy: {folders: [...], organization: {...}}`, `project.parent`);
the REST handlers live in simulator/api/hierarchy_api.py. Everything here is pure over the state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sovaudit.audit.orgpolicy_merge import EffectiveList, merge_list
from sovaudit.simulator import schema as s
from sovaudit.simulator.state import SimState

EXTRAS_KEY = "hierarchy"
NODE_CREATED = "2026-01-15T09:30:00.000Z"
LOCATION_CONSTRAINT = "gcp.resourceLocations"

_RULE = s.Struct(optional={
    "values": s.Struct(optional={"allowedValues": s.ListOf(s.Text()), "deniedValues": s.ListOf(s.Text())}),
    "allowAll": s.Boolean(), "denyAll": s.Boolean(), "enforce": s.Boolean(),
    "condition": s.Struct(open=True),
})
_SPEC = s.Struct(optional={"rules": s.ListOf(_RULE), "inheritFromParent": s.Boolean(), "reset": s.Boolean()})
#: One level's org policy in a node file: the spec's fields flat (as the project's `org_policies` always
#: were), plus Google's `dryRunSpec` beside them. A level may hold only a dryRunSpec, or only `reset`.
ORG_POLICY_SPEC = s.Struct(optional={"rules": s.ListOf(_RULE), "inheritFromParent": s.Boolean(),
                                     "reset": s.Boolean(), "dryRunSpec": _SPEC})
ORG_POLICIES_SPEC = s.MapOf(ORG_POLICY_SPEC, key_pattern=r"[a-zA-Z]+\.[a-zA-Z.]+")
_AUDIT_CONFIGS = s.ListOf(s.Struct(required={"service": s.Text()}, open=True))
LEVEL_IAM_SPEC = s.Struct(optional={"bindings": s.ListOf(s.Struct(open=True)), "auditConfigs": _AUDIT_CONFIGS})
HIERARCHY_SPEC = s.Struct(optional={
    "folders": s.ListOf(s.Struct(
        required={"id": s.Text(r"\d{6,19}", "a quoted folder number such as \"876543210987\""),
                  "parent": s.Text(r"(organizations|folders)/\d+", "organizations/<number> or folders/<number>")},
        optional={"display_name": s.Text(), "iam_policy": LEVEL_IAM_SPEC, "org_policies": ORG_POLICIES_SPEC})),
    "organization": s.Struct(optional={"display_name": s.Text(), "domain": s.Text(), "iam_policy": LEVEL_IAM_SPEC,
                                       "org_policies": ORG_POLICIES_SPEC}),
})


# ------------------------------------------------------------------------------------------ node file

def consistency(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every parent must be the node's organization or a declared folder, with no cycle."""
    problems: list[tuple[str, str]] = []
    organization = doc["project"]["organization"]
    folders = {f"folders/{f['id']}": f for f in (doc.get("hierarchy") or {}).get("folders") or ()}
    known = {organization, *folders}
    parent = doc["project"].get("parent") or organization
    if parent not in known:
        problems.append(("project.parent", f"{parent!r} is neither {organization!r} nor a folder declared "
                                           "under hierarchy.folders"))
    for index, folder in enumerate((doc.get("hierarchy") or {}).get("folders") or ()):
        if folder["parent"] not in known:
            problems.append((f"hierarchy.folders[{index}].parent",
                             f"{folder['parent']!r} is neither {organization!r} nor a declared folder"))
            continue
        seen = {f"folders/{folder['id']}"}
        step = folder["parent"]
        while step in folders:
            if step in seen:
                problems.append((f"hierarchy.folders[{index}].parent", "the folders' parents form a cycle"))
                break
            seen.add(step)
            step = folders[step]["parent"]
    return problems


def policy_json(resource: str, constraint: str, policy: Mapping[str, Any], etag: str) -> dict[str, Any]:
    """A level's Policy as orgpolicy v2 returns it: `spec` (omitted when the level sets only a dry run)
    and `dryRunSpec`, each with the etag and updateTime Google fills in."""
    body: dict[str, Any] = {"name": f"{resource}/policies/{constraint}"}
    spec = {k: copy.deepcopy(v) for k, v in policy.items() if k in {"rules", "inheritFromParent", "reset"}}
    if spec:
        body["spec"] = {"etag": etag, "updateTime": NODE_CREATED, **spec}
    if policy.get("dryRunSpec"):
        body["dryRunSpec"] = {"etag": etag, "updateTime": NODE_CREATED, **copy.deepcopy(dict(policy["dryRunSpec"]))}
    body["etag"] = etag
    return body


def install(state: SimState, doc: Mapping[str, Any], etag: Any, iam_etag: Any) -> None:
    """Put the node file's folders and organization into the state (`state.extras["hierarchy"]`)."""
    hierarchy = doc.get("hierarchy") or {}
    organization = doc["project"]["organization"]
    levels: dict[str, dict[str, Any]] = {}
    for folder in hierarchy.get("folders") or ():
        name = f"folders/{folder['id']}"
        body = {"name": name, "parent": folder["parent"], "displayName": folder.get("display_name", name),
                "state": "ACTIVE", "createTime": NODE_CREATED, "updateTime": NODE_CREATED,
                "etag": f"W/\"{etag('folder', name)}\""}
        levels[name] = _level(name, body, folder, etag, iam_etag)
    org = hierarchy.get("organization") or {}
    org_body = {"name": organization, "displayName": org.get("display_name", org.get("domain", "example.org")),
                "directoryCustomerId": "C0" + organization.rsplit("/", 1)[-1][:7], "state": "ACTIVE",
                "createTime": NODE_CREATED, "updateTime": NODE_CREATED, "etag": f"W/\"{etag('org', organization)}\""}
    levels[organization] = _level(organization, org_body, org, etag, iam_etag)
    state.extras[EXTRAS_KEY] = levels


def _level(name: str, body: dict[str, Any], doc: Mapping[str, Any], etag: Any, iam_etag: Any) -> dict[str, Any]:
    iam_doc = doc.get("iam_policy") or {}
    # A folder or organization always carries its administrators' bindings on Google.
    admin = ("roles/resourcemanager.folderAdmin" if name.startswith("folders/")
             else "roles/resourcemanager.organizationAdmin")
    bindings = iam_doc.get("bindings") or [{"role": admin, "members": ["group:genomics-platform-admins@example.org"]}]
    iam: dict[str, Any] = {"version": 1, "etag": iam_etag("iam", name), "bindings": copy.deepcopy(bindings)}
    if iam_doc.get("auditConfigs"):
        iam["auditConfigs"] = copy.deepcopy(iam_doc["auditConfigs"])
    policies = {constraint: policy_json(name, constraint, policy, etag("policy", name, constraint))
                for constraint, policy in (doc.get("org_policies") or {}).items()}
    return {"resource": body, "iam_policy": iam, "org_policies": policies}


# ------------------------------------------------------------------------------------------ the chain

def levels(state: SimState) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = state.extras.setdefault(EXTRAS_KEY, {})
    return found


def ancestors(state: SimState) -> list[str]:
    """The project's ancestors, nearest first: `["folders/2", "folders/1", "organizations/9"]`."""
    chain: list[str] = []
    known = levels(state)
    step = str(state.project.get("parent") or state.organization)
    while step and step not in chain:
        chain.append(step)
        level = known.get(step)
        step = str(level["resource"].get("parent") or "") if level else ""
    return chain


def project_resource(state: SimState) -> str:
    return f"projects/{state.project_number}"


def level_policy(state: SimState, resource: str, constraint: str) -> dict[str, Any] | None:
    """The Policy set at `resource` (the project or an ancestor), or None."""
    if resource == project_resource(state):
        return state.org_policies.get(constraint)
    level = levels(state).get(resource)
    return (level or {}).get("org_policies", {}).get(constraint)


def chain_policies(state: SimState, constraint: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(resource, Policy or None) from the organization down to the project: the order of the merge."""
    with state.lock:
        resources = [*reversed(ancestors(state)), project_resource(state)]
        return [(r, copy.deepcopy(level_policy(state, r, constraint))) for r in resources]


# ------------------------------------------------------------------------------------------ list merge
# The merge itself is the product's (sovaudit.audit.orgpolicy_merge), as enforcement.py already shares
# sovaudit.audit.locations: one rule set, proven by its own table-driven tests against §6.3.

def effective_list(state: SimState, constraint: str, *, default_allow: bool = True) -> EffectiveList:
    return merge_list([(p or {}).get("spec") for _, p in chain_policies(state, constraint)],
                      default_allow=default_allow)


def effective_boolean_rules(state: SimState, constraint: str) -> list[dict[str, Any]]:
    """A boolean constraint: the nearest level with a spec decides (reset: the default)."""
    for _, policy in reversed(chain_policies(state, constraint)):
        spec = (policy or {}).get("spec") or {}
        if spec.get("reset"):
            break
        if spec.get("rules"):
            rules = copy.deepcopy(spec["rules"])
            for rule in rules:
                rule.pop("condition", None)
            return list(rules)
    return [{}]


# ------------------------------------------------------------------------------------------ audit configs

def level_iam_policy(state: SimState, resource: str) -> dict[str, Any] | None:
    if resource == project_resource(state):
        return state.iam_policy
    level = levels(state).get(resource)
    return level["iam_policy"] if level else None


def combined_audit_configs(state: SimState) -> list[dict[str, Any]]:
    """The project's auditConfigs followed by every ancestor's: together they are what is in force."""
    with state.lock:
        configs = list(state.iam_policy.get("auditConfigs") or [])
        for resource in ancestors(state):
            configs += list((level_iam_policy(state, resource) or {}).get("auditConfigs") or [])
    return configs


# google.iam.v1.AuditLogConfig.LogType: the REST clients send enums as numbers (enum-encoding=int).
_LOG_TYPES = ("LOG_TYPE_UNSPECIFIED", "ADMIN_READ", "DATA_WRITE", "DATA_READ")


def log_type_name(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_LOG_TYPES):
        return _LOG_TYPES[value]
    if isinstance(value, str) and value.isdigit():
        return log_type_name(int(value))
    return str(value or "")


def normalized_audit_configs(configs: Any) -> list[dict[str, Any]]:
    """auditConfigs as Google stores them: log types by name, whatever encoding the caller used."""
    result = copy.deepcopy(list(configs or []))
    for config in result:
        for entry in config.get("auditLogConfigs") or []:
            if "logType" in entry:
                entry["logType"] = log_type_name(entry["logType"])
    return result


def data_access_enabled(state: SimState, service: str, log_type: str) -> bool:
    """Whether `log_type` is on for `service` anywhere in the project's chain (the union, §6.2)."""
    for config in combined_audit_configs(state):
        if config.get("service") in {service, "allServices"}:
            if any(log_type_name(c.get("logType")) == log_type for c in config.get("auditLogConfigs", [])):
                return True
    return False


def exempted(state: SimState, service: str, log_type: str, principal: str) -> bool:
    """Whether an `exemptedMembers` entry at any level of the chain names `principal` (an email, as
    audit entries carry it) for `log_type` on `service` or allServices. A union across levels: how
    exemptions combine across the hierarchy is unconfirmed ([U] §11.9). `group:` members are
    resolved through the node file's `groups`."""
    groups: Mapping[str, Any] = state.extras.get("groups") or {}
    for config in combined_audit_configs(state):
        if config.get("service") not in {service, "allServices"}:
            continue
        for entry in config.get("auditLogConfigs", []):
            if log_type_name(entry.get("logType")) != log_type:
                continue
            for member in entry.get("exemptedMembers") or ():
                kind, _, email = str(member).partition(":")
                if email == principal or (kind == "group" and principal in (groups.get(email) or ())):
                    return True
    return False

