"""Typed, frozen views of the raw REST JSON in an EvidenceLog.

Controls read these views, never the JSON directly, so that Google's spelling lives in one place:
field names stay as Google writes them on the wire (camelCase, compute's `networkIP`, audit
payloads' `methodName`), numbers that JSON carries as strings (`taskCount`, `outputRows`) become ints
here, and a purpose that is missing, failed, or stopped before its last page raises
EvidenceIncomplete naming the API and method — which evaluation turns into ERROR, never PASS.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit import locations
from sovaudit.audit.evidence import EvidenceItem, EvidenceLog

#: purpose (or purpose prefix before ':') -> the API call that answers it, for error messages.
PURPOSE_API: dict[str, str] = {
    "confidentialcomputing.jwks": "confidentialcomputing signing keys (JWKS)",
    "orgpolicy.effective": "orgpolicy policies.getEffectivePolicy",
    "resourcemanager.project": "cloudresourcemanager projects.get",
    "resourcemanager.iam_policy": "cloudresourcemanager projects.getIamPolicy",
    # the project's ancestors (audit/views_hierarchy.py)
    "resourcemanager.folder": "cloudresourcemanager folders.get",
    "resourcemanager.ancestor_iam": "cloudresourcemanager folders/organizations.getIamPolicy",
    "orgpolicy.level": "orgpolicy policies.get",
    "acm.perimeters": "accesscontextmanager servicePerimeters.list",
    "acm.access_levels": "accesscontextmanager accessLevels.list",
    "storage.bucket": "storage buckets.get",
    # access family (audit/views_access.py)
    "storage.bucket_iam": "storage buckets.getIamPolicy",
    "storage.project_buckets": "storage buckets.list",
    "bigquery.project_datasets": "bigquery datasets.list",
    "logging.data_reads": "logging entries.list",
    "kms.key": "cloudkms cryptoKeys.get",
    "bigquery.dataset": "bigquery datasets.get",
    "batch.job": "batch jobs.get",
    "compute.instance_template": "compute instanceTemplates.get",
    "compute.job_instances": "compute instances.aggregatedList",
    "logging.instance_inserts": "logging entries.list",
    "logging.data_writes": "logging entries.list",
    "logging.policy_denied": "logging entries.list",
    "bigquery.load_jobs": "bigquery jobs.list",
    "storage.manifests": "storage objects.list",
    "storage.manifest": "storage objects.get",
    "probe.batch": "batch jobs.create",
    "probe.bucket": "storage buckets.insert",
    "probe.dataset": "bigquery datasets.insert",
    "probe.batch_status": "batch jobs.get",
    "probe.batch_vms": "compute instances.aggregatedList",
    "probe.cleanup": "the probe's delete call",
    # the sweep of probe-labelled leftovers (audit/probes/cleanup.py, audit/probe_lookalikes.py)
    "cleanup.list": "batch jobs.list / storage buckets.list / bigquery datasets.list",
    "cleanup.creates": "logging entries.list",
    # SOV-09 (audit/views_assured_workloads.py)
    "assuredworkloads.workload": "assuredworkloads workloads.get",
    "assuredworkloads.violations": "assuredworkloads violations.list",
}


class EvidenceIncomplete(Exception):
    """A purpose the control needs was not collected, failed, or is missing pages."""

    def __init__(self, message: str, evidence_ids: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.evidence_ids = tuple(evidence_ids)


def api_of(purpose: str) -> str:
    return PURPOSE_API.get(purpose) or PURPOSE_API.get(purpose.split(":", 1)[0], purpose)


def complete_items(log: EvidenceLog, purpose: str) -> tuple[EvidenceItem, ...]:
    """All pages of a purpose, or EvidenceIncomplete if any page failed or the listing stopped early."""
    status = log.by_purpose(purpose)
    items = status.items
    failed = next((item for item in items if not item.ok), None)
    if not items or failed is not None or not status.complete:
        problem = failed.error_message() if failed is not None else status.problem
        raise EvidenceIncomplete(f"{purpose} ({api_of(purpose)}): {problem}", status.ids)
    for item in items:
        if not isinstance(item.parsed, dict):
            raise EvidenceIncomplete(f"{purpose} ({api_of(purpose)}): evidence {item.id} is not a JSON object",
                                     status.ids)
    return items


def _one(log: EvidenceLog, purpose: str) -> tuple[dict[str, Any], str]:
    items = complete_items(log, purpose)
    return items[-1].parsed, items[-1].id


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# The REST transports of the GAPIC clients ask for `$alt=json;enum-encoding=int`, and Google then
# answers enums as numbers: a Batch job's status.state arrives as 4, not "SUCCEEDED". Values from
# google.cloud.batch_v1.JobStatus.State (checked by tests/audit/test_views.py).
BATCH_JOB_STATES = ("STATE_UNSPECIFIED", "QUEUED", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED",
                    "DELETION_IN_PROGRESS", "CANCELLATION_IN_PROGRESS", "CANCELLED")
PERIMETER_TYPES = ("PERIMETER_TYPE_REGULAR", "PERIMETER_TYPE_BRIDGE")
# google.iam.v1.AuditLogConfig.LogType (getIamPolicy through the REST client answers 2, not "DATA_WRITE").
AUDIT_LOG_TYPES = ("LOG_TYPE_UNSPECIFIED", "ADMIN_READ", "DATA_WRITE", "DATA_READ")


def enum_name(value: Any, names: tuple[str, ...]) -> str:
    """An enum as its name whether it arrived as a name or (enum-encoding=int) as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return names[value] if 0 <= value < len(names) else str(value)
    if isinstance(value, str) and value.isdigit():
        return enum_name(int(value), names)
    return str(value or "")


