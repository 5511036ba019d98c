"""SEC-04 across every write path: storage methods, each BigQuery job type by either method, table
changes, and the entries it cannot classify (ERROR, never PASS)."""

from __future__ import annotations

from typing import Any

import pytest
from test_controls_evidence import NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.audit.sql_writes import sql_writes
from sovaudit.policies.pack import resolve_policy

NODE_TABLE = "projects/fed-node-us/datasets/hospital_data/tables/variants"
FOREIGN_TABLE = "projects/other-lab/datasets/exfil/tables/variants"
QUERY = "google.cloud.bigquery.v2.JobService.Query"


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def add(node: NodeEvidence, *entries: dict[str, Any]) -> None:
    node.body("logging.data_writes")["entries"].extend(entries)


def outcome_and_messages(node: NodeEvidence, outcome: Outcome) -> tuple[Outcome, list[str]]:
    result = node.run("SEC-04")
    return result.outcome, [f.message for f in result.findings if f.outcome == outcome]


def query_config(sql: str, **extra: Any) -> dict[str, Any]:
    return {"type": "QUERY", "queryConfig": {"query": sql, **extra}}


# ---- each write path: a passing and a failing case -------------------------------------------

@pytest.mark.parametrize("config, method", [
    (query_config("SELECT * FROM hospital_data.variants", destinationTable=FOREIGN_TABLE,
                  statementType="SELECT"), QUERY),
    (query_config("CREATE TABLE `other-lab.exfil.variants` AS SELECT * FROM hospital_data.variants",
                  statementType="CREATE_TABLE_AS_SELECT"), "google.cloud.bigquery.v2.JobService.InsertJob"),
    (query_config("INSERT INTO other-lab.exfil.variants SELECT * FROM hospital_data.variants",
                  statementType="INSERT"), QUERY),
    ({"type": "COPY", "tableCopyConfig": {"sourceTables": [NODE_TABLE], "destinationTable": FOREIGN_TABLE}},
     "google.cloud.bigquery.v2.JobService.InsertJob"),
    ({"type": "IMPORT", "loadConfig": {"sourceUris": ["gs://fed-node-us-processed/x.parquet"],
                                       "destinationTable": FOREIGN_TABLE}},
     "google.cloud.bigquery.v2.JobService.InsertJob"),
])
def test_sec04_fails_on_a_job_writing_a_table_of_another_project(node: NodeEvidence, config: dict[str, Any],
                                                                   method: str) -> None:
    add(node, node.bq_job_entry(config, method=method))
    outcome, failed = outcome_and_messages(node, Outcome.FAIL)
    assert outcome == Outcome.FAIL
    assert any("other-lab.exfil.variants" in m and "mallory@example.org" in m for m in failed)


@pytest.mark.parametrize("config", [
    {"type": "EXPORT", "extractConfig": {"sourceTable": NODE_TABLE,
                                         "destinationUris": ["gs://elsewhere-bucket/variants-*.csv"]}},
    query_config("EXPORT DATA OPTIONS(uri='gs://elsewhere-bucket/v/*.parquet', format='PARQUET') AS "
                 "SELECT * FROM `fed-node-us.hospital_data.variants`", statementType="EXPORT_DATA"),
    query_config("/* nightly */ export data with connection `p.us.c` options (format='CSV', "
                 "uri=\"s3://bucket/v/*\") as select 1", statementType="EXPORT_DATA"),
])
def test_sec04_fails_on_an_export_outside_the_allowed_buckets(node: NodeEvidence, config: dict[str, Any]) -> None:
    add(node, node.bq_job_entry(config))
    outcome, failed = outcome_and_messages(node, Outcome.FAIL)
    assert outcome == Outcome.FAIL and any("exported data to" in m for m in failed)


