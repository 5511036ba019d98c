"""SOV-09 (Assured Workloads violations) against small REST-JSON evidence: each verdict it must reach,
the fail-closed cases, and that no waiver can hide it."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_controls_evidence import WINDOW, NodeEvidence, job_scope

from sovaudit.audit.models import JobRef, Outcome, Scope
from sovaudit.audit.views_assured_workloads import enum_name, parse_time
from sovaudit.policies.pack import PolicyPack, Waiver, load_policy, resolve_policy, validate_policy
from sovaudit.policies.waiver_lint import waiver_warnings

WORKLOAD = "organizations/161803398874/locations/us-central1/workloads/genomics-sovereign"
INSIDE = "2026-11-26T15:20:00Z"          # the unit window is 15:00 .. 16:00
BEFORE, LONG_BEFORE = "2026-11-26T14:00:00Z", "2026-11-26T10:00:00Z"
AFTER, LATER = "2026-11-26T16:30:00Z", "2026-11-26T16:45:00Z"


def named(pack: PolicyPack) -> PolicyPack:
    return dataclasses.replace(pack, assured_workload=WORKLOAD)


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(named(resolve_policy("us")))


def violation(vid: str = "1", **fields: Any) -> dict[str, Any]:
    body = {"name": f"{WORKLOAD}/violations/{vid}", "description": "OrgPolicy gcp.resourceLocations has non compliant "
            "value.", "beginTime": INSIDE, "updateTime": INSIDE, "category": "Location", "state": "UNRESOLVED",
            "violationType": "ORG_POLICY",
            "nonCompliantOrgPolicy": "projects/314159265358/policies/gcp.resourceLocations"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def with_violations(node: NodeEvidence, *violations: dict[str, Any]) -> None:
    node.set("assuredworkloads.violations", {"violations": list(violations)})


def verdicts(result: Any) -> dict[str, Outcome]:
    return {f.resource: f.outcome for f in result.findings if "/violations/" in f.resource}


def test_sov09_is_not_applicable_with_the_reason_when_the_pack_names_no_workload() -> None:
    result = NodeEvidence(resolve_policy("us")).run("SOV-09")
    assert result.outcome == Outcome.NOT_APPLICABLE
    assert [f.message for f in result.findings] == ["the pack names no Assured Workloads workload"]


def test_sov09_passes_on_a_clean_workload_governing_the_project(node: NodeEvidence) -> None:
    result = node.run("SOV-09")
    assert result.outcome == Outcome.PASS
    assert any("EU_REGIONS_AND_SUPPORT" in f.message for f in result.findings)   # complianceRegime 8 as a name
    assert any("no violation" in f.message for f in result.findings)


def test_sov09_fails_on_an_open_violation(node: NodeEvidence) -> None:
    with_violations(node, violation())
    result = node.run("SOV-09")
    assert result.outcome == Outcome.FAIL
    assert "still open (UNRESOLVED)" in result.findings[-1].message


def test_sov09_fails_on_an_acknowledged_open_violation_and_says_acknowledging_resolves_nothing(
        node: NodeEvidence) -> None:
    with_violations(node, violation(beginTime=LONG_BEFORE, acknowledged=True, acknowledgementTime=BEFORE))
    result = node.run("SOV-09")
    assert result.outcome == Outcome.FAIL
    assert "acknowledging does not resolve it" in result.findings[-1].message


@pytest.mark.parametrize(("begin", "resolve", "expected"), [
    (INSIDE, "2026-11-26T15:40:00Z", Outcome.FAIL),     # opened and reverted inside the run
    (LONG_BEFORE, INSIDE, Outcome.FAIL),                # in force when the run started
    (LONG_BEFORE, "2026-11-26T17:00:00Z", Outcome.FAIL),  # spans the whole window
    (LONG_BEFORE, BEFORE, Outcome.PASS),                # resolved before the run
    (AFTER, LATER, Outcome.PASS),                       # began and ended after the run
])
def test_sov09_judges_a_resolved_violation_by_whether_it_was_in_force_during_the_window(
        node: NodeEvidence, begin: str, resolve: str, expected: Outcome) -> None:
    with_violations(node, violation(state="RESOLVED", beginTime=begin, resolveTime=resolve))
    assert verdicts(node.run("SOV-09")) == {f"{WORKLOAD}/violations/1": expected}


def test_sov09_fails_an_exception_and_lists_its_context(node: NodeEvidence) -> None:
    with_violations(node, violation(state="EXCEPTION", beginTime=LONG_BEFORE, exceptionContexts=[
        {"userName": "mallory@example.org", "comment": "partner transfer", "acknowledgementTime": BEFORE}]))
    result = node.run("SOV-09")
    assert result.outcome == Outcome.FAIL
    message = result.findings[-1].message
    assert "EXCEPTION" in message and "mallory@example.org" in message and "partner transfer" in message


@pytest.mark.parametrize("fields", [
    {"state": "RESOLVED"},                                       # resolved without a resolveTime
    {"state": "STATE_UNSPECIFIED", "resolveTime": BEFORE},       # a state that is not RESOLVED
    {"state": "SOMETHING_NEW", "beginTime": LONG_BEFORE, "resolveTime": BEFORE},
])
def test_sov09_does_not_take_an_unclear_state_as_resolved(node: NodeEvidence, fields: dict[str, Any]) -> None:
    with_violations(node, violation(**fields))
    assert node.run("SOV-09").outcome == Outcome.FAIL


def test_sov09_fails_when_the_workload_governs_another_project(node: NodeEvidence) -> None:
    body = node.body("assuredworkloads.workload")
    body["resources"] = [{"resourceId": "999999999999", "resourceType": 1},
                         {"resourceId": "314159265358", "resourceType": 2}]   # only the keys project is ours
    result = node.run("SOV-09")
    assert result.outcome == Outcome.FAIL
    assert "does not govern the node's project projects/314159265358" in result.findings[0].message
    assert "ENCRYPTION_KEYS_PROJECT 314159265358" in result.findings[0].message


def test_sov09_accepts_a_workload_folder_above_the_project(node: NodeEvidence) -> None:
    node.set("resourcemanager.project", {"name": "projects/314159265358", "projectId": "fed-node-us",
                                         "parent": "folders/4242"})
    node.set("resourcemanager.folder:folders/4242", {"name": "folders/4242", "parent": "organizations/161803398874"})
    node.body("assuredworkloads.workload")["resources"] = [{"resourceId": "4242", "resourceType": 4}]
    result = node.run("SOV-09")
    assert result.outcome == Outcome.PASS
    assert "under the workload's folder folders/4242" in result.findings[0].message


def test_sov09_fails_when_the_project_was_moved_out_of_the_workload_folder(node: NodeEvidence) -> None:
    # resources[] still lists the project (it records what was created with the workload), but the project's
    # parent is now the organization, outside the workload's folder.
    node.body("assuredworkloads.workload")["resources"] = [{"resourceId": "4242", "resourceType": 4},
                                                           {"resourceId": "314159265358", "resourceType": 1}]
    result = node.run("SOV-09")
    assert result.outcome == Outcome.FAIL
    assert "not under the workload's folder folders/4242" in result.findings[0].message
    assert "moved out" in result.findings[0].message


def test_sov09_fails_when_resource_monitoring_is_off(node: NodeEvidence) -> None:
    del node.body("assuredworkloads.workload")["resourceMonitoringEnabled"]   # proto3 JSON omits false
    result = node.run("SOV-09")
    assert result.outcome == Outcome.FAIL
    assert any("resourceMonitoringEnabled" in f.message for f in result.findings if f.outcome == Outcome.FAIL)


def test_sov09_errors_when_the_workload_cannot_be_read(node: NodeEvidence) -> None:
    node.set("assuredworkloads.workload", {"error": {"code": 403, "message": "Permission denied",
                                                     "status": "PERMISSION_DENIED"}}, status=403)
    result = node.run("SOV-09")
    assert result.outcome == Outcome.ERROR
    assert "workloads.get" in result.findings[0].message and "403" in result.findings[0].message


def test_sov09_errors_when_the_listing_stops_before_its_last_page(node: NodeEvidence) -> None:
    node.pages("assuredworkloads.violations", (200, {"violations": [violation(state="RESOLVED", beginTime=LONG_BEFORE,
                                                                              resolveTime=BEFORE)],
                                                    "nextPageToken": "t2"}))
    assert node.run("SOV-09").outcome == Outcome.ERROR


def test_sov09_reads_every_page(node: NodeEvidence) -> None:
    node.pages("assuredworkloads.violations",
               (200, {"violations": [violation("1", state="RESOLVED", beginTime=LONG_BEFORE, resolveTime=BEFORE)],
                      "nextPageToken": "t2"}),
               (200, {"violations": [violation("2")]}))
    assert verdicts(node.run("SOV-09")) == {f"{WORKLOAD}/violations/1": Outcome.PASS,
                                            f"{WORKLOAD}/violations/2": Outcome.FAIL}


def test_sov09_errors_when_googles_count_of_open_violations_exceeds_the_listing(node: NodeEvidence) -> None:
    node.body("assuredworkloads.workload")["complianceStatus"] = {"activeViolationCount": 1,
                                                                  "acknowledgedResourceViolationCount": 1}
    with_violations(node, violation(state="RESOLVED", beginTime=LONG_BEFORE, resolveTime=BEFORE))
    result = node.run("SOV-09")
    assert result.outcome == Outcome.ERROR
    assert "Google counts 2 open violation(s)" in result.findings[-1].message


def test_sov09_errors_on_a_time_without_a_zone(node: NodeEvidence) -> None:
    with_violations(node, violation(beginTime="2026-11-26T15:20:00"))
    assert node.run("SOV-09").outcome == Outcome.ERROR


def test_sov09_posture_check_judges_the_state_now(node: NodeEvidence) -> None:
    with_violations(node, violation("1", state="RESOLVED", beginTime=INSIDE, resolveTime=LATER), violation("2"))
    result = node.run("SOV-09", scope=Scope(posture_only=True))
    assert verdicts(result) == {f"{WORKLOAD}/violations/1": Outcome.PASS, f"{WORKLOAD}/violations/2": Outcome.FAIL}


def test_sov09_window_reaches_back_to_the_judged_jobs_creation(node: NodeEvidence) -> None:
    # --since narrowed the window to 15:30, but the job was created at 15:00: a violation reverted at 15:20
    # was in force during the run.
    scope = job_scope(window_start=WINDOW[0].replace(minute=30),
                      jobs=(JobRef("preprocess-genomes-001", "uid", WINDOW[0], WINDOW[1]),))
    with_violations(node, violation(state="RESOLVED", beginTime="2026-11-26T15:05:00Z", resolveTime=INSIDE))
    assert node.run("SOV-09", scope=scope).outcome == Outcome.FAIL


def test_sov09_window_reaches_forward_to_the_judged_jobs_end(node: NodeEvidence) -> None:
    # --until cut the window at 15:30 while the job ran until 16:00: a violation of 15:40..15:50 counts.
    scope = job_scope(window_end=WINDOW[1].replace(hour=15, minute=30),
                      jobs=(JobRef("preprocess-genomes-001", "uid", WINDOW[0], WINDOW[1]),))
    with_violations(node, violation(state="RESOLVED", beginTime="2026-11-26T15:40:00Z",
                                    resolveTime="2026-11-26T15:50:00Z"))
    assert node.run("SOV-09", scope=scope).outcome == Outcome.FAIL


def test_no_waiver_can_hide_sov09_and_the_finding_says_so(node: NodeEvidence) -> None:
    with_violations(node, violation())
    pack = dataclasses.replace(node.pack, waivers=(
        Waiver("SOV-09", f"{WORKLOAD}/violations/*", "dpo@example.org", "approved transfer", date(2099, 1, 1)),))
    result = node.run("SOV-09", pack=pack)
    assert result.outcome == Outcome.FAIL and result.waiver is None
    assert "refused" in result.findings[-1].message and "no sovaudit waiver can hide it" in result.findings[-1].message


def test_other_controls_are_still_waivable(node: NodeEvidence) -> None:
    from sovaudit.audit.waivers import find

    waiver = Waiver("SOV-04", "*", "o@example.org", "j", date(2099, 1, 1))
    match = find([waiver], "SOV-04", "projects/_/buckets/b", date(2026, 1, 1))
    assert match is not None and match.active and not match.refused


def test_policy_validate_warns_that_a_sov09_waiver_covers_nothing(tmp_path: Path) -> None:
    shipped = Path(resolve_policy("us").path).read_text(encoding="utf-8")
    path = tmp_path / "pack.yaml"
    path.write_text(shipped.replace("waivers: []", "waivers:\n  - {control: SOV-09, resource: \"x/violations/1\", "
                                    "owner: a@example.org, justification: j, expires: 2099-01-01}"), encoding="utf-8")
    warnings = waiver_warnings(load_policy(path), date(2026, 12, 1))
    assert [w.field for w in warnings] == ["waivers[0].control"]
    assert "cannot be waived" in warnings[0].message


# ---- the pack field -------------------------------------------------------------------------------

def _pack_with(tmp_path: Path, value: str) -> Path:
    shipped = Path(resolve_policy("us").path).read_text(encoding="utf-8")
    path = tmp_path / "pack.yaml"
    path.write_text(shipped.replace("severity_overrides: {}", f"assured_workload: {value}\nseverity_overrides: {{}}"),
                    encoding="utf-8")
    return path


def test_pack_loads_a_named_workload(tmp_path: Path) -> None:
    assert load_policy(_pack_with(tmp_path, WORKLOAD)).assured_workload == WORKLOAD
    assert resolve_policy("us").assured_workload == ""
    assert resolve_policy("eu").assured_workload.endswith("/locations/europe-west4/workloads/genomics-sovereign")


@pytest.mark.parametrize(("value", "problem"), [
    ("genomics-sovereign", "is not a workload name"),
    ("organizations/161803398874/locations/us-central1/workloads/-", "name the one workload"),
    ("organizations/999/locations/us-central1/workloads/wl", "not to the pack's organization"),
])
def test_pack_rejects_a_bad_workload_with_its_line(tmp_path: Path, value: str, problem: str) -> None:
    path = _pack_with(tmp_path, value)
    errors = validate_policy(path)
    assert [e.field for e in errors] == ["assured_workload"]
    assert problem in errors[0].message
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("assured_workload"))
    assert errors[0].line == line


# ---- views ----------------------------------------------------------------------------------------

def test_times_with_nanoseconds_and_offsets_parse() -> None:
    assert parse_time("2026-11-26T15:20:00.123456789Z") == parse_time("2026-11-26T15:20:00.123456Z")
    assert parse_time("2026-11-26T16:20:00+01:00") == parse_time("2026-11-26T15:20:00Z")


def test_enum_numbers_map_through_the_client_library() -> None:
    assert enum_name(4, "ResourceType") == "CONSUMER_FOLDER"   # not declaration order
    assert enum_name("CONSUMER_PROJECT", "ResourceType") == "CONSUMER_PROJECT"
    assert enum_name(999, "ComplianceRegime") == "ComplianceRegime(999)"