def last_segment(url_or_name: str) -> str:
    return url_or_name.rstrip("/").rsplit("/", 1)[-1]


def location_in_name(name: str) -> str:
    """`projects/p/locations/us-central1/...` -> `us-central1` ('' when the name carries none)."""
    match = re.search(r"/locations/([^/]+)", name)
    return match.group(1).lower() if match else ""


# ------------------------------------------------------------------------------------------------
# Node posture


@dataclass(frozen=True)
class LocationPolicy:
    """The effective `gcp.resourceLocations` policy, rules merged (Google returns `in:` groups unexpanded)."""

    name: str
    allowed_values: tuple[str, ...]
    denied_values: tuple[str, ...]
    allow_all: bool
    deny_all: bool
    rule_count: int
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog) -> LocationPolicy:
        body, item_id = _one(log, "orgpolicy.effective")
        rules = (body.get("spec") or {}).get("rules") or []
        allowed: list[str] = []
        denied: list[str] = []
        allow_all = deny_all = False
        for rule in rules:
            values = rule.get("values") or {}
            allowed += values.get("allowedValues") or []
            denied += values.get("deniedValues") or []
            allow_all = allow_all or bool(rule.get("allowAll"))
            deny_all = deny_all or bool(rule.get("denyAll"))
        return cls(body.get("name", ""), tuple(allowed), tuple(denied), allow_all, deny_all, len(rules), (item_id,))


@dataclass(frozen=True)
class Project:
    project_id: str
    project_number: str
    evidence: tuple[str, ...]

    @property
    def default_compute_service_account(self) -> str:
        return f"{self.project_number}-compute@developer.gserviceaccount.com"

    @classmethod
    def from_log(cls, log: EvidenceLog) -> Project:
        body, item_id = _one(log, "resourcemanager.project")
        # v1 carries projectNumber; v3 carries name "projects/NUMBER".
        number = str(body.get("projectNumber") or "")
        if not number and str(body.get("name", "")).startswith("projects/"):
            number = last_segment(body["name"])
        if not number.isdigit():
            raise EvidenceIncomplete("resourcemanager.project (cloudresourcemanager projects.get): "
                                     "the answer carries no project number", (item_id,))
        return cls(str(body.get("projectId", "")), number, (item_id,))


@dataclass(frozen=True)
class AuditLogConfig:
    service: str
    log_types: frozenset[str]
    exempted: Mapping[str, tuple[str, ...]]
    level: str = ""   # where it is set: projects/N, folders/F or organizations/O


def _audit_configs(body: Mapping[str, Any], level: str) -> list[AuditLogConfig]:
    configs = []
    for config in body.get("auditConfigs") or []:
        types: set[str] = set()
        exempted: dict[str, tuple[str, ...]] = {}
        for entry in config.get("auditLogConfigs") or []:
            log_type = enum_name(entry.get("logType", ""), AUDIT_LOG_TYPES)
            types.add(log_type)
            exempted[log_type] = exempted.get(log_type, ()) + tuple(entry.get("exemptedMembers") or ())
        configs.append(AuditLogConfig(str(config.get("service", "")), frozenset(types), exempted, level))
    return configs


