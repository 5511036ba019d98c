"""Typed views of the window's posture changes (INT-02), parsed from `logging.posture_changes`.

Each Admin Activity entry becomes one `PostureChange`: who, when, what method on which resource, and
a verdict against the pack — `weakened` (a promise was relaxed, even if later restored), `neutral`
(tightened or unrelated; listed, never failed), `unknown` (the entry does not say enough to judge:
ERROR, never a pass), `probe` (the tool's own probe, recognised by name, label *and* principal) or
`refused` (the call failed, so nothing changed). Perimeter bodies are judged in
audit/controls/history.py, which reuses SEC-01's judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.locations import expand, is_allowed
from sovaudit.audit.probes import PROBE_LABEL, PROBE_PREFIX
from sovaudit.audit.probes.bigquery import DATASET_PREFIX, dataset_id
from sovaudit.audit.probes.storage import bucket_name
from sovaudit.audit.views import PURPOSE_API, LogEntry, last_segment
from sovaudit.audit.views_access import outside_member
from sovaudit.policies.pack import PolicyPack

PURPOSE = "logging.posture_changes"
PURPOSE_API[PURPOSE] = "logging entries.list"

WEAKENED, NEUTRAL, UNKNOWN, PROBE, REFUSED = "weakened", "neutral", "unknown", "probe", "refused"
# Data Access logs SEC-04/SEC-07 rely on (reference §6.2: allServices applies to every service).
AUDITED_SERVICES = frozenset({"storage.googleapis.com", "bigquery.googleapis.com", "allServices"})
DATA_LOG_TYPES = frozenset({"DATA_WRITE", "DATA_READ"})
LOCATIONS_CONSTRAINT = "gcp.resourceLocations"


@dataclass(frozen=True)
class PostureChange:
    """One posture mutation of the window and its verdict."""

    kind: str            # org policy | IAM | perimeter | bucket | dataset | KMS
    method: str
    resource: str
    principal: str
    timestamp: str
    verdict: str
    detail: str
    evidence: tuple[str, ...]
    entry: LogEntry

    def describe(self) -> str:
        who = self.principal or "an unknown principal"
        return f"{self.timestamp} {who} called {last_segment(self.method) or self.method} on {self.resource}: {self.detail}"


def verifier_identity(principal: str, pack: PolicyPack) -> str:
    """The principal whose probe entries are the tool's own; '' when it cannot be known.

    A real run records its ADC email. The simulator's clients are anonymous and the simulator logs an
    anonymous call as the node's workload identity (as every simulated API does), so an
    'anonymous (simulator)' verifier is that identity. Any other non-email principal (ADC without an
    email) excuses nothing: a probe-named resource is then judged like any other.
    """
    if "@" in principal and " " not in principal:
        return principal.removeprefix("serviceAccount:").removeprefix("user:")
    if principal.startswith("anonymous"):
        return str(pack.service_account)
    return ""


def _is_probe(name: str, location: str, labels: Mapping[str, Any], principal: str, verifier: str) -> bool:
    """Name, label and principal must all match the tool's probe convention (audit/probes)."""
    label = str(labels.get(PROBE_LABEL) or "")
    if not label or not verifier or principal != verifier or not location:
        return False
    region = location.lower()
    if name.startswith(PROBE_PREFIX):
        return name == bucket_name(label, region)
    if name.startswith(DATASET_PREFIX):
        return name == dataset_id(label, region)
    return False


def _outside_values(values: Iterable[Any], pack: PolicyPack) -> list[str]:
    allowed = expand(pack.jurisdiction.allowed_policy_values) | set(pack.jurisdiction.allowed_regions)
    outside = []
    for value in values:
        try:
            wider = expand([str(value)]) - allowed
        except (KeyError, ValueError):
            wider = {str(value)}
        if wider:
            outside.append(str(value))
    return outside


