"""Evidence builders for control tests: a clean sovereign node as raw REST JSON, one purpose at a time.

`NodeEvidence(pack)` holds, per purpose, the HTTP answers a run would record against a healthy node
(bodies shaped like Google's REST JSON: camelCase, int64 as strings, unset fields omitted). Tests
change one answer and check the one control that must notice. The tests in this module prove the
baseline itself: every control passes on the clean us and eu nodes.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import attestation_evidence
import network_evidence
import pytest

from sovaudit.audit.evaluate import evaluate
from sovaudit.audit.evidence import EvidenceItem, EvidenceLog
from sovaudit.audit.models import ControlContext, Outcome, Scope
from sovaudit.audit.registry import all_controls, get
from sovaudit.policies.pack import PolicyPack, resolve_policy

JOB = "preprocess-genomes-001"
UID = "preprocess-genomes-001-5b2c9e41-8f1d-4a7e-9c3b-2d6f0a1e7b55"
TODAY = date(2026, 11, 26)
WINDOW = (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), datetime(2026, 11, 26, 16, 0, tzinfo=UTC))
NUMBERS = {"fed-node-us": "314159265358", "fed-node-eu": "271828182845"}

SERVICE_METHOD = {
    "orgpolicy": ("orgpolicy", "policies.getEffectivePolicy"),
    "resourcemanager.project": ("cloudresourcemanager", "projects.get"),
    "resourcemanager.iam_policy": ("cloudresourcemanager", "projects.getIamPolicy"),
    "resourcemanager.folder": ("cloudresourcemanager", "folders.get"),
    "resourcemanager.ancestor_iam": ("cloudresourcemanager", "organizations.getIamPolicy"),
    "orgpolicy.level": ("orgpolicy", "policies.get"),
    "acm": ("accesscontextmanager", "servicePerimeters.list"),
    "storage.bucket": ("storage", "buckets.get"),
    "storage.bucket_iam": ("storage", "buckets.getIamPolicy"),
    "storage.project_buckets": ("storage", "buckets.list"),
    "bigquery.project_datasets": ("bigquery", "datasets.list"),
    "storage.manifests": ("storage", "objects.list"),
    "storage.manifest": ("storage", "objects.get"),
    "kms": ("cloudkms", "cryptoKeys.get"),
    "bigquery.dataset": ("bigquery", "datasets.get"),
    "bigquery.load_jobs": ("bigquery", "jobs.list"),
    "batch": ("batch", "jobs.get"),
    "compute.instance_template": ("compute", "instanceTemplates.get"),
    "compute": ("compute", "instances.aggregatedList"),
    "logging": ("logging", "entries.list"),
    "probe.batch": ("batch", "jobs.create"),
    "probe.batch_status": ("batch", "jobs.get"),
    "probe.batch_vms": ("compute", "instances.aggregatedList"),
    "probe.bucket": ("storage", "buckets.insert"),
    "probe.dataset": ("bigquery", "datasets.insert"),
    "probe.cleanup": ("batch", "jobs.delete"),
}


def service_method(purpose: str) -> tuple[str, str]:
    head = purpose.split(":", 1)[0]
    for key in (head, head.split(".", 1)[0]):
        if key in SERVICE_METHOD:
            return SERVICE_METHOD[key]
    return ("unknown", "unknown")


def location_refusal(kind: str, region: str, project_number: str) -> tuple[int, dict[str, Any]]:
    """The error a create in a forbidden location gets (Storage 412; Batch/BigQuery 400 FAILED_PRECONDITION)."""
    if kind == "bucket":
        message = f"'{region}' violates constraint 'constraints/gcp.resourceLocations'"
        return 412, {"error": {"code": 412, "message": message, "errors": [
            {"message": message, "domain": "global", "reason": "conditionNotMet", "locationType": "header",
             "location": "If-Match"}]}}
    message = (f"Constraint constraints/gcp.resourceLocations violated for [orgpolicy:projects/{project_number}] "
               f"attempting to create a {kind} in [{region}].")
    return 400, {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": message, "details": [
        {"@type": "type.googleapis.com/google.rpc.PreconditionFailure", "violations": [
            {"type": "constraints/gcp.resourceLocations", "subject": f"orgpolicy:projects/{project_number}",
             "description": message}]}]}}


class NodeEvidence:
    """Purpose -> list of (status, body) pages; `log()` turns them into EvidenceItems in order."""

    def __init__(self, pack: PolicyPack, task_count: int = 2) -> None:
        self.pack = pack
        self.project = pack.project
        self.number = NUMBERS[pack.project]
        self.region = pack.region
        self.ring = pack.kms.key_ring
        self.task_count = task_count
        self.answers: dict[str, list[tuple[int, Any]]] = {}
        self._clean()

    # ---- editing -------------------------------------------------------------------------------
    def set(self, purpose: str, body: Any, status: int = 200) -> None:
        self.answers[purpose] = [(status, body)]

    def pages(self, purpose: str, *pages: tuple[int, Any]) -> None:
        self.answers[purpose] = list(pages)

    def body(self, purpose: str, page: int = -1) -> Any:
        return self.answers[purpose][page][1]

    def drop(self, purpose: str) -> None:
        del self.answers[purpose]

    def log(self) -> EvidenceLog:
        items = []
        for purpose, pages in self.answers.items():
            service, method = service_method(purpose)
            for status, body in pages:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                items.append(EvidenceItem(f"{len(items) + 1:04d}", purpose, service, method,
                                          {"httpMethod": "GET", "url": f"https://example/{purpose}", "params": {},
                                           "body": None}, status, raw, "2026-11-26T16:18:01Z"))
        return EvidenceLog(tuple(items))

    def context(self, scope: Scope | None = None, pack: PolicyPack | None = None,
                today: date = TODAY) -> ControlContext:
        return ControlContext(self.log(), pack or self.pack, scope or job_scope(), today)

    def run(self, control_id: str, scope: Scope | None = None, pack: PolicyPack | None = None):
        """Evaluate one control through evaluate() (so fail-closed wrapping applies)."""
        return evaluate(self.context(scope, pack), [get(control_id)])[0]

    # ---- the clean node ------------------------------------------------------------------------
    def zone(self, suffix: str) -> str:
        return f"{self.region}-{suffix}"

    def key(self, name: str) -> str:
        return f"{self.ring}/cryptoKeys/{name}"

    def vm(self, index: int, zone_suffix: str = "a") -> dict[str, Any]:
        zone = self.zone(zone_suffix)
        base = f"https://www.googleapis.com/compute/v1/projects/{self.project}"
        name = f"{UID[:40]}-group0-{index}-x{index}k7"
        return {
            "kind": "compute#instance", "id": str(7340000000000 + index), "name": name,
            "zone": f"{base}/zones/{zone}", "machineType": f"{base}/zones/{zone}/machineTypes/n2d-standard-4",
            "status": "TERMINATED", "cpuPlatform": "AMD Milan",
            "selfLink": f"{base}/zones/{zone}/instances/{name}",
            "labels": {"batch-job-id": JOB, "batch-job-uid": UID, "batch-node": "", "pipeline": "genomics-preproc"},
            "confidentialInstanceConfig": {"enableConfidentialCompute": True, "confidentialInstanceType": "SEV"},
            "networkInterfaces": [{"name": "nic0", "network": f"{base}/global/networks/{self.pack.network.network}",
                                   "subnetwork": f"{base}/regions/{self.region}/subnetworks/"
                                                 f"{self.pack.network.subnetwork}",
                                   "networkIP": f"10.10.0.{10 + index}", "stackType": "IPV4_ONLY"}],
            "serviceAccounts": [{"email": self.pack.service_account,
                                 "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
            "scheduling": {"provisioningModel": "STANDARD", "onHostMaintenance": "TERMINATE"},
        }

    def insert_entry(self, vm: dict[str, Any], first: bool = True) -> dict[str, Any]:
        zone = vm["zone"].rsplit("/", 1)[1]
        request: dict[str, Any] = {"@type": "type.googleapis.com/compute.instances.insert"}
        if first:
            request.update({k: vm[k] for k in ("name", "machineType", "labels", "confidentialInstanceConfig",
                                               "networkInterfaces", "serviceAccounts", "scheduling") if k in vm})
        return {
            "logName": f"projects/{self.project}/logs/cloudaudit.googleapis.com%2Factivity",
            "resource": {"type": "gce_instance", "labels": {"instance_id": vm["id"], "project_id": self.project,
                                                            "zone": zone}},
            "timestamp": "2026-11-26T15:02:11.123456Z", "severity": "NOTICE",
            "insertId": f"-ins{vm['id']}{'f' if first else 'l'}",
            "operation": {"id": f"operation-{vm['id']}", "producer": "compute.googleapis.com",
                          **({"first": True} if first else {"last": True})},
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "compute.googleapis.com",
                "methodName": "v1.compute.instances.insert",
                "resourceName": f"projects/{self.project}/zones/{zone}/instances/{vm['name']}",
                "authenticationInfo": {"principalEmail": f"{self.number}@cloudservices.gserviceaccount.com"},
                "request": request,
            },
        }

    def launch_entry(self, vm: dict[str, Any], boot_counter: str = "0") -> dict[str, Any]:
        """The SEV launch attestation report Google writes into the Shielded VM integrity log (CC-04)."""
        return {
            "insertId": f"att{vm['id']}-{boot_counter}",
            "jsonPayload": {"@type": "type.googleapis.com/cloud_integrity.IntegrityEvent", "bootCounter": boot_counter,
                            "sevLaunchAttestationReportEvent": {"integrityEvaluationPassed": True, "sevPolicy": {
                                "debugEnabled": False, "domainOnly": False, "esRequired": False,
                                "keySharingAllowed": False, "minApiMajor": 0, "minApiMinor": 0, "sendAllowed": True,
                                "sevOnly": True}}},
            "logName": f"projects/{self.project}/logs/compute.googleapis.com%2Fshielded_vm_integrity",
            "resource": {"type": "gce_instance", "labels": {"instance_id": vm["id"], "project_id": self.project,
                                                            "zone": vm["zone"].rsplit("/", 1)[1]}},
            "severity": "NOTICE", "timestamp": "2026-11-26T15:02:32.407511786Z",
            "receiveTimestamp": "2026-11-26T15:02:34.422303036Z",
        }

    def write_entry(self, bucket: str, obj: str, principal: str | None = None) -> dict[str, Any]:
        return {
            "logName": f"projects/{self.project}/logs/cloudaudit.googleapis.com%2Fdata_access",
            "resource": {"type": "gcs_bucket", "labels": {"project_id": self.project, "bucket_name": bucket,
                                                          "location": self.region}},
            "timestamp": "2026-11-26T15:10:00.5Z", "severity": "INFO", "insertId": f"w-{bucket}-{obj}",
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "storage.googleapis.com",
                "methodName": "storage.objects.create",
                "resourceName": f"projects/_/buckets/{bucket}/objects/{obj}",
                "authenticationInfo": {"principalEmail": principal or self.pack.service_account},
                "resourceLocation": {"currentLocations": [self.region]},
            },
        }

    def read_entry(self, bucket: str, obj: str, principal: str | None = None,
                   method: str = "storage.objects.get") -> dict[str, Any]:
        """A Cloud Storage DATA_READ entry (objects.get names the object, objects.list the bucket)."""
        entry = self.write_entry(bucket, obj, principal)
        entry["insertId"] = f"r-{bucket}-{obj}-{principal}"
        entry["protoPayload"]["methodName"] = method
        if method == "storage.objects.list":
            entry["protoPayload"]["resourceName"] = f"projects/_/buckets/{bucket}"
        return entry

    def table_read_entry(self, principal: str, table: str = "variants") -> dict[str, Any]:
        """A BigQuery tableDataRead (tabledata.list) entry on the node's dataset."""
        return {
            "logName": f"projects/{self.project}/logs/cloudaudit.googleapis.com%2Fdata_access",
            "resource": {"type": "bigquery_dataset", "labels": {"project_id": self.project,
                                                                "dataset_id": self.pack.dataset}},
            "timestamp": "2026-11-26T15:30:00Z", "severity": "INFO", "insertId": f"t-{principal}-{table}",
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "bigquery.googleapis.com",
                "methodName": "google.cloud.bigquery.v2.TableDataService.List",
                "resourceName": f"projects/{self.project}/datasets/{self.pack.dataset}/tables/{table}",
                "authenticationInfo": {"principalEmail": principal},
                "metadata": {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata",
                             "tableDataRead": {"reason": "TABLEDATA_LIST_REQUEST"}},
            },
        }

    def bq_write_entry(self, project: str, dataset: str, table: str = "variants") -> dict[str, Any]:
        return {
            "logName": f"projects/{self.project}/logs/cloudaudit.googleapis.com%2Fdata_access",
            "resource": {"type": "bigquery_dataset", "labels": {"project_id": self.project, "dataset_id": dataset}},
            "timestamp": "2026-11-26T15:11:00Z", "insertId": f"bq-{dataset}-{table}",
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "bigquery.googleapis.com",
                "methodName": "google.cloud.bigquery.v2.JobService.InsertJob",
                "resourceName": f"projects/{project}/datasets/{dataset}/tables/{table}",
                "authenticationInfo": {"principalEmail": self.pack.service_account},
                "metadata": {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata",
                             "tableDataChange": {"insertedRowsCount": "5", "reason": "JOB",
                                                 "jobName": f"projects/{project}/jobs/load-0"}},
            },
        }

    def bq_job_entry(self, job_config: dict[str, Any], *, job_id: str = "job_x", event: str = "jobInsertion",
                     principal: str = "mallory@example.org", error: str | None = None,
                     method: str = "google.cloud.bigquery.v2.JobService.InsertJob") -> dict[str, Any]:
        """A BigQueryAuditMetadata job entry (jobInsertion, or jobChange DONE) as Google logs it."""
        job: dict[str, Any] = {"jobName": f"projects/{self.project}/jobs/{job_id}", "jobConfig": job_config,
                               "jobStatus": {"jobState": "DONE" if event == "jobChange" else "PENDING"}}
        if error:
            job["jobStatus"]["errorResult"] = {"code": 7, "message": error}
        body: dict[str, Any] = {"job": job}
        if event == "jobChange":
            body.update({"before": "RUNNING", "after": "DONE"})
        else:
            body["reason"] = "QUERY_REQUEST" if method.endswith(".Query") else "JOB_INSERT_REQUEST"
        return {
            "logName": f"projects/{self.project}/logs/cloudaudit.googleapis.com%2Fdata_access",
            "resource": {"type": "bigquery_project", "labels": {"project_id": self.project, "location": self.region}},
            "timestamp": "2026-11-26T15:12:00Z", "insertId": f"job-{job_id}-{event}", "severity": "INFO",
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "bigquery.googleapis.com",
                "methodName": method, "resourceName": f"projects/{self.project}/jobs/{job_id}",
                "authenticationInfo": {"principalEmail": principal},
                "metadata": {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata", event: body},
            },
        }

    def manifest_name(self, index: int) -> str:
        return f"manifests/{JOB}/{index}.json"

    def manifest(self, index: int, rows: int | None = None) -> dict[str, Any]:
        normalized = 1000 + index
        return {"run_id": "20261126T150000Z-ab12cd", "job": JOB, "task_index": index,
                "input": f"gs://{self.pack.buckets.input}/sample-{index:03d}.vcf.gz", "input_sha256": "0" * 64,
                "records_in": 990 + index, "records_normalized": normalized,
                "rows_loaded": normalized if rows is None else rows,
                "load_job_id": f"sovaudit_20261126T150000Z_{index:03d}",
                "table": f"{self.project}.{self.pack.dataset}.variants"}

    def load_job(self, index: int, output_rows: int | None = None) -> dict[str, Any]:
        job_id = f"sovaudit_20261126T150000Z_{index:03d}"
        return {
            "kind": "bigquery#job", "id": f"{self.project}:{self.region.upper()}.{job_id}",
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": self.region},
            "state": "DONE", "status": {"state": "DONE"},
            "configuration": {"jobType": "LOAD", "load": {
                "sourceUris": [f"gs://{self.pack.buckets.output}/parquet/{JOB}/{index}.parquet"],
                "destinationTable": {"projectId": self.project, "datasetId": self.pack.dataset,
                                     "tableId": "variants"}, "sourceFormat": "PARQUET"}},
            "statistics": {"creationTime": "1795705200000", "load": {
                "outputRows": str(1000 + index if output_rows is None else output_rows), "inputFiles": "1"}},
        }

    def _clean(self) -> None:
        pack, project, number, region = self.pack, self.project, self.number, self.region
        self.set("orgpolicy.effective", {"name": f"projects/{number}/policies/gcp.resourceLocations",
                                         "spec": {"rules": [{"values": {"allowedValues":
                                                                        list(pack.jurisdiction.allowed_policy_values)}}]}})
        self.set("resourcemanager.project", {"name": f"projects/{number}", "projectId": project, "state": "ACTIVE",
                                             "parent": "organizations/161803398874", "displayName": project})
        # SOV-09 (read only when the pack names a workload): a clean workload governing the project.
        workload = f"organizations/161803398874/locations/{region}/workloads/genomics-sovereign"
        self.set("assuredworkloads.workload", {"name": workload, "displayName": f"{project}-sovereign",
                                               "complianceRegime": 8, "resourceMonitoringEnabled": True,
                                               "resources": [{"resourceId": number, "resourceType": 1}],
                                               "complianceStatus": {}})
        self.set("assuredworkloads.violations", {})
        self.set("resourcemanager.iam_policy", {"version": 1, "etag": "BwYl2Q6Zz0E=", "bindings": [
            {"role": "roles/batch.jobsEditor", "members": [f"serviceAccount:{pack.service_account}"]}],
            "auditConfigs": [{"service": "storage.googleapis.com", "auditLogConfigs": [
                {"logType": "DATA_WRITE"}, {"logType": "DATA_READ"}]},
                {"service": "cloudkms.googleapis.com", "auditLogConfigs": [
                    {"logType": "DATA_READ"}, {"logType": "DATA_WRITE"}]}]})
        # The project sits directly under its organization, which sets neither audit configs nor a
        # location policy (a 404 at the organization level means "no policy here").
        self.set("resourcemanager.ancestor_iam:organizations/161803398874", {"version": 1, "etag": "BwYl2Q6Zz0E="})
        self.set("orgpolicy.level:project", {"name": f"projects/{number}/policies/gcp.resourceLocations",
                                             "spec": {"rules": [{"values": {"allowedValues":
                                                                            list(pack.jurisdiction.allowed_policy_values)}}]}})
        self.set("orgpolicy.level:organizations/161803398874",
                 {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}, 404)
        self.set("acm.perimeters", {"servicePerimeters": [{
            "name": pack.perimeter.name, "title": pack.perimeter.name.rsplit("/", 1)[1],
            "status": {"resources": [f"projects/{number}"],
                       "restrictedServices": list(pack.perimeter.restricted_services),
                       "vpcAccessibleServices": {"enableRestriction": True, "allowedServices": ["RESTRICTED-SERVICES"]}},
        }]})
        for bucket, key in ((pack.buckets.input, "gcs-raw"), (pack.buckets.output, "gcs-processed")):
            self.set(f"storage.bucket:{bucket}", {
                "kind": "storage#bucket", "id": bucket, "name": bucket, "projectNumber": number,
                "location": region.upper(), "locationType": "region", "storageClass": "STANDARD",
                "encryption": {"defaultKmsKeyName": self.key(key)},
                "iamConfiguration": {"bucketPolicyOnly": {"enabled": True},
                                     "uniformBucketLevelAccess": {"enabled": True},
                                     "publicAccessPrevention": "enforced"}})
        for key in ("gcs-raw", "gcs-processed", "bq"):
            # SOV-08: the KMS client asks for numeric enums: 5, 6 = CUSTOMER_INITIATED_ACCESS,
            # GOOGLE_INITIATED_SYSTEM_OPERATION (google.cloud.kms_v1.AccessReason).
            self.set(f"kms.key:{self.key(key)}", {"name": self.key(key), "purpose": "ENCRYPT_DECRYPT",
                                                  "primary": {"name": f"{self.key(key)}/cryptoKeyVersions/1",
                                                              "state": "ENABLED"},
                                                  "keyAccessJustificationsPolicy": {"allowedAccessReasons": [5, 6]}})
        self.set("bigquery.dataset", {"kind": "bigquery#dataset", "id": f"{project}:{pack.dataset}",
                                      "datasetReference": {"projectId": project, "datasetId": pack.dataset},
                                      "location": region,
                                      "defaultEncryptionConfiguration": {"kmsKeyName": self.key("bq")},
                                      "access": [{"role": "OWNER", "specialGroup": "projectOwners"},
                                                 {"role": "READER", "specialGroup": "projectReaders"},
                                                 {"role": "WRITER", "specialGroup": "projectWriters"}]})
        self.set("batch.job", {
            "name": f"projects/{project}/locations/{region}/jobs/{JOB}", "uid": UID,
            "taskGroups": [{"name": f"projects/{number}/locations/{region}/jobs/{JOB}/taskGroups/group0",
                            "taskCount": str(self.task_count), "parallelism": "2",
                            "taskSpec": {"runnables": [{"container": {"imageUri": "sovaudit-task:0.1"}}],
                                         "maxRetryCount": 2},
                            "taskEnvironments": [{"variables": {"INPUT_URI": self.manifest(i)["input"]}}
                                                 for i in range(self.task_count)]}],
            "allocationPolicy": {
                "location": {"allowedLocations": [f"regions/{region}"]},
                "instances": [{"instanceTemplate": f"projects/{project}/global/instanceTemplates/sev-n2d-batch"}],
                "serviceAccount": {"email": pack.service_account},
                "labels": {"pipeline": "genomics-preproc"}},
            "labels": {"pipeline": "genomics-preproc", "batch-job-id": JOB},
            "status": {"state": "SUCCEEDED", "statusEvents": [
                {"type": "STATUS_CHANGED", "eventTime": "2026-11-26T15:20:00Z",
                 "description": f"Job state is set from RUNNING to SUCCEEDED for job projects/{number}/locations/"
                                f"{region}/jobs/{JOB}."}], "runDuration": "1100s"},
            "logsPolicy": {"destination": "CLOUD_LOGGING"},
            "createTime": "2026-11-26T15:00:00Z", "updateTime": "2026-11-26T15:20:00Z",
        })
        self.set("compute.instance_template", {
            "kind": "compute#instanceTemplate", "id": "4400000000000000001", "name": "sev-n2d-batch",
            "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/instanceTemplates/sev-n2d-batch",
            "properties": {
                "machineType": "n2d-standard-4",
                "confidentialInstanceConfig": {"enableConfidentialCompute": True, "confidentialInstanceType": "SEV"},
                "networkInterfaces": [{"network": f"projects/{project}/global/networks/{pack.network.network}",
                                       "subnetwork": f"projects/{project}/regions/{region}/subnetworks/"
                                                     f"{pack.network.subnetwork}"}],
                "serviceAccounts": [{"email": pack.service_account,
                                     "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
                "scheduling": {"onHostMaintenance": "TERMINATE"},
                "shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": True,
                                           "enableIntegrityMonitoring": True}}})
        vms = [self.vm(i, "abc"[i % 3]) for i in range(self.task_count)]
        items: dict[str, Any] = {}
        for vm in vms:
            scope = "zones/" + vm["zone"].rsplit("/", 1)[1]
            items.setdefault(scope, {"instances": []})["instances"].append(vm)
        items["zones/us-east1-b"] = {"warning": {"code": "NO_RESULTS_ON_PAGE",
                                                 "message": "There are no results for scope 'zones/us-east1-b' on this page."}}
        self.set("compute.job_instances", {"kind": "compute#instanceAggregatedList", "items": items})
        self.set("logging.instance_inserts",
                 {"entries": [*(e for vm in vms for e in (self.insert_entry(vm), self.insert_entry(vm, first=False))),
                              *(self.launch_entry(vm) for vm in vms)]})   # one query brings both (CC-04)
        self.set("logging.data_writes", {"entries": [
            *(self.write_entry(pack.buckets.output, self.manifest_name(i)) for i in range(self.task_count)),
            self.bq_write_entry(project, pack.dataset)]})
        self.set("logging.policy_denied", {})
        self.set("logging.data_reads", {"entries": [
            self.read_entry(pack.buckets.input, f"vcfs/sample-{i:04d}.vcf.gz") for i in range(self.task_count)]})
        buckets = []
        for bucket in (pack.buckets.input, pack.buckets.output):
            self.set(f"storage.bucket_iam:{bucket}", {
                "kind": "storage#policy", "resourceId": f"projects/_/buckets/{bucket}", "version": 1, "etag": "CAE=",
                "bindings": [
                    {"role": "roles/storage.legacyBucketOwner",
                     "members": [f"projectEditor:{project}", f"projectOwner:{project}"]},
                    {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{project}"]},
                    {"role": "roles/storage.objectAdmin", "members": [f"serviceAccount:{pack.service_account}"]}]})
            buckets.append(self.body(f"storage.bucket:{bucket}"))
        self.set("storage.project_buckets", {"kind": "storage#buckets", "items": buckets})
        self.set("bigquery.project_datasets", {"kind": "bigquery#datasetList", "datasets": [
            {"kind": "bigquery#dataset", "id": f"{project}:{pack.dataset}", "location": region,
             "datasetReference": {"projectId": project, "datasetId": pack.dataset}}]})
        self.set("bigquery.load_jobs", {"kind": "bigquery#jobList",
                                        "jobs": [self.load_job(i) for i in range(self.task_count)]})
        self.set("storage.manifests", {"kind": "storage#objects", "items": [
            {"kind": "storage#object", "name": self.manifest_name(i), "bucket": pack.buckets.output, "size": "310"}
            for i in range(self.task_count)]})
        for i in range(self.task_count):
            self.set(f"storage.manifest:{self.manifest_name(i)}", self.manifest(i))
        for region_name in pack.jurisdiction.probe_regions:
            for kind in ("batch", "bucket", "dataset"):
                status, body = location_refusal(kind, region_name, number)
                self.set(f"probe.{kind}:{region_name}", body, status)
        for purpose, body in network_evidence.clean(project, pack.network.network, self.region).items():
            self.set(purpose, body)
        self._clean_logging()
        attestation_evidence.clean(self, UID)   # CC-05, when the pack turns it on (eu)

    def _clean_logging(self) -> None:
        """The node's log routing (SEC-08): `_Default` re-pointed to a regional bucket, `_Required` in
        global (accepted by the shipped packs), the one exclusion the packs list."""
        project, region = self.project, self.region
        bucket = f"projects/{project}/locations/{region}/buckets/node-audit-logs"
        required_ids = ("cloudaudit.googleapis.com/activity", "externalaudit.googleapis.com/activity",
                        "cloudaudit.googleapis.com/system_event", "externalaudit.googleapis.com/system_event",
                        "cloudaudit.googleapis.com/access_transparency",
                        "externalaudit.googleapis.com/access_transparency")
        self.set("logging.sinks", {"sinks": [
            {"name": "_Required", "destination": f"logging.googleapis.com/projects/{project}/locations/global/"
                                                 "buckets/_Required",
             "filter": " OR ".join(f'LOG_ID("{i}")' for i in required_ids)},
            {"name": "_Default", "destination": f"logging.googleapis.com/{bucket}",
             "filter": " AND ".join(f'NOT LOG_ID("{i}")' for i in required_ids)}]})
        self.set("logging.exclusions", {"exclusions": [
            {"name": "drop-task-debug-lines", "filter": 'LOG_ID("batch_task_logs") AND severity<=DEBUG'}]})
        self.set("logging.buckets", {"buckets": [
            {"name": f"projects/{project}/locations/global/buckets/_Required", "retentionDays": 400,
             "locked": True, "lifecycleState": "ACTIVE"},
            {"name": f"projects/{project}/locations/global/buckets/_Default", "retentionDays": 30,
             "lifecycleState": "ACTIVE"},
            {"name": bucket, "retentionDays": 400, "locked": True, "lifecycleState": "ACTIVE"}]})
        self.set("logging.config_changes", {})
        self.set("logging.posture_changes", {})   # INT-02: no posture change in the window


def job_scope(**changes: Any) -> Scope:
    values: dict[str, Any] = {"job": JOB, "job_uid": UID, "window_start": WINDOW[0], "window_end": WINDOW[1]}
    values.update(changes)
    return Scope(**values)


@pytest.fixture
def us_pack() -> PolicyPack:
    return resolve_policy("us")


@pytest.fixture
def node(us_pack: PolicyPack) -> NodeEvidence:
    return NodeEvidence(us_pack)


@pytest.mark.parametrize("node_name", ["us", "eu"])
def test_every_control_passes_on_a_clean_node(node_name: str) -> None:
    evidence = NodeEvidence(resolve_policy(node_name))
    results = evaluate(evidence.context())
    assert len(results) == len(all_controls())
    # The pack's choices: the us pack names no Assured Workloads workload (SOV-09) and leaves in-guest
    # attestation off (CC-05); both are NOT_APPLICABLE there.
    by_choice = {"SOV-09"} if node_name == "us" else set()
    if not evidence.pack.confidential.in_guest_attestation.enabled:
        by_choice.add("CC-05")
    failing = {r.id: [f.message for f in r.findings if f.outcome != Outcome.PASS] for r in results
               if r.outcome != Outcome.PASS and r.id not in by_choice}
    assert failing == {}
    assert {r.id for r in results if r.outcome == Outcome.NOT_APPLICABLE} == by_choice


def test_clean_node_evidence_is_a_realistic_aggregated_list(node: NodeEvidence) -> None:
    items = node.body("compute.job_instances")["items"]
    assert any("warning" in scoped for scoped in items.values())
    vm = next(iter(items.values()))["instances"][0]
    assert "networkIP" in vm["networkInterfaces"][0]
