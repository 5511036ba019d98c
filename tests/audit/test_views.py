"""Typed views over raw REST JSON: Google's spellings parsed once, incomplete evidence refused."""

from __future__ import annotations

import pytest
from test_controls_evidence import UID, NodeEvidence

from sovaudit.audit import views, views_perimeter
from sovaudit.audit.views import EvidenceIncomplete
from sovaudit.policies.pack import resolve_policy


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def test_instances_skip_warning_scopes_and_keep_network_ip(node: NodeEvidence) -> None:
    vms = views.job_instances(node.log(), UID)
    assert len(vms) == 2
    assert {vm.zone for vm in vms} == {"us-central1-a", "us-central1-b"}
    assert vms[0].network_ips == ("10.10.0.10",)
    assert vms[0].machine_type == "n2d-standard-4" and vms[0].machine_series == "n2d"
    assert vms[0].resource.startswith("projects/fed-node-us/zones/us-central1-a/instances/")


def test_instances_follow_every_page(node: NodeEvidence) -> None:
    page1 = {"items": {"zones/us-central1-a": {"instances": [node.vm(0)]}}, "nextPageToken": "p2"}
    page2 = {"items": {"zones/us-central1-b": {"instances": [node.vm(1, "b")]}}}
    node.pages("compute.job_instances", (200, page1), (200, page2))
    assert len(views.instances(node.log())) == 2


def test_a_listing_that_ends_with_a_page_token_is_incomplete(node: NodeEvidence) -> None:
    node.body("compute.job_instances")["nextPageToken"] = "p2"
    with pytest.raises(EvidenceIncomplete, match="instances.aggregatedList.*last page") as caught:
        views.instances(node.log())
    assert caught.value.evidence_ids


def test_a_503_names_the_api_and_method(node: NodeEvidence) -> None:
    node.set("batch.job", {"error": {"code": 503, "message": "The service is currently unavailable."}}, status=503)
    with pytest.raises(EvidenceIncomplete) as caught:
        views.BatchJob.from_log(node.log())
    assert "batch jobs.get" in caught.value.message and "HTTP 503" in caught.value.message


def test_a_failed_middle_page_is_incomplete_even_if_the_last_page_is_fine(node: NodeEvidence) -> None:
    node.pages("logging.data_writes", (200, {"entries": [], "nextPageToken": "a"}),
               (500, {"error": {"code": 500, "message": "boom"}}), (200, {"entries": []}))
    with pytest.raises(EvidenceIncomplete, match="HTTP 500"):
        views.log_entries(node.log(), "logging.data_writes")


def test_a_body_that_is_not_json_is_incomplete(node: NodeEvidence) -> None:
    node.set("bigquery.dataset", b"<html>proxy error</html>")
    with pytest.raises(EvidenceIncomplete, match="not a JSON object"):
        views.Dataset.from_log(node.log())


def test_batch_job_numbers_arrive_as_strings_and_become_ints(node: NodeEvidence) -> None:
    job = views.BatchJob.from_log(node.log())
    assert job.task_count == 2 and job.region == "us-central1" and job.uid == UID
    assert job.task_inputs == ("gs://fed-node-us-raw-vcfs/sample-000.vcf.gz",
                               "gs://fed-node-us-raw-vcfs/sample-001.vcf.gz")


def test_batch_job_inputs_from_a_json_list_variable(node: NodeEvidence) -> None:
    group = node.body("batch.job")["taskGroups"][0]
    del group["taskEnvironments"]
    group["taskSpec"]["environment"] = {"variables": {"INPUT_URIS": '["gs://b/a.vcf", "gs://b/b.vcf"]'}}
    assert views.BatchJob.from_log(node.log()).task_inputs == ("gs://b/a.vcf", "gs://b/b.vcf")


def test_bucket_location_is_lower_cased(node: NodeEvidence) -> None:
    bucket = views.Bucket.from_log(node.log(), "fed-node-us-raw-vcfs")
    assert bucket.location == "us-central1" and bucket.uniform_access and bucket.public_access_prevention == "enforced"