def _org_policy(entry: LogEntry, pack: PolicyPack) -> tuple[str, str]:
    verb = last_segment(entry.method_name).rsplit(".", 1)[-1]
    named = [entry.resource_name, str((entry.request.get("policy") or {}).get("name") or ""),
             str(entry.request.get("name") or "")]
    policy_name = next((n for n in named if "/policies/" in n), "")
    if not policy_name:
        return UNKNOWN, f"{verb} entry names no policy (resourceName {entry.resource_name!r})"
    constraint = policy_name.rsplit("/policies/", 1)[-1]
    if verb == "DeletePolicy":
        # Deleting a level's policy hands the constraint to what is inherited from above, or to the
        # constraint's default at the top; what that allows is the chain's, not this entry's, to say.
        return WEAKENED, (f"deleted the policy on constraints/{constraint} at {policy_name.split('/policies/')[0]}: "
                          "the constraint then follows the levels above, or its default (for "
                          "gcp.resourceLocations: every location allowed)")
    policy = entry.request.get("policy")
    if not isinstance(policy, Mapping):
        return UNKNOWN, f"{verb} entry without the policy it wrote: cannot tell what constraints/{constraint} allowed"
    spec = policy.get("spec") or {}
    rules = spec.get("rules") or []
    if spec.get("reset"):
        return WEAKENED, f"reset constraints/{constraint} to its default (for gcp.resourceLocations: allow all)"
    if constraint == LOCATIONS_CONSTRAINT:
        if not rules and not spec.get("inheritFromParent"):
            return WEAKENED, "set gcp.resourceLocations without rules: every location allowed"
        for rule in rules:
            if rule.get("allowAll"):
                cond = " under a condition" if rule.get("condition") else ""
                return WEAKENED, f"set gcp.resourceLocations to allowAll{cond}: every location allowed"
        allowed = [v for rule in rules for v in ((rule.get("values") or {}).get("allowedValues") or ())]
        outside = _outside_values(allowed, pack)
        if outside:
            return WEAKENED, (f"allowed {', '.join(outside)} beside the jurisdiction's "
                              f"{', '.join(pack.jurisdiction.allowed_policy_values)}")
        if spec.get("inheritFromParent"):
            # The folder's/organization's rules merge in (reference §6.3); this control does not read them.
            return UNKNOWN, ("set gcp.resourceLocations to inherit from its parent: the values the parent adds "
                             "are not read here")
        return NEUTRAL, f"gcp.resourceLocations allows only {', '.join(allowed) or 'nothing (denyAll)'}"
    for rule in rules:
        if rule.get("allowAll") or rule.get("enforce") is False:
            return WEAKENED, f"relaxed constraints/{constraint} ({'allowAll' if rule.get('allowAll') else 'enforce: false'})"
    return NEUTRAL, f"{verb} on constraints/{constraint}"


def _project_iam(entry: LogEntry, pack: PolicyPack, project_number: str) -> tuple[str, str]:
    delta = (entry.payload.get("serviceData") or {}).get("policyDelta")
    if not isinstance(delta, Mapping):
        return UNKNOWN, "SetIamPolicy entry without serviceData.policyDelta: cannot tell what changed"
    weakened, neutral = [], []
    for change in delta.get("auditConfigDeltas") or ():
        service, log_type = str(change.get("service", "")), str(change.get("logType", ""))
        action, member = str(change.get("action", "")), str(change.get("exemptedMember", ""))
        relevant = service in AUDITED_SERVICES and log_type in DATA_LOG_TYPES
        if relevant and action == "REMOVE" and not member:
            weakened.append(f"switched {log_type} Data Access logs off for {service}")
        elif relevant and action == "ADD" and member:
            weakened.append(f"exempted {member} from {log_type} Data Access logs of {service}")
        else:
            neutral.append(f"{action} {log_type} {service}{' exemption ' + member if member else ''}")
    for change in delta.get("bindingDeltas") or ():
        member, role, action = str(change.get("member", "")), str(change.get("role", "")), str(change.get("action", ""))
        why = outside_member(member, pack, project_number) if action == "ADD" else ""
        if why:
            weakened.append(f"granted {role} to {member} ({why})")
        else:
            neutral.append(f"{action} {role} {member}")
    if weakened:
        return WEAKENED, "; ".join(weakened)
    return NEUTRAL, "; ".join(neutral) or "no binding or audit config changed"


def _bindings_outside(bindings: Iterable[Mapping[str, Any]], pack: PolicyPack, project_number: str) -> list[str]:
    found = []
    for binding in bindings:
        for member in binding.get("members") or ():
            why = outside_member(str(member), pack, project_number)
            if why:
                found.append(f"{binding.get('role')} to {member} ({why})")
    return found


def _key_problem(key: str, pack: PolicyPack) -> str:
    if not key:
        return "removed its CMEK key (Google-managed encryption from then on)"
    if not key.startswith(str(pack.kms.key_ring) + "/cryptoKeys/"):
        return f"switched its CMEK key to {key}, outside the node's key ring {pack.kms.key_ring}"
    return ""


def _bucket(entry: LogEntry, pack: PolicyPack, project_number: str, verifier: str) -> tuple[str, str]:
    name = entry.resource_name.rsplit("/", 1)[-1]
    request = entry.request
    method = entry.method_name
    if method == "storage.buckets.create":
        location = str(request.get("location") or entry.resource_labels.get("location") or "")
        if _is_probe(name, location, request.get("labels") or {}, entry.principal, verifier):
            return PROBE, f"the verifier's own probe bucket in {location}"
        if not location:
            return UNKNOWN, "bucket created without a location in its entry"
        if not is_allowed(location, pack.jurisdiction.allowed_policy_values):
            return WEAKENED, f"created bucket {name} in {location}, outside the jurisdiction"
        return NEUTRAL, f"created bucket {name} in {location}"
    if method == "storage.buckets.update":
        problems = []
        if "encryption" in request:
            problem = _key_problem(str((request.get("encryption") or {}).get("defaultKmsKeyName") or ""), pack)
            if problem:
                problems.append(problem)
        iam = request.get("iamConfiguration") or {}
        if "publicAccessPrevention" in iam and iam.get("publicAccessPrevention") != "enforced":
            problems.append(f"set publicAccessPrevention to {iam.get('publicAccessPrevention') or 'inherited'}")
        ubla = iam.get("uniformBucketLevelAccess") or iam.get("bucketPolicyOnly")
        if isinstance(ubla, Mapping) and ubla.get("enabled") is False:
            problems.append("switched uniform bucket-level access off (object ACLs apply again)")
        if problems:
            return WEAKENED, f"bucket {name}: " + "; ".join(problems)
        return NEUTRAL, f"updated bucket {name} ({', '.join(sorted(set(request) - {'@type'})) or 'no field'})"
    if method == "storage.setIamPermissions":
        outside = _bindings_outside(request.get("bindings") or (), pack, project_number)
        if outside:
            return WEAKENED, f"bucket {name} IAM granted " + "; ".join(outside)
        return NEUTRAL, f"bucket {name} IAM set to members the pack allows"
    return NEUTRAL, f"{method} on bucket {name}"


