"""SEC-08 (log integrity) and its effect on the absence proofs SEC-04 and SEC-06."""

from __future__ import annotations

import dataclasses

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.log_integrity import absence_proof_problems
from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import AllowedExclusion, resolve_policy

DATA_ACCESS = 'LOG_ID("cloudaudit.googleapis.com/data_access")'


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def sinks(node: NodeEvidence) -> dict[str, dict]:
    return {s["name"]: s for s in node.body("logging.sinks")["sinks"]}


def failures(result) -> list[str]:
    return [f.message for f in result.findings if f.outcome == Outcome.FAIL]


def test_sec08_passes_on_the_clean_routing(node: NodeEvidence) -> None:
    result = node.run("SEC-08")
    assert result.outcome == Outcome.PASS
    assert "node-audit-logs" in result.findings[0].message
    assert absence_proof_problems(node.log(), node.pack) == []


def test_sec08_fails_on_an_unlisted_project_exclusion_naming_it_and_its_filter(node: NodeEvidence) -> None:
    node.body("logging.exclusions")["exclusions"].append({"name": "cost-cut", "filter": DATA_ACCESS})
    result = node.run("SEC-08")
    assert result.outcome == Outcome.FAIL
    [message] = failures(result)
    assert "'cost-cut'" in message and DATA_ACCESS in message
    assert result.findings[0].resource == "projects/fed-node-us/exclusions/cost-cut"


def test_sec08_fails_on_a_narrow_exclusion_on_default_too(node: NodeEvidence) -> None:
    sinks(node)["_Default"]["exclusions"] = [{"name": "noise",
                                              "filter": 'protoPayload.methodName="storage.objects.create"'}]
    assert "exclusion on sink _Default 'noise'" in failures(node.run("SEC-08"))[0]


def test_sec08_ignores_a_disabled_exclusion(node: NodeEvidence) -> None:
    node.body("logging.exclusions")["exclusions"].append({"name": "off", "filter": DATA_ACCESS, "disabled": True})
    assert node.run("SEC-08").outcome == Outcome.PASS


def test_sec08_matches_a_listed_exclusion_by_name_and_exact_filter(node: NodeEvidence) -> None:
    listed = node.body("logging.exclusions")["exclusions"][0]
    listed["filter"] = f"{listed['filter']} OR {DATA_ACCESS}"
    assert node.run("SEC-08").outcome == Outcome.FAIL
    listed["filter"] = DATA_ACCESS
    listed["name"] = "drop-task-debug-lines"
    pack = dataclasses.replace(node.pack, logging=dataclasses.replace(
        node.pack.logging, allowed_exclusions=(AllowedExclusion("drop-task-debug-lines", DATA_ACCESS),)))
    assert node.run("SEC-08", pack=pack).outcome == Outcome.PASS


@pytest.mark.parametrize("change, expected", [
    ({"disabled": True}, "_Default sink is disabled"),
    ({"filter": "severity>=NOTICE"}, "filter was changed"),
    ({"destination": "logging.googleapis.com/projects/central-audit-991/locations/us-central1/buckets/b"},
     "project central-audit-991"),
    ({"destination": "logging.googleapis.com/projects/fed-node-us/locations/global/buckets/_Default"},
     "outside the allowed log locations"),
    ({"destination": "logging.googleapis.com/projects/fed-node-us/locations/us-central1/buckets/missing"},
     "not among the project's log buckets"),
])
def test_sec08_fails_when_default_does_not_store_in_the_node_in_the_jurisdiction(
        node: NodeEvidence, change: dict, expected: str) -> None:
    sinks(node)["_Default"].update(change)
    result = node.run("SEC-08")
    assert result.outcome == Outcome.FAIL and expected in " ".join(failures(result))


def test_sec08_accepts_default_with_an_empty_filter(node: NodeEvidence) -> None:
    sinks(node)["_Default"].pop("filter")
    assert node.run("SEC-08").outcome == Outcome.PASS


def test_sec08_fails_when_default_is_missing(node: NodeEvidence) -> None:
    node.body("logging.sinks")["sinks"] = [s for s in node.body("logging.sinks")["sinks"] if s["name"] != "_Default"]
    assert "_Default sink is missing" in failures(node.run("SEC-08"))[0]


def test_sec08_fails_on_a_user_sink_out_of_the_node_even_with_a_narrow_filter(node: NodeEvidence) -> None:
    node.body("logging.sinks")["sinks"].append({
        "name": "archive", "destination": "storage.googleapis.com/fed-node-us-log-archive", "filter": DATA_ACCESS})
    [message] = failures(node.run("SEC-08"))
    assert "sink archive routes the node's entries to storage.googleapis.com/fed-node-us-log-archive" in message


def test_sec08_judges_a_user_sink_into_a_node_bucket_by_its_location(node: NodeEvidence) -> None:
    node.body("logging.sinks")["sinks"].append({
        "name": "copy", "destination": "logging.googleapis.com/projects/314159265358/locations/us/buckets/copy"})
    node.body("logging.buckets")["buckets"].append({"name": "projects/fed-node-us/locations/us/buckets/copy",
                                                    "lifecycleState": "ACTIVE"})
    [message] = failures(node.run("SEC-08"))
    assert "projects/fed-node-us/locations/us/buckets/copy" in message and "in us," in message
    node.body("logging.sinks")["sinks"][-1]["disabled"] = True
    assert node.run("SEC-08").outcome == Outcome.PASS


def test_sec08_fails_when_the_destination_bucket_is_being_deleted(node: NodeEvidence) -> None:
    node.body("logging.buckets")["buckets"][-1]["lifecycleState"] = "DELETE_REQUESTED"
    assert "DELETE_REQUESTED" in failures(node.run("SEC-08"))[0]