@dataclass(frozen=True)
class IamAuditConfigs:
    """The audit configs in force for the project: its own and every ancestor's (folders, the
    organization). Log types combine as a union across levels ("you can't disable Data Access audit
    logs that are enabled in the project's parent organization", reference §6.2). How exemptions
    combine across levels is unconfirmed ([U] §11.9): they are taken as a union too, so an exemption
    set at any level counts — under the other reading (a lower level cannot exempt what a higher one
    logs) this over-reports only exemptions set *below* a level that logs without them, which an
    auditor still wants named. An ancestor that cannot be read makes the whole view incomplete."""

    configs: tuple[AuditLogConfig, ...]
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog) -> IamAuditConfigs:
        from sovaudit.audit.views_hierarchy import Ancestry, ancestor_iam_policies

        body, item_id = _one(log, "resourcemanager.iam_policy")
        configs = _audit_configs(body, Ancestry.from_log(log).project)
        evidence = [item_id]
        for level, policy, level_id in ancestor_iam_policies(log):
            configs += _audit_configs(policy, level)
            evidence.append(level_id)
        return cls(tuple(configs), tuple(evidence))

    def logged(self, service: str, log_type: str) -> tuple[bool, tuple[str, ...]]:
        """Whether `log_type` is on for `service` (directly or via allServices, at any level), and who
        is exempted."""
        on = any(config.service in (service, "allServices") and log_type in config.log_types
                 for config in self.configs)
        return on, tuple(dict.fromkeys(member for _, member in self.exemptions(service, log_type)))

    def enabled_at(self, service: str, log_type: str) -> tuple[str, ...]:
        """The levels that enable `log_type` for `service`."""
        return tuple(dict.fromkeys(c.level for c in self.configs
                                   if c.service in (service, "allServices") and log_type in c.log_types))

    def exemptions(self, service: str, log_type: str) -> tuple[tuple[str, str], ...]:
        """(level, member) for every exemption from `log_type` on `service` (or allServices), wherever set."""
        return tuple(dict.fromkeys((c.level, member) for c in self.configs
                                   if c.service in (service, "allServices")
                                   for member in c.exempted.get(log_type, ())))

    def exemption_problems(self, service: str, log_type: str) -> list[str]:
        """`folders/123 exempts user:x from storage.googleapis.com DATA_READ`, one per level."""
        by_level: dict[str, list[str]] = {}
        for level, member in self.exemptions(service, log_type):
            by_level.setdefault(level or "the project", []).append(member)
        return [f"{level} exempts {', '.join(members)} from {service} {log_type}" for level, members in by_level.items()]

    def data_access_problems(self, log_type: str) -> list[str]:
        """Why the node's storage and BigQuery data access of `log_type` (DATA_WRITE or DATA_READ) would not
        all be in the data-access log ([] when it would be): the absence proofs of SEC-04 and SEC-07."""
        problems = []
        on, _ = self.logged("storage.googleapis.com", log_type)
        if not on:
            problems.append(f"storage.googleapis.com {log_type} audit logs are not enabled at the project, its "
                            "folders or its organization")
        else:
            problems += self.exemption_problems("storage.googleapis.com", log_type)
        # BigQuery writes its data-access entries without any auditConfig (whether one can switch them off is
        # unconfirmed, reference §11.5), but an exemption at any level still hides the exempted principal.
        problems += self.exemption_problems("bigquery.googleapis.com", log_type)
        return problems


# Service perimeters and access levels: sovaudit.audit.views_perimeter.


@dataclass(frozen=True)
class Bucket:
    name: str
    location: str            # lower-cased; GCS answers US-CENTRAL1
    location_type: str
    default_kms_key_name: str | None
    public_access_prevention: str
    uniform_access: bool
    evidence: tuple[str, ...]

    @property
    def resource(self) -> str:
        return f"projects/_/buckets/{self.name}"

    @classmethod
    def from_log(cls, log: EvidenceLog, name: str) -> Bucket:
        body, item_id = _one(log, f"storage.bucket:{name}")
        return cls.parse(body, item_id, name)

    @classmethod
    def parse(cls, body: Mapping[str, Any], item_id: str, name: str = "") -> Bucket:
        """A bucket from buckets.get or one item of buckets.list (the same resource shape)."""
        iam = body.get("iamConfiguration") or {}
        uniform = (iam.get("uniformBucketLevelAccess") or {}).get("enabled")
        if uniform is None:  # the legacy mirror of the same setting
            uniform = (iam.get("bucketPolicyOnly") or {}).get("enabled")
        return cls(
            name=str(body.get("name", name)), location=str(body.get("location", "")).lower(),
            location_type=str(body.get("locationType", "")).lower(),
            default_kms_key_name=(body.get("encryption") or {}).get("defaultKmsKeyName") or None,
            public_access_prevention=str(iam.get("publicAccessPrevention", "inherited")),
            uniform_access=bool(uniform), evidence=(item_id,),
        )


@dataclass(frozen=True)
class KmsKey:
    name: str
    location: str
    primary_state: str
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog, key_name: str) -> KmsKey:
        # A key version suffix is not part of the key's identity.
        key_name = key_name.split("/cryptoKeyVersions/", 1)[0]
        body, item_id = _one(log, f"kms.key:{key_name}")
        name = str(body.get("name", key_name))
        return cls(name, location_in_name(name), str((body.get("primary") or {}).get("state", "")), (item_id,))


