"""The finished pipeline run every simulated node starts with: Batch job `preprocess-genomes-001`.

What a sovereign node looks like after one successful run, consistently across APIs: the SUCCEEDED
job, one VM per task (from the confidential template, labelled with the job's id/uid), the
`v1.compute.instances.insert` audit pair of each VM, each task's outputs and counts manifest in the
processed bucket with their data-access entries, one BigQuery load job per task with its data-access
entries, each task's log lines, and some unrelated noise (including entries older than 24 hours, so
the Logging client's silent 24-hour clause shows). Scenarios bend this picture through `SeedOptions`.

Times are relative to "now" (the run ended ~30 minutes ago), so default Logging queries find them.
Everything else is deterministic: names, ids, counts and bytes derive from the node and the index.
Built for speed: 1000 tasks seed in well under a few seconds.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import google_crc32c

from sovaudit.simulator import audit_log, clock, integrity_log, staff_access
from sovaudit.simulator import schema as s
from sovaudit.simulator.actions import ACTION_SPEC
from sovaudit.simulator.seed_attestation import ATTESTATION_SPEC, attest_tasks
from sovaudit.simulator.state import SimState, StoredObject

SEED_SPEC = s.Struct(optional={
    # Dotted-path edits of seeded VMs (and of their insert request bodies in the audit log);
    # `index` is a task index (taken modulo the task count) or "all"; a null value deletes the field.
    "vm_overrides": s.ListOf(s.Struct(
        required={"index": s.Check(s.AnyValue(), lambda v: None if v == "all" or (isinstance(v, int) and v >= 0)
                                   else "must be a task index (0, 1, ...) or \"all\""),
                  "set": s.MapOf(s.AnyValue(), key_pattern=r"[A-Za-z0-9_.]+", min_items=1)})),
    # The job's service account and every VM's (e.g. "${default_service_account}").
    "service_account": s.Text(r"\$\{[a-z_]+\}|[^@\s]+@[^@\s]+", "a service account email or ${placeholder}"),
    # Extra objects written during the run, e.g. to a bucket outside the node's allow-list: judged by
    # VPC-SC (a refused one leaves only the Policy Denied entry) and logged in the bucket's project.
    "foreign_writes": s.ListOf(s.Struct(required={"bucket": s.Text(), "object": s.Text()},
                                        optional={"task_index": s.Integer(minimum=0), "location": s.Text()})),
    # VPC-SC refusals (Policy Denied entries) during the run.
    "policy_denied": s.ListOf(s.Struct(
        required={"bucket": s.Text()},
        optional={"object": s.Text(), "task_index": s.Integer(minimum=0),
                  "reason": s.OneOf(("RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER", "NO_MATCHING_ACCESS_LEVEL",
                                     "NETWORK_NOT_IN_SAME_SERVICE_PERIMETER", "SERVICE_NOT_ALLOWED_FROM_VPC"))})),
    # Loads that wrote fewer rows than the task normalized.
    "load_overrides": s.ListOf(s.Struct(required={"index": s.Integer(minimum=0),
                                                  "rows_missing": s.Integer(minimum=1)})),
    # VMs placed in another zone than the node's (e.g. a zone of another region), by task index.
    "vm_zones": s.ListOf(s.Struct(required={"index": s.Integer(minimum=0),
                                            "zone": s.Text(r"[a-z]+-[a-z]+\d+-[a-z]", "a zone such as us-east1-b")})),
    # Task indexes whose VM has no compute.instances.insert audit entry (a gap in the trail).
    "missing_insert_logs": s.ListOf(s.Integer(minimum=0)),
    # Real Cloud Batch deletes a job's VMs when it ends (true), or replaces some during the run (a list
    # of task indexes, e.g. preempted Spot VMs): only the audit log remembers them.
    "delete_vms": s.Check(s.AnyValue(), lambda v: None if isinstance(v, bool) or (
        isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v))
        else "must be true/false or a list of task indexes"),
    # BigQuery loads during the run into a dataset outside the node's (e.g. a look-alike dataset id).
    "foreign_loads": s.ListOf(s.Struct(required={"dataset": s.Text(r"[A-Za-z0-9_]+", "a dataset id")},
                                       optional={"project": s.Text(), "table": s.Text(r"[A-Za-z0-9_]+", "a table id"),
                                                 "task_index": s.Integer(minimum=0)})),
    "noise": s.Boolean(),
    # What the hardware reported at a seeded VM's first boot (simulator/integrity_log.py), by task index
    # (modulo the task count) or "all": `omit: true` (no launch attestation event although the VM is
    # configured as SEV), or `set` edits of the sevLaunchAttestationReportEvent (dotted paths, e.g.
    # `integrityEvaluationPassed: false`, `sevPolicy.debugEnabled: true`; null deletes the field).
    "launch_attestation": s.ListOf(s.Struct(
        required={"index": s.Check(s.AnyValue(), lambda v: None if v == "all" or (
            isinstance(v, int) and not isinstance(v, bool) and v >= 0) else "must be a task index or \"all\"")},
        optional={"omit": s.Boolean(),
                  "set": s.MapOf(s.AnyValue(), key_pattern=r"[A-Za-z0-9_.]+", min_items=1)})),
    # Tokens the tasks stored for CC-05, changed per task index (simulator/seed_attestation.py).
    "attestation": ATTESTATION_SPEC,
    # Accesses by Google staff (Access Transparency) and Cloud KMS uses with a Key Access Justification
    # during the run (simulator/staff_access.py).
    "access_transparency": staff_access.ACCESS_TRANSPARENCY_SPEC,
    "kms_uses": staff_access.KMS_USES_SPEC,
    # An insider's API calls replayed through the REST handlers after seeding (simulator/actions.py).
    "actions": s.ListOf(ACTION_SPEC),
    # Project log exclusions in force only while the run is recorded (created before it, deleted after
    # it, both in Admin Activity): the entries they match are never stored (simulator/log_router.py).
    "transient_exclusions": s.ListOf(s.Struct(required={"name": s.Text(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,99}", "an id"),
                                                        "filter": s.Text()})),
    # Network changes made during the run (Admin Activity pairs only; the node file holds the state the
    # verifier finds afterwards): e.g. a NAT added at minute 10 and removed at minute 50.
    "network_changes": s.ListOf(s.Struct(
        required={"collection": s.OneOf(("routers", "routes", "firewalls", "instances")),
                  "verb": s.Text(r"[a-zA-Z]+", "a Compute method such as insert, patch, delete, addAccessConfig"),
                  "name": s.Text()},
        optional={"region": s.Text(), "zone": s.Text(), "request": s.Struct(open=True),
                  "at_minutes": s.Integer(minimum=0), "principal": s.Text()})),
    # Earlier pipeline jobs of the same pipeline (same labels), finished before the recorded run
    # started: each with its own VMs (deleted by Batch at its end), insert entries, outputs, manifests
    # and loads, e.g. a violating job followed by the clean `preprocess-genomes-001`.
    "extra_jobs": s.ListOf(s.Struct(
        required={"id": s.Text(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", "a Batch job id")},
        optional={"minutes_before": s.Integer(minimum=0), "tasks": s.Integer(minimum=1),
                  "vm_overrides": s.ListOf(s.Struct(
                      required={"index": s.AnyValue(),
                                "set": s.MapOf(s.AnyValue(), key_pattern=r"[A-Za-z0-9_.]+", min_items=1)}))})),
})

def job_table_schema() -> list[dict[str, Any]]:
    """The variants table as the pipeline creates it (Variant Transforms shape, fixed columns only).

    Derived from the pipeline's own Arrow schema so that a pipeline run on the simulator can append
    to the recorded job's table: per-file INFO and FORMAT columns arrive by ALLOW_FIELD_ADDITION.
    """
    from sovaudit.pipeline.schema import VcfLayout
    from sovaudit.simulator.bqstore import bq_fields_from_arrow

    layout = VcfLayout(samples=("sample",), info=(), formats=(), csq=None, contigs=())
    return bq_fields_from_arrow(layout.arrow_schema())


@dataclass(frozen=True)
class SeedOptions:
    """How the seeded run deviates from a clean one (from scenarios' `seed:` blocks)."""

    job_tasks: int = 10
    vm_overrides: Sequence[Mapping[str, Any]] = ()
    service_account: str | None = None
    foreign_writes: Sequence[Mapping[str, Any]] = ()
    policy_denied: Sequence[Mapping[str, Any]] = ()
    load_overrides: Sequence[Mapping[str, Any]] = ()
    vm_zones: Sequence[Mapping[str, Any]] = ()
    missing_insert_logs: Sequence[int] = ()
    delete_vms: bool | Sequence[int] = False
    foreign_loads: Sequence[Mapping[str, Any]] = ()
    noise: bool = True
    transient_exclusions: Sequence[Mapping[str, Any]] = ()
    network_changes: Sequence[Mapping[str, Any]] = ()
    extra_jobs: Sequence[Mapping[str, Any]] = ()
    launch_attestation: Sequence[Mapping[str, Any]] = ()
    attestation: Sequence[Mapping[str, Any]] = ()
    access_transparency: Sequence[Mapping[str, Any]] = ()
    kms_uses: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, job_tasks: int) -> SeedOptions:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and k != "job_tasks"}
        return cls(job_tasks=job_tasks, **known)


