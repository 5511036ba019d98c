"""INT-02's judgement of the window's Admin Activity entries (audit/views_history.py)."""

from __future__ import annotations

from typing import Any

from sovaudit.audit.views import LogEntry
from sovaudit.audit.views_history import NEUTRAL, PROBE, REFUSED, WEAKENED, posture_changes, verifier_identity
from sovaudit.policies.pack import resolve_policy
from sovaudit.simulator.admin_audit import policy_delta

PACK = resolve_policy("us")
NUMBER = "314159265358"
VERIFIER = "verifier@fed-node-us.iam.gserviceaccount.com"


def _entry(service: str, method: str, resource: str, principal: str = "insider@example.org", **payload: Any) -> LogEntry:
    return LogEntry(log_name="projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity",
                    timestamp="2026-12-07T10:00:00Z", insert_id="x1", resource_type="project", resource_labels={},
                    payload={"serviceName": service, "methodName": method, "resourceName": resource,
                             "authenticationInfo": {"principalEmail": principal}, **payload},
                    operation={}, evidence=("0001",))


def _verdict(entry: LogEntry, verifier: str = VERIFIER) -> str:
    (change,) = posture_changes([entry], PACK, NUMBER, verifier)
    return change.verdict


def _org_policy(rules: list[dict[str, Any]]) -> LogEntry:
    return _entry("orgpolicy.googleapis.com", "google.cloud.orgpolicy.v2.OrgPolicy.UpdatePolicy",
                  f"projects/{NUMBER}/policies/gcp.resourceLocations", request={"policy": {"spec": {"rules": rules}}})


def test_int02_allow_all_is_a_weakening_even_if_restored_later() -> None:
    assert _verdict(_org_policy([{"allowAll": True}])) == WEAKENED


def test_int02_one_extra_region_is_a_weakening() -> None:
    rules = [{"values": {"allowedValues": ["in:us-central1-locations", "in:asia-southeast1-locations"]}}]
    assert _verdict(_org_policy(rules)) == WEAKENED


def test_int02_restoring_the_jurisdiction_is_neutral() -> None:
    assert _verdict(_org_policy([{"values": {"allowedValues": ["in:us-central1-locations"]}}])) == NEUTRAL


def test_int02_deleting_the_location_policy_is_a_weakening() -> None:
    entry = _entry("orgpolicy.googleapis.com", "google.cloud.orgpolicy.v2.OrgPolicy.DeletePolicy",
                   f"projects/{NUMBER}/policies/gcp.resourceLocations")
    assert _verdict(entry) == WEAKENED


def _iam(before: dict[str, Any], after: dict[str, Any]) -> LogEntry:
    return _entry("cloudresourcemanager.googleapis.com", "SetIamPolicy", "projects/fed-node-us",
                  serviceData=policy_delta(before, after))


ON = {"auditConfigs": [{"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": "DATA_WRITE"}]}]}


def test_int02_switching_data_write_off_is_a_weakening_and_back_on_is_neutral() -> None:
    assert _verdict(_iam(ON, {})) == WEAKENED
    assert _verdict(_iam({}, ON)) == NEUTRAL


def test_int02_an_exemption_added_is_a_weakening() -> None:
    exempt = {"auditConfigs": [{"service": "storage.googleapis.com", "auditLogConfigs": [
        {"logType": "DATA_WRITE", "exemptedMembers": ["user:insider@example.org"]}]}]}
    assert _verdict(_iam(ON, exempt)) == WEAKENED
    assert _verdict(_iam(exempt, ON)) == NEUTRAL


def test_int02_setiampolicy_without_policy_delta_cannot_be_judged() -> None:
    entry = _entry("cloudresourcemanager.googleapis.com", "SetIamPolicy", "projects/fed-node-us")
    assert _verdict(entry) == "unknown"


def _bucket_create(name: str, location: str, labels: dict[str, str], principal: str) -> LogEntry:
    return _entry("storage.googleapis.com", "storage.buckets.create", f"projects/_/buckets/{name}", principal,
                  request={"name": name, "location": location, "labels": labels})


PROBE_NAME = "sovaudit-probe-20261101t000000z-abc123-europe-west4"
PROBE_LABELS = {"sovaudit-probe": "20261101t000000z-abc123"}


def test_int02_the_verifiers_own_probe_bucket_is_recognised() -> None:
    assert _verdict(_bucket_create(PROBE_NAME, "EUROPE-WEST4", PROBE_LABELS, VERIFIER)) == PROBE


def test_int02_a_probe_lookalike_by_another_principal_fails() -> None:
    assert _verdict(_bucket_create(PROBE_NAME, "EUROPE-WEST4", PROBE_LABELS, "insider@example.org")) == WEAKENED


def test_int02_a_probe_name_without_its_label_is_not_the_tools_own() -> None:
    assert _verdict(_bucket_create(PROBE_NAME, "EUROPE-WEST4", {}, VERIFIER)) == WEAKENED


def test_int02_no_probe_is_excused_when_the_verifier_identity_is_unknown() -> None:
    assert verifier_identity("application-default-credentials", PACK) == ""
    assert _verdict(_bucket_create(PROBE_NAME, "EUROPE-WEST4", PROBE_LABELS, VERIFIER), verifier="") == WEAKENED


def test_int02_a_refused_create_changed_nothing() -> None:
    entry = _bucket_create("x-eu", "EUROPE-WEST4", {}, "insider@example.org")
    refused = LogEntry(**{**entry.__dict__, "payload": {**entry.payload, "status": {"code": 9, "message": "no"}}})
    assert _verdict(refused) == REFUSED


def test_int02_bucket_in_the_jurisdiction_is_neutral() -> None:
    assert _verdict(_bucket_create("fed-node-us-scratch", "US-CENTRAL1", {}, "insider@example.org")) == NEUTRAL


def test_int02_public_bucket_binding_is_a_weakening() -> None:
    entry = _entry("storage.googleapis.com", "storage.setIamPermissions", "projects/_/buckets/fed-node-us-raw-vcfs",
                   request={"bindings": [{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]})
    assert _verdict(entry) == WEAKENED


def test_int02_dataset_cmek_removed_is_a_weakening() -> None:
    entry = _entry("bigquery.googleapis.com", "google.cloud.bigquery.v2.DatasetService.PatchDataset",
                   "projects/fed-node-us/datasets/hospital_data",
                   metadata={"datasetChange": {"dataset": {"datasetName": "projects/fed-node-us/datasets/hospital_data"},
                                               "reason": "UPDATE"}})
    assert _verdict(entry) == WEAKENED


def test_policy_delta_names_added_and_removed_log_types_and_exemptions() -> None:
    delta = policy_delta(ON, {})["policyDelta"]
    assert delta == {"auditConfigDeltas": [{"action": "REMOVE", "service": "storage.googleapis.com",
                                            "logType": "DATA_WRITE"}]}