@dataclass(frozen=True)
class Dataset:
    project: str
    dataset_id: str
    location: str            # lower-cased; BigQuery answers US / EU / us-central1
    kms_key_name: str | None
    evidence: tuple[str, ...]

    @property
    def resource(self) -> str:
        return f"projects/{self.project}/datasets/{self.dataset_id}"

    @classmethod
    def from_log(cls, log: EvidenceLog) -> Dataset:
        body, item_id = _one(log, "bigquery.dataset")
        ref = body.get("datasetReference") or {}
        return cls(str(ref.get("projectId", "")), str(ref.get("datasetId", "")), str(body.get("location", "")).lower(),
                   (body.get("defaultEncryptionConfiguration") or {}).get("kmsKeyName") or None, (item_id,))


# ------------------------------------------------------------------------------------------------
# The Batch job and its VMs


@dataclass(frozen=True)
class BatchJob:
    name: str
    uid: str
    region: str
    labels: Mapping[str, str]
    allowed_locations: tuple[str, ...]
    instance_template: str | None
    instance_policy: Mapping[str, Any] | None
    service_account: str | None
    network_interfaces: tuple[Mapping[str, Any], ...]
    state: str
    status_events: tuple[Mapping[str, Any], ...]
    task_count: int
    task_inputs: tuple[str, ...]
    raw: Mapping[str, Any]
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, body: Mapping[str, Any], item_id: str) -> BatchJob:
        allocation = body.get("allocationPolicy") or {}
        instances = allocation.get("instances") or [{}]
        group = (body.get("taskGroups") or [{}])[0]
        status = body.get("status") or {}
        return cls(
            name=str(body.get("name", "")), uid=str(body.get("uid", "")),
            region=location_in_name(str(body.get("name", ""))), labels=dict(body.get("labels") or {}),
            allowed_locations=tuple((allocation.get("location") or {}).get("allowedLocations") or ()),
            instance_template=instances[0].get("instanceTemplate") or None,
            instance_policy=instances[0].get("policy"),
            service_account=(allocation.get("serviceAccount") or {}).get("email") or None,
            network_interfaces=tuple((allocation.get("network") or {}).get("networkInterfaces") or ()),
            state=enum_name(status.get("state", ""), BATCH_JOB_STATES),
            status_events=tuple(status.get("statusEvents") or ()),
            task_count=_int(group.get("taskCount")) or 1,
            task_inputs=_task_inputs(group),
            raw=body, evidence=(item_id,),
        )

    @classmethod
    def from_log(cls, log: EvidenceLog) -> BatchJob:
        body, item_id = _one(log, "batch.job")
        return cls.parse(body, item_id)


def _task_inputs(group: Mapping[str, Any]) -> tuple[str, ...]:
    """The inputs a job names, one per task index ('' where it names none).

    Read from `taskGroups[0].taskEnvironments[i].variables.INPUT_URI` (one environment per task),
    else from `taskSpec.environment.variables.INPUT_URIS` (a JSON list or comma/newline separated),
    indexed by BATCH_TASK_INDEX. A job naming neither gives ().
    """
    per_task = [str((env.get("variables") or {}).get("INPUT_URI", "")) for env in group.get("taskEnvironments") or []]
    if any(per_task):
        return tuple(per_task)
    variables = ((group.get("taskSpec") or {}).get("environment") or {}).get("variables") or {}
    listed = variables.get("INPUT_URIS")
    if not listed:
        return ()
    try:
        decoded = json.loads(listed)
        if isinstance(decoded, list):
            return tuple(str(x) for x in decoded)
    except json.JSONDecodeError:
        pass
    return tuple(part.strip() for part in re.split(r"[,\n]", listed) if part.strip())


@dataclass(frozen=True)
class ConfidentialConfig:
    enabled: bool
    instance_type: str   # "" when unset; with enabled=True Google then means SEV

    @property
    def effective_type(self) -> str:
        if not self.enabled:
            return ""
        if self.instance_type in ("", "CONFIDENTIAL_INSTANCE_TYPE_UNSPECIFIED"):
            return "SEV"
        return self.instance_type

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> ConfidentialConfig:
        data = data or {}
        return cls(bool(data.get("enableConfidentialCompute")), str(data.get("confidentialInstanceType", "")))


@dataclass(frozen=True)
class InstanceTemplate:
    name: str
    self_link: str
    machine_type: str
    confidential: ConfidentialConfig
    network_interfaces: tuple[Mapping[str, Any], ...]
    service_accounts: tuple[str, ...]
    has_confidential_config: bool
    evidence: tuple[str, ...]

    @classmethod
    def from_log(cls, log: EvidenceLog) -> InstanceTemplate:
        body, item_id = _one(log, "compute.instance_template")
        props = body.get("properties") or {}
        return cls(
            name=str(body.get("name", "")), self_link=str(body.get("selfLink", "")),
            machine_type=last_segment(str(props.get("machineType", ""))),
            confidential=ConfidentialConfig.parse(props.get("confidentialInstanceConfig")),
            network_interfaces=tuple(props.get("networkInterfaces") or ()),
            service_accounts=tuple(str(sa.get("email", "")) for sa in props.get("serviceAccounts") or ()),
            has_confidential_config="confidentialInstanceConfig" in props, evidence=(item_id,),
        )


