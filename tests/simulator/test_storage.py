"""Cloud Storage v1 in the simulator, driven only through google-cloud-storage."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import google_crc32c
import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

PROJECT = "fed-node-us"
KEY = "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics/cryptoKeys/gcs-processed"
PROCESSED = "fed-node-us-processed"
FOREIGN = "fed-node-us-processed-export"
DATA_ACCESS = f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fdata_access"
POLICY = f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fpolicy"


def client_for(sim: Any, principal: str | None = None) -> storage.Client:
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": sim.url})
    if principal:
        client._http.headers["X-Sim-Principal"] = principal
    return client


def entries(sim: Any, log_name: str, method: str) -> list[dict[str, Any]]:
    return [e for e in sim.state.log_entries
            if e["logName"] == log_name and e.get("protoPayload", {}).get("methodName") == method]


def test_bucket_round_trip_keeps_location_cmek_access_settings_and_labels(sim: Any) -> None:
    client = client_for(sim)
    bucket = client.bucket("fed-node-us-scratch")
    bucket.default_kms_key_name = KEY
    bucket.iam_configuration.public_access_prevention = "enforced"
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    bucket.labels = {"team": "genomics", "tmp": "yes"}
    client.create_bucket(bucket, location="us-central1")

    fetched = client.get_bucket("fed-node-us-scratch")
    assert fetched.location == "US-CENTRAL1"
    assert fetched.location_type == "region"
    assert fetched.default_kms_key_name == KEY
    assert fetched.iam_configuration.public_access_prevention == "enforced"
    assert fetched.iam_configuration.uniform_bucket_level_access_enabled is True
    assert fetched.labels == {"team": "genomics", "tmp": "yes"}
    assert fetched.project_number == int(sim.state.project_number)

    names = [b.name for b in client.list_buckets()]
    assert names == sorted(names)
    assert {"fed-node-us-raw-vcfs", PROCESSED, "fed-node-us-scratch"} <= set(names)
    assert FOREIGN not in names  # another project's bucket is not listed in ours

    labels = fetched.labels
    del labels["tmp"]
    labels["stage"] = "patched"
    fetched.labels = labels
    fetched.patch()
    again = client.get_bucket("fed-node-us-scratch")
    assert again.labels == {"team": "genomics", "stage": "patched"}
    assert again.metageneration == 2

    policy = again.get_iam_policy()
    assert any(b["role"] == "roles/storage.legacyBucketOwner" for b in policy.bindings)

    again.delete()
    with pytest.raises(exceptions.NotFound):
        client.get_bucket("fed-node-us-scratch")
    methods = [e["protoPayload"]["methodName"] for e in sim.state.log_entries
               if e["resource"]["labels"].get("bucket_name") == "fed-node-us-scratch"]
    assert methods == ["storage.buckets.create", "storage.buckets.update", "storage.buckets.delete"]


@pytest.mark.parametrize(("location", "quoted"), [("US", "'us'"), ("europe-west4", "'europe-west4'")])
def test_bucket_outside_the_node_region_is_refused_with_412_naming_the_constraint(
        sim: Any, location: str, quoted: str) -> None:
    client = client_for(sim)
    with pytest.raises(exceptions.PreconditionFailed) as refused:
        client.create_bucket("fed-node-us-probe", location=location)
    assert f"{quoted} violates constraint 'constraints/gcp.resourceLocations'" in refused.value.message
    assert refused.value.errors[0]["reason"] == "conditionNotMet"
    assert "fed-node-us-probe" not in sim.state.buckets
    with pytest.raises(exceptions.NotFound):
        client.get_bucket("fed-node-us-probe")


def test_multipart_upload_download_with_range_and_checksums(sim: Any) -> None:
    client = client_for(sim)
    blob = client.bucket(PROCESSED).blob("results/run 1/summary.json")  # a slash and a space in the name
    payload = b'{"rows": 1234}\n' * 20
    blob.upload_from_string(payload, content_type="application/json")

    fetched = client.bucket(PROCESSED).get_blob("results/run 1/summary.json")
    assert fetched is not None
    assert fetched.size == len(payload)
    assert fetched.content_type == "application/json"
    assert fetched.md5_hash == base64.b64encode(hashlib.md5(payload).digest()).decode()
    assert fetched.crc32c == base64.b64encode(google_crc32c.value(payload).to_bytes(4, "big")).decode()
    assert fetched.kms_key_name.startswith(sim.state.buckets[PROCESSED]["encryption"]["defaultKmsKeyName"])
    assert fetched.time_created is not None and fetched.generation > 0

    assert fetched.download_as_bytes() == payload
    assert fetched.download_as_bytes(start=5, end=14) == payload[5:15]


def test_resumable_upload_in_small_chunks_reassembles_the_object(sim: Any) -> None:
    client = client_for(sim)
    blob = client.bucket(PROCESSED).blob("variants/big.parquet", chunk_size=256 * 1024)
    payload = os.urandom(256 * 1024 * 2 + 1000)
    before = sim.state.stats["storage"]
    # Without a size the client cannot choose multipart: it opens a session and sends 256 KiB chunks.
    blob.upload_from_file(io.BytesIO(payload), content_type="application/vnd.apache.parquet")
    assert sim.state.stats["storage"] - before >= 4  # the session start + three chunk PUTs (multipart: 1)

    stored = sim.state.objects[(PROCESSED, "variants/big.parquet")]
    assert stored.data == payload
    assert client.bucket(PROCESSED).blob("variants/big.parquet").download_as_bytes() == payload


def test_list_with_prefix_delimiter_and_pages(sim: Any) -> None:
    client = client_for(sim)
    bucket = client.bucket(PROCESSED)
    for name in ("t/a.txt", "t/b.txt", "t/sub/c.txt", "t/sub/d.txt", "u/e.txt"):
        bucket.blob(name).upload_from_string(name.encode())

    listed = client.list_blobs(PROCESSED, prefix="t/", delimiter="/")
    assert [b.name for b in listed] == ["t/a.txt", "t/b.txt"]
    assert listed.prefixes == {"t/sub/"}

    pages = client.list_blobs(PROCESSED, prefix="t/", page_size=2).pages
    assert [[b.name for b in page] for page in pages] == [["t/a.txt", "t/b.txt"], ["t/sub/c.txt", "t/sub/d.txt"]]


def test_delete_removes_the_object_and_a_second_delete_is_not_found(sim: Any) -> None:
    client = client_for(sim)
    blob = client.bucket(PROCESSED).blob("tmp/x.txt")
    blob.upload_from_string(b"x")
    blob.delete()
    with pytest.raises(exceptions.NotFound):
        blob.delete()
    assert client.bucket(PROCESSED).get_blob("tmp/x.txt") is None


def test_create_only_upload_refuses_to_overwrite(sim: Any) -> None:
    client = client_for(sim)
    blob = client.bucket(PROCESSED).blob("once.txt")
    blob.upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.upload_from_string(b"second", if_generation_match=0)
    assert blob.download_as_bytes() == b"first"


def grant_on_bucket(sim: Any, bucket: str, role: str, member: str) -> None:
    """Add a binding through the client, as an administrator would with setIamPolicy."""
    admin = client_for(sim).bucket(bucket)
    policy = admin.get_iam_policy(requested_policy_version=3)
    policy.bindings.append({"role": role, "members": {member}})
    admin.set_iam_policy(policy)


def test_object_write_leaves_a_data_access_entry_naming_the_caller(sim: Any) -> None:
    # A service account of the node's project: its calls come from inside the perimeter.
    grant_on_bucket(sim, PROCESSED, "roles/storage.objectAdmin", "serviceAccount:analyst@fed-node-us.iam.gserviceaccount.com")
    client = client_for(sim, principal="analyst@fed-node-us.iam.gserviceaccount.com")
    before = len(entries(sim, DATA_ACCESS, "storage.objects.create"))
    client.bucket(PROCESSED).blob("audit/probe.txt").upload_from_string(b"hello")

    created = entries(sim, DATA_ACCESS, "storage.objects.create")[before:]
    assert len(created) == 1
    entry = created[0]
    assert entry["resource"] == {"type": "gcs_bucket", "labels": {
        "project_id": PROJECT, "bucket_name": PROCESSED, "location": "us-central1"}}
    payload = entry["protoPayload"]
    assert payload["resourceName"] == f"projects/_/buckets/{PROCESSED}/objects/audit/probe.txt"
    assert payload["authenticationInfo"]["principalEmail"] == "analyst@fed-node-us.iam.gserviceaccount.com"
    assert payload["authorizationInfo"][0]["permission"] == "storage.objects.create"

    client.bucket(PROCESSED).blob("audit/probe.txt").delete()
    assert entries(sim, DATA_ACCESS, "storage.objects.delete")[-1]["protoPayload"]["resourceName"].endswith(
        "audit/probe.txt")


def test_default_principal_is_the_node_service_account(sim: Any) -> None:
    client_for(sim).bucket(PROCESSED).blob("audit/default.txt").upload_from_string(b"x")
    entry = entries(sim, DATA_ACCESS, "storage.objects.create")[-1]
    assert entry["protoPayload"]["authenticationInfo"]["principalEmail"] == \
        "batch-runner@fed-node-us.iam.gserviceaccount.com"


def test_object_write_leaves_no_entry_when_data_access_logging_is_off(sim: Any) -> None:
    sim.state.iam_policy.pop("auditConfigs", None)
    before = len(entries(sim, DATA_ACCESS, "storage.objects.create"))
    client_for(sim).bucket(PROCESSED).blob("audit/silent.txt").upload_from_string(b"x")
    assert len(entries(sim, DATA_ACCESS, "storage.objects.create")) == before


@pytest.mark.parametrize("bucket_name", [FOREIGN, "somebody-elses-bucket"])
def test_write_to_a_bucket_outside_the_perimeter_is_refused_and_logged(sim: Any, bucket_name: str) -> None:
    client = client_for(sim)
    before = len(sim.state.log_entries)
    with pytest.raises(exceptions.Forbidden) as refused:
        client.bucket(bucket_name).blob("leak.vcf").upload_from_string(b"secret")
    assert "Request violates VPC Service Controls." in refused.value.message
    assert '"reason":"vpcServiceControls"' in refused.value.message
    denied = [e["protoPayload"]["metadata"]["resourceNames"] for e in sim.state.log_entries[before:]
              if e["logName"] == POLICY]
    assert [f"projects/_/buckets/{bucket_name}/objects/leak.vcf"] in denied
    assert (bucket_name, "leak.vcf") not in sim.state.objects


def test_seeded_object_downloads_from_the_simulator(sim: Any) -> None:
    client = client_for(sim)
    manifests = list(client.list_blobs(PROCESSED, prefix="manifests/"))
    assert manifests, "the seeded run leaves manifests in the processed bucket"
    assert manifests[0].media_link.startswith(sim.url)
    assert b'"rows_loaded"' in manifests[0].download_as_bytes()



def test_dry_run_perimeter_lets_a_foreign_write_through_but_logs_it(sim_factory: Any) -> None:
    sim = sim_factory(scenarios=["perimeter-dry-run"])
    before = len(sim.state.log_entries)
    client_for(sim).bucket(FOREIGN).blob("exports/leak.parquet").upload_from_string(b"rows")

    new = sim.state.log_entries[before:]
    denied = [e for e in new if e["logName"] == POLICY]
    assert denied and all(e["protoPayload"]["metadata"]["dryRun"] is True for e in denied)
    # The write is the foreign project's to log (its auditConfigs enable DATA_WRITE), not the node's.
    assert not [e for e in new if e["logName"] == DATA_ACCESS]
    written = [e for e in new if e["logName"] == "projects/partner-analytics-us/logs/cloudaudit.googleapis.com%2Fdata_access"
               and e["protoPayload"]["methodName"] == "storage.objects.create"]
    assert [e["resource"]["labels"] for e in written] == [
        {"project_id": "partner-analytics-us", "bucket_name": FOREIGN, "location": "us"}]


def test_another_projects_bucket_cannot_be_created_again_or_administered(sim_factory: Any) -> None:
    sim = sim_factory(scenarios=["perimeter-dry-run"])  # VPC-SC lets the calls reach IAM
    client = client_for(sim)
    with pytest.raises(exceptions.Conflict, match="not available"):
        client.create_bucket(FOREIGN, location="us-central1")
    with pytest.raises(exceptions.Forbidden, match="storage.buckets.delete"):
        client.bucket(FOREIGN).delete()


def test_upload_entry_is_found_through_the_logging_client_with_an_exact_bucket_filter(sim: Any) -> None:
    from google.cloud import logging as cloud_logging

    client_for(sim).bucket(PROCESSED).blob("audit/found.txt").upload_from_string(b"x")
    logging_client = cloud_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                          client_options={"api_endpoint": sim.url})
    since = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = list(logging_client.list_entries(filter_=(
        f'logName="{DATA_ACCESS}" AND protoPayload.methodName="storage.objects.create" '
        f'AND resource.labels.bucket_name="{PROCESSED}" AND timestamp>="{since}"')))
    names = [entry.payload["resourceName"] for entry in found]
    assert f"projects/_/buckets/{PROCESSED}/objects/audit/found.txt" in names


@pytest.mark.parametrize("key", [
    "projects/fed-node-us/locations/europe-west4/keyRings/fed-node-us-genomics/cryptoKeys/gcs-raw",
    "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics/cryptoKeys/no-such-key"])
def test_bucket_default_key_must_exist_in_the_bucket_location(sim: Any, key: str) -> None:
    bucket = client_for(sim).bucket("fed-node-us-cmek-probe")
    bucket.default_kms_key_name = key
    with pytest.raises(exceptions.BadRequest, match="Cloud KMS key"):
        client_for(sim).create_bucket(bucket, location="us-central1")
    assert "fed-node-us-cmek-probe" not in sim.state.buckets


def test_server_side_copy_rewrite_and_compose_write_audited_objects(sim: Any) -> None:
    client = client_for(sim)
    bucket = client.bucket(PROCESSED)
    bucket.blob("parts/a").upload_from_string(b"AAA", content_type="text/plain")
    bucket.blob("parts/b").upload_from_string(b"BB")
    before = len(entries(sim, DATA_ACCESS, "storage.objects.create"))

    copied = bucket.copy_blob(bucket.blob("parts/a"), client.bucket("fed-node-us-raw-vcfs"), "copies/a")
    assert copied.download_as_bytes() == b"AAA" and copied.content_type == "text/plain"
    rewritten = client.bucket(PROCESSED).blob("copies/a-rewritten")
    assert rewritten.rewrite(bucket.blob("parts/a")) == (None, 3, 3)
    composed = bucket.blob("whole")
    composed.compose([bucket.blob("parts/a"), bucket.blob("parts/b")])
    assert composed.download_as_bytes() == b"AAABB" and composed.size == 5

    created = [e["protoPayload"]["resourceName"] for e in entries(sim, DATA_ACCESS, "storage.objects.create")[before:]]
    assert created == ["projects/_/buckets/fed-node-us-raw-vcfs/objects/copies/a",
                       f"projects/_/buckets/{PROCESSED}/objects/copies/a-rewritten",
                       f"projects/_/buckets/{PROCESSED}/objects/whole"]


def test_rewrite_into_another_projects_bucket_is_refused_by_vpcsc(sim: Any) -> None:
    client = client_for(sim)
    client.bucket(PROCESSED).blob("parts/a").upload_from_string(b"AAA")
    with pytest.raises(exceptions.Forbidden, match="Request violates VPC Service Controls"):
        client.bucket(FOREIGN).blob("stolen").rewrite(client.bucket(PROCESSED).blob("parts/a"))
    assert (FOREIGN, "stolen") not in sim.state.objects


def test_eu_node_allows_its_region_and_refuses_us_central1(sim_factory: Any) -> None:
    sim = sim_factory(node="eu")
    client = storage.Client(project="fed-node-eu", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": sim.url})
    assert client.create_bucket("fed-node-eu-scratch", location="europe-west4").location == "EUROPE-WEST4"
    with pytest.raises(exceptions.PreconditionFailed, match="'us-central1' violates constraint"):
        client.create_bucket("fed-node-eu-probe", location="us-central1")