def _dataset(entry: LogEntry, pack: PolicyPack, project_number: str, verifier: str) -> tuple[str, str]:
    name = entry.resource_name.rsplit("/", 1)[-1]
    verb = entry.method_name.rsplit(".", 1)[-1]
    metadata = entry.metadata
    event = metadata.get("datasetCreation") or metadata.get("datasetChange") or {}
    dataset = event.get("dataset") or {}
    if verb == "SetIamPolicy":
        outside = _bindings_outside((entry.request.get("policy") or {}).get("bindings") or (), pack, project_number)
        return (WEAKENED, f"{entry.resource_name} IAM granted " + "; ".join(outside)) if outside else \
            (NEUTRAL, f"IAM of {entry.resource_name} set to members the pack allows")
    if verb not in ("InsertDataset", "PatchDataset", "UpdateDataset"):
        return NEUTRAL, f"{verb} on dataset {name}"
    locations = (entry.payload.get("resourceLocation") or {}).get("currentLocations") or ()
    location = str(locations[0]) if locations else ""
    problems = []
    if verb == "InsertDataset":
        labels = (dataset.get("datasetInfo") or {}).get("labels") or {}
        if _is_probe(name, location, labels, entry.principal, verifier):
            return PROBE, f"the verifier's own probe dataset in {location}"
        if not location:
            return UNKNOWN, f"dataset {name} created without a location in its entry"
        if not is_allowed(location, pack.jurisdiction.allowed_policy_values):
            problems.append(f"created in {location}, outside the jurisdiction")
    policy = (dataset.get("acl") or {}).get("policy") or {}
    problems += [f"access granted {text}" for text in _bindings_outside(policy.get("bindings") or (), pack,
                                                                        project_number)]
    if name == pack.dataset and verb != "InsertDataset":
        problem = _key_problem(str((dataset.get("defaultEncryption") or {}).get("kmsKeyName") or ""), pack)
        if problem:
            problems.append(problem)
    if problems:
        return WEAKENED, f"dataset {name}: " + "; ".join(problems)
    return NEUTRAL, f"{verb} on dataset {name}{' in ' + location if location else ''}"


def _kms(entry: LogEntry, pack: PolicyPack, project_number: str) -> tuple[str, str]:
    if entry.method_name.endswith("SetIamPolicy"):
        outside = _bindings_outside((entry.request.get("policy") or {}).get("bindings") or (), pack, project_number)
        if outside:
            return WEAKENED, f"key IAM granted {'; '.join(outside)}"
    return NEUTRAL, f"{last_segment(entry.method_name)} on {entry.resource_name}"


_KINDS = {"orgpolicy.googleapis.com": "org policy", "cloudresourcemanager.googleapis.com": "IAM",
          "accesscontextmanager.googleapis.com": "perimeter", "storage.googleapis.com": "bucket",
          "bigquery.googleapis.com": "dataset", "cloudkms.googleapis.com": "KMS"}


def posture_changes(entries: Iterable[LogEntry], pack: PolicyPack, project_number: str,
                    verifier: str) -> tuple[PostureChange, ...]:
    """Every entry of the window with its verdict (perimeter entries: `unknown` here, judged by INT-02)."""
    found = []
    for entry in entries:
        kind = _KINDS.get(entry.service_name)
        if kind is None:
            continue
        if entry.status.get("code"):
            verdict, detail = REFUSED, f"refused ({entry.status.get('message', 'error')}): nothing changed"
        elif kind == "org policy":
            verdict, detail = _org_policy(entry, pack)
        elif kind == "IAM":
            verdict, detail = _project_iam(entry, pack, project_number)
        elif kind == "bucket":
            verdict, detail = _bucket(entry, pack, project_number, verifier)
        elif kind == "dataset":
            verdict, detail = _dataset(entry, pack, project_number, verifier)
        elif kind == "KMS":
            verdict, detail = _kms(entry, pack, project_number)
        else:
            verdict, detail = UNKNOWN, "perimeter change"
        found.append(PostureChange(kind, entry.method_name, entry.resource_name, entry.principal, entry.timestamp,
                                   verdict, detail, entry.evidence, entry))
    return tuple(found)
