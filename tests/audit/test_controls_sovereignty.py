"""SOV-01 … SOV-06 against small REST-JSON evidence: a pass, the failure each must catch, fail-closed cases."""

from __future__ import annotations

import pytest
from test_controls_evidence import UID, NodeEvidence, location_refusal

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def outcomes(result) -> list[Outcome]:
    return [f.outcome for f in result.findings]


# ---- SOV-01 -------------------------------------------------------------------------------------

def test_sov01_passes_when_policy_allows_only_the_region_group(node: NodeEvidence) -> None:
    assert node.run("SOV-01").outcome == Outcome.PASS


def test_sov01_fails_on_allow_all(node: NodeEvidence) -> None:
    node.set("orgpolicy.effective", {"name": "projects/314159265358/policies/gcp.resourceLocations",
                                     "spec": {"rules": [{"allowAll": True}]}})
    result = node.run("SOV-01")
    assert result.outcome == Outcome.FAIL
    assert "allowAll" in result.findings[0].message


def test_sov01_fails_when_a_broad_group_reaches_outside_the_jurisdiction(node: NodeEvidence) -> None:
    node.set("orgpolicy.effective", {"spec": {"rules": [{"values": {"allowedValues": [
        "in:us-central1-locations", "in:us-locations"]}}]}})
    result = node.run("SOV-01")
    assert result.outcome == Outcome.FAIL
    failing = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert len(failing) == 1 and "in:us-locations" in failing[0].message and "us-east1" in failing[0].message


def test_sov01_fails_when_no_values_leave_the_default_allow(node: NodeEvidence) -> None:
    node.set("orgpolicy.effective", {"spec": {"rules": [{"values": {"deniedValues": ["in:asia-locations"]}}]}})
    assert node.run("SOV-01").outcome == Outcome.FAIL


def test_sov01_errors_on_an_unknown_value_group(node: NodeEvidence) -> None:
    node.set("orgpolicy.effective", {"spec": {"rules": [{"values": {"allowedValues": ["in:mars-locations"]}}]}})
    result = node.run("SOV-01")
    assert result.outcome == Outcome.ERROR
    assert "mars-locations" in result.findings[0].message


def test_sov01_errors_when_the_org_policy_api_answered_503(node: NodeEvidence) -> None:
    node.set("orgpolicy.effective", {"error": {"code": 503, "message": "The service is currently unavailable.",
                                               "status": "UNAVAILABLE"}}, status=503)
    result = node.run("SOV-01")
    assert result.outcome == Outcome.ERROR
    assert "getEffectivePolicy" in result.findings[0].message and "503" in result.findings[0].message
    assert result.findings[0].evidence == ("0001",)


def test_sov01_errors_when_the_policy_was_never_collected(node: NodeEvidence) -> None:
    node.drop("orgpolicy.effective")
    result = node.run("SOV-01")
    assert result.outcome == Outcome.ERROR
    assert "orgpolicy.effective" in result.findings[0].message


# ---- SOV-02 / SOV-03 probes ---------------------------------------------------------------------

def test_sov02_passes_when_batch_refuses_synchronously_citing_the_constraint(node: NodeEvidence) -> None:
    result = node.run("SOV-02")
    assert result.outcome == Outcome.PASS
    assert len(result.findings) == 2  # europe-west4 and us-east1


def _accept_probe_job(node: NodeEvidence, region: str, state: str, description: str) -> str:
    name = f"projects/fed-node-us/locations/{region}/jobs/sovaudit-probe-20261126t1618z"
    node.set(f"probe.batch:{region}", {"name": name, "uid": "sovaudit-probe-uid", "status": {"state": "QUEUED"}})
    node.set(f"probe.batch_status:{region}", {"name": name, "uid": "sovaudit-probe-uid", "status": {
        "state": state, "statusEvents": [{"type": "STATUS_CHANGED", "description": description}]}})
    return name


