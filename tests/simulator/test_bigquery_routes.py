"""BigQuery's routes out of a node, driven through google-cloud-bigquery: copy and extract jobs,
EXPORT DATA, CREATE TABLE AS SELECT, DML and destination tables into another project's dataset,
jobs.insert and jobs.query, and the audit entries Google writes for each (and where it writes them)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from sovaudit import cloud
from sovaudit.simulator.server import SimServer
from tests.simulator.test_bigquery import client_for as _client

PROJECT = "fed-node-us"
PARTNER = "partner-lab-analytics"
VARIANTS = f"{PROJECT}.hospital_data.variants"
BQ_TYPE = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"


def client_for(sim: SimServer, principal: str | None = None) -> bigquery.Client:
    """An insider's client: on a VM in the node's network (inside the perimeter) and holding BigQuery
    rights on the project, so that what these tests judge is each route itself."""
    client = _client(sim, principal)
    if principal:
        client._http.headers["X-Sim-Caller-Network"] = "node"
        sim.state.iam_policy["bindings"].append({"role": "roles/bigquery.admin", "members": [f"user:{principal}"]})
    return client


def payload(entry: dict) -> dict:
    return entry.get("protoPayload") or {}


def by(entry: dict, principal: str) -> bool:
    return (payload(entry).get("authenticationInfo") or {}).get("principalEmail") == principal


def bq_entries(sim: SimServer, event: str, *, project: str = PROJECT, principal: str | None = None) -> list[dict]:
    return [e for e in sim.state.log_entries
            if e["logName"].startswith(f"projects/{project}/logs/")
            and event in (payload(e).get("metadata") or {}) and (principal is None or by(e, principal))]


def job_entries(sim: SimServer, job_id: str, event: str) -> list[dict]:
    return [e for e in bq_entries(sim, event) if e["protoPayload"]["resourceName"].endswith(f"/jobs/{job_id}")]


@pytest.fixture
def open_node(sim_factory: Any) -> SimServer:
    """A node whose perimeter is only dry-run, with a partner project's dataset and bucket."""
    return sim_factory(scenarios=["bq-copy-to-foreign-dataset", "bq-extract-foreign-bucket"])


def test_copy_job_into_a_foreign_dataset_is_logged_in_both_projects(open_node: SimServer) -> None:
    client = client_for(open_node, "eve@example.org")
    job = client.copy_table(VARIANTS, f"{PARTNER}.staging.copy2", job_id="copy_eve")
    job.result()
    assert job.state == "DONE" and job.error_result is None
    insertion = job_entries(open_node, "copy_eve", "jobInsertion")[0]["protoPayload"]
    assert insertion["methodName"] == "google.cloud.bigquery.v2.JobService.InsertJob"
    config = insertion["metadata"]["jobInsertion"]["job"]["jobConfig"]
    assert insertion["metadata"]["jobInsertion"]["reason"] == "JOB_INSERT_REQUEST"
    assert config["type"] == "COPY"
    assert config["tableCopyConfig"]["destinationTable"] == f"projects/{PARTNER}/datasets/staging/tables/copy2"
    assert config["tableCopyConfig"]["sourceTables"] == [f"projects/{PROJECT}/datasets/hospital_data/tables/variants"]
    change = job_entries(open_node, "copy_eve", "jobChange")[0]["protoPayload"]["metadata"]["jobChange"]
    assert change["after"] == "DONE" and change["job"]["jobStatus"] == {"jobState": "DONE"}
    # The table change is the partner's: logged there, with the reason enum and the job's name.
    partner = bq_entries(open_node, "tableDataChange", project=PARTNER, principal="eve@example.org")
    assert partner[0]["protoPayload"]["metadata"]["tableDataChange"]["reason"] == "JOB"
    assert partner[0]["protoPayload"]["metadata"]["tableDataChange"]["jobName"] == f"projects/{PROJECT}/jobs/copy_eve"
    assert not bq_entries(open_node, "tableDataChange", principal="eve@example.org")
    # The read of the node's table is the node's.
    read = bq_entries(open_node, "tableDataRead", principal="eve@example.org")[0]["protoPayload"]
    assert read["resourceName"] == f"projects/{PROJECT}/datasets/hospital_data/tables/variants"
    assert read["metadata"]["tableDataRead"] == {"reason": "JOB", "jobName": f"projects/{PROJECT}/jobs/copy_eve"}


def test_extract_job_writes_objects_logged_in_the_buckets_project(open_node: SimServer) -> None:
    client = client_for(open_node, "eve@example.org")
    job = client.extract_table(VARIANTS, "gs://genomics-partner-share/eve/v-*.json", job_id="extract_eve",
                               job_config=bigquery.ExtractJobConfig(destination_format="NEWLINE_DELIMITED_JSON"))
    job.result()
    assert ("genomics-partner-share", "eve/v-000000000000.json") in open_node.state.objects
    creates = [e for e in open_node.state.log_entries if payload(e).get("methodName") == "storage.objects.create"
               and by(e, "eve@example.org")]
    assert [e["logName"] for e in creates] == [f"projects/{PARTNER}/logs/cloudaudit.googleapis.com%2Fdata_access"]
    config = job_entries(open_node, "extract_eve", "jobInsertion")[0]["protoPayload"]["metadata"]["jobInsertion"]
    assert config["job"]["jobConfig"]["type"] == "EXPORT"
    assert config["job"]["jobConfig"]["extractConfig"]["destinationUris"] == ["gs://genomics-partner-share/eve/v-*.json"]


