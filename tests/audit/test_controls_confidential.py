"""CC-01 … CC-03: the template, the VMs and the insert audit trail must all say Confidential VM (SEV)."""

from __future__ import annotations

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def first_vm(node: NodeEvidence) -> dict:
    items = node.body("compute.job_instances")["items"]
    return next(s["instances"][0] for s in items.values() if "instances" in s)


def test_cc01_passes_for_a_sev_template(node: NodeEvidence) -> None:
    result = node.run("CC-01")
    assert result.outcome == Outcome.PASS
    assert "sev-n2d-batch" in result.findings[0].message


def test_cc01_fails_when_confidential_config_sits_on_the_instance_policy(node: NodeEvidence) -> None:
    node.body("batch.job")["allocationPolicy"]["instances"] = [{"policy": {
        "machineType": "n2d-standard-4", "confidentialInstanceConfig": {"enableConfidentialCompute": True}}}]
    result = node.run("CC-01")
    assert result.outcome == Outcome.FAIL
    message = result.findings[0].message
    assert "instances[0].policy.confidentialInstanceConfig" in message and "NOT confidential" in message


def test_cc01_fails_when_the_template_is_not_confidential(node: NodeEvidence) -> None:
    del node.body("compute.instance_template")["properties"]["confidentialInstanceConfig"]
    result = node.run("CC-01")
    assert result.outcome == Outcome.FAIL and "not enabled" in result.findings[0].message


def test_cc01_fails_when_the_template_uses_tdx_but_sev_is_required(node: NodeEvidence) -> None:
    node.body("compute.instance_template")["properties"]["confidentialInstanceConfig"]["confidentialInstanceType"] = "TDX"
    assert node.run("CC-01").outcome == Outcome.FAIL


def test_cc01_errors_when_the_template_was_not_collected(node: NodeEvidence) -> None:
    node.drop("compute.instance_template")
    result = node.run("CC-01")
    assert result.outcome == Outcome.ERROR and "instanceTemplates.get" in result.findings[0].message


def test_cc02_passes_for_sev_vms(node: NodeEvidence) -> None:
    result = node.run("CC-02")
    assert result.outcome == Outcome.PASS and len(result.findings) == 2


def test_cc02_treats_an_absent_type_with_confidential_enabled_as_sev(node: NodeEvidence) -> None:
    first_vm(node)["confidentialInstanceConfig"] = {"enableConfidentialCompute": True}
    assert node.run("CC-02").outcome == Outcome.PASS


def test_cc02_fails_when_one_vm_is_not_confidential(node: NodeEvidence) -> None:
    vm = first_vm(node)
    del vm["confidentialInstanceConfig"]
    result = node.run("CC-02")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert len(failed) == 1 and failed[0].resource.endswith(vm["name"])


def test_cc02_fails_on_a_machine_series_without_sev(node: NodeEvidence) -> None:
    vm = first_vm(node)
    vm["machineType"] = vm["machineType"].replace("n2d-standard-4", "e2-standard-4")
    result = node.run("CC-02")
    assert result.outcome == Outcome.FAIL and "e2-standard-4" in str([f.message for f in result.findings])


NO_VMS = {"items": {"zones/us-central1-a": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}}