def test_sec04_treats_an_extract_to_a_lookalike_bucket_as_foreign(node: NodeEvidence) -> None:
    add(node, node.bq_job_entry({"type": "EXPORT", "extractConfig": {
        "sourceTable": NODE_TABLE, "destinationUris": ["gs://fed-node-us-processed-export/v-*.csv"]}}))
    outcome, failed = outcome_and_messages(node, Outcome.FAIL)
    assert outcome == Outcome.FAIL and "'fed-node-us-processed-export'" in failed[0]


@pytest.mark.parametrize("config", [
    query_config("SELECT count(*) FROM hospital_data.variants", statementType="SELECT"),
    query_config("INSERT INTO hospital_data.variants_summary SELECT 1", statementType="INSERT",
                 destinationTable="projects/fed-node-us/datasets/hospital_data/tables/variants_summary"),
    query_config("SELECT 1", destinationTable="projects/fed-node-us/datasets/_0a1b2c/tables/anon9f8e"),
    query_config("CREATE TEMP TABLE t AS SELECT 1; INSERT INTO t SELECT 2; SELECT * FROM t", statementType="SCRIPT"),
    {"type": "EXPORT", "extractConfig": {"sourceTable": NODE_TABLE,
                                         "destinationUris": ["gs://fed-node-us-processed/export/v-*.csv"]}},
    query_config("EXPORT DATA OPTIONS(uri='gs://fed-node-us-processed/e/*.csv', format='CSV') AS SELECT 1"),
    {"type": "COPY", "tableCopyConfig": {"sourceTables": [NODE_TABLE],
                                         "destinationTable": NODE_TABLE.replace("variants", "variants_bak")}},
])
def test_sec04_passes_a_job_that_writes_only_the_node(node: NodeEvidence, config: dict[str, Any]) -> None:
    add(node, node.bq_job_entry(config))
    assert node.run("SEC-04").outcome == Outcome.PASS


def test_sec04_notes_a_load_from_a_foreign_bucket_as_an_import(node: NodeEvidence) -> None:
    add(node, node.bq_job_entry({"type": "IMPORT", "loadConfig": {
        "sourceUris": ["gs://somebody-else/x.parquet"], "destinationTable": NODE_TABLE}}))
    result = node.run("SEC-04")
    assert result.outcome == Outcome.PASS and "gs://somebody-else/x.parquet" in result.findings[-1].message


def test_sec04_judges_the_destination_of_a_storage_rewrite(node: NodeEvidence) -> None:
    entry = node.write_entry("elsewhere-bucket", "copy.parquet")
    entry["protoPayload"]["methodName"] = "storage.objects.rewrite"
    add(node, entry)
    assert node.run("SEC-04").outcome == Outcome.FAIL


def test_sec04_fails_on_a_table_change_in_another_project(node: NodeEvidence) -> None:
    # [U] which project logs the change of a cross-project job: if it is the node's, it is judged too.
    add(node, node.bq_write_entry("other-lab", "exfil"))
    assert node.run("SEC-04").outcome == Outcome.FAIL


def test_sec04_passes_a_failed_job_it_would_otherwise_fail(node: NodeEvidence) -> None:
    config = {"type": "EXPORT", "extractConfig": {"sourceTable": NODE_TABLE,
                                                  "destinationUris": ["gs://elsewhere-bucket/v-*.csv"]}}
    change = node.bq_job_entry(config, event="jobChange",
                               error="Access Denied: BigQuery BigQuery: Permission denied while writing data.")
    change["protoPayload"]["status"] = {"code": 7, "message": "Access Denied: BigQuery BigQuery: Permission denied"}
    add(node, node.bq_job_entry(config), change)
    result = node.run("SEC-04")
    assert result.outcome == Outcome.PASS


# ---- what cannot be classified is ERROR ---------------------------------------------------------

def test_sec04_errors_on_a_truncated_query(node: NodeEvidence) -> None:
    add(node, node.bq_job_entry(query_config("SELECT * FROM hospital_data.variants WHERE x IN (1, 2",
                                             queryTruncated=True)))
    outcome, errors = outcome_and_messages(node, Outcome.ERROR)
    assert outcome == Outcome.ERROR and "truncated" in errors[0]