@dataclass(frozen=True)
class Instance:
    name: str
    zone: str
    machine_type: str
    labels: Mapping[str, str]
    confidential: ConfidentialConfig
    access_configs: tuple[Mapping[str, Any], ...]
    ipv6_access_configs: tuple[Mapping[str, Any], ...]
    network_ips: tuple[str, ...]
    service_accounts: tuple[str, ...]
    resource: str
    evidence: tuple[str, ...]
    # True when this VM no longer exists and is read from its compute.instances.insert request body.
    from_insert_log: bool = False
    # True when the VM still exists but no longer carries the job's uid label (a setLabels moved it
    # out of the label-filtered listing): it is read from the project's unfiltered VM listing.
    relabelled: bool = False
    instance_id: str = ""   # Compute's numeric id ("" when the source does not give it)

    @property
    def machine_series(self) -> str:
        return self.machine_type.split("-", 1)[0].lower()

    @property
    def source_note(self) -> str:
        """What a finding about this VM rests on, when it is not the live VM."""
        if self.relabelled:
            return " (no longer labelled with the job's uid: read from the project's VM listing)"
        return " (from its compute.instances.insert audit entry: the VM no longer exists)" \
            if self.from_insert_log else ""

    @classmethod
    def parse(cls, data: Mapping[str, Any], item_id: str, scope: str = "") -> Instance:
        zone = locations.normalize(str(data.get("zone") or scope))
        nics = data.get("networkInterfaces") or []
        name = str(data.get("name", ""))
        resource = str(data.get("selfLink") or "")
        if "/projects/" in resource:
            resource = "projects/" + resource.split("/projects/", 1)[1]
        return cls(
            name=name, zone=zone, machine_type=last_segment(str(data.get("machineType", ""))),
            labels=dict(data.get("labels") or {}),
            confidential=ConfidentialConfig.parse(data.get("confidentialInstanceConfig")),
            access_configs=tuple(ac for nic in nics for ac in nic.get("accessConfigs") or ()),
            ipv6_access_configs=tuple(ac for nic in nics for ac in nic.get("ipv6AccessConfigs") or ()),
            network_ips=tuple(str(nic.get("networkIP", "")) for nic in nics),
            service_accounts=tuple(str(sa.get("email", "")) for sa in data.get("serviceAccounts") or ()),
            resource=resource or f"zones/{zone}/instances/{name}", evidence=(item_id,),
            instance_id=str(data.get("id") or ""),
        )


def job_instances(log: EvidenceLog, job_uid: str | None) -> tuple[Instance, ...]:
    """The run's VMs: those of `compute.job_instances` labelled with the job's uid.

    The collector filters server-side already; filtering again keeps a too-wide answer (a filter the
    server ignored) from smuggling another job's VMs into the verdict.
    """
    found = instances(log, "compute.job_instances")
    if not job_uid:
        return found
    return tuple(vm for vm in found if vm.labels.get("batch-job-uid") == job_uid)


@dataclass(frozen=True)
class RunVms:
    """The run's VMs as the verdict sees them: those still there, plus those already deleted, as their
    compute.instances.insert audit entries recorded them.

    Cloud Batch deletes a job's VMs when the job ends (and replaces preempted or retried ones), so
    for a finished job the listing is usually empty; the Admin Activity log cannot be disabled and
    keeps each VM's full insert body. A listing that failed still raises EvidenceIncomplete: "gone"
    is only concluded from a complete answer. A change made to a VM after it was created (an access
    config added later, a relabel) is read from the window's Admin Activity (audit/vm_history.py).
    `live` holds the label-filtered listing's VMs plus relabelled ones (still existing).
    """

    vms: tuple[Instance, ...]
    listing_evidence: tuple[str, ...]

    @property
    def live(self) -> tuple[Instance, ...]:
        return tuple(vm for vm in self.vms if not vm.from_insert_log)

    @property
    def deleted(self) -> tuple[Instance, ...]:
        return tuple(vm for vm in self.vms if vm.from_insert_log)

    @property
    def relabelled(self) -> tuple[Instance, ...]:
        return tuple(vm for vm in self.vms if vm.relabelled)