def test_sov02_passes_in_batch_mode_two_failed_with_constraint_and_no_vm(node: NodeEvidence) -> None:
    name = _accept_probe_job(node, "europe-west4", "FAILED", "VM in Managed Instance Group meets error: Batch Error: "
                             "code - CODE_GCE_CONDITION_NOT_MET, description - Location ZONE:europe-west4-a violates "
                             "constraint constraints/gcp.resourceLocations")
    node.set("probe.batch_vms:europe-west4", {"items": {"zones/europe-west4-a": {"warning": {
        "code": "NO_RESULTS_ON_PAGE"}}}})
    node.set(f"probe.cleanup:{name}", {})
    result = node.run("SOV-02")
    assert result.outcome == Outcome.PASS
    assert "no VM created" in result.findings[0].message


def test_sov02_errors_in_mode_two_when_absence_of_vms_was_not_collected(node: NodeEvidence) -> None:
    _accept_probe_job(node, "europe-west4", "FAILED", "violates constraint constraints/gcp.resourceLocations")
    assert node.run("SOV-02").outcome == Outcome.ERROR


def test_sov02_fails_when_the_job_is_accepted_and_reports_cleanup(node: NodeEvidence) -> None:
    name = _accept_probe_job(node, "us-east1", "SCHEDULED", "Job state is set from QUEUED to SCHEDULED")
    node.set(f"probe.cleanup:{name}", {})
    result = node.run("SOV-02")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL][0]
    assert "ACCEPTED" in failed.message and "cleanup: deleted" in failed.message


def test_sov02_fail_says_when_cleanup_failed(node: NodeEvidence) -> None:
    name = _accept_probe_job(node, "us-east1", "RUNNING", "running")
    node.set(f"probe.cleanup:{name}", {"error": {"code": 500, "message": "internal"}}, status=500)
    failed = [f for f in node.run("SOV-02").findings if f.outcome == Outcome.FAIL][0]
    assert "cleanup: FAILED" in failed.message and "sovaudit cleanup" in failed.message


def test_sov02_fails_when_the_accepted_job_ran_a_vm_and_then_failed_for_another_reason(node: NodeEvidence) -> None:
    name = _accept_probe_job(node, "us-east1", "FAILED", "Job failed due to task failure: exit code 1")
    node.set("probe.batch_vms:us-east1", {"items": {"zones/us-east1-b": {"instances": [{
        "name": "sovaudit-probe-vm-1", "zone": "zones/us-east1-b",
        "labels": {"batch-job-uid": "sovaudit-probe-uid"}}]}}})
    node.set(f"probe.cleanup:{name}", {})
    result = node.run("SOV-02")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL][0]
    assert "ACCEPTED" in failed.message and "sovaudit-probe-vm-1" in failed.message


def test_sov02_still_errors_when_the_accepted_job_failed_for_another_reason_without_running(
        node: NodeEvidence) -> None:
    name = _accept_probe_job(node, "us-east1", "FAILED", "Job failed: quota exhausted")
    node.set("probe.batch_vms:us-east1", {"items": {"zones/us-east1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}})
    node.set(f"probe.cleanup:{name}", {})
    result = node.run("SOV-02")
    assert result.outcome == Outcome.ERROR
    assert "another reason" in [f for f in result.findings if f.outcome == Outcome.ERROR][0].message


def test_sov02_errors_when_refused_for_another_reason(node: NodeEvidence) -> None:
    node.set("probe.batch:us-east1", {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                                "message": "Quota exceeded for quota metric 'Jobs'"}}, status=429)
    result = node.run("SOV-02")
    assert result.outcome == Outcome.ERROR
    assert "another reason" in [f for f in result.findings if f.outcome == Outcome.ERROR][0].message


def test_sov02_reads_the_body_of_a_400_not_the_exception_class(node: NodeEvidence) -> None:
    # 400 INVALID_ARGUMENT (e.g. allowedLocations spanning regions) is a BadRequest like the real refusal.
    node.set("probe.batch:us-east1", {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                                                "job.allocation_policy field is invalid."}}, status=400)
    assert node.run("SOV-02").outcome == Outcome.ERROR


def test_sov02_errors_when_a_probe_region_was_not_probed(node: NodeEvidence) -> None:
    node.drop("probe.batch:europe-west4")
    assert node.run("SOV-02").outcome == Outcome.ERROR


def test_sov03_passes_when_bucket_412_and_dataset_400_cite_the_constraint(node: NodeEvidence) -> None:
    result = node.run("SOV-03")
    assert result.outcome == Outcome.PASS
    assert len(result.findings) == 4


def test_sov03_fails_when_a_bucket_is_created_abroad(node: NodeEvidence) -> None:
    node.set("probe.bucket:europe-west4", {"kind": "storage#bucket", "name": "sovaudit-probe-20261126t1618z",
                                           "location": "EUROPE-WEST4", "locationType": "region"})
    result = node.run("SOV-03")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL][0]
    assert "CREATED" in failed.message and "no delete" in failed.message


