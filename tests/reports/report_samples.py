"""Hand-built result dicts and evidence for the report tests (no engine, no cloud)."""

from __future__ import annotations

import json
from typing import Any

from sovaudit.audit.evidence import EvidenceItem, EvidenceLog

HOSTILE = "<script>alert(1)</script>"


def _item(eid: str, purpose: str, service: str, method: str, status: int, body: Any, url: str,
          http_method: str = "GET", request_body: Any = None) -> EvidenceItem:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return EvidenceItem(
        id=eid, purpose=purpose, service=service, method=method,
        request={"httpMethod": http_method, "url": url, "params": {}, "body": request_body},
        status=status, body=raw, collected_at="2026-11-26T16:18:01Z",
    )


def make_evidence() -> EvidenceLog:
    return EvidenceLog((
        _item("0001", "orgpolicy.effective", "orgpolicy", "policies.getEffectivePolicy", 200,
              {"name": "projects/314159265358/policies/gcp.resourceLocations",
               "spec": {"rules": [{"values": {"allowedValues": ["in:us-central1-locations"]}}]}},
              "https://orgpolicy.googleapis.com/v2/projects/fed-node-us/policies/gcp.resourceLocations:getEffectivePolicy"),
        _item("0002", "compute.job_instances", "compute", "instances.aggregatedList", 200,
              {"items": {"zones/us-central1-a": {"instances": [{"name": "vm-1", "labels": {"team": HOSTILE}}]}}},
              "https://compute.googleapis.com/compute/v1/projects/fed-node-us/aggregated/instances"),
        _item("0003", "probe.bucket:europe-west4", "storage", "buckets.insert", 412,
              {"error": {"code": 412, "message": "'europe-west4' violates constraint 'constraints/gcp.resourceLocations'",
                         "errors": [{"reason": "conditionNotMet"}]}},
              "https://storage.googleapis.com/storage/v1/b", "POST",
              {"name": "sovaudit-probe-eu", "location": "EUROPE-WEST4"}),
    ))


def make_result() -> dict[str, Any]:
    return {
        "schema": "sovaudit/result/v1",
        "run_id": "20261126T161800Z-3f9a1c",
        "verdict": "FAIL",
        "exit_code": 1,
        "target": "http://127.0.0.1:8080",
        "project": "fed-node-us",
        "policy": {"name": "us-node", "path": "policies/us-node.yaml", "sha256": "ab" * 32},
        "tool": {"name": "sovaudit", "version": "0.1.0"},
        "principal": "alice@hospital.example",
        "started_at": "2026-11-26T16:18:00Z",
        "finished_at": "2026-11-26T16:18:04Z",
        "scope": {"job": "preprocess-genomes-001", "job_uid": "uid-1", "posture_only": False,
                  "window": {"start": "2026-11-26T15:00:00Z", "end": "2026-11-26T16:18:00Z"}},
        "summary": {"PASS": 1, "FAIL": 1, "ERROR": 1, "WAIVED": 1, "NOT_APPLICABLE": 1},
        "controls": [
            {"id": "SOV-01", "title": "Resource locations restricted to the jurisdiction", "pillar": "sovereignty",
             "severity": "critical", "outcome": "PASS", "rationale": "Data stays in one jurisdiction.",
             "remediation": "gcloud org-policies set-policy ...",
             "frameworks": {"GDPR": ["Art. 44"], "NIST-800-53": ["SC-7"]},
             "findings": [{"outcome": "PASS", "resource": "projects/fed-node-us", "message": "only in:us-central1-locations",
                           "evidence": ["0001"]}],
             "evidence": ["0001"], "waiver": None},
            {"id": "SEC-02", "title": "Batch workers have no external IP", "pillar": "controls", "severity": "high",
             "outcome": "FAIL", "rationale": "No public ingress or egress path.",
             "remediation": "Set noExternalIpAddress=true",
             "frameworks": {"NIST-800-53": ["SC-7"], "ISO27001-2022": ["A.8.20"], "HIPAA": ["164.312(e)(1)"]},
             "findings": [{"outcome": "FAIL", "resource": f"projects/fed-node-us/zones/us-central1-a/instances/{HOSTILE}",
                           "message": f"vm {HOSTILE} has an external address", "evidence": ["0002"]}],
             "evidence": ["0002"], "waiver": None},
            {"id": "SEC-05", "title": "Data-access audit logs enabled", "pillar": "controls", "severity": "high",
             "outcome": "ERROR", "rationale": "Absence proofs need data-access logs.", "remediation": "Enable DATA_WRITE",
             "frameworks": {"NIST-800-53": ["AU-2"]},
             "findings": [{"outcome": "ERROR", "resource": "projects/fed-node-us",
                           "message": "resourcemanager projects.getIamPolicy answered HTTP 403 for bob@hospital.example",
                           "evidence": []}],
             "evidence": [], "waiver": None},
            {"id": "SOV-04", "title": "Buckets regional with CMEK", "pillar": "sovereignty", "severity": "medium",
             "outcome": "WAIVED", "rationale": "Storage stays in region.", "remediation": "gsutil kms encryption ...",
             "frameworks": {"GDPR": ["Art. 32"]},
             "findings": [{"outcome": "FAIL", "resource": "fed-node-us-processed", "message": "no CMEK key", "evidence": []}],
             "evidence": [],
             "waiver": {"control": "SOV-04", "resource": "fed-node-us-processed", "owner": "carol@hospital.example",
                        "justification": "migration ticket SEC-123", "expires": "2027-03-31"}},
            {"id": "SOV-03", "title": "Bucket and dataset outside the jurisdiction are refused", "pillar": "sovereignty",
             "severity": "critical", "outcome": "NOT_APPLICABLE", "rationale": "Probe.", "remediation": "",
             "frameworks": {}, "findings": [], "evidence": ["0003"], "waiver": None},
        ],
        "probes": [{"control": "SOV-03", "resource": "bucket sovaudit-probe-eu in europe-west4", "refused": True,
                    "reason": "constraints/gcp.resourceLocations", "evidence": ["0003"], "cleanup": "not needed"}],
    }