def run_vms(log: EvidenceLog, job_uid: str | None) -> RunVms:
    """The VMs `job_instances` lists, plus the run's VMs whose insert entry names one no longer listed."""
    live = job_instances(log, job_uid)
    listing_ids = tuple(log.by_purpose("compute.job_instances").ids)
    if not job_uid or not log.by_purpose("logging.instance_inserts").items:
        return RunVms(live, listing_ids)
    try:
        recorded = inserted_instances(log, job_uid)
    except EvidenceIncomplete:
        if live:
            return RunVms(live, listing_ids)   # judge what exists; CC-03 reports the unreadable log
        raise   # nothing live and no readable log: ERROR naming logging entries.list
    live_names = {vm.name for vm in live}
    gone = tuple(vm for vm in recorded if vm.name not in live_names)
    # A VM inserted with the job's uid stays one of the run's VMs after a relabel: when the project's
    # unfiltered listing (collected for SEC-09) still shows it, its live state is judged, not its insert.
    elsewhere = _project_listing(log)
    found = tuple(dataclasses.replace(elsewhere[(vm.zone, vm.name)], relabelled=True)
                  if _same_vm(vm, elsewhere.get((vm.zone, vm.name))) else vm for vm in gone)
    extra = tuple(i for vm in found if vm.relabelled for i in vm.evidence)
    return RunVms(live + found, listing_ids + extra)


def _same_vm(inserted: Instance, listed: Instance | None) -> bool:
    """Whether a VM of the project's listing is the one the run inserted: same zone and name, and the same
    numeric id when both sources give one (a VM deleted and re-created under the same name is another VM,
    and the run's is then judged on its insert)."""
    if listed is None:
        return False
    return not (inserted.instance_id and listed.instance_id) or inserted.instance_id == listed.instance_id


def _project_listing(log: EvidenceLog) -> dict[tuple[str, str], Instance]:
    """The project's VMs by (zone, name) from `compute.project_instances`; {} when that listing is absent or
    incomplete (the run's VMs are then judged on their inserts, as before)."""
    if not log.by_purpose("compute.project_instances").items:
        return {}
    try:
        return {(vm.zone, vm.name): vm for vm in instances(log, "compute.project_instances")}
    except EvidenceIncomplete:
        return {}


def instances(log: EvidenceLog, purpose: str = "compute.job_instances") -> tuple[Instance, ...]:
    """VMs from aggregatedList pages (scopes holding only a `warning` are skipped) or plain list pages."""
    found: list[Instance] = []
    for item in complete_items(log, purpose):
        items = item.parsed.get("items")
        if isinstance(items, dict):
            for scope, scoped in items.items():
                for data in (scoped or {}).get("instances") or ():
                    found.append(Instance.parse(data, item.id, scope))
        elif isinstance(items, list):
            found += [Instance.parse(data, item.id) for data in items]
    return tuple(found)


# ------------------------------------------------------------------------------------------------
# Audit log entries


@dataclass(frozen=True)
class LogEntry:
    log_name: str
    timestamp: str
    insert_id: str
    resource_type: str
    resource_labels: Mapping[str, str]
    payload: Mapping[str, Any]
    operation: Mapping[str, Any]
    evidence: tuple[str, ...]

    @property
    def method_name(self) -> str:
        return str(self.payload.get("methodName", ""))

    @property
    def service_name(self) -> str:
        return str(self.payload.get("serviceName", ""))

    @property
    def resource_name(self) -> str:
        return str(self.payload.get("resourceName", ""))

    @property
    def principal(self) -> str:
        return str((self.payload.get("authenticationInfo") or {}).get("principalEmail", ""))

    @property
    def request(self) -> Mapping[str, Any]:
        return self.payload.get("request") or {}

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.payload.get("metadata") or {}

    @property
    def status(self) -> Mapping[str, Any]:
        return self.payload.get("status") or {}

    @property
    def ref(self) -> str:
        return f"{self.log_name}#{self.insert_id}" if self.insert_id else self.log_name


def is_instance_insert_with_body(entry: LogEntry) -> bool:
    """The `first` entry of a successful compute.instances.insert, the one carrying the request body.

    An LRO writes a first entry with the full body and a last entry with only {"@type"}; an insert
    whose status carries a code created no VM.
    """
    return (entry.method_name.endswith("compute.instances.insert") and bool(set(entry.request) - {"@type"})
            and not entry.status.get("code"))


def inserted_instances(log: EvidenceLog, job_uid: str) -> tuple[Instance, ...]:
    """The run's VMs as `logging.instance_inserts` recorded their creation, one per VM (the latest insert).

    Only inserts whose request labels carry this `batch-job-uid` count: another workload's VM inserted
    in the same window is not the run's. The zone comes from the resource name
    (`projects/P/zones/Z/instances/N`), as the request body of a zonal insert carries none.
    """
    found: dict[str, Instance] = {}
    for entry in log_entries(log, "logging.instance_inserts"):
        if not is_instance_insert_with_body(entry):
            continue
        request = entry.request
        labels = request.get("labels") or {}
        if not isinstance(labels, Mapping) or labels.get("batch-job-uid") != job_uid:
            continue
        zone_match = re.search(r"/zones/([^/]+)/", entry.resource_name)
        zone = zone_match.group(1) if zone_match else str(entry.resource_labels.get("zone", ""))
        name = str(request.get("name") or last_segment(entry.resource_name))
        vm = Instance.parse({**request, "name": name, "zone": zone, "selfLink": ""}, entry.evidence[0])
        resource = entry.resource_name or vm.resource
        found[resource] = dataclasses.replace(vm, resource=resource, evidence=entry.evidence, from_insert_log=True,
                                              instance_id=str(entry.resource_labels.get("instance_id") or ""))
    return tuple(found.values())


