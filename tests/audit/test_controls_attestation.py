"""CC-04: every VM of the run has a passing launch attestation report in the Shielded VM integrity log."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import PolicyPack, resolve_policy

NO_VMS = {"kind": "compute#instanceAggregatedList", "items": {}}


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def launches(node: NodeEvidence) -> list[dict[str, Any]]:
    return [e for e in node.body("logging.instance_inserts")["entries"] if "jsonPayload" in e]


def report(entry: dict[str, Any]) -> dict[str, Any]:
    return entry["jsonPayload"]["sevLaunchAttestationReportEvent"]


def drop_launch(node: NodeEvidence, index: int) -> dict[str, Any]:
    body = node.body("logging.instance_inserts")
    dropped = launches(node)[index]
    body["entries"] = [e for e in body["entries"] if e is not dropped]
    return dropped


def requiring(pack: PolicyPack, technology: str) -> PolicyPack:
    return dataclasses.replace(pack, confidential=dataclasses.replace(pack.confidential, required_type=technology))


def outcomes(result: Any) -> list[Outcome]:
    return [f.outcome for f in result.findings]


def test_cc04_passes_when_every_vm_has_a_passing_sev_launch_report(node: NodeEvidence) -> None:
    result = node.run("CC-04")
    assert result.outcome == Outcome.PASS and outcomes(result) == [Outcome.PASS, Outcome.PASS]
    assert "AMD SEV launch attested" in result.findings[0].message
    assert "debugEnabled=false, keySharingAllowed=false" in result.findings[0].message


def test_cc04_fails_when_a_vm_has_no_launch_report(node: NodeEvidence) -> None:
    dropped = drop_launch(node, 1)
    result = node.run("CC-04")
    assert result.outcome == Outcome.FAIL
    failed = [f for f in result.findings if f.outcome == Outcome.FAIL]
    assert len(failed) == 1 and "did not boot as an AMD SEV Confidential VM" in failed[0].message
    assert dropped["resource"]["labels"]["instance_id"] not in failed[0].message   # named by VM, not id
    assert "group0-1-" in failed[0].message


@pytest.mark.parametrize(("path", "value", "said"), [
    (("sevPolicy", "debugEnabled"), True, "sevPolicy.debugEnabled is true"),
    (("sevPolicy", "keySharingAllowed"), True, "sevPolicy.keySharingAllowed is true"),
    (("sevPolicy", "debugEnabled"), "true", "sevPolicy.debugEnabled is true"),
    (("integrityEvaluationPassed",), False, "integrityEvaluationPassed is false"),
    (("integrityEvaluationPassed",), None, "integrityEvaluationPassed is absent"),
    (("sevPolicy",), None, "carries no sevPolicy"),
])
def test_cc04_fails_on_a_report_that_breaks_the_promise(node: NodeEvidence, path: tuple[str, ...], value: Any,
                                                       said: str) -> None:
    target = report(launches(node)[0])
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    result = node.run("CC-04")
    assert result.outcome == Outcome.FAIL
    assert said in next(f.message for f in result.findings if f.outcome == Outcome.FAIL)


def test_cc04_treats_absent_policy_bits_as_unset(node: NodeEvidence) -> None:
    # proto3 JSON omits false booleans: an absent debugEnabled is false, not a finding
    for entry in launches(node):
        del report(entry)["sevPolicy"]["debugEnabled"]
    assert node.run("CC-04").outcome == Outcome.PASS


def test_cc04_fails_when_a_passing_copy_sits_beside_a_failing_report(node: NodeEvidence) -> None:
    import copy

    bad = copy.deepcopy(launches(node)[0])
    report(bad)["sevPolicy"]["debugEnabled"] = True
    bad["insertId"] = "second"
    node.body("logging.instance_inserts")["entries"].append(bad)
    assert node.run("CC-04").outcome == Outcome.FAIL


def test_cc04_fails_on_a_report_received_long_after_the_boot(node: NodeEvidence) -> None:
    launches(node)[0]["receiveTimestamp"] = "2026-11-26T17:40:00Z"
    result = node.run("CC-04")
    assert result.outcome == Outcome.FAIL
    assert "not Google's record" in next(f.message for f in result.findings if f.outcome == Outcome.FAIL)


@pytest.mark.parametrize("edit", ["other project's log", "wrong zone", "protoPayload", "other @type", "not gce"])
def test_cc04_does_not_count_a_report_that_is_not_the_vms(node: NodeEvidence, edit: str) -> None:
    entry = launches(node)[0]
    if edit == "other project's log":
        entry["logName"] = entry["logName"].replace("fed-node-us", "someone-else")
    elif edit == "wrong zone":
        entry["resource"]["labels"]["zone"] = "us-central1-f"
    elif edit == "protoPayload":
        entry["protoPayload"] = entry.pop("jsonPayload")
    elif edit == "other @type":
        entry["jsonPayload"]["@type"] = "type.googleapis.com/google.cloud.audit.AuditLog"
    else:
        entry["resource"]["type"] = "global"
    assert node.run("CC-04").outcome == Outcome.FAIL


def test_cc04_fails_when_only_a_later_boot_is_reported(node: NodeEvidence) -> None:
    launches(node)[0]["jsonPayload"]["bootCounter"] = "3"
    result = node.run("CC-04")
    assert result.outcome == Outcome.FAIL and "only later boots are logged" in result.findings[0].message


def test_cc04_reads_an_absent_boot_counter_as_the_first_boot(node: NodeEvidence) -> None:
    for entry in launches(node):
        del entry["jsonPayload"]["bootCounter"]
    assert node.run("CC-04").outcome == Outcome.PASS


def test_cc04_is_error_not_fail_when_an_unlisted_exclusion_could_have_dropped_the_report(node: NodeEvidence) -> None:
    drop_launch(node, 0)
    node.body("logging.exclusions")["exclusions"].append(
        {"name": "quiet-integrity", "filter": 'LOG_ID("compute.googleapis.com/shielded_vm_integrity")'})
    result = node.run("CC-04")
    assert result.outcome == Outcome.ERROR
    message = next(f.message for f in result.findings if f.outcome == Outcome.ERROR)
    assert "could have dropped it" in message and "quiet-integrity" in message


def test_cc04_is_error_when_the_routing_changed_during_the_run_and_a_report_is_missing(node: NodeEvidence) -> None:
    drop_launch(node, 0)
    node.set("logging.config_changes", {"entries": [{
        "logName": "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity", "timestamp": "2026-11-26T15:00:00Z",
        "insertId": "x1", "resource": {"type": "logging_exclusion", "labels": {}},
        "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                         "methodName": "google.logging.v2.ConfigServiceV2.CreateExclusion",
                         "resourceName": "projects/fed-node-us/exclusions/tmp",
                         "authenticationInfo": {"principalEmail": "insider@example.org"},
                         "request": {"exclusion": {"filter": "jsonPayload.sevLaunchAttestationReportEvent:*"}}}}]})
    assert node.run("CC-04").outcome == Outcome.ERROR


def test_cc04_passes_with_a_routing_problem_when_every_report_is_there(node: NodeEvidence) -> None:
    # The reports were stored: the routing problem is SEC-08's, not a reason to doubt what is present.
    node.body("logging.exclusions")["exclusions"].append({"name": "x", "filter": 'LOG_ID("other")'})
    assert node.run("CC-04").outcome == Outcome.PASS


def test_cc04_judges_vms_batch_already_deleted_on_their_insert_ids(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    result = node.run("CC-04")
    assert result.outcome == Outcome.PASS and len(result.findings) == 2
    assert "the VM no longer exists" in result.findings[0].message
    drop_launch(node, 0)
    assert node.run("CC-04").outcome == Outcome.FAIL


def test_cc04_errors_when_the_log_query_failed(node: NodeEvidence) -> None:
    node.pages("logging.instance_inserts", (200, {**node.body("logging.instance_inserts"), "nextPageToken": "p2"}),
               (503, {"error": {"code": 503, "message": "unavailable"}}))
    result = node.run("CC-04")
    assert result.outcome == Outcome.ERROR and "could not be read" in result.findings[0].message


def test_cc04_errors_without_any_vm_of_the_run(node: NodeEvidence) -> None:
    node.set("compute.job_instances", NO_VMS)
    node.set("logging.instance_inserts", {})
    assert node.run("CC-04").outcome == Outcome.ERROR


def test_cc04_errors_when_a_vms_numeric_id_is_unknown(node: NodeEvidence) -> None:
    for scoped in node.body("compute.job_instances")["items"].values():
        for vm in scoped.get("instances", []):
            del vm["id"]
    result = node.run("CC-04")
    assert result.outcome == Outcome.ERROR and "numeric instance id" in result.findings[0].message


def test_cc04_fails_an_amd_launch_when_tdx_is_required(node: NodeEvidence) -> None:
    result = node.run("CC-04", pack=requiring(node.pack, "TDX"))
    assert result.outcome == Outcome.FAIL and "requires Intel TDX" in result.findings[0].message


def test_cc04_does_not_claim_sev_snp_from_an_sev_report(node: NodeEvidence) -> None:
    # [U] whether SEV-SNP VMs write this event: a passing one is accepted as an AMD SEV-family launch,
    # saying it does not tell SNP from SEV; a missing one is ERROR, never FAIL or PASS.
    pack = requiring(node.pack, "SEV_SNP")
    result = node.run("CC-04", pack=pack)
    assert result.outcome == Outcome.PASS and "does not tell SEV_SNP from SEV" in result.findings[0].message
    drop_launch(node, 0)
    result = node.run("CC-04", pack=pack)
    assert result.outcome == Outcome.ERROR and "unconfirmed" in result.findings[0].message


def test_cc04_is_error_for_a_tdx_vm_without_a_report(node: NodeEvidence) -> None:
    body = node.body("logging.instance_inserts")
    body["entries"] = [e for e in body["entries"] if "jsonPayload" not in e]
    result = node.run("CC-04", pack=requiring(node.pack, "TDX"))
    assert result.outcome == Outcome.ERROR and set(outcomes(result)) == {Outcome.ERROR}
