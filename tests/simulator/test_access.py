"""Access in the simulator, through the official clients: bucket IAM get/set, reads judged by bucket
and project IAM and by the dataset's access list, DATA_READ entries naming the caller."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

PROJECT = "fed-node-us"
RAW = "fed-node-us-raw-vcfs"
VCF = "vcfs/sample-0000.vcf.gz"
DATA_ACCESS = f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fdata_access"
MALLORY = "mallory@example.org"


def gcs(sim: Any, principal: str | None = None) -> storage.Client:
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": sim.url})
    if principal:
        # IAM is what these tests judge: the callers sit on a VM in the node's network, inside the
        # perimeter (tests/simulator/test_sim_vpcsc.py judges the perimeter itself).
        client._http.headers.update({"X-Sim-Principal": principal, "X-Sim-Caller-Network": "node"})
    return client


def bq(sim: Any, principal: str | None = None) -> bigquery.Client:
    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": sim.url})
    if principal:
        # IAM is what these tests judge: the callers sit on a VM in the node's network, inside the
        # perimeter (tests/simulator/test_sim_vpcsc.py judges the perimeter itself).
        client._http.headers.update({"X-Sim-Principal": principal, "X-Sim-Caller-Network": "node"})
    return client


def reads_by(sim: Any, principal: str) -> list[dict[str, Any]]:
    return [e for e in sim.state.log_entries if e["logName"] == DATA_ACCESS
            and e["protoPayload"]["authenticationInfo"]["principalEmail"] == principal
            and (e["protoPayload"]["methodName"] in ("storage.objects.get", "storage.objects.list")
                 or "tableDataRead" in e["protoPayload"].get("metadata", {}))]


def test_an_outsider_without_a_role_is_refused_and_leaves_no_read(sim: Any) -> None:
    with pytest.raises(exceptions.Forbidden, match="storage.objects.get"):
        gcs(sim, MALLORY).bucket(RAW).blob(VCF).download_as_bytes()
    with pytest.raises(exceptions.Forbidden, match="storage.objects.list"):
        list(gcs(sim, MALLORY).list_blobs(RAW))
    assert reads_by(sim, MALLORY) == []


def test_a_bucket_binding_set_through_the_client_lets_the_reader_in_and_logs_the_read(sim: Any) -> None:
    bucket = gcs(sim).bucket(RAW)
    policy = bucket.get_iam_policy(requested_policy_version=3)
    assert {"role": "roles/storage.legacyObjectReader", "members": {f"projectViewer:{PROJECT}"}} in policy.bindings
    policy.bindings.append({"role": "roles/storage.objectViewer", "members": {f"user:{MALLORY}"}})
    bucket.set_iam_policy(policy)

    assert gcs(sim, MALLORY).bucket(RAW).blob(VCF).download_as_bytes().startswith(b"\x1f\x8b")
    entry = reads_by(sim, MALLORY)[-1]
    assert entry["protoPayload"]["resourceName"] == f"projects/_/buckets/{RAW}/objects/{VCF}"
    assert entry["resource"]["labels"]["project_id"] == PROJECT
    admin = [e for e in sim.state.log_entries
             if e.get("protoPayload", {}).get("methodName") == "storage.setIamPermissions"]
    assert admin and admin[-1]["logName"].endswith("cloudaudit.googleapis.com%2Factivity")


def test_all_users_reaches_anyone_but_public_access_prevention_refuses_the_binding(sim: Any) -> None:
    bucket = gcs(sim).bucket(RAW)
    policy = bucket.get_iam_policy(requested_policy_version=3)
    policy.bindings.append({"role": "roles/storage.objectViewer", "members": {"allUsers"}})
    with pytest.raises(exceptions.PreconditionFailed, match="public access prevention"):
        bucket.set_iam_policy(policy)
    bucket.iam_configuration.public_access_prevention = "inherited"
    bucket.patch()
    bucket.set_iam_policy(policy)
    assert gcs(sim, "anyone@elsewhere.example").bucket(RAW).blob(VCF).download_as_bytes()


def test_a_project_role_reaches_every_bucket(sim: Any) -> None:
    sim.state.iam_policy["bindings"].append({"role": "roles/storage.objectViewer", "members": [f"user:{MALLORY}"]})
    assert gcs(sim, MALLORY).bucket(RAW).blob(VCF).download_as_bytes()


def test_a_group_binding_reaches_the_groups_members(sim_factory: Any) -> None:
    sim = sim_factory()
    sim.state.node["groups"] = {"vcf-readers@example.org": [MALLORY]}
    sim.state.iam_policy["bindings"].append({"role": "roles/storage.objectViewer",
                                             "members": ["group:vcf-readers@example.org"]})
    assert gcs(sim, MALLORY).bucket(RAW).blob(VCF).download_as_bytes()
    with pytest.raises(exceptions.Forbidden):
        gcs(sim, "eve@example.org").bucket(RAW).blob(VCF).download_as_bytes()


def test_table_reads_follow_the_dataset_access_list(sim: Any) -> None:
    table = f"{PROJECT}.hospital_data.variants"
    with pytest.raises(exceptions.Forbidden, match="Access Denied: Table fed-node-us:hospital_data.variants"):
        list(bq(sim, MALLORY).list_rows(table, max_results=5))
    with pytest.raises(exceptions.Forbidden, match="permission to query table"):
        bq(sim, MALLORY).query("SELECT start_position FROM hospital_data.variants LIMIT 1").result()

    admin = bq(sim)
    dataset = admin.get_dataset(f"{PROJECT}.hospital_data")
    dataset.access_entries = [*dataset.access_entries,
                              bigquery.AccessEntry(role="READER", entity_type="userByEmail", entity_id=MALLORY)]
    admin.update_dataset(dataset, ["access_entries"])

    list(bq(sim, MALLORY).list_rows(table, max_results=5))
    bq(sim, MALLORY).query("SELECT start_position FROM hospital_data.variants LIMIT 1").result()
    reasons = [e["protoPayload"]["metadata"]["tableDataRead"]["reason"] for e in reads_by(sim, MALLORY)]
    assert reasons == ["TABLEDATA_LIST_REQUEST", "JOB"]


def test_the_project_lists_every_bucket_and_dataset_of_the_node(sim_factory: Any) -> None:
    sim = sim_factory(scenarios=["bucket-outside-jurisdiction-unlisted", "dataset-outside-jurisdiction-unlisted"])
    names = [b.name for b in gcs(sim).list_buckets(project=PROJECT)]
    assert "fed-node-us-scratch-sg" in names
    scratch = gcs(sim).get_bucket("fed-node-us-scratch-sg")
    assert scratch.location == "ASIA-SOUTHEAST1"
    assert {d.dataset_id for d in bq(sim).list_datasets()} == {"hospital_data", "qc_scratch"}
    assert bq(sim).get_dataset(f"{PROJECT}.qc_scratch").location == "asia-southeast1"