def log_entries(log: EvidenceLog, purpose: str) -> tuple[LogEntry, ...]:
    entries = []
    for item in complete_items(log, purpose):
        for data in item.parsed.get("entries") or ():
            resource = data.get("resource") or {}
            entries.append(LogEntry(
                log_name=str(data.get("logName", "")), timestamp=str(data.get("timestamp", "")),
                insert_id=str(data.get("insertId", "")), resource_type=str(resource.get("type", "")),
                resource_labels=dict(resource.get("labels") or {}),
                payload=dict(data.get("protoPayload") or data.get("jsonPayload") or {}),
                operation=dict(data.get("operation") or {}), evidence=(item.id,),
            ))
    return tuple(entries)


# ------------------------------------------------------------------------------------------------
# Integrity: load jobs and task manifests


@dataclass(frozen=True)
class LoadJob:
    job_id: str
    location: str
    state: str
    error: Mapping[str, Any] | None
    output_rows: int | None
    destination: str          # projects/P/datasets/D/tables/T ('' when the listing omitted it)
    source_uris: tuple[str, ...]
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], item_id: str) -> LoadJob | None:
        load = (data.get("configuration") or {}).get("load")
        stats = (data.get("statistics") or {}).get("load")
        if load is None and stats is None:
            return None  # not a load job
        ref = data.get("jobReference") or {}
        status = data.get("status") or {}
        table = (load or {}).get("destinationTable") or {}
        destination = (f"projects/{table.get('projectId')}/datasets/{table.get('datasetId')}/tables/{table.get('tableId')}"
                       if table else "")
        return cls(
            job_id=str(ref.get("jobId", "")), location=str(ref.get("location", "")),
            state=str(status.get("state") or data.get("state", "")),
            error=status.get("errorResult") or data.get("errorResult"),
            output_rows=_int((stats or {}).get("outputRows")), destination=destination,
            source_uris=tuple((load or {}).get("sourceUris") or ()), evidence=(item_id,),
        )


def load_jobs(log: EvidenceLog) -> dict[str, LoadJob]:
    """Load jobs by job id, from jobs.list pages (`jobs[]`) or jobs.get answers (one job per item)."""
    found: dict[str, LoadJob] = {}
    for item in complete_items(log, "bigquery.load_jobs"):
        body = item.parsed
        for data in body.get("jobs") or ([body] if "jobReference" in body else []):
            job = LoadJob.parse(data, item.id)
            if job is not None:
                found[job.job_id] = job
    return found


MANIFEST_FIELDS = ("run_id", "job", "task_index", "input", "input_sha256", "records_in", "records_normalized",
                   "rows_loaded", "load_job_id", "table")


@dataclass(frozen=True)
class Manifest:
    """One task's counts, written by the task to `gs://<output>/manifests/<job>/<task_index>.json`:

    ```json
    {"run_id": "20261126T161800Z-3f9a1c", "job": "preprocess-genomes-001", "task_index": 0,
     "input": "gs://fed-node-us-raw-vcfs/sample-000.vcf.gz", "input_sha256": "<hex>",
     "records_in": 1200, "records_normalized": 1234, "rows_loaded": 1234,
     "load_job_id": "sovaudit_<run>_<digest>", "table": "fed-node-us.hospital_data.variants"}
    ```
    Counts are integers (strings of digits are accepted); `records_normalized` counts records after
    `bcftools norm -m -any` (one per alternate allele), which is what the load must carry.
    """

    object_name: str
    run_id: str
    job: str
    task_index: int
    input: str
    input_sha256: str
    records_in: int
    records_normalized: int
    rows_loaded: int
    load_job_id: str
    table: str
    evidence: tuple[str, ...]


def manifest_objects(log: EvidenceLog) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the listed manifest objects, and the listing's evidence ids."""
    items = complete_items(log, "storage.manifests")
    names = tuple(str(obj.get("name", "")) for item in items for obj in item.parsed.get("items") or ())
    return tuple(n for n in names if n.endswith(".json")), tuple(i.id for i in items)


