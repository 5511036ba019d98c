"""SEC-05 (with SEC-04/SEC-07's absence proofs) and SOV-01 over the project's folders and organization.

The evidence is the REST JSON the collector records: projects.get (its `parent`), folders.get for each
folder, getIamPolicy for each ancestor, and policies.get of gcp.resourceLocations at each level.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy

ORG = "organizations/161803398874"
FOLDER = "folders/876543210987"
NUMBER = "314159265358"
NOT_FOUND = {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
US = ["in:us-central1-locations"]


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def under_folder(node: NodeEvidence, folder_iam: dict[str, Any] | None = None,
                 folder_policy: dict[str, Any] | None = None) -> None:
    """Move the project under FOLDER (itself under the organization)."""
    node.body("resourcemanager.project")["parent"] = FOLDER
    node.set(f"resourcemanager.folder:{FOLDER}", {"name": FOLDER, "parent": ORG, "displayName": "genomics",
                                                  "state": "ACTIVE"})
    node.set(f"resourcemanager.ancestor_iam:{FOLDER}", folder_iam or {"version": 1, "etag": "BwX="})
    if folder_policy is None:
        node.set(f"orgpolicy.level:{FOLDER}", NOT_FOUND, 404)
    else:
        node.set(f"orgpolicy.level:{FOLDER}", {"name": f"{FOLDER}/policies/gcp.resourceLocations", **folder_policy})


def effective(node: NodeEvidence, rules: list[dict[str, Any]]) -> None:
    node.set("orgpolicy.effective", {"name": f"projects/{NUMBER}/policies/gcp.resourceLocations",
                                     "spec": {"rules": rules}})


def project_policy(node: NodeEvidence, body: dict[str, Any]) -> None:
    node.set("orgpolicy.level:project", {"name": f"projects/{NUMBER}/policies/gcp.resourceLocations", **body})


def messages(result: Any, outcome: Outcome) -> list[str]:
    return [f.message for f in result.findings if f.outcome == outcome]


# ---- SEC-05: audit configs over the chain ------------------------------------------------------

def test_sec05_passes_when_only_the_organization_enables_data_access(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy").pop("auditConfigs")
    node.set(f"resourcemanager.ancestor_iam:{ORG}", {"version": 1, "auditConfigs": [
        {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_WRITE"}, {"logType": "DATA_READ"}]}]})
    result = node.run("SEC-05")
    assert result.outcome == Outcome.PASS
    assert f"set at {ORG}" in result.findings[0].message


def test_sec05_fails_when_nothing_in_the_chain_enables_storage_writes(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy").pop("auditConfigs")
    result = node.run("SEC-05")
    assert result.outcome == Outcome.FAIL
    assert "DATA_WRITE audit logs are not enabled at the project, its folders or its organization" in \
        messages(result, Outcome.FAIL)[0]


def test_sec05_names_the_folder_that_exempts_a_reader(node: NodeEvidence) -> None:
    under_folder(node, {"version": 1, "auditConfigs": [{"service": "storage.googleapis.com", "auditLogConfigs": [
        {"logType": "DATA_READ", "exemptedMembers": ["user:x@example.org"]}]}]})
    result = node.run("SEC-05")
    assert result.outcome == Outcome.FAIL
    assert f"{FOLDER} exempts user:x@example.org from storage.googleapis.com DATA_READ" in \
        messages(result, Outcome.FAIL)[0]


def test_sec05_reads_an_exemption_given_as_a_numeric_enum_at_the_organization(node: NodeEvidence) -> None:
    # The REST clients ask for enum-encoding=int: logType 2 is DATA_WRITE.
    node.set(f"resourcemanager.ancestor_iam:{ORG}", {"version": 1, "auditConfigs": [{"service": "allServices",
             "auditLogConfigs": [{"logType": 2, "exemptedMembers": ["serviceAccount:etl@o.iam.gserviceaccount.com"]}]}]})
    failures = messages(node.run("SEC-05"), Outcome.FAIL)
    assert f"{ORG} exempts serviceAccount:etl@o.iam.gserviceaccount.com from storage.googleapis.com DATA_WRITE" \
        in failures[0]


def test_sec05_errors_when_an_ancestor_policy_could_not_be_read(node: NodeEvidence) -> None:
    node.set(f"resourcemanager.ancestor_iam:{ORG}", {"error": {"code": 403, "message": "The caller does not have "
                                                              "permission", "status": "PERMISSION_DENIED"}}, 403)
    result = node.run("SEC-05")
    assert result.outcome == Outcome.ERROR
    assert ORG in result.findings[0].message


def test_sec05_errors_when_a_folder_of_the_chain_could_not_be_read(node: NodeEvidence) -> None:
    under_folder(node)
    node.drop(f"resourcemanager.folder:{FOLDER}")
    result = node.run("SEC-05")
    assert result.outcome == Outcome.ERROR and f"ancestor {FOLDER}" in result.findings[0].message


def test_sec07_absence_proof_is_void_when_a_folder_exempts_a_reader(node: NodeEvidence) -> None:
    under_folder(node, {"version": 1, "auditConfigs": [{"service": "storage.googleapis.com", "auditLogConfigs": [
        {"logType": "DATA_READ", "exemptedMembers": ["user:x@example.org"]}]}]})
    result = node.run("SEC-07")
    assert result.outcome == Outcome.ERROR
    assert any(f"{FOLDER} exempts user:x@example.org" in m for m in messages(result, Outcome.ERROR))


# ---- SOV-01: where each rule comes from --------------------------------------------------------

def test_sov01_names_the_level_of_each_allowed_value(node: NodeEvidence) -> None:
    result = node.run("SOV-01")
    assert result.outcome == Outcome.PASS
    assert f"(set at projects/{NUMBER})" in result.findings[0].message


def test_sov01_names_the_folder_whose_wider_root_the_project_inherits(node: NodeEvidence) -> None:
    under_folder(node, folder_policy={"spec": {"rules": [{"values": {"allowedValues": [*US, "in:asia-east1-locations"]}}]}})
    project_policy(node, {"spec": {"rules": [{"values": {"allowedValues": US}}], "inheritFromParent": True}})
    effective(node, [{"values": {"allowedValues": [*US, "in:asia-east1-locations"]}}])
    failures = messages(node.run("SOV-01"), Outcome.FAIL)
    assert len(failures) == 1 and f"'in:asia-east1-locations' (set at {FOLDER})" in failures[0]


def test_sov01_ignores_a_wide_folder_policy_above_a_project_that_is_its_own_root(node: NodeEvidence) -> None:
    under_folder(node, folder_policy={"spec": {"rules": [{"allowAll": True}]}})
    assert node.run("SOV-01").outcome == Outcome.PASS


def test_sov01_fails_on_a_reset_and_says_where(node: NodeEvidence) -> None:
    project_policy(node, {"spec": {"reset": True}})
    node.set(f"orgpolicy.level:{ORG}", {"name": f"{ORG}/policies/gcp.resourceLocations",
                                        "spec": {"rules": [{"values": {"allowedValues": US}}]}})
    effective(node, [{"allowAll": True}])
    failures = messages(node.run("SOV-01"), Outcome.FAIL)
    assert any(f"projects/{NUMBER} resets gcp.resourceLocations" in m for m in failures)


def test_sov01_fails_on_allow_all_in_the_chain_even_if_the_effective_answer_hides_it(node: NodeEvidence) -> None:
    under_folder(node, folder_policy={"spec": {"rules": [{"allowAll": True}]}})
    project_policy(node, {"spec": {"rules": [{"values": {"allowedValues": US}}], "inheritFromParent": True}})
    result = node.run("SOV-01")   # the effective answer still shows the region list
    assert result.outcome == Outcome.FAIL
    assert any(f"{FOLDER} sets allowAll" in m for m in messages(result, Outcome.FAIL))


def test_sov01_fails_on_a_tag_condition_that_allows_another_region_and_names_it(node: NodeEvidence) -> None:
    project_policy(node, {"spec": {"rules": [
        {"values": {"allowedValues": US}},
        {"values": {"allowedValues": ["in:asia-east1-locations"]},
         "condition": {"expression": "resource.matchTag('161803398874/env', 'dr-test')", "title": "dr-drill"}}]}})
    # Google evaluates the condition for the project and drops it: the effective answer may look clean.
    result = node.run("SOV-01")
    assert result.outcome == Outcome.FAIL
    failure = messages(result, Outcome.FAIL)[0]
    assert "conditional rule" in failure and "dr-test" in failure and "in:asia-east1-locations" in failure


def test_sov01_accepts_a_tag_condition_that_stays_inside(node: NodeEvidence) -> None:
    project_policy(node, {"spec": {"rules": [
        {"values": {"allowedValues": US}},
        {"values": {"allowedValues": ["in:us-central1-locations"]}, "condition": {"expression": "resource.hasTagKey('o/x')"}}]}})
    assert node.run("SOV-01").outcome == Outcome.PASS


def test_sov01_fails_on_a_restriction_that_exists_only_as_a_dry_run(node: NodeEvidence) -> None:
    project_policy(node, {"dryRunSpec": {"rules": [{"values": {"allowedValues": US}}]}})
    effective(node, [{"allowAll": True}])
    failures = messages(node.run("SOV-01"), Outcome.FAIL)
    assert any("exists only as a dryRunSpec" in m for m in failures)
    assert any("no level of the hierarchy enforces the constraint" in m for m in failures)


def test_sov01_does_not_count_a_dry_run_beside_an_enforced_restriction(node: NodeEvidence) -> None:
    project_policy(node, {"spec": {"rules": [{"values": {"allowedValues": US}}]},
                          "dryRunSpec": {"rules": [{"denyAll": True}]}})
    result = node.run("SOV-01")
    assert result.outcome == Outcome.PASS
    assert any("enforces nothing and is not counted" in f.message for f in result.findings)


def test_sov01_errors_when_a_level_policy_could_not_be_read(node: NodeEvidence) -> None:
    node.set(f"orgpolicy.level:{ORG}", {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}, 403)
    result = node.run("SOV-01")
    assert result.outcome == Outcome.ERROR
    assert any(ORG in m for m in messages(result, Outcome.ERROR))


def test_sov01_errors_when_an_ancestor_folder_could_not_be_read(node: NodeEvidence) -> None:
    under_folder(node)
    node.set(f"resourcemanager.folder:{FOLDER}", {"error": {"code": 503, "message": "unavailable"}}, 503)
    result = node.run("SOV-01")
    assert result.outcome == Outcome.ERROR
    assert any(f"ancestor {FOLDER}" in m for m in messages(result, Outcome.ERROR))