def test_cc02_errors_when_neither_vms_nor_their_inserts_were_found(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    node.set("logging.instance_inserts", {})
    assert node.run("CC-02").outcome == Outcome.ERROR


def test_cc02_judges_deleted_vms_on_their_insert_request_bodies(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    result = node.run("CC-02")
    assert result.outcome == Outcome.PASS and len(result.findings) == 2
    assert all("the VM no longer exists" in f.message for f in result.findings)
    log_ids = set(node.log().by_purpose("logging.instance_inserts").ids)
    assert all(f.evidence and set(f.evidence) <= log_ids for f in result.findings)


def test_cc02_fails_when_a_deleted_vm_was_inserted_without_sev(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    entry = node.body("logging.instance_inserts")["entries"][0]
    entry["protoPayload"]["request"]["confidentialInstanceConfig"]["confidentialInstanceType"] = "SEV_SNP"
    result = node.run("CC-02")
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert result.outcome == Outcome.FAIL and len(failed) == 1
    assert "SEV_SNP, the policy requires SEV" in failed[0].message
    assert failed[0].resource == entry["protoPayload"]["resourceName"]


def test_cc02_does_not_count_another_jobs_insert_as_a_deleted_vm(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    for entry in node.body("logging.instance_inserts")["entries"]:
        if "labels" in entry.get("protoPayload", {}).get("request", {}):
            entry["protoPayload"]["request"]["labels"] = {"batch-job-uid": "another-job"}
    assert node.run("CC-02").outcome == Outcome.ERROR


def test_cc02_stays_error_when_the_vm_listing_failed_even_with_inserts_logged(node: NodeEvidence) -> None:
    node.set("compute.job_instances", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("CC-02").outcome == Outcome.ERROR


def test_cc03_passes_when_every_insert_records_sev(node: NodeEvidence) -> None:
    result = node.run("CC-03")
    assert result.outcome == Outcome.PASS
    assert "2 VM inserts logged for 2 VMs found" in result.findings[-1].message


def test_cc03_fails_when_an_insert_lacks_confidential_compute(node: NodeEvidence) -> None:
    entry = node.body("logging.instance_inserts")["entries"][0]
    del entry["protoPayload"]["request"]["confidentialInstanceConfig"]
    assert node.run("CC-03").outcome == Outcome.FAIL


def test_cc03_fails_when_a_vm_has_no_insert_entry(node: NodeEvidence) -> None:
    entries = node.body("logging.instance_inserts")["entries"]
    node.set("logging.instance_inserts", {"entries": entries[2:]})
    result = node.run("CC-03")
    assert result.outcome == Outcome.FAIL
    assert "VMs without an insert entry" in result.findings[-1].message


def test_cc03_errors_when_the_log_holds_no_inserts(node: NodeEvidence) -> None:
    node.set("logging.instance_inserts", {})
    assert node.run("CC-03").outcome == Outcome.ERROR


def test_cc03_ignores_the_last_operation_entries_that_carry_only_the_type(node: NodeEvidence) -> None:
    entries = node.body("logging.instance_inserts")["entries"]
    node.set("logging.instance_inserts", {"entries": [e for e in entries if e.get("operation", {}).get("last")]})
    assert node.run("CC-03").outcome == Outcome.ERROR


def test_cc03_passes_on_the_inserts_alone_when_the_vms_are_gone(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    result = node.run("CC-03")
    assert result.outcome == Outcome.PASS
    assert result.findings[-1].message == ("2 VM inserts logged for 0 VMs found; 2 no longer exist (Batch deletes "
                                           "its VMs) and were judged on their inserts above")


def test_cc03_still_fails_a_non_confidential_insert_when_the_vms_are_gone(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    del node.body("logging.instance_inserts")["entries"][0]["protoPayload"]["request"]["confidentialInstanceConfig"]
    assert node.run("CC-03").outcome == Outcome.FAIL


def test_cc02_errors_naming_the_log_api_when_the_vms_are_gone_and_the_log_failed(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    node.set("logging.instance_inserts", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    result = node.run("CC-02")
    assert result.outcome == Outcome.ERROR and "logging entries.list" in result.findings[0].message


def drop_first_vm(node: NodeEvidence) -> str:
    """Remove one VM from the listing, as Batch does when it replaces or deletes a worker; return its name."""
    for scoped in node.body("compute.job_instances")["items"].values():
        if scoped.get("instances"):
            return scoped.pop("instances")[0]["name"]
    raise AssertionError("no VM listed")


def test_cc02_judges_a_vm_deleted_mid_run_beside_the_live_ones(node: NodeEvidence) -> None:
    gone = drop_first_vm(node)
    result = node.run("CC-02")
    assert result.outcome == Outcome.PASS and len(result.findings) == 2
    assert [f.message.startswith(gone) for f in result.findings if "no longer exists" in f.message] == [True]


def test_cc02_judges_live_vms_when_the_insert_log_could_not_be_read(node: NodeEvidence) -> None:
    node.set("logging.instance_inserts", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    result = node.run("CC-02")
    assert result.outcome == Outcome.PASS and len(result.findings) == 2


def test_cc03_accounts_for_a_vm_deleted_mid_run(node: NodeEvidence) -> None:
    drop_first_vm(node)
    result = node.run("CC-03")
    assert result.outcome == Outcome.PASS
    assert result.findings[-1].message.startswith("2 VM inserts logged for 1 VMs found; 1 no longer exist")


def test_cc03_fails_for_an_unlabelled_insert_of_no_vm_found(node: NodeEvidence) -> None:
    entry = node.body("logging.instance_inserts")["entries"][0]
    del entry["protoPayload"]["request"]["labels"]
    entry["protoPayload"]["request"]["name"] = "stray-vm"
    result = node.run("CC-03")
    assert result.outcome == Outcome.FAIL and "inserts without a VM found: stray-vm" in result.findings[-1].message
