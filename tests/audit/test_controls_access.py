"""SEC-07 (reads) and the access half of SOV-04/SOV-05: bucket IAM, dataset access lists, every
bucket and dataset of the project. Pure functions of recorded evidence, built with NodeEvidence."""

from __future__ import annotations

import dataclasses

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy

SA = "batch-runner@fed-node-us.iam.gserviceaccount.com"


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def messages(result, outcome: Outcome) -> list[str]:
    return [f.message for f in result.findings if f.outcome == outcome]


def add_reads(node: NodeEvidence, *entries: dict) -> None:
    node.body("logging.data_reads")["entries"].extend(entries)


# ---- SEC-07 -------------------------------------------------------------------------------------

def test_sec07_passes_when_only_the_node_service_account_read(node: NodeEvidence) -> None:
    result = node.run("SEC-07")
    assert result.outcome == Outcome.PASS and SA in messages(result, Outcome.PASS)[0]


def test_sec07_fails_naming_every_outside_reader_with_counts_and_examples(node: NodeEvidence) -> None:
    add_reads(node, *(node.read_entry("fed-node-us-raw-vcfs", f"vcfs/sample-{i:04d}.vcf.gz", "mallory@example.org")
                      for i in range(5)),
              node.table_read_entry("eve@partner-lab.net"))
    failed = messages(node.run("SEC-07"), Outcome.FAIL)
    assert len(failed) == 2
    eve, mallory = failed
    assert eve.startswith("eve@partner-lab.net is not among the pack's readers and read 1 time(s)")
    assert "tables/variants" in eve
    assert mallory.startswith("mallory@example.org is not among the pack's readers and read 5 time(s), 5 distinct")
    assert "and 2 more" in mallory


def test_sec07_fails_on_a_bucket_listing_by_an_outsider(node: NodeEvidence) -> None:
    add_reads(node, node.read_entry("fed-node-us-raw-vcfs", "", "mallory@example.org", method="storage.objects.list"))
    assert node.run("SEC-07").outcome == Outcome.FAIL


def test_sec07_matches_readers_exactly_not_by_substring(node: NodeEvidence) -> None:
    lookalike = "batch-runner@fed-node-us.iam.gserviceaccount.com.evil.example"
    add_reads(node, node.read_entry("fed-node-us-raw-vcfs", "vcfs/sample-0000.vcf.gz", lookalike))
    assert lookalike in messages(node.run("SEC-07"), Outcome.FAIL)[0]


def test_sec07_ignores_a_refused_read(node: NodeEvidence) -> None:
    refused = node.read_entry("fed-node-us-raw-vcfs", "vcfs/sample-0000.vcf.gz", "mallory@example.org")
    refused["protoPayload"]["status"] = {"code": 7, "message": "PERMISSION_DENIED"}
    add_reads(node, refused)
    assert node.run("SEC-07").outcome == Outcome.PASS


def test_sec07_accepts_a_listed_user_reader(node: NodeEvidence) -> None:
    pack = dataclasses.replace(node.pack, readers=(*node.pack.readers, "user:analyst@example.org"))
    add_reads(node, node.table_read_entry("analyst@example.org"))
    assert node.run("SEC-07", pack=pack).outcome == Outcome.PASS


def test_sec07_errors_when_storage_read_logging_is_off(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy")["auditConfigs"] = [
        {"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": "DATA_WRITE"}]}]
    result = node.run("SEC-07")
    assert result.outcome == Outcome.ERROR and "DATA_READ audit logs are not enabled" in messages(result, Outcome.ERROR)[0]


def test_sec07_errors_when_read_logging_exempts_someone(node: NodeEvidence) -> None:
    node.body("resourcemanager.iam_policy")["auditConfigs"][0]["auditLogConfigs"][1]["exemptedMembers"] = [
        "user:mallory@example.org"]
    assert node.run("SEC-07").outcome == Outcome.ERROR


def test_sec07_errors_on_an_empty_read_log(node: NodeEvidence) -> None:
    node.set("logging.data_reads", {})
    result = node.run("SEC-07")
    assert result.outcome == Outcome.ERROR and "no reads at all" in messages(result, Outcome.ERROR)[0]


