"""The project's own schema check finds what it must: it is what tells us the simulator still answers
in Google's published shapes (tests/audit/test_verify_e2e.py runs it over every scenario's bundle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schema_fidelity import check_bundle


def _bundle(tmp_path: Path, items: list[tuple[str, str, str, str, int, Any]]) -> Path:
    run = tmp_path / "run-x"
    (run / "evidence").mkdir(parents=True)
    evidence = []
    for number, (service, method, http_method, url, status, body) in enumerate(items, 1):
        path = f"evidence/{number:04d}-{service}-{method}.json"
        (run / path).write_text(json.dumps(body))
        evidence.append({"id": f"{number:04d}", "service": service, "method": method, "path": path, "status": status,
                         "request": {"httpMethod": http_method, "url": url, "params": {}}})
    (run / "manifest.json").write_text(json.dumps({"evidence": evidence}))
    return run


BUCKET = {"kind": "storage#bucket", "name": "b", "id": "b", "projectNumber": "314159265358", "metageneration": "1",
          "location": "US-CENTRAL1", "iamConfiguration": {"publicAccessPrevention": "enforced"}}
BUCKET_URL = "http://127.0.0.1:1/storage/v1/b/b"
AUDIT = {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "storage.googleapis.com",
         "methodName": "storage.objects.create", "resourceName": "projects/_/buckets/b/objects/o",
         "authenticationInfo": {"principalEmail": "a@example.org"}}


def _entries(payload: dict[str, Any]) -> dict[str, Any]:
    return {"entries": [{"logName": "projects/p/logs/cloudaudit.googleapis.com%2Fdata_access", "protoPayload": payload,
                         "resource": {"type": "gcs_bucket", "labels": {}}, "timestamp": "2026-12-07T10:00:00Z"}]}


def test_a_faithful_bundle_has_no_defect(tmp_path: Path) -> None:
    run = _bundle(tmp_path, [
        ("storage", "buckets.get", "GET", BUCKET_URL, 200, BUCKET),
        ("logging", "entries.list", "POST", "http://127.0.0.1:1/v2/entries:list", 200, _entries(AUDIT)),
        ("storage", "buckets.insert", "POST", "http://127.0.0.1:1/storage/v1/b", 412,
         {"error": {"code": 412, "message": "no", "errors": [{"reason": "conditionNotMet"}]}}),
    ])
    defects, checked = check_bundle(run)
    assert (defects, checked) == ([], 3)


def test_planted_defects_are_each_found(tmp_path: Path) -> None:
    bad_bigquery = {**AUDIT, "metadata": {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata",
                                          "tableDataChange": {"reason": {"type": "JOB"}}}}
    run = _bundle(tmp_path, [
        ("storage", "buckets.get", "GET", BUCKET_URL, 200, {**BUCKET, "madeUpField": 1}),
        ("storage", "buckets.get", "GET", BUCKET_URL, 200, {**BUCKET, "metageneration": 1}),
        ("storage", "buckets.get", "GET", BUCKET_URL, 200,
         {**BUCKET, "iamConfiguration": {"publicAccessPrevention": "enforced", "uniformBucketLevelAccess": {
             "enabled": "yes"}}}),
        ("logging", "entries.list", "POST", "http://127.0.0.1:1/v2/entries:list", 200,
         _entries({**AUDIT, "principal": "x"})),
        ("logging", "entries.list", "POST", "http://127.0.0.1:1/v2/entries:list", 200, _entries(bad_bigquery)),
        ("batch", "jobs.create", "POST", "http://127.0.0.1:1/v1/projects/p/locations/l/jobs", 400,
         {"error": {"code": 400, "message": "no"}}),
        ("storage", "buckets.insert", "POST", "http://127.0.0.1:1/storage/v1/b", 403, {"message": "no"}),
        ("storage", "buckets.get", "GET", "http://127.0.0.1:1/storage/v1/nowhere/b", 200, BUCKET),
    ])
    defects, _ = check_bundle(run)
    found = {(d.item.split()[0], d.path) for d in defects}
    assert ("0001", "$.madeUpField") in found
    assert ("0002", "$.metageneration") in found
    assert ("0003", "$.iamConfiguration.uniformBucketLevelAccess.enabled") in found
    assert ("0004", "$.entries[0].protoPayload") in found
    assert ("0005", "$.entries[0].protoPayload.metadata") in found
    assert ("0006", "$.error.status") in found
    assert ("0007", "$") in found
    assert ("0008", "$") in found
    assert len(defects) == 8, [str(d) for d in defects]


def _integrity(payload: dict[str, Any], **entry: Any) -> dict[str, Any]:
    return {"entries": [{"logName": "projects/p/logs/compute.googleapis.com%2Fshielded_vm_integrity",
                         "jsonPayload": {"@type": "type.googleapis.com/cloud_integrity.IntegrityEvent", **payload},
                         "resource": {"type": "gce_instance", "labels": {"instance_id": "1", "project_id": "p",
                                                                         "zone": "us-central1-a"}},
                         "severity": "NOTICE", "timestamp": "2026-12-07T10:00:00Z", **entry}]}


def test_integrity_events_are_held_to_the_documented_shape(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/v2/entries:list"
    good = {"bootCounter": "0", "sevLaunchAttestationReportEvent": {
        "integrityEvaluationPassed": True, "sevPolicy": {"debugEnabled": False, "minApiMajor": 0}}}
    run = _bundle(tmp_path, [
        ("logging", "entries.list", "POST", url, 200, _integrity(good)),
        ("logging", "entries.list", "POST", url, 200, _integrity({**good, "bootCounter": 0})),
        ("logging", "entries.list", "POST", url, 200, _integrity({"bootCounter": "0", "sevLaunchAttestationReportEvent": {
            "integrityEvaluationPassed": True, "sevPolicy": {"debugEnabled": "false"}}})),
        ("logging", "entries.list", "POST", url, 200, _integrity({"bootCounter": "0", "lateBootReportEvent": {
            "integrityEvaluationPassed": True}})),
        ("logging", "entries.list", "POST", url, 200, _integrity(good, resource={"type": "gce_instance", "labels": {}})),
    ])
    defects, _ = check_bundle(run)
    assert sorted(d.item[:4] for d in defects) == ["0002", "0003", "0004", "0005"]
TRANSPARENCY = {"logName": "projects/p/logs/cloudaudit.googleapis.com%2Faccess_transparency",
                "resource": {"type": "project", "labels": {"project_id": "314159265358"}},
                "timestamp": "2026-12-07T10:00:00Z", "jsonPayload": {
                    "@type": "type.googleapis.com/google.cloud.audit.TransparencyLog",
                    "location": {"principalOfficeCountry": "US", "principalPhysicalLocationCountry": "CA"},
                    "product": ["Cloud Storage"], "reason": [{"type": "CUSTOMER_INITIATED_SUPPORT", "detail": "c"}],
                    "accesses": [{"methodName": "GoogleInternal.Read", "resourceName": "//googleapis.com/x"}]}}
KMS_USE = {**AUDIT, "serviceName": "cloudkms.googleapis.com", "methodName": "Decrypt", "metadata": {"entries": {
    "key_access_justification": {"@type": "type.googleapis.com/google.cloud.ekms.v0.AccessReasonContext",
                                 "reason": "CUSTOMER_INITIATED_ACCESS"},
    "key_access_justification_policy_metadata": {"customer_configured_policy_enforced": "true"}}}}


def test_access_transparency_and_kms_justification_shapes_are_checked(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/v2/entries:list"
    good = _bundle(tmp_path / "good", [("logging", "entries.list", "POST", url, 200,
                                        {"entries": [TRANSPARENCY, *_entries(KMS_USE)["entries"]]})])
    assert check_bundle(good) == ([], 1)
    bad_at = {**TRANSPARENCY, "jsonPayload": {**TRANSPARENCY["jsonPayload"], "country": "US",
                                              "reason": [{"type": "SUPPORT"}]}}
    bad_kms = {**KMS_USE, "metadata": {"entries": {"key_access_justification_policy_metadata": {
        "customer_configured_policy_enforced": True}}}}
    bad = _bundle(tmp_path / "bad", [("logging", "entries.list", "POST", url, 200,
                                      {"entries": [bad_at, *_entries(bad_kms)["entries"]]})])
    paths = sorted(d.path for d in check_bundle(bad)[0])
    assert paths == ["$.entries[0].jsonPayload.country", "$.entries[0].jsonPayload.reason",
                     "$.entries[1].protoPayload.metadata.entries.key_access_justification_policy_metadata"
                     ".customer_configured_policy_enforced"]
