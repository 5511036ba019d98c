"""SEC-01 … SEC-06: perimeter, external IPs, identity, egress and its logging, VPC-SC violations."""

from __future__ import annotations

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def vms(node: NodeEvidence) -> list[dict]:
    return [vm for s in node.body("compute.job_instances")["items"].values() for vm in s.get("instances", [])]


def failures(result) -> list[str]:
    return [f.message for f in result.findings if f.outcome == Outcome.FAIL]


# ---- SEC-01 -------------------------------------------------------------------------------------

def test_sec01_passes_for_an_enforced_perimeter_holding_the_project(node: NodeEvidence) -> None:
    assert node.run("SEC-01").outcome == Outcome.PASS


def test_sec01_fails_when_the_perimeter_is_dry_run_only(node: NodeEvidence) -> None:
    perimeter = node.body("acm.perimeters")["servicePerimeters"][0]
    perimeter["spec"] = perimeter.pop("status")
    perimeter["useExplicitDryRunSpec"] = True
    result = node.run("SEC-01")
    assert result.outcome == Outcome.FAIL and "dry-run" in failures(result)[0]


def test_sec01_fails_when_a_service_is_not_restricted_or_project_missing(node: NodeEvidence) -> None:
    status = node.body("acm.perimeters")["servicePerimeters"][0]["status"]
    status["restrictedServices"].remove("batch.googleapis.com")
    status["resources"] = ["projects/999"]
    messages = " | ".join(failures(node.run("SEC-01")))
    assert "does not restrict batch.googleapis.com" in messages
    assert "projects/314159265358 (fed-node-us) is not among its enforced resources" in messages
    assert "holds projects/999 beside the node" in messages


def test_sec01_fails_when_the_perimeter_does_not_exist(node: NodeEvidence) -> None:
    node.set("acm.perimeters", {})
    assert node.run("SEC-01").outcome == Outcome.FAIL


def test_sec01_errors_when_the_listing_was_denied(node: NodeEvidence) -> None:
    node.set("acm.perimeters", {"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}},
             status=403)
    result = node.run("SEC-01")
    assert result.outcome == Outcome.ERROR and "servicePerimeters.list" in result.findings[0].message


# ---- SEC-02 -------------------------------------------------------------------------------------

def test_sec02_passes_without_access_configs(node: NodeEvidence) -> None:
    assert node.run("SEC-02").outcome == Outcome.PASS


def test_sec02_fails_when_one_vm_has_access_config(node: NodeEvidence) -> None:
    vm = vms(node)[1]
    vm["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT",
                                                   "natIP": "34.56.78.90", "networkTier": "PREMIUM"}]
    result = node.run("SEC-02")
    assert result.outcome == Outcome.FAIL
    assert failures(result) == [f"{vm['name']} has an external address (34.56.78.90)"]


def test_sec02_fails_on_an_ipv6_access_config(node: NodeEvidence) -> None:
    vms(node)[0]["networkInterfaces"][0]["ipv6AccessConfigs"] = [{"type": "DIRECT_IPV6",
                                                                  "externalIpv6": "2600:1900::1"}]
    assert node.run("SEC-02").outcome == Outcome.FAIL


def test_sec02_fails_when_the_template_grants_an_external_ip(node: NodeEvidence) -> None:
    props = node.body("compute.instance_template")["properties"]
    props["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT"}]
    assert node.run("SEC-02").outcome == Outcome.FAIL


def test_sec02_fails_for_a_policy_job_without_no_external_ip(node: NodeEvidence) -> None:
    alloc = node.body("batch.job")["allocationPolicy"]
    alloc["instances"] = [{"policy": {"machineType": "n2d-standard-4"}}]
    alloc["network"] = {"networkInterfaces": [{"network": "projects/fed-node-us/global/networks/x"}]}
    assert "noExternalIpAddress" in failures(node.run("SEC-02"))[0]


def vms_gone(node: NodeEvidence) -> list[dict]:
    """Empty the VM listing (Batch deleted the VMs); return the insert request bodies that remain."""
    node.set("compute.job_instances", {"kind": "compute#instanceAggregatedList", "items": {}})
    return [e["protoPayload"]["request"] for e in node.body("logging.instance_inserts")["entries"]
            if "name" in e.get("protoPayload", {}).get("request", {})]