def test_extract_refused_by_the_perimeter_fails_inside_the_job(sim_factory: Any) -> None:
    sim = sim_factory(scenarios=["bq-extract-refused"])
    client = client_for(sim, "eve@example.org")
    job = client.extract_table(VARIANTS, "gs://genomics-partner-share/eve/v-*.csv", job_id="extract_refused")
    with pytest.raises(exceptions.Forbidden):
        job.result()
    assert job.error_result["message"] == "Access Denied: BigQuery BigQuery: Permission denied while writing data."
    assert not [k for k in sim.state.objects if k[0] == "genomics-partner-share"]
    change = job_entries(sim, "extract_refused", "jobChange")[0]
    assert change["protoPayload"]["status"]["code"] == 7
    assert change["protoPayload"]["metadata"]["jobChange"]["job"]["jobStatus"]["errorResult"]["code"] == 7
    denied = [e for e in sim.state.log_entries if e["logName"].endswith("%2Fpolicy") and by(e, "eve@example.org")]
    assert denied and not denied[0]["protoPayload"]["metadata"].get("dryRun")


def test_jobs_query_ctas_and_dml_into_a_foreign_dataset(open_node: SimServer) -> None:
    client = client_for(open_node, "eve@example.org")
    client.query_and_wait(f"CREATE TABLE `{PARTNER}.staging.t` AS SELECT reference_name FROM `{VARIANTS}`")
    client.query_and_wait(f"INSERT INTO `{PARTNER}.staging.t` (reference_name) VALUES ('chr1'), ('chr2')")
    assert open_node.state.tables[(f"{PARTNER}:staging", "t")]["numRows"] == "2"
    insertions = bq_entries(open_node, "jobInsertion", principal="eve@example.org")
    assert {e["protoPayload"]["methodName"] for e in insertions} == {"google.cloud.bigquery.v2.JobService.Query"}
    assert {e["protoPayload"]["metadata"]["jobInsertion"]["reason"] for e in insertions} == {"QUERY_REQUEST"}
    changes = bq_entries(open_node, "jobChange", principal="eve@example.org")
    statements = [e["protoPayload"]["metadata"]["jobChange"]["job"]["jobConfig"]["queryConfig"]["statementType"]
                  for e in changes]
    assert statements == ["CREATE_TABLE_AS_SELECT", "INSERT"]
    partner = [payload(e)["metadata"] for e in open_node.state.log_entries
               if e["logName"].startswith(f"projects/{PARTNER}/") and by(e, "eve@example.org")
               and payload(e).get("serviceName") == "bigquery.googleapis.com"]
    assert [m["tableDataChange"]["reason"] for m in partner if "tableDataChange" in m] == ["JOB", "QUERY"]
    assert [m["tableCreation"]["reason"] for m in partner if "tableCreation" in m] == ["QUERY"]


def test_query_job_with_a_foreign_destination_table(open_node: SimServer) -> None:
    client = client_for(open_node)
    config = bigquery.QueryJobConfig(destination=f"{PARTNER}.staging.dest")
    job = client.query(f"SELECT 1 AS x FROM `{VARIANTS}` LIMIT 1", job_config=config, job_id="dest_job",
                       job_retry=None)
    job.result()
    assert job.statement_type == "SELECT"
    insertion = job_entries(open_node, "dest_job", "jobInsertion")[0]["protoPayload"]["metadata"]["jobInsertion"]
    assert insertion["job"]["jobConfig"]["queryConfig"]["destinationTable"] == \
        f"projects/{PARTNER}/datasets/staging/tables/dest"


def test_export_data_writes_the_files_and_reports_statistics(open_node: SimServer) -> None:
    client = client_for(open_node)
    job = client.query("EXPORT DATA OPTIONS(uri='gs://genomics-partner-share/x/*.csv', format='CSV', header=true) "
                       "AS SELECT 'chr1' AS reference_name", job_id="export_job", job_retry=None)
    job.result()
    assert job.statement_type == "EXPORT_DATA"
    assert open_node.state.objects[("genomics-partner-share", "x/000000000000.csv")].data == b"reference_name\r\nchr1\r\n"


def test_streaming_inserts_write_no_audit_entry(sim: SimServer) -> None:
    client = client_for(sim)
    table = client.create_table(bigquery.Table(f"{PROJECT}.hospital_data.streamed",
                                               schema=[bigquery.SchemaField("n", "INTEGER")]))
    before = len(sim.state.log_entries)
    assert client.insert_rows_json(table, [{"n": 1}, {"n": 2}]) == []
    assert len(sim.state.log_entries) == before