def test_sov03_errors_on_a_5xx_answer(node: NodeEvidence) -> None:
    status, _ = location_refusal("dataset", "us-east1", "314159265358")
    node.set("probe.dataset:us-east1", {"error": {"code": 503, "message": "backend error"}}, status=503)
    assert status == 400
    assert node.run("SOV-03").outcome == Outcome.ERROR


# ---- SOV-04 / SOV-05 ----------------------------------------------------------------------------

def test_sov04_passes_for_regional_cmek_buckets(node: NodeEvidence) -> None:
    result = node.run("SOV-04")
    assert result.outcome == Outcome.PASS and len(result.findings) == 5  # 2 buckets, 2 IAM policies, 1 project listing


def test_sov04_fails_for_a_multi_region_bucket_without_cmek(node: NodeEvidence) -> None:
    body = node.body("storage.bucket:fed-node-us-processed")
    body.update({"location": "US", "locationType": "multi-region"})
    del body["encryption"]
    result = node.run("SOV-04")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL][0]
    assert failed.resource == "projects/_/buckets/fed-node-us-processed"
    assert "multi-region" in failed.message and "no default CMEK" in failed.message


def test_sov04_fails_when_public_access_prevention_is_inherited(node: NodeEvidence) -> None:
    node.body("storage.bucket:fed-node-us-raw-vcfs")["iamConfiguration"]["publicAccessPrevention"] = "inherited"
    assert node.run("SOV-04").outcome == Outcome.FAIL


def test_sov04_fails_when_the_key_is_in_another_location(node: NodeEvidence) -> None:
    foreign = "projects/fed-node-us/locations/us-east1/keyRings/other/cryptoKeys/gcs-raw"
    node.body("storage.bucket:fed-node-us-raw-vcfs")["encryption"]["defaultKmsKeyName"] = foreign
    node.set(f"kms.key:{foreign}", {"name": foreign, "primary": {"state": "ENABLED"}})
    failed = [f for f in node.run("SOV-04").findings if f.outcome == Outcome.FAIL][0]
    assert "us-east1" in failed.message and "key ring" in failed.message


def test_sov04_errors_when_the_key_metadata_is_missing(node: NodeEvidence) -> None:
    node.drop(f"kms.key:{node.key('gcs-raw')}")
    assert node.run("SOV-04").outcome == Outcome.ERROR


def test_sov05_passes_and_fails_on_dataset_cmek(node: NodeEvidence) -> None:
    assert node.run("SOV-05").outcome == Outcome.PASS
    del node.body("bigquery.dataset")["defaultEncryptionConfiguration"]
    result = node.run("SOV-05")
    assert result.outcome == Outcome.FAIL and "no default CMEK" in result.findings[0].message


def test_sov05_fails_for_a_dataset_in_the_us_multi_region(node: NodeEvidence) -> None:
    node.body("bigquery.dataset")["location"] = "US"
    assert node.run("SOV-05").outcome == Outcome.FAIL


# ---- SOV-06 -------------------------------------------------------------------------------------

def test_sov06_passes_when_vms_ran_in_region_zones(node: NodeEvidence) -> None:
    assert node.run("SOV-06").outcome == Outcome.PASS


def test_sov06_fails_for_a_vm_in_another_region(node: NodeEvidence) -> None:
    vm = node.vm(5)
    vm["zone"] = "https://www.googleapis.com/compute/v1/projects/fed-node-us/zones/us-east1-b"
    node.body("compute.job_instances")["items"]["zones/us-east1-b"] = {"instances": [vm]}
    result = node.run("SOV-06")
    assert result.outcome == Outcome.FAIL
    assert [f.message for f in result.findings if f.outcome == Outcome.FAIL][0].endswith(
        "outside the jurisdiction 'United States — us-central1'")