def listed_manifests(log: EvidenceLog) -> dict[str, tuple[dict[str, Any], str]]:
    """Object name -> (custom metadata, listing evidence id), for listed manifests carrying every field.

    Built once per evaluation: looking each of a 1000-task run's manifests up in the listing would
    cost a million comparisons (quadratic in the run's size).
    """
    found: dict[str, tuple[dict[str, Any], str]] = {}
    for item in complete_items(log, "storage.manifests"):
        for obj in item.parsed.get("items") or ():
            metadata = obj.get("metadata") or {}
            name = str(obj.get("name", ""))
            if name not in found and all(field in metadata for field in MANIFEST_FIELDS):
                found[name] = (dict(metadata), item.id)
    return found


def manifest(log: EvidenceLog, object_name: str,
             listed: Mapping[str, tuple[dict[str, Any], str]] | None = None) -> Manifest:
    """One task manifest: the object's body (`storage.manifest:<object>`), or, when that was not
    downloaded, the same fields carried as the object's custom metadata in the listing.

    Pass `listed` (from `listed_manifests`) when reading many manifests of one log.
    """
    purpose = f"storage.manifest:{object_name}"
    listed_one = None
    if not log.by_purpose(purpose).items:
        listed_one = (listed if listed is not None else listed_manifests(log)).get(object_name)
    body, item_id = listed_one if listed_one is not None else _one(log, purpose)
    missing = [name for name in MANIFEST_FIELDS if name not in body]
    counts = {name: _int(body.get(name)) for name in ("task_index", "records_in", "records_normalized", "rows_loaded")}
    bad = [name for name, value in counts.items() if value is None and name not in missing]
    if missing or bad:
        raise EvidenceIncomplete(
            f"{purpose}: manifest {object_name} is malformed"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; not integers: {', '.join(bad)}" if bad else ""), (item_id,))
    return Manifest(
        object_name=object_name, run_id=str(body["run_id"]), job=str(body["job"]),
        task_index=counts["task_index"] or 0, input=str(body["input"]), input_sha256=str(body["input_sha256"]),
        records_in=counts["records_in"] or 0, records_normalized=counts["records_normalized"] or 0,
        rows_loaded=counts["rows_loaded"] or 0, load_job_id=str(body["load_job_id"]), table=str(body["table"]),
        evidence=(item_id,),
    )


# ------------------------------------------------------------------------------------------------
# Probe transcripts

LOCATION_CONSTRAINT = "gcp.resourceLocations"


@dataclass(frozen=True)
class ProbeAttempt:
    """One create call a probe made, as answered (4xx/5xx are answers here, not missing evidence)."""

    kind: str       # batch | bucket | dataset
    region: str
    status: int
    body: Any
    request: Mapping[str, Any]
    evidence: tuple[str, ...]
    message: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def cites_location_constraint(self) -> bool:
        """Whether the error body names gcp.resourceLocations in its message, errors[] or details[].

        Read from the body, not an exception class: over REST a 400 FAILED_PRECONDITION arrives as
        BadRequest and a 412 conditionNotMet as PreconditionFailed.
        """
        if not isinstance(self.body, dict):
            return False
        error = self.body.get("error", self.body)
        return LOCATION_CONSTRAINT in json.dumps(error)

    @property
    def created_name(self) -> str:
        """The name of what an accepted create made (job name, bucket name, dataset id)."""
        if not isinstance(self.body, dict):
            return ""
        ref = self.body.get("datasetReference") or {}
        if ref.get("datasetId"):
            return f"{ref.get('projectId', '')}.{ref['datasetId']}".lstrip(".")
        return str(self.body.get("name") or self.body.get("id") or "")


def probe_attempt(log: EvidenceLog, kind: str, region: str) -> ProbeAttempt:
    purpose = f"probe.{kind}:{region}"
    status = log.by_purpose(purpose)
    if not status.items:
        raise EvidenceIncomplete(f"{purpose} ({api_of(purpose)}): the probe was not run", ())
    item = status.items[-1]
    return ProbeAttempt(kind, region, item.status, item.parsed, dict(item.request), tuple(status.ids),
                        item.error_message() if not item.ok else "")


def probe_job_polls(log: EvidenceLog, region: str) -> tuple[BatchJob, ...]:
    """The polls of an accepted probe job, oldest first (only answered polls)."""
    polls = []
    for item in log.by_purpose(f"probe.batch_status:{region}").items:
        if item.ok and isinstance(item.parsed, dict):
            polls.append(BatchJob.parse(item.parsed, item.id))
    return tuple(polls)


def probe_cleanups(log: EvidenceLog) -> Iterator[tuple[str, EvidenceItem]]:
    """(resource, last delete attempt) for every `probe.cleanup:<resource>` purpose."""
    for purpose in log.purposes("probe.cleanup:"):
        items = log.by_purpose(purpose).items
        yield purpose.split(":", 1)[1], items[-1]