def test_sec08_accepts_required_in_global_only_when_the_pack_says_so(node: NodeEvidence) -> None:
    pack = dataclasses.replace(node.pack, logging=dataclasses.replace(node.pack.logging, required_bucket_location=""))
    result = node.run("SEC-08", pack=pack)
    assert result.outcome == Outcome.FAIL
    assert failures(result)[0].startswith("log bucket projects/fed-node-us/locations/global/buckets/_Required")


def test_sec08_errors_when_a_listing_failed(node: NodeEvidence) -> None:
    node.set("logging.buckets", {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}, 403)
    result = node.run("SEC-08")
    assert result.outcome == Outcome.ERROR and "logging.buckets" in result.findings[0].message


def test_sec08_errors_when_a_listing_stopped_before_its_last_page(node: NodeEvidence) -> None:
    node.body("logging.sinks")["nextPageToken"] = "more"
    assert node.run("SEC-08").outcome == Outcome.ERROR


# ---- the absence proofs --------------------------------------------------------------------------

@pytest.mark.parametrize("control_id", ["SEC-04", "SEC-06"])
def test_absence_proofs_are_error_not_pass_while_sec08_fails(node: NodeEvidence, control_id: str) -> None:
    node.body("logging.exclusions")["exclusions"].append({"name": "cost-cut", "filter": DATA_ACCESS})
    result = node.run(control_id)
    assert result.outcome == Outcome.ERROR
    errors = [f.message for f in result.findings if f.outcome == Outcome.ERROR]
    assert any("cost-cut" in m and "SEC-08" in m for m in errors)


@pytest.mark.parametrize("control_id", ["SEC-04", "SEC-06"])
def test_absence_proofs_are_error_when_the_routing_could_not_be_read(node: NodeEvidence, control_id: str) -> None:
    node.drop("logging.sinks")
    result = node.run(control_id)
    assert result.outcome == Outcome.ERROR
    assert "log routing configuration could not be read" in result.findings[-1].message


def test_a_real_egress_stays_a_fail_while_the_log_is_also_untrusted(node: NodeEvidence) -> None:
    node.body("logging.data_writes")["entries"].append(node.write_entry("fed-node-us-exfil", "out/v.parquet"))
    sinks(node)["_Default"]["disabled"] = True
    result = node.run("SEC-04")
    assert result.outcome == Outcome.FAIL
    assert {f.outcome for f in result.findings} >= {Outcome.FAIL, Outcome.ERROR}


def test_a_real_violation_stays_a_fail_while_the_log_is_also_untrusted(node: NodeEvidence) -> None:
    node.set("logging.policy_denied", {"entries": [{
        "logName": "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fpolicy", "insertId": "x1",
        "timestamp": "2026-11-26T15:10:00Z", "resource": {"type": "audited_resource", "labels": {}},
        "protoPayload": {"methodName": "google.storage.objects.create", "metadata": {
            "@type": "type.googleapis.com/google.cloud.audit.VpcServiceControlAuditMetadata",
            "violationReason": "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER", "resourceNames": ["projects/_/buckets/b"]}}}]})
    node.body("logging.exclusions")["exclusions"].append({"name": "cost-cut", "filter": DATA_ACCESS})
    assert node.run("SEC-06").outcome == Outcome.FAIL


# ---- the routing's change history since the run began -----------------------------------------------

def change_entry(method: str, resource: str, request: dict | None = None, status: dict | None = None) -> dict:
    payload = {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "logging.googleapis.com",
               "methodName": f"google.logging.v2.ConfigServiceV2.{method}", "resourceName": resource,
               "authenticationInfo": {"principalEmail": "admin@example.org"}, "request": request or {}}
    if status:
        payload["status"] = status
    return {"logName": "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity", "insertId": method,
            "timestamp": "2026-11-26T14:58:00Z", "resource": {"type": "logging_exclusion", "labels": {}},
            "protoPayload": payload}


def test_sec08_fails_on_a_routing_change_since_the_run_began_even_if_reverted(node: NodeEvidence) -> None:
    resource = "projects/fed-node-us/exclusions/tmp"
    node.set("logging.config_changes", {"entries": [
        change_entry("CreateExclusion", resource, {"exclusion": {"name": "tmp", "filter": DATA_ACCESS}}),
        change_entry("DeleteExclusion", resource)]})
    result = node.run("SEC-08")
    messages = failures(result)
    assert result.outcome == Outcome.FAIL and len(messages) == 2
    assert messages[0].startswith("admin@example.org called CreateExclusion on projects/fed-node-us/exclusions/tmp "
                                  f"(filter {DATA_ACCESS!r})")
    assert node.run("SEC-04").outcome == Outcome.ERROR


def test_sec08_ignores_a_refused_change(node: NodeEvidence) -> None:
    node.set("logging.config_changes", {"entries": [
        change_entry("UpdateSink", "projects/fed-node-us/sinks/_Required", status={"code": 9})]})
    assert node.run("SEC-08").outcome == Outcome.PASS


def test_unreadable_change_history_is_error_for_sec08_and_the_absence_proofs(node: NodeEvidence) -> None:
    node.set("logging.config_changes", {"error": {"code": 503, "message": "unavailable"}}, 503)
    assert node.run("SEC-08").outcome == Outcome.ERROR
    assert node.run("SEC-06").outcome == Outcome.ERROR


def test_a_posture_only_run_judges_the_routing_without_history(node: NodeEvidence) -> None:
    from test_controls_evidence import job_scope

    node.drop("logging.config_changes")
    assert node.run("SEC-08", scope=job_scope(job=None, job_uid=None, window_start=None, window_end=None,
                                              posture_only=True)).outcome == Outcome.PASS
