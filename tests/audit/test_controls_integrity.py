"""INT-01: task manifests against BigQuery's own load statistics."""

from __future__ import annotations

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import resolve_policy


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"), task_count=3)


def failures(result) -> list[str]:
    return [f.message for f in result.findings if f.outcome == Outcome.FAIL]


def test_int01_passes_when_counts_agree_for_every_task(node: NodeEvidence) -> None:
    result = node.run("INT-01")
    assert result.outcome == Outcome.PASS and len(result.findings) == 3


def test_int01_fails_when_bigquery_loaded_fewer_rows(node: NodeEvidence) -> None:
    node.body("bigquery.load_jobs")["jobs"][1]["statistics"]["load"]["outputRows"] = "998"
    result = node.run("INT-01")
    assert result.outcome == Outcome.FAIL
    assert failures(result) == ["task 1: counts disagree: normalized 1001, manifest rows_loaded 1001, "
                                "BigQuery outputRows 998"]


def test_int01_fails_when_a_task_left_no_manifest(node: NodeEvidence) -> None:
    listing = node.body("storage.manifests")
    listing["items"] = listing["items"][:2]
    message = failures(node.run("INT-01"))
    assert any("task 2 left no manifest" in m and "sample-002.vcf.gz" in m for m in message)


def test_int01_fails_when_a_load_job_is_missing_or_failed(node: NodeEvidence) -> None:
    jobs = node.body("bigquery.load_jobs")["jobs"]
    jobs[0]["status"] = {"state": "DONE", "errorResult": {"reason": "invalid", "message": "Error while reading data"}}
    del jobs[2]
    found = failures(node.run("INT-01"))
    assert any("did not succeed: Error while reading data" in m for m in found)
    assert any("is not among the run's BigQuery load jobs" in m for m in found)


def test_int01_errors_on_a_malformed_manifest(node: NodeEvidence) -> None:
    node.set(f"storage.manifest:{node.manifest_name(0)}", {"job": "preprocess-genomes-001", "task_index": 0})
    result = node.run("INT-01")
    assert result.outcome == Outcome.ERROR
    assert "missing" in [f.message for f in result.findings if f.outcome == Outcome.ERROR][0]


def test_int01_errors_when_no_manifests_exist(node: NodeEvidence) -> None:
    node.set("storage.manifests", {"kind": "storage#objects"})
    assert node.run("INT-01").outcome == Outcome.ERROR


def test_int01_error_for_a_job_still_running_says_to_verify_after_it_ends(node: NodeEvidence) -> None:
    node.set("storage.manifests", {"kind": "storage#objects"})
    node.body("batch.job")["status"]["state"] = "RUNNING"
    [finding] = node.run("INT-01").findings
    assert finding.outcome == Outcome.ERROR
    assert "the job is RUNNING: verify it again once it has ended" in finding.message


def test_int01_errors_when_load_jobs_were_not_collected(node: NodeEvidence) -> None:
    node.drop("bigquery.load_jobs")
    result = node.run("INT-01")
    assert result.outcome == Outcome.ERROR and "jobs.list" in result.findings[-1].message


def test_int01_fails_when_a_task_processed_another_input_than_the_job_names(node: NodeEvidence) -> None:
    node.body(f"storage.manifest:{node.manifest_name(1)}")["input"] = "gs://fed-node-us-raw-vcfs/sample-000.vcf.gz"
    found = failures(node.run("INT-01"))
    assert found == ["input gs://fed-node-us-raw-vcfs/sample-001.vcf.gz is named by the job for task 1, but that "
                     "task's manifest records processing gs://fed-node-us-raw-vcfs/sample-000.vcf.gz"]


def test_int01_reads_counts_from_the_listing_custom_metadata_when_bodies_were_not_fetched(node: NodeEvidence) -> None:
    for index, obj in enumerate(node.body("storage.manifests")["items"]):
        obj["metadata"] = {k: str(v) for k, v in node.manifest(index).items()}
        node.drop(f"storage.manifest:{node.manifest_name(index)}")
    assert node.run("INT-01").outcome == Outcome.PASS
    node.body("storage.manifests")["items"][0]["metadata"]["rows_loaded"] = "12"
    assert "task 0: counts disagree" in failures(node.run("INT-01"))[0]