def test_project_number_from_v3_name_or_v1_field(node: NodeEvidence) -> None:
    assert views.Project.from_log(node.log()).project_number == "314159265358"
    node.set("resourcemanager.project", {"projectNumber": "314159265358", "projectId": "fed-node-us"})
    assert views.Project.from_log(node.log()).default_compute_service_account == \
        "314159265358-compute@developer.gserviceaccount.com"


def test_audit_log_payload_stays_camel_case(node: NodeEvidence) -> None:
    entry = views.log_entries(node.log(), "logging.instance_inserts")[0]
    assert entry.method_name == "v1.compute.instances.insert"
    assert entry.principal == "314159265358@cloudservices.gserviceaccount.com"
    assert entry.request["confidentialInstanceConfig"]["enableConfidentialCompute"] is True


def test_empty_log_listing_is_complete_and_empty(node: NodeEvidence) -> None:
    assert views.log_entries(node.log(), "logging.policy_denied") == ()


def test_location_policy_merges_rules(node: NodeEvidence) -> None:
    node.set("orgpolicy.effective", {"spec": {"rules": [{"values": {"allowedValues": ["in:us-central1-locations"]}},
                                                        {"values": {"deniedValues": ["us-central1-f"]}}]}})
    policy = views.LocationPolicy.from_log(node.log())
    assert policy.allowed_values == ("in:us-central1-locations",) and policy.denied_values == ("us-central1-f",)
    assert not policy.allow_all and policy.rule_count == 2


def test_load_jobs_by_id_with_output_rows(node: NodeEvidence) -> None:
    jobs = views.load_jobs(node.log())
    job = jobs["sovaudit_20261126T150000Z_001"]
    assert job.output_rows == 1001 and job.state == "DONE"
    assert job.destination == "projects/fed-node-us/datasets/hospital_data/tables/variants"


def test_probe_attempt_reads_the_constraint_from_a_400_body(node: NodeEvidence) -> None:
    attempt = views.probe_attempt(node.log(), "batch", "us-east1")
    assert attempt.status == 400 and not attempt.accepted and attempt.cites_location_constraint
    assert attempt.message.startswith("batch jobs.create answered HTTP 400: Constraint constraints/gcp.resourceLocations")


def test_a_missing_probe_is_incomplete(node: NodeEvidence) -> None:
    with pytest.raises(EvidenceIncomplete, match="probe.batch:asia-east1 .batch jobs.create.: the probe was not run"):
        views.probe_attempt(node.log(), "batch", "asia-east1")


def test_batch_state_sent_as_an_int_enum_reads_as_its_name(node: NodeEvidence) -> None:
    from google.cloud import batch_v1

    assert views.BATCH_JOB_STATES == tuple(s.name for s in batch_v1.JobStatus.State)
    node.body("batch.job")["status"]["state"] = batch_v1.JobStatus.State.FAILED.value
    assert views.BatchJob.from_log(node.log()).state == "FAILED"


def test_perimeter_type_int_enum(node: NodeEvidence) -> None:
    node.body("acm.perimeters")["servicePerimeters"][0]["perimeterType"] = 1
    assert views_perimeter.service_perimeters(node.log())[0].perimeter_type == "PERIMETER_TYPE_BRIDGE"


def test_audit_log_types_sent_as_int_enums(node: NodeEvidence) -> None:
    from google.iam.v1 import policy_pb2

    assert views.AUDIT_LOG_TYPES == tuple(name for name, _ in sorted(policy_pb2.AuditLogConfig.LogType.items(),
                                                                     key=lambda item: item[1]))
    node.body("resourcemanager.iam_policy")["auditConfigs"] = [
        {"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": 2}, {"logType": 3}]}]
    assert views.IamAuditConfigs.from_log(node.log()).logged("storage.googleapis.com", "DATA_WRITE")[0]