def test_tabledata_list_is_a_table_read_by_the_caller(sim: SimServer) -> None:
    client = client_for(sim, "reader@example.org")
    list(client.list_rows(VARIANTS, max_results=1))
    read = bq_entries(sim, "tableDataRead", principal="reader@example.org")[0]["protoPayload"]
    assert read["methodName"] == "google.cloud.bigquery.v2.TableDataService.List"
    assert read["metadata"]["tableDataRead"] == {"reason": "TABLEDATA_LIST_REQUEST"}


def test_dataset_access_patch_replaces_the_list_and_reports_role_names(sim: SimServer) -> None:
    client = client_for(sim)
    dataset = client.get_dataset(f"{PROJECT}.hospital_data")
    dataset.access_entries = [
        bigquery.AccessEntry("roles/bigquery.dataViewer", "userByEmail", "eve@example.org"),
        bigquery.AccessEntry("OWNER", "specialGroup", "projectOwners")]
    client.update_dataset(dataset, ["access_entries"])
    access = client.get_dataset(f"{PROJECT}.hospital_data").to_api_repr()["access"]
    assert access == [{"role": "READER", "userByEmail": "eve@example.org"},
                      {"role": "OWNER", "specialGroup": "projectOwners"}]
    entry = [e for e in sim.state.log_entries
             if payload(e).get("methodName") == "google.cloud.bigquery.v2.DatasetService.PatchDataset"][-1]
    assert entry["logName"].endswith("cloudaudit.googleapis.com%2Factivity")
    change = entry["protoPayload"]["metadata"]["datasetChange"]
    assert change["reason"] == "UPDATE"
    assert change["dataset"]["acl"]["policy"]["bindings"] == [
        {"role": "roles/bigquery.dataViewer", "members": ["user:eve@example.org"]},
        {"role": "roles/bigquery.dataOwner", "members": [f"projectOwner:{PROJECT}"]}]
    dataset = client.get_dataset(f"{PROJECT}.hospital_data")
    with pytest.raises(exceptions.BadRequest):
        dataset.access_entries = [bigquery.AccessEntry("roles/editor", "userByEmail", "eve@example.org")]
        client.update_dataset(dataset, ["access_entries"])


def test_load_job_from_a_node_bucket_into_a_foreign_dataset(open_node: SimServer) -> None:
    from google.cloud import storage

    from tests.simulator.test_bigquery import variants_parquet

    gcs = storage.Client(project=PROJECT, credentials=client_for(open_node)._credentials,
                         client_options={"api_endpoint": open_node.url})
    gcs.bucket(f"{PROJECT}-processed").blob("extra/v.parquet").upload_from_string(variants_parquet(0, 3))
    client = client_for(open_node, "eve@example.org")
    job = client.load_table_from_uri(f"gs://{PROJECT}-processed/extra/v.parquet", f"{PARTNER}.staging.loaded",
                                     job_id="load_eve", job_config=bigquery.LoadJobConfig(
                                         source_format="PARQUET", parquet_options=_list_inference()))
    job.result()
    assert job.output_rows == 3
    insertion = job_entries(open_node, "load_eve", "jobInsertion")[0]["protoPayload"]["metadata"]["jobInsertion"]
    assert insertion["job"]["jobConfig"]["loadConfig"]["destinationTable"] == \
        f"projects/{PARTNER}/datasets/staging/tables/loaded"
    assert bq_entries(open_node, "tableDataChange", project=PARTNER, principal="eve@example.org")


def _list_inference() -> Any:
    from google.cloud.bigquery.format_options import ParquetOptions

    options = ParquetOptions()
    options.enable_list_inference = True
    return options


def test_a_load_from_an_upload_omits_the_empty_source_uris_in_its_audit_entry(sim_factory: Any) -> None:
    """Google's JSON omits an empty repeated field: a media-upload load (the pipeline's) has no
    `sourceUris` in its jobInsertion loadConfig, where a gs:// load names its files."""
    node = sim_factory()
    client = client_for(node, "loader@example.org")
    buffer = io.BytesIO()
    pq.write_table(pa.table({"chrom": ["chr1"]}), buffer)
    config = bigquery.LoadJobConfig(source_format="PARQUET")
    table = f"{PROJECT}.hospital_data.uploaded"
    client.load_table_from_file(io.BytesIO(buffer.getvalue()), table, job_id="load_upload",
                                job_config=config).result()
    storage = cloud.storage(cloud.Target.parse(node.url), PROJECT)
    storage.bucket(f"{PROJECT}-processed").blob("rows.parquet").upload_from_string(buffer.getvalue())
    client.load_table_from_uri(f"gs://{PROJECT}-processed/rows.parquet", table, job_id="load_uri",
                               job_config=config).result()

    def load_config(job_id: str) -> dict:
        insertion = job_entries(node, job_id, "jobInsertion")[0]["protoPayload"]["metadata"]["jobInsertion"]
        return dict(insertion["job"]["jobConfig"]["loadConfig"])

    uploaded = load_config("load_upload")
    assert "sourceUris" not in uploaded and uploaded["destinationTable"].endswith("/tables/uploaded")
    assert load_config("load_uri")["sourceUris"] == [f"gs://{PROJECT}-processed/rows.parquet"]