def test_sec02_passes_on_the_insert_bodies_when_the_vms_are_gone(node: NodeEvidence) -> None:
    vms_gone(node)
    result = node.run("SEC-02")
    assert result.outcome == Outcome.PASS
    assert sum("no longer exists" in f.message for f in result.findings) == 2


def test_sec02_fails_on_an_access_config_in_a_deleted_vms_insert_body(node: NodeEvidence) -> None:
    request = vms_gone(node)[1]
    request["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    result = node.run("SEC-02")
    assert result.outcome == Outcome.FAIL
    assert failures(result) == [f"{request['name']} has an external address (External NAT) (from its "
                                "compute.instances.insert audit entry: the VM no longer exists)"]


# ---- SEC-03 -------------------------------------------------------------------------------------

def test_sec03_passes_with_the_dedicated_account(node: NodeEvidence) -> None:
    assert node.run("SEC-03").outcome == Outcome.PASS


def test_sec03_fails_when_a_vm_runs_as_the_default_compute_account(node: NodeEvidence) -> None:
    vms(node)[0]["serviceAccounts"] = [{"email": "314159265358-compute@developer.gserviceaccount.com"}]
    result = node.run("SEC-03")
    assert result.outcome == Outcome.FAIL and "default compute service account" in failures(result)[0]


def test_sec03_fails_when_a_deleted_vm_was_inserted_with_the_default_account(node: NodeEvidence) -> None:
    vms_gone(node)[0]["serviceAccounts"] = [{"email": "314159265358-compute@developer.gserviceaccount.com"}]
    result = node.run("SEC-03")
    assert result.outcome == Outcome.FAIL
    assert "no longer exists" in failures(result)[0] and "default compute service account" in failures(result)[0]


def test_sec03_fails_when_the_job_names_no_account(node: NodeEvidence) -> None:
    del node.body("batch.job")["allocationPolicy"]["serviceAccount"]
    assert "names no service account" in failures(node.run("SEC-03"))[0]


# ---- SEC-04 / SEC-05 ----------------------------------------------------------------------------

def test_sec04_passes_when_every_write_targets_the_allow_list(node: NodeEvidence) -> None:
    result = node.run("SEC-04")
    assert result.outcome == Outcome.PASS
    assert "3 logged writes" in result.findings[0].message


def test_sec04_treats_a_bucket_containing_the_node_prefix_as_foreign(node: NodeEvidence) -> None:
    entries = node.body("logging.data_writes")["entries"]
    entries.append(node.write_entry("fed-node-us-processed-exfil", "out/variants.parquet"))
    result = node.run("SEC-04")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert failed[0].resource == "projects/_/buckets/fed-node-us-processed-exfil"


def test_sec04_fails_on_a_bigquery_write_to_another_dataset(node: NodeEvidence) -> None:
    node.body("logging.data_writes")["entries"].append(node.bq_write_entry("fed-node-us", "scratch"))
    assert node.run("SEC-04").outcome == Outcome.FAIL


def test_sec04_errors_and_sec05_fails_when_data_access_logs_are_off(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy")["auditConfigs"] = []
    node.set("logging.data_writes", {})
    sec04, sec05 = node.run("SEC-04"), node.run("SEC-05")
    assert sec04.outcome == Outcome.ERROR and "cannot be proven" in sec04.findings[-1].message
    assert sec05.outcome == Outcome.FAIL and "DATA_WRITE" in sec05.findings[0].message


def test_sec05_fails_when_the_node_account_is_exempted(node: NodeEvidence) -> None:
    config = node.body("resourcemanager.iam_policy")["auditConfigs"][0]["auditLogConfigs"][0]
    config["exemptedMembers"] = ["serviceAccount:batch-runner@fed-node-us.iam.gserviceaccount.com"]
    assert node.run("SEC-05").outcome == Outcome.FAIL


def test_sec05_accepts_all_services_audit_config(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy")["auditConfigs"] = [
        {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_WRITE"}, {"logType": "DATA_READ"}]}]
    assert node.run("SEC-05").outcome == Outcome.PASS


def test_sec05_fails_when_storage_reads_are_not_logged(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy")["auditConfigs"] = [
        {"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": "DATA_WRITE"}]}]
    result = node.run("SEC-05")
    assert result.outcome == Outcome.FAIL and "DATA_READ audit logs are not enabled" in failures(result)[0]


def test_sec05_fails_when_a_reader_is_exempted_from_bigquery_read_logs(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy")["auditConfigs"].append(
        {"service": "bigquery.googleapis.com", "auditLogConfigs": [
            {"logType": "DATA_READ", "exemptedMembers": ["user:qc@example.org"]}]})
    assert "exempts user:qc@example.org from bigquery.googleapis.com DATA_READ" in failures(node.run("SEC-05"))[0]


def test_sec04_errors_when_no_writes_were_logged_at_all(node: NodeEvidence) -> None:
    node.set("logging.data_writes", {})
    assert node.run("SEC-04").outcome == Outcome.ERROR


def test_sec04_errors_when_the_log_listing_is_truncated(node: NodeEvidence) -> None:
    node.body("logging.data_writes")["nextPageToken"] = "EAE4"
    result = node.run("SEC-04")
    assert result.outcome == Outcome.ERROR and "last page" in result.findings[0].message


# ---- SEC-06 -------------------------------------------------------------------------------------

def vpcsc_entry(dry_run: bool = False) -> dict:
    metadata = {"@type": "type.googleapis.com/google.cloud.audit.VpcServiceControlAuditMetadata",
                "violationReason": "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER",
                "resourceNames": ["projects/_/buckets/elsewhere"],
                "securityPolicyInfo": {"servicePerimeterName": "accessPolicies/555000111/servicePerimeters/fed_node_us",
                                       "organizationId": "161803398874"},
                "vpcServiceControlsUniqueId": "Xh3m"}
    if dry_run:
        metadata["dryRun"] = True
    return {"logName": "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fpolicy", "insertId": "v1",
            "timestamp": "2026-11-26T15:12:00Z",
            "resource": {"type": "audited_resource", "labels": {"service": "storage.googleapis.com"}},
            "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                             "serviceName": "storage.googleapis.com", "methodName": "google.storage.objects.create",
                             "authenticationInfo": {"principalEmail": "batch-runner@fed-node-us.iam.gserviceaccount.com"},
                             "status": {"code": 7, "details": [{"@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                                                                "violations": [{"type": "VPC_SERVICE_CONTROLS",
                                                                                "description": "Xh3m"}]}]},
                             "metadata": metadata}}