@dataclass(frozen=True)
class TaskCounts:
    index: int
    input_object: str
    input_sha256: str
    records_in: int
    records_normalized: int
    rows_loaded: int
    load_job_id: str


@dataclass(frozen=True)
class SeededRun:
    """What the seed created, for tests and the demo (also kept in `state.extras['seed']`)."""

    job_name: str
    job_id: str
    job_uid: str
    window_start: str
    window_end: str
    task_count: int
    instances: tuple[str, ...]
    tasks: tuple[TaskCounts, ...] = field(repr=False)


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.0.c` in nested dicts/lists; None deletes the last key. Missing dicts are created."""
    parts = dotted.split(".")
    node: Any = target
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = copy.deepcopy(value)
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def object_json(bucket: str, name: str, data: bytes, *, created: datetime, content_type: str,
                kms_key: str | None, generation: int) -> dict[str, Any]:
    """An Object resource as storage/v1 returns it."""
    crc = google_crc32c.Checksum(data).digest()
    body = {
        "kind": "storage#object", "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}",
        "mediaLink": (f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/"
                      f"{name.replace('/', '%2F')}?generation={generation}&alt=media"),
        "name": name, "bucket": bucket, "generation": str(generation), "metageneration": "1",
        "contentType": content_type, "storageClass": "STANDARD", "size": str(len(data)),
        "md5Hash": _b64(hashlib.md5(data, usedforsecurity=False).digest()), "crc32c": _b64(crc),
        "etag": _b64(hashlib.sha1(f"{generation}".encode()).digest()[:8]),
        "timeCreated": clock.rfc3339_millis(created), "updated": clock.rfc3339_millis(created),
        "timeStorageClassUpdated": clock.rfc3339_millis(created),
    }
    if kms_key:
        body["kmsKeyName"] = f"{kms_key}/cryptoKeyVersions/1"
    return body


def _input_vcf(sample: str, records: int) -> bytes:
    """A tiny but valid VCF header plus a few records (inputs are evidence, not a workload here)."""
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=248956422>",
             f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}"]
    for n in range(min(records, 5)):
        lines.append(f"chr1\t{10_000 + 97 * n}\t.\tA\tG,T\t50\tPASS\t.\tGT\t0/1")
    lines.append(f"##sovaudit-synthetic-records={records}")
    return gzip.compress("\n".join(lines).encode() + b"\n", mtime=0)


def seed(state: SimState, options: SeedOptions | None = None) -> SeededRun:
    """Create the finished job and everything it left behind; returns a summary."""
    opts = options or SeedOptions(job_tasks=int(state.options.get("job_tasks", 10)))
    if opts.job_tasks < 1:
        raise ValueError(f"job_tasks must be at least 1, got {opts.job_tasks}")
    with state.lock:
        for extra in opts.extra_jobs:
            # Seeded first: the recorded run's inputs and table then stay exactly as a one-job node has them.
            extra_opts = SeedOptions(job_tasks=int(extra.get("tasks", 2)), vm_overrides=extra.get("vm_overrides", ()),
                                     delete_vms=True, noise=False)
            _Seeder(state, extra_opts, job_id=str(extra["id"]),
                    minutes_before=int(extra.get("minutes_before", 120))).run()
        seeder = _Seeder(state, opts)
        run = seeder.run()
        from sovaudit.simulator.api import assured_workloads

        assured_workloads.seed_violations(state, seeder.created)   # times relative to the recorded job
        return run


class _Seeder:
    def __init__(self, state: SimState, opts: SeedOptions, *, job_id: str | None = None,
                 minutes_before: int | None = None):
        self.state = state
        self.opts = opts
        self.node = state.node
        self.project = state.project_id
        self.number = state.project_number
        self.region = state.region
        job = self.node["job"]
        # An earlier job (`extra_jobs`): another id, created `minutes_before` the recorded run.
        self.extra = job_id is not None
        self.job_id = job_id or job["id"]
        digest = hashlib.sha256(f"{self.project}/{self.job_id}".encode()).hexdigest()
        self.job_uid = f"{self.job_id[:16].rstrip('-')}-{digest[:8]}-{digest[8:12]}-{digest[12:17]}"
        self.job_name = f"projects/{self.number}/locations/{self.region}/jobs/{self.job_id}"
        self.service_account = opts.service_account or self.node["service_account"]
        self.raw_bucket = self.node["buckets"]["raw"]
        self.processed_bucket = self.node["buckets"]["processed"]
        self.dataset = self.node["dataset"]
        self.compute_url = f"https://www.googleapis.com/compute/v1/projects/{self.project}"
        # Timeline: created 95 min ago, running from ~92 min, succeeded ~30 min ago.
        self.created = clock.now() - timedelta(minutes=95 + (minutes_before or 0))
        self.scheduled = self.created + timedelta(seconds=38)
        self.running = self.created + timedelta(minutes=3, seconds=12)
        self.succeeded = self.created + timedelta(minutes=65)
        # The pipeline's run id format (pipeline/spec.py): UTC start and a short digest.
        self.run_id = f"{self.created:%Y%m%dT%H%M%SZ}-{digest[17:23]}"
        self.run_label = self.run_id.lower()

    def run(self) -> SeededRun:
        count = self.opts.job_tasks
        instances: list[str] = []
        tasks: list[TaskCounts] = []
        overrides = self._vm_overrides(count)
        missing = {o["index"] % count: o["rows_missing"] for o in self.opts.load_overrides}
        template = self.state.instance_templates[self.node["instance_template"]["name"]]
        revert_exclusions = self._transient_exclusions()
        for index in range(count):
            instances.append(self._vm(index, template, overrides.get(index, [])))
            tasks.append(self._task_outputs(index, missing.get(index, 0)))
        self.tasks = tasks
        if self.attests:
            attest_tasks(self.state, run_id=self.run_id, vm_links=instances,
                         manifests=[(self.processed_bucket["name"], f"manifests/{self.job_id}/{i}.json")
                                    for i in range(count)],
                         issued=[self._task_time(i, 0.2) for i in range(count)],
                         overrides=() if self.extra else self.opts.attestation)
        if not self.extra:
            self._table(tasks)
        self._job(count)
        for write in self.opts.foreign_writes:
            self._foreign_write(write, count)
        for denied in self.opts.policy_denied:
            self._policy_denied(denied, count)
        for load in self.opts.foreign_loads:
            self._foreign_load(load, count)
        if self.opts.network_changes:
            from sovaudit.simulator.api.network import seed_changes

            seed_changes(self.state, self.opts.network_changes, self.running)
        staff_access.access_transparency(self.state, self.opts.access_transparency, self.running)
        staff_access.kms_uses(self.state, self.opts.kms_uses, self.running)
        revert_exclusions()
        if self.opts.delete_vms:
            self._delete_vms(None if self.opts.delete_vms is True else {i % count for i in self.opts.delete_vms})
        if self.opts.noise:
            self._noise()
        run = SeededRun(job_name=self.job_name, job_id=self.job_id, job_uid=self.job_uid,
                        window_start=clock.rfc3339(self.created), window_end=clock.rfc3339(self.succeeded),
                        task_count=count, instances=tuple(instances), tasks=tuple(tasks))
        if not self.extra:
            self.state.extras["seed"] = run
        return run

    # -------------------------------------------------------------------- helpers
    @property
    def attests(self) -> bool:
        """Whether the recorded job ran with in-guest attestation (node `job.attest`, CC-05): its tasks
        then stored tokens, as pipeline/task.py does when the job's environment asks."""
        return bool(self.node["job"].get("attest"))

    def _attest_variables(self) -> dict[str, str]:
        if not self.attests:
            return {}
        from sovaudit.policies.pack import DEFAULT_ATTESTATION_AUDIENCE

        return {"SOVAUDIT_ATTEST": "1", "SOVAUDIT_ATTEST_AUDIENCE": DEFAULT_ATTESTATION_AUDIENCE,
                "SOVAUDIT_ATTEST_REGION": self.dataset["location"]}

    def _transient_exclusions(self) -> Callable[[], None]:
        if not self.opts.transient_exclusions:
            return lambda: None
        from sovaudit.simulator.api.logging_config import transient_exclusions

        return transient_exclusions(self.state, self.opts.transient_exclusions,
                                    created=self.created - timedelta(minutes=4),
                                    deleted=self.succeeded + timedelta(minutes=6),
                                    principal="genomics-admin@example.org")

    def _task_time(self, index: int, minutes: float) -> datetime:
        jitter = (_h(self.job_uid, "t", index) % 90_000) / 1000.0
        return self.running + timedelta(minutes=minutes, seconds=jitter)

    def _vm_overrides(self, count: int) -> dict[int, list[Mapping[str, Any]]]:
        result: dict[int, list[Mapping[str, Any]]] = {}
        for override in self.opts.vm_overrides:
            targets = range(count) if override["index"] == "all" else [int(override["index"]) % count]
            for index in targets:
                result.setdefault(index, []).append(override["set"])
        return result

    # -------------------------------------------------------------------- compute
    def _vm(self, index: int, template: Mapping[str, Any], edits: Sequence[Mapping[str, Any]]) -> str:
        zones = self.state.zones
        moved = {int(z["index"]) % self.opts.job_tasks: str(z["zone"]) for z in self.opts.vm_zones}
        zone = moved.get(index) or zones[index % len(zones)]
        suffix = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[(_h(self.job_uid, index, k) % 36)] for k in range(4))
        name = f"{self.job_uid}-group0-{index}-{suffix}"
        zone_url = f"{self.compute_url}/zones/{zone}"
        self_link = f"{zone_url}/instances/{name}"
        instance_id = str(1_000_000_000_000_000_000 + _h(self_link) % 8_000_000_000_000_000_000)
        props = template["properties"]
        machine_type = f"{zone_url}/machineTypes/{props['machineType']}"
        inserted = self.running - timedelta(seconds=70) + timedelta(milliseconds=37 * index)
        labels = {**props.get("labels", {}), **self.node["job"]["labels"], "sovaudit-run-id": self.run_label,
                  "batch-job-id": self.job_id, "batch-job-uid": self.job_uid, "batch-node": ""}
        nics = []
        vm_region = zone.rsplit("-", 1)[0]
        for nic_index, nic in enumerate(props.get("networkInterfaces", [])):
            address = 2 + index + nic_index
            nic = copy.deepcopy(nic)
            if vm_region != self.region and "subnetwork" in nic:
                # A VM can only attach to a subnetwork of its own region.
                nic["subnetwork"] = nic["subnetwork"].replace(f"/regions/{self.region}/", f"/regions/{vm_region}/")
            nics.append({"kind": "compute#networkInterface", **nic,
                         "networkIP": f"{self._subnet_prefix()}.{address // 250}.{address % 250 + 2}",
                         "name": f"nic{nic_index}", "fingerprint": _b64(hashlib.sha1(f"{name}{nic_index}".encode()).digest()[:8])})
        service_accounts = copy.deepcopy(props.get("serviceAccounts", []))
        if self.opts.service_account:
            for account in service_accounts:
                account["email"] = self.opts.service_account
        disk = (props.get("disks") or [{}])[0]
        request_body: dict[str, Any] = {
            "name": name, "machineType": machine_type, "canIpForward": False,
            "networkInterfaces": [{k: v for k, v in nic.items() if k in {"network", "subnetwork", "nicType",
                                                                           "stackType", "accessConfigs"}}
                                  for nic in nics],
            "disks": [{"type": "PERSISTENT", "mode": "READ_WRITE", "boot": True, "autoDelete": True,
                       "deviceName": "persistent-disk-0",
                       "initializeParams": {**disk.get("initializeParams", {}),
                                            "diskType": f"{zone_url}/diskTypes/"
                                            + disk.get("initializeParams", {}).get("diskType", "pd-balanced")}}],
            "serviceAccounts": copy.deepcopy(service_accounts),
            "scheduling": copy.deepcopy(props.get("scheduling", {})),
            "labels": dict(labels),
            "shieldedInstanceConfig": copy.deepcopy(props.get("shieldedInstanceConfig", {})),
            "metadata": {"items": [{"key": "cloudbatch-job-uid", "value": self.job_uid},
                                   {"key": "cloudbatch-taskgroup-id", "value": "group0"}]},
        }
        if "confidentialInstanceConfig" in props:
            request_body["confidentialInstanceConfig"] = copy.deepcopy(props["confidentialInstanceConfig"])
        instance: dict[str, Any] = {
            "kind": "compute#instance", "id": instance_id, "creationTimestamp": clock.compute_timestamp(inserted),
            "name": name, "tags": {"fingerprint": "42WmSpB8rSM="}, "machineType": machine_type,
            "status": "TERMINATED", "zone": zone_url, "canIpForward": False, "networkInterfaces": nics,
            "disks": [{"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE",
                       "source": f"{zone_url}/disks/{name}", "deviceName": "persistent-disk-0", "index": 0,
                       "boot": True, "autoDelete": True, "interface": "SCSI",
                       "diskSizeGb": disk.get("initializeParams", {}).get("diskSizeGb", "50"),
                       "architecture": "X86_64"}],
            "metadata": {"kind": "compute#metadata", "fingerprint": "k3U0ZF6vT0Q=",
                         "items": copy.deepcopy(request_body["metadata"]["items"])},
            "serviceAccounts": service_accounts, "selfLink": self_link,
            "scheduling": copy.deepcopy(props.get("scheduling", {})),
            "cpuPlatform": "Unknown CPU Platform", "labels": labels,
            "labelFingerprint": _b64(hashlib.sha1(json.dumps(labels, sort_keys=True).encode()).digest()[:8]),
            "startRestricted": False, "deletionProtection": False,
            "shieldedInstanceConfig": copy.deepcopy(props.get("shieldedInstanceConfig", {})),
            "shieldedInstanceIntegrityPolicy": {"updateAutoLearnPolicy": True},
            "fingerprint": _b64(hashlib.sha1(name.encode()).digest()[:8]),
            "lastStartTimestamp": clock.compute_timestamp(inserted + timedelta(seconds=19)),
            "lastStopTimestamp": clock.compute_timestamp(self._task_time(index, 50)),
        }
        if "confidentialInstanceConfig" in props:
            instance["confidentialInstanceConfig"] = copy.deepcopy(props["confidentialInstanceConfig"])
        for edit in edits:
            for path, value in edit.items():
                if path == "machineType" and isinstance(value, str) and "/" not in value:
                    value = f"{zone_url}/machineTypes/{value}"   # a bare type means this VM's zone
                set_path(instance, path, value)
                set_path(request_body, path, value)
        self.state.instances[(zone, name)] = instance
        integrity_log.record_boot(self.state, instance, inserted + timedelta(seconds=19),
                                  knob=self._attestation_knob(index))
        operation_name = f"operation-{int(inserted.timestamp() * 1000)}-{_h(name) % 16**13:013x}-{instance_id[-8:]}"
        operation = {"id": str(_h("op", name) % 9_000_000_000_000_000_000), "name": operation_name,
                     "operationType": "insert", "progress": 0, "status": "RUNNING",
                     "targetId": instance_id, "targetLink": self_link, "zone": zone_url,
                     "user": audit_log.cloudservices_account(self.state),
                     "insertTime": clock.compute_timestamp(inserted), "startTime": clock.compute_timestamp(inserted),
                     "selfLink": f"{zone_url}/operations/{operation_name}"}
        mig = (f"{self.compute_url}/zones/{zone}/instanceGroupManagers/"
               f"{self.job_uid}-group0-0-{_h('mig', self.job_uid, zone) % 16**4:04x}")
        if index not in {i % self.opts.job_tasks for i in self.opts.missing_insert_logs}:
            audit_log.instance_insert(self.state, instance=instance, request_body=request_body, operation=operation,
                                      principal=audit_log.cloudservices_account(self.state), timestamp=inserted,
                                      links=[{"type": "MEMBER_OF", "source": mig}])
        return self_link

    def _attestation_knob(self, index: int) -> dict[str, Any]:
        """The scenario's staging of this VM's launch attestation event (merged, later entries win)."""
        knob: dict[str, Any] = {}
        for staged in self.opts.launch_attestation:
            if staged["index"] == "all" or int(staged["index"]) % self.opts.job_tasks == index:
                knob["omit"] = bool(staged.get("omit", knob.get("omit", False)))
                knob["set"] = {**knob.get("set", {}), **dict(staged.get("set") or {})}
        return knob

    def _delete_vms(self, indexes: set[int] | None) -> None:
        """What Cloud Batch does when a job ends (every VM) or replaces a worker (those of `indexes`): its
        managed instance group deletes the VM, leaving a `compute.instances.delete` admin-activity entry;
        the insert entries stay."""
        uid = self.job_uid
        doomed = [(key, vm) for key, vm in self.state.instances.items()
                  if vm.get("labels", {}).get("batch-job-uid") == uid
                  and (indexes is None or int(key[1].split("-group0-")[1].split("-")[0]) in indexes)]
        principal = audit_log.cloudservices_account(self.state)
        for offset, ((zone, name), vm) in enumerate(doomed):
            del self.state.instances[(zone, name)]
            audit_log.record(self.state, audit_log.audit_entry(
                self.state, log_id=audit_log.ACTIVITY, service="compute.googleapis.com",
                method="v1.compute.instances.delete",
                resource_name=f"projects/{self.project}/zones/{zone}/instances/{name}", resource_type="gce_instance",
                resource_labels={"instance_id": str(vm.get("id", "")), "project_id": self.project, "zone": zone},
                principal=principal, timestamp=self.succeeded + timedelta(seconds=40, milliseconds=53 * offset),
                permission="compute.instances.delete", permission_type="ADMIN_WRITE",
                request={"@type": "type.googleapis.com/compute.instances.delete"},
                operation={"id": f"operation-delete-{vm.get('id', name)}", "producer": "compute.googleapis.com",
                           "first": True},
                locations=[zone], user_agent="GCE Managed Instance Group for Batch"))

    def _subnet_prefix(self) -> str:
        cidr = self.node["network"].get("ip_cidr_range", "10.20.0.0/20")
        return ".".join(cidr.split("/")[0].split(".")[:2])

    # -------------------------------------------------------------------- storage + bigquery
    def _put_object(self, bucket: Mapping[str, Any], name: str, data: bytes, created: datetime,
                    content_type: str, custom: Mapping[str, Any] | None = None) -> None:
        generation = 1_700_000_000_000_000 + int(created.timestamp() * 1000) % 10**12 * 1000 + _h(name) % 1000
        kms_key = (bucket.get("encryption") or {}).get("defaultKmsKeyName")
        metadata = object_json(bucket["name"], name, data, created=created, content_type=content_type,
                               kms_key=kms_key, generation=generation)
        if custom:   # custom metadata: string values only, as Cloud Storage keeps them
            metadata["metadata"] = {key: str(value) for key, value in custom.items()}
        self.state.objects[(bucket["name"], name)] = StoredObject(metadata=metadata, data=data)

    def _task_outputs(self, index: int, rows_missing: int) -> TaskCounts:
        sample = f"sample-{index:04d}"
        records_in = 900 + _h(self.job_uid, "in", index) % 300
        normalized = records_in + _h(self.job_uid, "split", index) % 40
        loaded = max(normalized - rows_missing, 0)
        input_name = f"vcfs/{sample}.vcf.gz"
        input_data = _input_vcf(sample, records_in)
        self._put_object(self.raw_bucket, input_name, input_data, self.created - timedelta(days=2, minutes=index % 60),
                         "application/gzip")
        input_sha = hashlib.sha256(input_data).hexdigest()
        # The task reads its input VCF (a DATA_READ entry when the audit config enables it): the run's
        # own reads are what SEC-07 expects to find in the window.
        audit_log.storage_object_access(self.state, bucket=self.raw_bucket["name"], object_name=input_name,
                                        principal=self.service_account, timestamp=self._task_time(index, 0.5),
                                        location=self.raw_bucket["location"], method="storage.objects.get",
                                        caller_ip=self._vm_ip(index))
        # As pipeline/task.py names it: fixed by the run and the input's content.
        load_job_id = f"sovaudit_{self.run_id}_{input_sha[:40]}"
        table = f"{self.project}.{self.dataset['id']}.{self.dataset['table']}"
        output_name = f"variants/{self.job_id}/{sample}.parquet"
        output_data = b"PAR1" + hashlib.sha256(f"{self.job_uid}/{index}".encode()).digest() * 4 + b"PAR1"
        written = self._task_time(index, 31)
        processed_location = self.processed_bucket["location"]
        self._put_object(self.processed_bucket, output_name, output_data, written, "application/vnd.apache.parquet")
        audit_log.storage_object_access(self.state, bucket=self.processed_bucket["name"], object_name=output_name,
                                        principal=self.service_account, timestamp=written,
                                        location=processed_location, caller_ip=self._vm_ip(index))
        loaded_at = self._task_time(index, 34)
        job = self._load_job(index, load_job_id, output_name, loaded, written, loaded_at)
        self.state.bq_jobs[load_job_id] = job
        audit_log.bigquery_table_write(self.state, job=job, principal=self.service_account, timestamp=loaded_at)
        manifest = {"run_id": self.run_id, "job": self.job_id, "task_index": index,
                    "input": f"gs://{self.raw_bucket['name']}/{input_name}", "input_sha256": input_sha,
                    "records_in": records_in, "records_normalized": normalized, "rows_loaded": loaded,
                    "load_job_id": load_job_id, "table": table}
        manifest_name = f"manifests/{self.job_id}/{index}.json"
        manifest_at = loaded_at + timedelta(seconds=4)
        # pipeline/task.py also carries the counts as custom metadata (one listing reads a whole run).
        self._put_object(self.processed_bucket, manifest_name, json.dumps(manifest, indent=2).encode() + b"\n",
                         manifest_at, "application/json", custom=manifest)
        audit_log.storage_object_access(self.state, bucket=self.processed_bucket["name"], object_name=manifest_name,
                                        principal=self.service_account, timestamp=manifest_at,
                                        location=processed_location, caller_ip=self._vm_ip(index))
        input_uri = f"gs://{self.raw_bucket['name']}/{input_name}"
        seconds = 60 * 34 + (_h(self.job_uid, "s", index) % 9000) / 100
        for minutes, text in ((1, f"normalizing {input_uri} with bcftools norm -m -any"),
                              (33, f"load job {load_job_id}: {loaded} rows into {table}"),
                              (35, f"sovaudit task {index} of job {self.job_id}: input={input_uri} "
                                   f"sha256={input_sha[:16]} records_in={records_in} "
                                   f"records_normalized={normalized} rows_loaded={loaded} "
                                   f"load_job={load_job_id} table={table} seconds={seconds:.2f}")):
            audit_log.batch_task_log(self.state, job_uid=self.job_uid, job_id=self.job_id, task_index=index,
                                     text=text, timestamp=self._task_time(index, minutes))
        return TaskCounts(index=index, input_object=input_name, input_sha256=input_sha, records_in=records_in,
                          records_normalized=normalized, rows_loaded=loaded, load_job_id=load_job_id)

    def _vm_ip(self, index: int) -> str:
        address = 2 + index
        return f"{self._subnet_prefix()}.{address // 250}.{address % 250 + 2}"

    def _load_job(self, index: int, job_id: str, source: str, rows: int, created: datetime,
                  done: datetime) -> dict[str, Any]:
        location = self.dataset["location"]
        return {
            "kind": "bigquery#job", "etag": _b64(hashlib.sha1(job_id.encode()).digest()[:12]),
            "id": f"{self.project}:{location}.{job_id}",
            "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/projects/{self.project}/jobs/{job_id}?location={location}",
            "user_email": self.service_account,
            "configuration": {
                "load": {"sourceUris": [f"gs://{self.processed_bucket['name']}/{source}"],
                         "destinationTable": {"projectId": self.project, "datasetId": self.dataset["id"],
                                              "tableId": self.dataset["table"]},
                         "createDisposition": "CREATE_IF_NEEDED", "writeDisposition": "WRITE_APPEND",
                         "sourceFormat": "PARQUET"},
                "labels": {**self.node["job"]["labels"], "sovaudit-run-id": self.run_label},
                "jobType": "LOAD"},
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": location},
            "statistics": {"creationTime": clock.epoch_millis(created),
                           "startTime": clock.epoch_millis(created + timedelta(seconds=1)),
                           "endTime": clock.epoch_millis(done), "totalSlotMs": str(800 + rows),
                           "load": {"inputFiles": "1", "inputFileBytes": str(48 * rows),
                                    "outputRows": str(rows), "outputBytes": str(96 * rows), "badRecords": "0"}},
            "status": {"state": "DONE"},
            "principal_subject": f"serviceAccount:{self.service_account}",
            "jobCreationReason": {"code": "REQUESTED"},
        }

    def _table(self, tasks: Sequence[TaskCounts]) -> None:
        dataset_id, table_id = self.dataset["id"], self.dataset["table"]
        key = (dataset_id, table_id)
        if key in self.state.tables:
            return
        rows = sum(t.rows_loaded for t in tasks)
        body: dict[str, Any] = {
            "kind": "bigquery#table", "etag": _b64(hashlib.sha1(f"{dataset_id}.{table_id}".encode()).digest()[:12]),
            "id": f"{self.project}:{dataset_id}.{table_id}",
            "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/projects/{self.project}/datasets/{dataset_id}/tables/{table_id}",
            "tableReference": {"projectId": self.project, "datasetId": dataset_id, "tableId": table_id},
            "schema": {"fields": job_table_schema()},
            "numBytes": str(96 * rows), "numLongTermBytes": "0", "numRows": str(rows),
            "creationTime": clock.epoch_millis(self.running), "lastModifiedTime": clock.epoch_millis(self.succeeded),
            "type": "TABLE", "location": self.dataset["location"],
            "clustering": {"fields": ["reference_name", "start_position"]},
        }
        encryption = self.dataset.get("defaultEncryptionConfiguration")
        if encryption:
            body["encryptionConfiguration"] = copy.deepcopy(encryption)
        self.state.tables[key] = body

    # -------------------------------------------------------------------- batch
    def _job(self, count: int) -> None:
        template = self.node["instance_template"]["name"]
        events = []
        for before, after, moment in (("QUEUED", "SCHEDULED", self.scheduled), ("SCHEDULED", "RUNNING", self.running),
                                      ("RUNNING", "SUCCEEDED", self.succeeded)):
            events.append({"type": "STATUS_CHANGED", "eventTime": clock.rfc3339(moment),
                           "description": f"Job state is set from {before} to {after} for job {self.job_name}."})
        run_seconds = (self.succeeded - self.running).total_seconds()
        self.state.jobs[self.job_name] = {
            "name": self.job_name, "uid": self.job_uid,
            "taskGroups": [{
                "name": f"{self.job_name}/taskGroups/group0",
                "taskSpec": {
                    "runnables": [{"container": {"imageUri": self.node["job"].get("image", "preproc:latest"),
                                                 "entrypoint": "sovaudit", "commands": ["pipeline", "task"]}}],
                    "computeResource": {"cpuMilli": "4000", "memoryMib": "16384"},
                    "maxRunDuration": "7200s", "maxRetryCount": 1,
                    "lifecyclePolicies": [{"action": "FAIL_TASK", "actionCondition": {"exitCodes": [2]}}],
                    "environment": {"variables": {   # the variables pipeline/spec.py sets
                        "INPUT_URIS": json.dumps([f"gs://{self.raw_bucket['name']}/{t.input_object}"
                                                  for t in self.tasks]),
                        "SOVAUDIT_RUN_ID": self.run_id,
                        "SOVAUDIT_PROJECT": self.project,
                        "SOVAUDIT_BQ_TABLE": f"{self.project}.{self.dataset['id']}.{self.dataset['table']}",
                        "SOVAUDIT_BQ_LOCATION": self.dataset["location"],
                        "SOVAUDIT_OUTPUT_BUCKET": self.processed_bucket["name"], **self._attest_variables()}}},
                "taskCount": str(count), "parallelism": str(min(count, 10)), "taskCountPerNode": "1"}],
            "allocationPolicy": {
                "location": {"allowedLocations": [f"regions/{self.region}"]},
                "instances": [{"instanceTemplate": f"projects/{self.project}/global/instanceTemplates/{template}"}],
                "serviceAccount": {"email": self.service_account},
                "labels": {**self.node["job"]["labels"], "sovaudit-run-id": self.run_label}},
            "labels": {**self.node["job"]["labels"], "sovaudit-run-id": self.run_label, "batch-job-id": self.job_id},
            "status": {"state": "SUCCEEDED", "statusEvents": events,
                       "taskGroups": {"group0": {"counts": {"SUCCEEDED": str(count)},
                                                 "instances": [{"machineType": self.node["instance_template"]
                                                                ["properties"]["machineType"],
                                                                "provisioningModel": "STANDARD", "taskPack": "1",
                                                                "bootDisk": {"type": "pd-balanced", "sizeGb": "50",
                                                                             "image": "batch-cos"}}]}},
                       "runDuration": f"{run_seconds:.6f}s"},
            "createTime": clock.rfc3339(self.created), "updateTime": clock.rfc3339(self.succeeded),
            "logsPolicy": {"destination": "CLOUD_LOGGING"},
        }

    # -------------------------------------------------------------------- scenario injections
    def _foreign_write(self, write: Mapping[str, Any], count: int) -> None:
        """A task's write into another project's bucket, judged as Google would judge it: VPC-SC
        refuses it (Policy Denied in the node's log) unless the perimeter lets it out; a write that
        goes through is logged in the bucket's project, per that project's auditConfigs (§2), so
        the node's own log holds nothing of it."""
        from sovaudit.simulator import enforcement, projects
        from sovaudit.simulator.http import ApiError

        index = int(write.get("task_index", 0)) % count
        foreign = self.state.extras.get("foreign_buckets", {}).get(write["bucket"], {})
        location = write.get("location") or foreign.get("location") or "US"
        at = self._task_time(index, 32)
        with clock.pinned(at):
            try:
                enforcement.check_bucket_write(self.state, write["bucket"], write["object"],
                                               principal=self.service_account, caller_ip=self._vm_ip(index))
            except ApiError:
                return
        audit_log.storage_object_access(self.state, bucket=write["bucket"], object_name=write["object"],
                                        principal=self.service_account, timestamp=at,
                                        location=location, caller_ip=self._vm_ip(index),
                                        project=projects.bucket_owner(self.state, write["bucket"]).project_id)

    def _policy_denied(self, denied: Mapping[str, Any], count: int) -> None:
        index = int(denied.get("task_index", 0)) % count
        bucket = denied["bucket"]
        foreign = self.state.extras.get("foreign_buckets", {}).get(bucket, {})
        target = f"projects/{foreign.get('project_number', '0')}"
        obj = denied.get("object", f"exports/{self.job_id}/sample-{index:04d}.parquet")
        audit_log.vpcsc_violation(self.state, service="storage.googleapis.com", method="google.storage.objects.create",
                                  target_resource=target, resource_names=[f"projects/_/buckets/{bucket}/objects/{obj}"],
                                  principal=self.service_account, timestamp=self._task_time(index, 32),
                                  violation_reason=denied.get("reason", "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER"),
                                  permission="storage.objects.create",
                                  dry_run="status" not in next(iter(self.state.perimeters.values()), {}))

    def _foreign_load(self, load: Mapping[str, Any], count: int) -> None:
        """A second load job of one task's output, into a dataset that is not the node's (e.g. a
        look-alike `hospital_data_copy`): the job and its data-access entries, as Google records them."""
        index = int(load.get("task_index", 0)) % count
        task = self.tasks[index]
        job_id = f"sovaudit_copy_{self.run_id}_{task.input_sha256[:32]}"
        source = f"variants/{self.job_id}/sample-{index:04d}.parquet"
        at = self._task_time(index, 36)
        job = self._load_job(index, job_id, source, task.rows_loaded, at, at + timedelta(seconds=9))
        job["configuration"]["load"]["destinationTable"] = {
            "projectId": load.get("project") or self.project, "datasetId": load["dataset"],
            "tableId": load.get("table") or self.dataset["table"]}
        self.state.bq_jobs[job_id] = job
        audit_log.bigquery_table_write(self.state, job=job, principal=self.service_account,
                                       timestamp=at + timedelta(seconds=9))

    def _noise(self) -> None:
        """Unrelated entries: an admin's IAM change, an earlier run three days ago (outside 24 h), uploads of
        the inputs and an analyst's reads, and a VM of another workload."""
        state = self.state
        admin = "genomics-admin@example.org"
        old = clock.now() - timedelta(days=3, hours=2)
        audit_log.record(state, audit_log.audit_entry(
            state, log_id=audit_log.ACTIVITY, service="cloudresourcemanager.googleapis.com", method="SetIamPolicy",
            resource_name=f"projects/{self.project}", resource_type="project",
            resource_labels={"project_id": self.project}, principal=admin, timestamp=old,
            permission="resourcemanager.projects.setIamPolicy", permission_type="ADMIN_WRITE",
            caller_ip="203.0.113.24", user_agent="google-cloud-sdk gcloud/503.0.0"))
        for index in range(2):   # an earlier run of the pipeline, older than the client's default 24 hours
            zone = state.zones[index % len(state.zones)]
            name = f"preprocess-genom-0ld{index}-group0-{index}-x9k{index}"
            vm = {"zone": f"{self.compute_url}/zones/{zone}", "name": name, "id": str(7_000_000_000_000_000_000 + index)}
            audit_log.instance_insert(state, instance=vm, request_body={"name": name, "labels": {
                "batch-job-id": "preprocess-genomes-000", "batch-job-uid": "preprocess-genom-0ld00000-0000-00000"}},
                operation={"name": f"operation-old-{index}", "operationType": "insert", "status": "RUNNING"},
                principal=audit_log.cloudservices_account(state), timestamp=old + timedelta(minutes=5, seconds=index))
        uploader = f"data-steward@{self.project}.iam.gserviceaccount.com"
        for index in range(3):
            audit_log.storage_object_access(
                state, bucket=self.raw_bucket["name"], object_name=f"vcfs/incoming-{index}.vcf.gz",
                principal=uploader, timestamp=self.created - timedelta(hours=5, minutes=index),
                location=self.raw_bucket["location"], caller_ip="198.51.100.7")
        audit_log.storage_object_access(
            state, bucket=self.processed_bucket["name"], object_name=f"manifests/{self.job_id}/0.json",
            principal="analyst@example.org", timestamp=self.succeeded + timedelta(minutes=12),
            location=self.processed_bucket["location"], method="storage.objects.get", caller_ip="198.51.100.9")
        audit_log.record(state, audit_log.audit_entry(
            state, log_id=audit_log.ACTIVITY, service="compute.googleapis.com", method="v1.compute.instances.stop",
            resource_name=f"projects/{self.project}/zones/{state.zones[0]}/instances/bastion-1",
            resource_type="gce_instance", resource_labels={"instance_id": "5551234567890123456",
                                                           "project_id": self.project, "zone": state.zones[0]},
            principal=admin, timestamp=self.created - timedelta(minutes=20), permission="compute.instances.stop",
            permission_type="ADMIN_WRITE", request={"@type": "type.googleapis.com/compute.instances.stop"},
            operation={"id": "operation-bastion-stop", "producer": "compute.googleapis.com", "first": True},
            caller_ip="203.0.113.24", locations=[state.zones[0]]))