@pytest.mark.parametrize("sql", [
    "EXECUTE IMMEDIATE 'EXPORT DATA OPTIONS(uri=\"gs://x/*\") AS SELECT 1'",
    "CALL `other-lab.exfil.ship`()",
    "EXPORT DATA OPTIONS(format='CSV') AS SELECT 1",
    "SELECT 'unterminated",
])
def test_sec04_errors_on_a_statement_it_cannot_read(node: NodeEvidence, sql: str) -> None:
    add(node, node.bq_job_entry(query_config(sql)))
    assert node.run("SEC-04").outcome == Outcome.ERROR


def test_sec04_errors_on_an_unknown_bigquery_event(node: NodeEvidence) -> None:
    entry = node.bq_write_entry("fed-node-us", "hospital_data")
    entry["protoPayload"]["metadata"] = {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata",
                                         "modelDataChange": {"reason": "JOB"}}
    add(node, entry)
    outcome, errors = outcome_and_messages(node, Outcome.ERROR)
    assert outcome == Outcome.ERROR and "modelDataChange" in errors[0]


def test_sec04_errors_on_a_table_change_with_a_non_enum_reason(node: NodeEvidence) -> None:
    entry = node.bq_write_entry("fed-node-us", "hospital_data")
    entry["protoPayload"]["metadata"]["tableDataChange"]["reason"] = {"type": "JOB"}
    add(node, entry)
    assert node.run("SEC-04").outcome == Outcome.ERROR


def test_sec04_ignores_table_reads(node: NodeEvidence) -> None:
    entry = node.bq_write_entry("other-lab", "exfil")
    entry["protoPayload"]["metadata"] = {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata",
                                         "tableDataRead": {"reason": "JOB", "jobName": "projects/p/jobs/j"}}
    add(node, entry)
    assert node.run("SEC-04").outcome == Outcome.PASS


# ---- the SQL reader ---------------------------------------------------------------------------

def test_sql_writes_finds_writes_inside_script_blocks() -> None:
    writes = sql_writes("DECLARE n INT64 DEFAULT 1; IF n > 0 THEN INSERT INTO `o.d.t` SELECT 1; END IF; "
                        "BEGIN SELECT 1; EXCEPTION WHEN ERROR THEN "
                        "EXPORT DATA OPTIONS(uri='gs://b2/*.csv', format='CSV') AS SELECT 2; END;")
    assert [t.parts for t in writes.tables] == [("o", "d", "t")]
    assert writes.export_uris == ("gs://b2/*.csv",) and not writes.problems


def test_sql_writes_ignores_keywords_inside_strings_and_comments() -> None:
    writes = sql_writes("-- EXPORT DATA OPTIONS(uri='gs://x/*')\nSELECT 'INSERT INTO o.d.t' AS s /* CALL p() */")
    assert writes.statements == ("SELECT",) and not writes.tables and not writes.problems


@pytest.mark.parametrize("sql", ["CREATE TABLE cohort AS SELECT 1", "INSERT INTO exfil.cohort SELECT 1"])
def test_sec04_resolves_short_names_against_a_foreign_default_dataset(node: NodeEvidence, sql: str) -> None:
    add(node, node.bq_job_entry(query_config(sql, defaultDataset="projects/other-lab/datasets/exfil")))
    outcome, failed = outcome_and_messages(node, Outcome.FAIL)
    assert outcome == Outcome.FAIL and any("other-lab.exfil.cohort" in m for m in failed)


def test_sec04_judges_a_job_inserted_before_the_window_by_its_change_entry(node: NodeEvidence) -> None:
    config = {"type": "COPY", "tableCopyConfig": {"sourceTables": [NODE_TABLE], "destinationTable": FOREIGN_TABLE}}
    add(node, node.bq_job_entry(config, event="jobChange"))
    assert node.run("SEC-04").outcome == Outcome.FAIL
