"""Verify end to end against BigQuery work that stays inside the node: extra queries, copies, extracts
and exports by either method, writing only the node's dataset and buckets, must not fail SEC-04."""

from __future__ import annotations

from collections.abc import Callable

from test_verify_e2e import outcomes, run_verify

from sovaudit.simulator.actions import run_actions
from sovaudit.simulator.server import SimServer

P = "fed-node-us"
VARIANTS = {"projectId": P, "datasetId": "hospital_data", "tableId": "variants"}
RUNNER = "batch-runner@fed-node-us.iam.gserviceaccount.com"
JOBS, QUERIES = f"POST /bigquery/v2/projects/{P}/jobs", f"POST /bigquery/v2/projects/{P}/queries"


def _grant_analyst(sim: SimServer) -> None:
    """The analyst works from a VM in the node's network (the actions say so) with BigQuery rights."""
    sim.state.iam_policy["bindings"].append({"role": "roles/bigquery.admin", "members": ["user:analyst@example.org"]})


def test_bigquery_work_writing_only_the_node_passes_sec04(sim_factory: Callable[..., SimServer]) -> None:
    """bq-query-node-dataset-only: the harmless twin of every BigQuery route (a negative test), run by
    the pipeline's own identity, a reader the pack lists, so every control must pass."""
    sim = sim_factory()
    run_actions(sim.state, [
        {"call": QUERIES, "principal": RUNNER, "at_minutes": 30,
         "body": {"useLegacySql": False, "query": "SELECT count(*) AS n FROM hospital_data.variants"}},
        {"call": JOBS, "principal": RUNNER, "at_minutes": 31, "body": {"configuration": {"query": {
            "useLegacySql": False, "query": "SELECT reference_name FROM hospital_data.variants",
            "destinationTable": {"projectId": P, "datasetId": "hospital_data", "tableId": "names"}}}}},
        {"call": QUERIES, "principal": RUNNER, "at_minutes": 32, "body": {
            "useLegacySql": False,
            "query": "CREATE TABLE hospital_data.qc AS SELECT reference_name FROM hospital_data.variants"}},
        {"call": QUERIES, "principal": RUNNER, "at_minutes": 33, "body": {
            "useLegacySql": False, "query": "INSERT INTO hospital_data.qc (reference_name) VALUES ('chrM')"}},
        {"call": JOBS, "principal": RUNNER, "at_minutes": 34, "body": {"configuration": {"copy": {
            "sourceTables": [VARIANTS], "destinationTable": {**VARIANTS, "tableId": "variants_backup"}}}}},
        {"call": JOBS, "principal": RUNNER, "at_minutes": 35, "body": {"configuration": {"extract": {
            "sourceTable": VARIANTS, "destinationUris": [f"gs://{P}-processed/exports/variants-*.csv"]}}}},
        {"call": QUERIES, "principal": RUNNER, "at_minutes": 36, "body": {
            "useLegacySql": False, "query": f"EXPORT DATA OPTIONS(uri='gs://{P}-processed/qc/*.csv', format='CSV') "
                                            "AS SELECT reference_name FROM hospital_data.variants"}},
    ])
    code, document = run_verify(sim)
    sec04 = next(c for c in document["controls"] if c["id"] == "SEC-04")
    assert sec04["outcome"] == "PASS", sec04["findings"]
    assert outcomes(document, "FAIL") == set() and code == 0
    assert "analyst@example.org" not in str([f for f in sec04["findings"] if f["outcome"] != "PASS"])
    # The seven jobs were seen and judged, not filtered away: the clean node logs 40 writes (storage objects, load jobs and their table changes).
    summary = sec04["findings"][-1]["message"]
    assert int(summary.split()[0]) > 40, summary


def test_the_data_writes_query_returns_job_insertions_and_changes_but_no_reads(
        sim_factory: Callable[..., SimServer]) -> None:
    """The server-side filter keeps a clean run's page count: one entry per job (its insertion), its
    table changes, and a jobChange only when it adds something (a failure)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as cloud_logging

    from sovaudit.audit.collectors.logs import filters
    from sovaudit.simulator import clock

    sim = sim_factory(scenarios=["bq-extract-refused"])
    _grant_analyst(sim)
    run_actions(sim.state, [{"call": QUERIES, "principal": "analyst@example.org", "network": "node", "at_minutes": 30, "body": {
        "useLegacySql": False, "query": "SELECT count(*) AS n FROM hospital_data.variants"}}])
    seeded = sim.state.extras["seed"]
    query = filters(P, clock.parse(seeded.window_start), clock.parse(seeded.window_end))["logging.data_writes"]
    client = cloud_logging.Client(project=P, _use_grpc=False, credentials=AnonymousCredentials(),
                                  client_options={"api_endpoint": sim.url})
    found = [e.to_api_repr()["protoPayload"] for e in client.list_entries(resource_names=[f"projects/{P}"],
                                                                          filter_=query)]
    events = [next(k for k in p.get("metadata", {}) if k != "@type") for p in found
              if p["serviceName"] == "bigquery.googleapis.com"]
    assert events.count("tableDataRead") == 0
    assert events.count("jobInsertion") == 12           # 10 loads, the refused extract, the query
    assert events.count("jobChange") == 1               # only the refused extract's
    assert events.count("tableDataChange") == 10
