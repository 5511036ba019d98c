"""The seeded finished job is consistent across Batch, Compute, Storage, BigQuery and the audit logs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from sovaudit.simulator.server import load_seeded_state


@pytest.fixture(scope="module")
def state():
    return load_seeded_state("us", job_tasks=6)


def test_job_succeeded_in_the_recent_past_through_the_real_state_sequence(state) -> None:
    job = state.jobs["projects/314159265358/locations/us-central1/jobs/preprocess-genomes-001"]
    assert job["labels"]["pipeline"] == "genomics-preproc"
    assert job["allocationPolicy"]["location"]["allowedLocations"] == ["regions/us-central1"]
    assert job["allocationPolicy"]["instances"] == [
        {"instanceTemplate": "projects/fed-node-us/global/instanceTemplates/sev-n2d-batch"}]
    assert job["allocationPolicy"]["serviceAccount"]["email"] == "batch-runner@fed-node-us.iam.gserviceaccount.com"
    assert job["taskGroups"][0]["taskCount"] == "6"
    events = job["status"]["statusEvents"]
    assert [e["description"] for e in events] == [
        f"Job state is set from {a} to {b} for job projects/314159265358/locations/us-central1/jobs/preprocess-genomes-001."
        for a, b in (("QUEUED", "SCHEDULED"), ("SCHEDULED", "RUNNING"), ("RUNNING", "SUCCEEDED"))]
    created = datetime.fromisoformat(job["createTime"].replace("Z", "+00:00"))
    updated = datetime.fromisoformat(job["updateTime"].replace("Z", "+00:00"))
    assert created < updated < datetime.now(UTC)
    assert (datetime.now(UTC) - created).total_seconds() < 3 * 3600


def test_each_task_has_a_confidential_vm_without_external_ip_in_a_zone_of_the_region(state) -> None:
    seed = state.extras["seed"]
    vms = [vm for vm in state.instances.values() if vm["labels"].get("batch-job-uid") == seed.job_uid]
    assert len(vms) == 6
    for vm in vms:
        assert vm["labels"]["batch-job-id"] == "preprocess-genomes-001"
        assert vm["labels"]["batch-node"] == ""
        assert vm["zone"].rsplit("/", 1)[-1].startswith("us-central1-")
        assert vm["confidentialInstanceConfig"]["confidentialInstanceType"] == "SEV"
        assert "accessConfigs" not in vm["networkInterfaces"][0]
        assert vm["serviceAccounts"][0]["email"] == "batch-runner@fed-node-us.iam.gserviceaccount.com"
        assert vm["machineType"].endswith("/machineTypes/n2d-standard-4")
        assert vm["status"] in {"TERMINATED", "RUNNING"}


def test_each_vm_has_one_insert_audit_pair_by_the_cloudservices_agent(state) -> None:
    seed = state.extras["seed"]
    names = {link.rsplit("/", 1)[-1] for link in seed.instances}
    firsts = [e for e in state.log_entries if e.get("operation", {}).get("first")
              and e["protoPayload"]["methodName"] == "v1.compute.instances.insert"
              and e["protoPayload"]["resourceName"].rsplit("/", 1)[-1] in names]
    lasts = [e for e in state.log_entries if e.get("operation", {}).get("last")
             and e["protoPayload"]["resourceName"].rsplit("/", 1)[-1] in names]
    assert len(firsts) == len(lasts) == 6
    assert {e["protoPayload"]["authenticationInfo"]["principalEmail"] for e in firsts} == {
        "314159265358@cloudservices.gserviceaccount.com"}
    assert all(e["protoPayload"]["request"]["confidentialInstanceConfig"]["enableConfidentialCompute"]
               for e in firsts)


def test_manifests_agree_with_inputs_load_jobs_and_objects(state) -> None:
    for task in state.extras["seed"].tasks:
        manifest = json.loads(state.objects[("fed-node-us-processed",
                                             f"manifests/preprocess-genomes-001/{task.index}.json")].data)
        assert set(manifest) == {"run_id", "job", "task_index", "input", "input_sha256", "records_in",
                                 "records_normalized", "rows_loaded", "load_job_id", "table"}
        raw = state.objects[("fed-node-us-raw-vcfs", task.input_object)]
        assert manifest["input"] == f"gs://fed-node-us-raw-vcfs/{task.input_object}"
        assert manifest["input_sha256"] == hashlib.sha256(raw.data).hexdigest()
        assert raw.metadata["size"] == str(len(raw.data))
        load = state.bq_jobs[manifest["load_job_id"]]
        assert load["configuration"]["load"]["destinationTable"] == {
            "projectId": "fed-node-us", "datasetId": "hospital_data", "tableId": "variants"}
        assert int(load["statistics"]["load"]["outputRows"]) == manifest["rows_loaded"] == manifest["records_normalized"]
        assert load["jobReference"]["jobId"] == manifest["load_job_id"]
        assert manifest["table"] == "fed-node-us.hospital_data.variants"


def test_objects_are_encrypted_with_their_bucket_key(state) -> None:
    processed = [o for (bucket, _), o in state.objects.items() if bucket == "fed-node-us-processed"]
    assert processed
    assert {o.metadata["kmsKeyName"] for o in processed} == {
        "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics/cryptoKeys/gcs-processed"
        "/cryptoKeyVersions/1"}


def test_eu_node_seeds_in_europe_west4_with_its_own_identities() -> None:
    eu = load_seeded_state("eu", job_tasks=4)
    job = eu.jobs["projects/271828182845/locations/europe-west4/jobs/preprocess-genomes-001"]
    assert job["allocationPolicy"]["serviceAccount"]["email"] == "batch-runner@fed-node-eu.iam.gserviceaccount.com"
    assert {zone for zone, _ in eu.instances} <= {"europe-west4-a", "europe-west4-b", "europe-west4-c"}
    assert all(e["logName"].startswith("projects/fed-node-eu/logs/") for e in eu.log_entries)
    assert eu.buckets["fed-node-eu-raw-vcfs"]["location"] == "EUROPE-WEST4"


def test_manifest_counts_also_ride_as_custom_metadata_like_the_pipeline_writes_them(state) -> None:
    stored = state.objects[("fed-node-us-processed", "manifests/preprocess-genomes-001/1.json")]
    body = json.loads(stored.data)
    assert stored.metadata["metadata"] == {key: str(value) for key, value in body.items()}


def test_vms_deleted_after_the_job_are_gone_from_compute_but_their_inserts_stay_in_the_log(sim_factory) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1
    from sim_clients import logging

    sim = sim_factory(scenarios=["vms-deleted-after-job"], job_tasks=4)
    uid = sim.state.extras["seed"].job_uid
    compute = compute_v1.InstancesClient(credentials=AnonymousCredentials(), transport="rest",
                                         client_options={"api_endpoint": sim.url})
    found = [vm for _, scoped in compute.aggregated_list(request={
        "project": "fed-node-us", "filter": f'labels.batch-job-uid = "{uid}"'}) for vm in scoped.instances]
    assert found == []
    window = 'timestamp>="2020-01-01T00:00:00Z"'
    inserts = list(logging(sim.url).list_entries(filter_=(
        f'protoPayload.methodName="v1.compute.instances.insert" AND operation.first=true AND '
        f'protoPayload.request.labels.batch-job-uid="{uid}" AND {window}')))
    deletes = list(logging(sim.url).list_entries(filter_=(
        f'protoPayload.methodName="v1.compute.instances.delete" AND protoPayload.resourceName:"{uid}" AND {window}')))
    assert len(inserts) == 4 and len(deletes) == 4
    assert all(e.payload["request"]["confidentialInstanceConfig"]["enableConfidentialCompute"] for e in inserts)
    assert all(d.timestamp > i.timestamp for d in deletes for i in inserts)


def test_a_seed_option_with_a_bad_zone_is_refused_naming_the_field(tmp_path) -> None:
    from sovaudit.simulator.node import NodeFileError, load_scenario

    bad = tmp_path / "moved.yaml"
    bad.write_text("name: moved\ndescription: x\nfails: [SOV-06]\nseed:\n  vm_zones: [{index: 1, zone: mars}]\n")
    with pytest.raises(NodeFileError) as caught:
        load_scenario(bad)
    assert caught.value.field == "seed.vm_zones[0].zone" and "us-east1-b" in str(caught.value)
