"""Scenario actions: an insider's calls replayed through the REST handlers, at their moment, as their
principal; and audit entries landing in the project that owns the resource."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sim_clients

from sovaudit.simulator import clock
from sovaudit.simulator.node import NodeFileError
from sovaudit.simulator.server import load_seeded_state

RAW = "fed-node-us-raw-vcfs"


def _scenario(tmp_path: Path, actions: list[dict[str, Any]], extra: str = "") -> Path:
    import yaml

    path = tmp_path / "staged.yaml"
    doc = {"name": "staged", "description": "test", "fails": [], "seed": {"actions": actions}}
    path.write_text(yaml.safe_dump(doc) + extra)
    return path


def _entries(state: Any, method: str) -> list[dict[str, Any]]:
    return [e for e in state.log_entries if e.get("protoPayload", {}).get("methodName") == method]


# An outside user reaches the node's buckets only through an ingress policy of its perimeter.
_MALLORY_IN = """
node:
  perimeter:
    config:
      ingressPolicies:
        - ingressFrom: {identities: ["user:mallory@example.org"], sources: [{accessLevel: "*"}]}
          ingressTo: {resources: ["*"], operations: [{serviceName: storage.googleapis.com,
                                                      methodSelectors: [{method: "*"}]}]}
"""


def test_an_action_reads_as_its_principal_at_its_moment(tmp_path: Path) -> None:
    obj = "vcfs%2Fsample-0000.vcf.gz"
    grant = {"call": f"PUT /storage/v1/b/{RAW}/iam", "principal": "insider@example.org", "at_minutes": 10,
             "body": {"bindings": [{"role": "roles/storage.objectViewer", "members": ["user:mallory@example.org"]}]}}
    path = _scenario(tmp_path, [grant, {"call": f"GET /storage/v1/b/{RAW}/o/{obj}", "params": {"alt": "media"},
                                        "principal": "mallory@example.org", "at_minutes": 20}], _MALLORY_IN)
    state = load_seeded_state("us", [path], job_tasks=2)
    reads = [e for e in _entries(state, "storage.objects.get")
             if e["protoPayload"]["authenticationInfo"]["principalEmail"] == "mallory@example.org"]
    assert len(reads) == 1
    start = clock.parse(state.extras["seed"].window_start)
    assert clock.parse(reads[0]["timestamp"]) == start + timedelta(minutes=20)
    assert reads[0]["logName"] == "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Fdata_access"


def test_a_read_without_a_granting_role_is_refused_as_cloud_storage_refuses_it(tmp_path: Path) -> None:
    obj = "vcfs%2Fsample-0000.vcf.gz"
    path = _scenario(tmp_path, [{"call": f"GET /storage/v1/b/{RAW}/o/{obj}", "params": {"alt": "media"},
                                 "principal": "mallory@example.org", "expect": 403}])
    state = load_seeded_state("us", [path], job_tasks=1)
    assert not [e for e in _entries(state, "storage.objects.get")
                if e["protoPayload"]["authenticationInfo"]["principalEmail"] == "mallory@example.org"]


def test_an_action_that_gets_another_answer_names_itself(tmp_path: Path) -> None:
    path = _scenario(tmp_path, [{"call": "GET /storage/v1/b/no-such-bucket-anywhere", "expect": 200}])
    with pytest.raises(NodeFileError, match=r"action 1 \(GET /storage/v1/b/no-such-bucket-anywhere\) answered 404"):
        load_seeded_state("us", [path], job_tasks=1)


def test_entries_of_another_project_are_not_listed_by_the_node(sim_factory: Any) -> None:
    from sovaudit.simulator import audit_log

    server = sim_factory(job_tasks=1)
    state = server.state
    audit_log.storage_object_access(state, bucket="fed-node-us-processed-export", object_name="x.parquet",
                                    principal="batch-runner@fed-node-us.iam.gserviceaccount.com",
                                    timestamp=clock.now(), location="US", project="other-team-project")
    stored = [e for e in state.log_entries if e["logName"].startswith("projects/other-team-project/")]
    # The foreign project's audit config (none declared) leaves Cloud Storage data access off there.
    assert stored == []
    state.extras["foreign_projects"]["other-team-project"] = {
        "number": "112233445566", "auditConfigs": [{"service": "allServices",
                                                    "auditLogConfigs": [{"logType": "DATA_WRITE"}]}]}
    audit_log.storage_object_access(state, bucket="fed-node-us-processed-export", object_name="x.parquet",
                                    principal="batch-runner@fed-node-us.iam.gserviceaccount.com",
                                    timestamp=clock.now(), location="US", project="other-team-project")
    assert [e for e in state.log_entries if e["logName"].startswith("projects/other-team-project/")]
    client = sim_clients.logging(server.url)
    listed = list(client.list_entries(resource_names=["projects/fed-node-us"],
                                      filter_='protoPayload.resourceName:"x.parquet" AND timestamp>="2020-01-01T00:00:00Z"'))
    assert listed == []


def test_a_user_calling_from_the_node_network_is_inside_the_perimeter_and_from_a_laptop_is_not(
        tmp_path: Path) -> None:
    obj = "vcfs%2Fsample-0000.vcf.gz"
    grant = {"call": f"PUT /storage/v1/b/{RAW}/iam", "principal": "insider@example.org", "network": "node",
             "at_minutes": 10,
             "body": {"bindings": [{"role": "roles/storage.objectViewer", "members": ["user:mallory@example.org"]}]}}
    read = {"call": f"GET /storage/v1/b/{RAW}/o/{obj}", "params": {"alt": "media"},
            "principal": "mallory@example.org", "at_minutes": 20}
    state = load_seeded_state("us", [_scenario(tmp_path, [grant, {**read, "network": "node"}])], job_tasks=1)
    assert [e for e in _entries(state, "storage.objects.get")
            if e["protoPayload"]["authenticationInfo"]["principalEmail"] == "mallory@example.org"]
    with pytest.raises(NodeFileError, match=r"action 2 .* answered 403.*VPC Service Controls"):
        load_seeded_state("us", [_scenario(tmp_path, [grant, read])], job_tasks=1)


def test_late_vm_placeholders_resolve_when_each_action_is_played(tmp_path: Path) -> None:
    """${vm:N} names the run's VM of task N, and ${vm_label_fingerprint:N} is read at play time: two
    successive setLabels would fail with 412 if the fingerprint were the one of scenario load time."""
    call = "POST /compute/v1/projects/${project_id}/zones/${vm_zone:1}/instances/${vm:1}/setLabels"
    actions = [{"call": call, "principal": "insider@example.org", "network": "node", "at_minutes": minutes,
                "body": {"labelFingerprint": "${vm_label_fingerprint:1}", "labels": labels}}
               for minutes, labels in ((20, {"env": "a"}), (21, {"env": "b"}))]
    state = load_seeded_state("us", [str(_scenario(tmp_path, actions))], job_tasks=3)
    seeded = state.extras["seed"]
    zone, name = seeded.instances[1].split("/zones/", 1)[1].split("/instances/")
    assert state.instances[(zone, name)]["labels"] == {"env": "b"}
    logged = [e for e in _entries(state, "v1.compute.instances.setLabels") if e["operation"].get("first")]
    assert [e["protoPayload"]["request"]["labels"] for e in logged] == [{"env": "a"}, {"env": "b"}]
    assert {e["protoPayload"]["resourceName"] for e in logged} == {f"projects/fed-node-us/zones/{zone}/instances/{name}"}