def test_sov06_fails_for_allowed_locations_outside(node: NodeEvidence) -> None:
    node.body("batch.job")["allocationPolicy"]["location"]["allowedLocations"] = ["zones/europe-west4-a"]
    assert node.run("SOV-06").outcome == Outcome.FAIL


def test_sov06_errors_when_no_vm_carries_the_job_uid(node: NodeEvidence) -> None:
    for scoped in node.body("compute.job_instances")["items"].values():
        for vm in scoped.get("instances", []):
            vm["labels"]["batch-job-uid"] = "another-job"
    result = node.run("SOV-06")
    assert result.outcome == Outcome.ERROR
    assert UID in [f.message for f in result.findings if f.outcome == Outcome.ERROR][0]


def test_sov06_reads_the_zone_of_a_deleted_vm_from_its_insert_entry(node: NodeEvidence) -> None:
    node.set("compute.job_instances", {"kind": "compute#instanceAggregatedList", "items": {}})
    assert node.run("SOV-06").outcome == Outcome.PASS
    entry = node.body("logging.instance_inserts")["entries"][0]
    payload = entry["protoPayload"]
    payload["resourceName"] = payload["resourceName"].replace("/zones/us-central1-a/", "/zones/us-east1-b/")
    result = node.run("SOV-06")
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert result.outcome == Outcome.FAIL and len(failed) == 1
    assert failed[0].resource == payload["resourceName"] and "ran in us-east1-b" in failed[0].message


def test_sov06_errors_when_the_listing_stopped_before_its_last_page(node: NodeEvidence) -> None:
    first = dict(node.body("compute.job_instances"), nextPageToken="page2")
    node.pages("compute.job_instances", (200, first), (503, {"error": {"code": 503, "message": "unavailable"}}))
    result = node.run("SOV-06")
    assert result.outcome == Outcome.ERROR
    assert "aggregatedList" in result.findings[-1].message


def test_sov03_fail_reports_the_recorded_dataset_and_bucket_deletes(node: NodeEvidence) -> None:
    node.set("probe.dataset:us-east1", {"kind": "bigquery#dataset", "id": "fed-node-us:sovaudit_probe_x",
                                        "datasetReference": {"projectId": "fed-node-us",
                                                             "datasetId": "sovaudit_probe_x"},
                                        "location": "us-east1"})
    node.set("probe.cleanup:datasets/fed-node-us.sovaudit_probe_x", b"")
    node.set("probe.bucket:us-east1", {"kind": "storage#bucket", "name": "sovaudit-probe-x", "location": "US-EAST1"})
    node.set("probe.cleanup:buckets/sovaudit-probe-x", b"")
    result = node.run("SOV-03")
    failed = [f.message for f in result.findings if f.outcome == Outcome.FAIL]
    assert len(failed) == 2 and all("cleanup: deleted" in m for m in failed)


def test_sov02_mode_two_understands_int_encoded_job_states(node: NodeEvidence) -> None:
    # GAPIC REST clients request enum-encoding=int: FAILED arrives as 5.
    name = _accept_probe_job(node, "us-east1", "FAILED", "Location ZONE:us-east1-b violates constraint "
                             "constraints/gcp.resourceLocations")
    node.body("probe.batch_status:us-east1")["status"]["state"] = 5
    node.set("probe.batch_vms:us-east1", {"items": {}})
    node.set(f"probe.cleanup:{name}", {})
    assert node.run("SOV-02").outcome == Outcome.PASS


def test_sov02_errors_when_an_accepted_job_could_not_be_polled(node: NodeEvidence) -> None:
    name = _accept_probe_job(node, "us-east1", "QUEUED", "")
    node.set("probe.batch_status:us-east1", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    node.set(f"probe.cleanup:{name}", {})
    result = node.run("SOV-02")
    assert result.outcome == Outcome.ERROR
    assert "HTTP 503" in [f.message for f in result.findings if f.outcome == Outcome.ERROR][0]