def test_sec06_passes_without_violations_even_with_org_policy_denials(node: NodeEvidence) -> None:
    org_denial = vpcsc_entry()
    org_denial["protoPayload"]["metadata"] = {}
    org_denial["protoPayload"]["status"] = {"code": 9, "message": "violates constraint constraints/gcp.resourceLocations"}
    node.set("logging.policy_denied", {"entries": [org_denial]})
    assert node.run("SEC-06").outcome == Outcome.PASS


def test_sec06_lists_each_violation(node: NodeEvidence) -> None:
    node.set("logging.policy_denied", {"entries": [vpcsc_entry(), vpcsc_entry(dry_run=True)]})
    result = node.run("SEC-06")
    assert result.outcome == Outcome.FAIL
    assert len(failures(result)) == 2 and "dry-run" in failures(result)[1]


def test_sec06_errors_when_the_policy_log_could_not_be_read(node: NodeEvidence) -> None:
    node.set("logging.policy_denied", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("SEC-06").outcome == Outcome.ERROR


def test_sec04_ignores_a_write_that_was_refused(node: NodeEvidence) -> None:
    refused = node.write_entry("elsewhere-bucket", "x.parquet")
    refused["protoPayload"]["status"] = {"code": 7, "message": "Request is prohibited by organization's policy."}
    node.body("logging.data_writes")["entries"].append(refused)
    assert node.run("SEC-04").outcome == Outcome.PASS


def test_sec06_states_the_window_in_rfc3339(node: NodeEvidence) -> None:
    assert "2026-11-26T15:00:00Z .. 2026-11-26T16:00:00Z" in node.run("SEC-06").findings[0].message


def test_sec02_catches_an_access_config_of_a_vm_deleted_while_others_still_run(node: NodeEvidence) -> None:
    listed = node.body("compute.job_instances")["items"]
    scope = next(key for key, scoped in listed.items() if scoped.get("instances"))
    gone = listed[scope]["instances"].pop(0)
    entry = next(e for e in node.body("logging.instance_inserts")["entries"]
                 if e["protoPayload"]["request"].get("name") == gone["name"])
    entry["protoPayload"]["request"]["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT"}]
    result = node.run("SEC-02")
    assert result.outcome == Outcome.FAIL
    assert failures(result)[0].startswith(f"{gone['name']} has an external address (ONE_TO_ONE_NAT)")