def test_sec07_errors_when_the_read_log_could_not_be_read(node: NodeEvidence) -> None:
    node.set("logging.data_reads", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("SEC-07").outcome == Outcome.ERROR


def test_sec07_errors_when_the_pack_lists_no_readers(node: NodeEvidence) -> None:
    pack = dataclasses.replace(node.pack, readers=None)
    assert node.run("SEC-07", pack=pack).outcome == Outcome.ERROR


# ---- SOV-04: bucket IAM and the project's other buckets -----------------------------------------

def bind(node: NodeEvidence, bucket: str, role: str, *members: str) -> None:
    node.body(f"storage.bucket_iam:{bucket}")["bindings"].append({"role": role, "members": list(members)})


@pytest.mark.parametrize("member", ["allUsers", "allAuthenticatedUsers", "user:collaborator@partner-lab.net",
                                    "domain:partner-lab.net", "group:readers@partner-lab.net",
                                    "serviceAccount:exporter@other-project.iam.gserviceaccount.com",
                                    "projectViewer:other-project", "principalSet://iam.googleapis.com/x"])
def test_sov04_fails_when_a_bucket_grants_someone_outside(node: NodeEvidence, member: str) -> None:
    bind(node, "fed-node-us-raw-vcfs", "roles/storage.objectViewer", member)
    failed = messages(node.run("SOV-04"), Outcome.FAIL)
    assert len(failed) == 1 and member in failed[0] and "fed-node-us-raw-vcfs" in failed[0]


@pytest.mark.parametrize("member", ["user:mallory@example.org", "group:genomics-platform-admins@example.org",
                                    "serviceAccount:qc@fed-node-us.iam.gserviceaccount.com",
                                    "serviceAccount:service-314159265358@gs-project-accounts.iam.gserviceaccount.com",
                                    "projectOwner:314159265358"])
def test_sov04_accepts_members_of_the_node_and_its_allowed_domains(node: NodeEvidence, member: str) -> None:
    bind(node, "fed-node-us-processed", "roles/storage.objectViewer", member)
    assert node.run("SOV-04").outcome == Outcome.PASS


def test_sov04_errors_when_a_bucket_policy_could_not_be_read(node: NodeEvidence) -> None:
    node.set("storage.bucket_iam:fed-node-us-processed", {"error": {"code": 403, "message": "denied"}}, status=403)
    assert node.run("SOV-04").outcome == Outcome.ERROR


def test_sov04_fails_on_a_bucket_of_the_project_the_pack_does_not_name(node: NodeEvidence) -> None:
    node.body("storage.project_buckets")["items"].append({
        "kind": "storage#bucket", "name": "fed-node-us-scratch-sg", "location": "ASIA-SOUTHEAST1",
        "locationType": "region", "iamConfiguration": {"publicAccessPrevention": "enforced",
                                                       "uniformBucketLevelAccess": {"enabled": True}}})
    failed = messages(node.run("SOV-04"), Outcome.FAIL)
    assert len(failed) == 1 and "fed-node-us-scratch-sg" in failed[0] and "asia-southeast1" in failed[0]
    assert "the pack does not name" in failed[0]


def test_sov04_errors_when_the_project_buckets_could_not_be_listed(node: NodeEvidence) -> None:
    node.set("storage.project_buckets", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("SOV-04").outcome == Outcome.ERROR


# ---- SOV-05: the dataset's access list and the project's other datasets --------------------------

def share(node: NodeEvidence, entry: dict) -> None:
    node.body("bigquery.dataset")["access"].append(entry)


@pytest.mark.parametrize("entry", [
    {"role": "READER", "specialGroup": "allAuthenticatedUsers"},
    {"role": "READER", "iamMember": "allUsers"},
    {"role": "READER", "userByEmail": "collaborator@partner-lab.net"},
    {"role": "READER", "groupByEmail": "readers@partner-lab.net"},
    {"role": "READER", "domain": "partner-lab.net"},
    {"view": {"projectId": "analytics-sandbox-7", "datasetId": "shared", "tableId": "variants_v"}},
    {"dataset": {"dataset": {"projectId": "analytics-sandbox-7", "datasetId": "shared"}, "targetTypes": ["VIEWS"]}},
])
def test_sov05_fails_when_the_dataset_is_shared_outside(node: NodeEvidence, entry: dict) -> None:
    share(node, entry)
    failed = messages(node.run("SOV-05"), Outcome.FAIL)
    assert len(failed) == 1 and "access list reaches outside the node" in failed[0]


def test_sov05_accepts_a_reader_of_the_allowed_domain(node: NodeEvidence) -> None:
    share(node, {"role": "READER", "userByEmail": "analyst@example.org"})
    assert node.run("SOV-05").outcome == Outcome.PASS


def test_sov05_fails_on_a_dataset_of_the_project_the_pack_does_not_name(node: NodeEvidence) -> None:
    node.body("bigquery.project_datasets")["datasets"].append(
        {"kind": "bigquery#dataset", "id": "fed-node-us:qc_scratch", "location": "asia-southeast1",
         "datasetReference": {"projectId": "fed-node-us", "datasetId": "qc_scratch"}})
    node.set("bigquery.dataset:qc_scratch", {"kind": "bigquery#dataset", "location": "asia-southeast1",
                                             "datasetReference": {"projectId": "fed-node-us",
                                                                  "datasetId": "qc_scratch"}})
    failed = messages(node.run("SOV-05"), Outcome.FAIL)
    assert len(failed) == 1 and "qc_scratch" in failed[0] and "no default CMEK key" in failed[0]


def test_sov05_errors_when_an_unnamed_dataset_could_not_be_read(node: NodeEvidence) -> None:
    node.body("bigquery.project_datasets")["datasets"].append(
        {"datasetReference": {"projectId": "fed-node-us", "datasetId": "qc_scratch"}})
    assert node.run("SOV-05").outcome == Outcome.ERROR
