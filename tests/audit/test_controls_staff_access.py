"""SOV-07 (Access Transparency) and SOV-08 (Key Access Justifications): pure functions of recorded
evidence, built with NodeEvidence (the clean us node) plus the entries each test plants."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from test_controls_evidence import NodeEvidence, job_scope

from sovaudit.audit.collectors import logs
from sovaudit.audit.models import Outcome, Scope
from sovaudit.policies.pack import resolve_policy
from sovaudit.policies.staff_access import AccessTransparencyRule

RAW_OBJECT = "//googleapis.com/storage/buckets/fed-node-us-raw-vcfs/objects/vcfs/sample-0000.vcf.gz"


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def messages(result: Any, outcome: Outcome) -> list[str]:
    return [f.message for f in result.findings if f.outcome == outcome]


def staff_access(physical: str = "US", office: str = "US", reason: Any = "CUSTOMER_INITIATED_SUPPORT",
                 **payload: Any) -> dict[str, Any]:
    reasons = reason if isinstance(reason, list) else [{"type": reason, "detail": "Case number: 1"}]
    return {
        "logName": "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Faccess_transparency",
        "resource": {"type": "project", "labels": {"project_id": "314159265358"}},
        "timestamp": "2026-11-26T15:20:00Z", "severity": "NOTICE", "insertId": f"at-{physical}-{office}",
        "jsonPayload": {"@type": "type.googleapis.com/google.cloud.audit.TransparencyLog",
                        "location": {"principalOfficeCountry": office, "principalEmployingEntity": "Google LLC",
                                     "principalPhysicalLocationCountry": physical},
                        "principalJobTitle": "Engineering", "product": ["Cloud Storage"], "reason": reasons,
                        "eventId": "e1", "accesses": [{"methodName": "GoogleInternal.Read", "resourceName": RAW_OBJECT}],
                        **payload}}


def add_staff_access(node: NodeEvidence, *entries: dict[str, Any]) -> None:
    node.body("logging.policy_denied").setdefault("entries", []).extend(entries)


def kms_use(node: NodeEvidence, key: str = "gcs-raw", reason: str = "THIRD_PARTY_DATA_REQUEST",
            enforced: str = "true") -> dict[str, Any]:
    return {
        "logName": "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fdata_access",
        "resource": {"type": "cloudkms_cryptokeyversion", "labels": {"project_id": "fed-node-us"}},
        "timestamp": "2026-11-26T15:30:00Z", "insertId": f"kms-{key}-{reason}",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "cloudkms.googleapis.com",
            "methodName": "Decrypt", "resourceName": f"{node.key(key)}/cryptoKeyVersions/1",
            "authenticationInfo": {"principalEmail": "service-314159265358@gs-project-accounts.iam.gserviceaccount.com"},
            "metadata": {"entries": {
                "key_access_justification": {"@type": "type.googleapis.com/google.cloud.ekms.v0.AccessReasonContext",
                                             "reason": reason},
                "key_access_justification_policy_metadata": {"customer_configured_policy_enforced": enforced}}}}}


def add_kms_uses(node: NodeEvidence, *entries: dict[str, Any]) -> None:
    node.body("logging.data_writes")["entries"].extend(entries)


def set_policy(node: NodeEvidence, key: str, policy: dict[str, Any] | None) -> None:
    body = node.body(f"kms.key:{node.key(key)}")
    if policy is None:
        body.pop("keyAccessJustificationsPolicy")
    else:
        body["keyAccessJustificationsPolicy"] = policy


# ---- SOV-07 -------------------------------------------------------------------------------------

def test_sov07_passes_without_entries_saying_it_shows_no_logged_access_not_no_access(node: NodeEvidence) -> None:
    result = node.run("SOV-07")
    assert result.outcome == Outcome.PASS
    assert "shows no logged access, not no access" in messages(result, Outcome.PASS)[0]


def test_sov07_lists_an_allowed_access_with_who_where_why_and_the_approval(node: NodeEvidence) -> None:
    add_staff_access(node, staff_access(accessApprovals=["projects/314159265358/approvalRequests/a1"]))
    result = node.run("SOV-07")
    [listed] = messages(result, Outcome.PASS)
    assert result.outcome == Outcome.PASS
    for part in ("physically in US, office US", "CUSTOMER_INITIATED_SUPPORT (Case number: 1)", RAW_OBJECT,
                 "approved by projects/314159265358/approvalRequests/a1", "Engineering of Google LLC"):
        assert part in listed


@pytest.mark.parametrize(("physical", "office", "expected"), [
    ("IN", "US", "physical location country IN is outside the allowed US"),
    ("US", "IE", "office country IE is outside the allowed US"),
    ("??", "US", "physical location country is unknown ('??')"),
    ("EUR", "US", "given only as 'EUR', which names no single country"),
    ("", "US", "no physical location country is stated"),
    ("us", "US", "physical location country 'us' is not an ISO 3166-1 alpha-2 code"),   # exact: no case folding
])
def test_sov07_fails_an_access_from_outside_the_allowed_countries(node: NodeEvidence, physical: str, office: str,
                                                                   expected: str) -> None:
    add_staff_access(node, staff_access(physical, office))
    result = node.run("SOV-07")
    assert result.outcome == Outcome.FAIL and expected in messages(result, Outcome.FAIL)[0]


def test_sov07_fails_a_disallowed_or_missing_reason(node: NodeEvidence) -> None:
    add_staff_access(node, staff_access(reason="THIRD_PARTY_DATA_REQUEST"), staff_access("CA", reason=[]))
    failed = messages(node.run("SOV-07"), Outcome.FAIL)
    assert "the reason THIRD_PARTY_DATA_REQUEST is not allowed" in failed[0]
    assert "no reason is given" in failed[1]


def test_sov07_fails_when_one_of_several_reasons_is_not_allowed(node: NodeEvidence) -> None:
    add_staff_access(node, staff_access(reason=[{"type": "CUSTOMER_INITIATED_SUPPORT"},
                                                {"type": "GOOGLE_INITIATED_REVIEW"}]))
    assert "GOOGLE_INITIATED_REVIEW is not allowed" in messages(node.run("SOV-07"), Outcome.FAIL)[0]


def test_sov07_ignores_policy_denied_entries_and_sec06_ignores_access_transparency(node: NodeEvidence) -> None:
    add_staff_access(node, staff_access("IN"))
    assert node.run("SEC-06").outcome == Outcome.PASS
    assert node.run("SOV-07").outcome == Outcome.FAIL


def test_sov07_fails_when_the_pack_says_access_transparency_is_off(node: NodeEvidence) -> None:
    rule = AccessTransparencyRule(False, ("US",), ("CUSTOMER_INITIATED_SUPPORT",))
    pack = dataclasses.replace(node.pack, access_transparency=rule)
    result = node.run("SOV-07", pack=pack)
    assert result.outcome == Outcome.FAIL and "not logged at all" in messages(result, Outcome.FAIL)[0]
    add_staff_access(node, staff_access())
    assert "it appears to be on" in messages(node.run("SOV-07", pack=pack), Outcome.FAIL)[0]


def test_sov07_errors_without_the_pack_section_or_a_readable_log(node: NodeEvidence) -> None:
    pack = dataclasses.replace(node.pack, access_transparency=None)
    assert node.run("SOV-07", pack=pack).outcome == Outcome.ERROR
    node.set("logging.policy_denied", {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
             403)
    result = node.run("SOV-07")
    assert result.outcome == Outcome.ERROR and "privateLogViewer" in messages(result, Outcome.ERROR)[0]


def test_sov07_errors_when_the_window_misses_part_of_the_run(node: NodeEvidence) -> None:
    scope = job_scope(window_gaps=("the job ran before --since",))
    assert node.run("SOV-07", scope=scope).outcome == Outcome.ERROR


# ---- SOV-08 -------------------------------------------------------------------------------------

def test_sov08_passes_when_every_key_allows_only_the_packs_reasons(node: NodeEvidence) -> None:
    result = node.run("SOV-08")
    assert result.outcome == Outcome.PASS
    passed = messages(result, Outcome.PASS)
    assert sum("allows only CUSTOMER_INITIATED_ACCESS, GOOGLE_INITIATED_SYSTEM_OPERATION" in m for m in passed) == 3
    assert any("used by dataset hospital_data" in m for m in passed)


def test_sov08_fails_a_key_without_a_policy(node: NodeEvidence) -> None:
    set_policy(node, "gcs-raw", None)
    result = node.run("SOV-08")
    assert result.outcome == Outcome.FAIL
    assert "has no keyAccessJustificationsPolicy: Google may use it for any reason" in messages(result, Outcome.FAIL)[0]


@pytest.mark.parametrize("policy", [{}, {"allowedAccessReasons": []}])
def test_sov08_fails_a_policy_that_allows_nothing_as_a_node_that_cannot_work(node: NodeEvidence,
                                                                              policy: dict[str, Any]) -> None:
    set_policy(node, "bq", policy)
    assert "every encrypt and decrypt with it fails" in messages(node.run("SOV-08"), Outcome.FAIL)[0]


@pytest.mark.parametrize("reasons", [[5, 6, 3], ["CUSTOMER_INITIATED_ACCESS", "THIRD_PARTY_DATA_REQUEST"]])
def test_sov08_fails_a_policy_allowing_a_reason_outside_the_pack_named_or_numbered(node: NodeEvidence,
                                                                                    reasons: list[Any]) -> None:
    set_policy(node, "gcs-processed", {"allowedAccessReasons": reasons})
    [failed] = messages(node.run("SOV-08"), Outcome.FAIL)
    assert "allows THIRD_PARTY_DATA_REQUEST, outside the pack's" in failed


def test_sov08_judges_the_key_of_a_bucket_the_pack_does_not_name(node: NodeEvidence) -> None:
    other = {**node.body(f"storage.bucket:{node.pack.buckets.input}"), "name": "scratch",
             "encryption": {"defaultKmsKeyName": node.key("scratch")}}
    node.body("storage.project_buckets")["items"].append(other)
    node.set(f"kms.key:{node.key('scratch')}", {"name": node.key("scratch"), "purpose": "ENCRYPT_DECRYPT"})
    assert "bucket scratch" in messages(node.run("SOV-08"), Outcome.FAIL)[0]


def test_sov08_fails_a_use_with_a_disallowed_justification_and_one_not_enforced(node: NodeEvidence) -> None:
    add_kms_uses(node, kms_use(node), kms_use(node, "bq", "CUSTOMER_INITIATED_ACCESS", enforced="false"))
    failed = messages(node.run("SOV-08"), Outcome.FAIL)
    assert len(failed) == 2
    assert any("with the justification THIRD_PARTY_DATA_REQUEST" in m and "gcs-raw" in m for m in failed)
    assert any("not enforced" in m and "cryptoKeys/bq" in m for m in failed)


def test_sov08_uses_are_not_egress_for_sec04(node: NodeEvidence) -> None:
    add_kms_uses(node, kms_use(node))
    assert node.run("SEC-04").outcome == Outcome.PASS


def test_sov08_errors_when_kms_data_access_logging_is_off_or_exempts(node: NodeEvidence) -> None:
    configs = node.body("resourcemanager.iam_policy")["auditConfigs"]
    configs[1]["auditLogConfigs"] = [{"logType": "DATA_READ"}]
    result = node.run("SOV-08")
    assert result.outcome == Outcome.ERROR
    assert "cloudkms.googleapis.com DATA_WRITE) is not enabled" in messages(result, Outcome.ERROR)[0]
    configs[1]["auditLogConfigs"] = [{"logType": "DATA_READ", "exemptedMembers": ["user:x@example.org"]},
                                     {"logType": "DATA_WRITE"}]
    assert "exempts user:x@example.org" in messages(node.run("SOV-08"), Outcome.ERROR)[0]


def test_sov08_errors_when_the_log_routing_may_drop_the_uses(node: NodeEvidence) -> None:
    node.set("logging.exclusions", {"exclusions": [{"name": "drop", "filter": 'LOG_ID("cloudaudit.googleapis.com/data_access")'}]})
    result = node.run("SOV-08")
    assert result.outcome == Outcome.ERROR and "(see SEC-08)" in messages(result, Outcome.ERROR)[0]


def test_sov08_errors_when_a_key_cannot_be_read_or_the_pack_has_no_list(node: NodeEvidence) -> None:
    node.set(f"kms.key:{node.key('bq')}", {"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}}, 403)
    assert node.run("SOV-08").outcome == Outcome.ERROR
    pack = dataclasses.replace(node.pack, key_access_justifications=None)
    assert node.run("SOV-08", pack=pack).outcome == Outcome.ERROR


def test_sov08_in_a_posture_only_run_judges_the_keys_and_not_the_uses(node: NodeEvidence) -> None:
    node.drop("logging.data_writes")
    set_policy(node, "gcs-raw", None)
    result = node.run("SOV-08", scope=Scope(posture_only=True, reasons=("--posture-only",)))
    assert result.outcome == Outcome.FAIL and not messages(result, Outcome.ERROR)


def test_the_kms_clause_leaves_allowed_uses_on_the_server_but_not_unenforced_ones() -> None:
    start, end = datetime(2026, 11, 26, 15, tzinfo=UTC), datetime(2026, 11, 26, 16, tzinfo=UTC)
    text = logs.filters("fed-node-us", start, end, ("CUSTOMER_INITIATED_ACCESS",))["logging.data_writes"]
    assert ('AND (NOT (protoPayload.metadata.entries.key_access_justification.reason="CUSTOMER_INITIATED_ACCESS") '
            'OR protoPayload.metadata.entries.key_access_justification_policy_metadata'
            '.customer_configured_policy_enforced="false")') in text
    denied = logs.filters("fed-node-us", start, end)["logging.policy_denied"]
    assert "cloudaudit.googleapis.com%2Faccess_transparency" in denied and "cloudaudit.googleapis.com%2Fpolicy" in denied


def test_sov07_and_sov08_do_not_trust_an_empty_answer_when_no_private_entry_came_back(node: NodeEvidence) -> None:
    # Logging hides private logs from a caller without logging.privateLogEntries.list instead of refusing.
    node.set("logging.data_writes", {})
    result = node.run("SOV-07")
    assert result.outcome == Outcome.ERROR and "privateLogEntries.list" in messages(result, Outcome.ERROR)[0]
    assert "privateLogEntries.list" in messages(node.run("SOV-08"), Outcome.ERROR)[0]


def test_the_html_report_lists_staff_access_in_the_sovereignty_section(tmp_path) -> None:
    from sovaudit.simulator.matrix import run_row
    from sovaudit.simulator.node import list_scenarios

    [scenario] = [s for s in list_scenarios() if s.name == "staff-access-outside-country"]
    row = run_row(scenario, out_dir=tmp_path)
    assert row.caught
    [page] = [p.read_text() for p in tmp_path.glob("run-*/report.html")]
    sections = page.split("<h2>")
    [sovereignty] = [s for s in sections if s.startswith("Data sovereignty</h2>")]
    assert 'id="SOV-07"' in sovereignty
    assert "physically in IN, office US" in sovereignty and "Case number: 48151623" in sovereignty


@pytest.mark.parametrize(("physical", "office", "outcome"), [
    ("DE", "IE", Outcome.PASS), ("NL", "NL", Outcome.PASS),
    ("CH", "DE", Outcome.FAIL),     # Switzerland: Europe, not the EU
    ("NO", "NO", Outcome.FAIL),     # EEA, not an EU member state: the shipped eu pack lists member states only
    ("DE", "US", Outcome.FAIL),     # a US office: the employer answers to another jurisdiction
    ("EU", "DE", Outcome.FAIL),     # EU is not a country code
])
def test_sov07_on_the_eu_node_allows_exactly_the_member_states(physical: str, office: str, outcome: Outcome) -> None:
    eu = NodeEvidence(resolve_policy("eu"))
    add_staff_access(eu, staff_access(physical, office))
    assert eu.run("SOV-07").outcome == outcome
