"""BigQuery v2 in the simulator, driven only through google-cloud-bigquery (and -storage for gs://)."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

PROJECT = "fed-node-us"
DATASET = "hospital_data"
KEY = "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics/cryptoKeys/bq"
DATA_ACCESS = f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fdata_access"

VARIANT_SCHEMA = [
    bigquery.SchemaField("reference_name", "STRING"),
    bigquery.SchemaField("start_position", "INTEGER"),
    bigquery.SchemaField("end_position", "INTEGER"),
    bigquery.SchemaField("reference_bases", "STRING"),
    bigquery.SchemaField("alternate_bases", "RECORD", mode="REPEATED", fields=[
        bigquery.SchemaField("alt", "STRING"), bigquery.SchemaField("AF", "FLOAT")]),
    bigquery.SchemaField("call", "RECORD", mode="REPEATED", fields=[
        bigquery.SchemaField("name", "STRING"),
        bigquery.SchemaField("genotype", "INTEGER", mode="REPEATED"),
        bigquery.SchemaField("phaseset", "STRING")]),
]


def client_for(sim: Any, principal: str | None = None) -> bigquery.Client:
    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": sim.url})
    if principal:
        client._http.headers["X-Sim-Principal"] = principal
    return client


def variants_parquet(start: int, count: int) -> bytes:
    """A Variant-Transforms-shaped Parquet file with nested repeated records."""
    table = pa.table({
        "reference_name": ["chr1"] * count,
        "start_position": pa.array(range(start, start + count), pa.int64()),
        "end_position": pa.array(range(start + 1, start + count + 1), pa.int64()),
        "reference_bases": ["A"] * count,
        "alternate_bases": [[{"alt": "G", "AF": 0.25}] for _ in range(count)],
        "call": [[{"name": "NA12878", "genotype": [0, 1], "phaseset": None},
                  {"name": "NA12891", "genotype": [-1, -1], "phaseset": "*"}] for _ in range(count)],
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def load_config(**overrides: Any) -> bigquery.LoadJobConfig:
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, **overrides)
    parquet_options = bigquery.ParquetOptions()
    parquet_options.enable_list_inference = True
    config.parquet_options = parquet_options
    return config


def test_dataset_round_trip_keeps_location_cmek_and_labels(sim: Any) -> None:
    client = client_for(sim)
    dataset = bigquery.Dataset(f"{PROJECT}.scratch_ds")
    dataset.location = "us-central1"
    dataset.default_encryption_configuration = bigquery.EncryptionConfiguration(kms_key_name=KEY)
    dataset.labels = {"team": "genomics"}
    client.create_dataset(dataset)

    fetched = client.get_dataset("scratch_ds")
    assert fetched.location == "us-central1"
    assert fetched.default_encryption_configuration.kms_key_name == KEY
    assert fetched.labels == {"team": "genomics"}
    assert fetched.created is not None
    assert {d.dataset_id for d in client.list_datasets()} == {DATASET, "scratch_ds"}

    fetched.labels = {"team": None, "stage": "patched"}
    patched = client.update_dataset(fetched, ["labels"])
    assert patched.labels == {"stage": "patched"}

    with pytest.raises(exceptions.Conflict):
        client.create_dataset(dataset)
    client.delete_dataset("scratch_ds")
    with pytest.raises(exceptions.NotFound):
        client.get_dataset("scratch_ds")


@pytest.mark.parametrize("location", ["US", "europe-west4"])
def test_dataset_outside_the_node_region_is_refused_naming_the_constraint(sim: Any, location: str) -> None:
    client = client_for(sim)
    dataset = bigquery.Dataset(f"{PROJECT}.probe_ds")
    dataset.location = location
    # Over REST google-api-core maps by HTTP status only: 400 FAILED_PRECONDITION arrives as BadRequest.
    with pytest.raises(exceptions.BadRequest) as refused:
        client.create_dataset(dataset)
    assert "constraints/gcp.resourceLocations" in refused.value.message
    assert refused.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    violations = refused.value.response.json()["error"]["details"][0]["violations"]
    assert violations[0]["type"] == "constraints/gcp.resourceLocations"
    assert "probe_ds" not in sim.state.datasets


def test_table_round_trip_keeps_nested_schema_partitioning_and_clustering(sim: Any) -> None:
    client = client_for(sim)
    table = bigquery.Table(f"{PROJECT}.{DATASET}.calls", schema=VARIANT_SCHEMA)
    table.range_partitioning = bigquery.RangePartitioning(
        field="start_position", range_=bigquery.PartitionRange(start=0, end=250_000_000, interval=1_000_000))
    table.clustering_fields = ["reference_name", "start_position"]
    client.create_table(table)

    fetched = client.get_table(f"{DATASET}.calls")
    assert fetched.schema == VARIANT_SCHEMA
    assert fetched.range_partitioning.field == "start_position"
    assert fetched.range_partitioning.range_.interval == 1_000_000
    assert fetched.clustering_fields == ["reference_name", "start_position"]
    assert fetched.encryption_configuration.kms_key_name == KEY  # inherited from the dataset default
    assert fetched.num_rows == 0
    assert "calls" in {t.table_id for t in client.list_tables(DATASET)}

    with pytest.raises(exceptions.Conflict):
        client.create_table(table)
    client.delete_table(f"{DATASET}.calls")
    with pytest.raises(exceptions.NotFound):
        client.get_table(f"{DATASET}.calls")


def test_table_with_clustering_on_a_repeated_field_is_refused(sim: Any) -> None:
    table = bigquery.Table(f"{PROJECT}.{DATASET}.bad", schema=VARIANT_SCHEMA)
    table.clustering_fields = ["alternate_bases"]
    with pytest.raises(exceptions.BadRequest, match="clustering"):
        client_for(sim).create_table(table)


def test_parquet_load_then_query_returns_the_nested_rows(sim: Any) -> None:
    client = client_for(sim)
    job = client.load_table_from_file(io.BytesIO(variants_parquet(100, 5)), f"{DATASET}.loaded",
                                      job_id="load_sample_0001", job_config=load_config())
    job.result()
    assert job.state == "DONE" and job.error_result is None
    assert job.output_rows == 5
    assert job.input_files == 1
    assert job.location == "us-central1"

    table = client.get_table(f"{DATASET}.loaded")
    assert table.num_rows == 5
    assert [f.name for f in table.schema] == [f.name for f in VARIANT_SCHEMA]
    assert table.schema[5].mode == "REPEATED" and table.schema[5].fields[1].mode == "REPEATED"

    rows = list(client.query(
        f"SELECT start_position, ARRAY_LENGTH(call) AS samples, call[OFFSET(1)].genotype AS gt "
        f"FROM `{PROJECT}.{DATASET}.loaded` WHERE start_position >= @low ORDER BY start_position",
        job_config=bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("low", "INT64", 102)])).result())
    assert [(r.start_position, r.samples, r.gt) for r in rows] == [(p, 2, [-1, -1]) for p in (102, 103, 104)]

    # A retried task reuses its deterministic job id: Google answers 409 and nothing loads twice.
    with pytest.raises(exceptions.Conflict, match="Already Exists: Job fed-node-us:us-central1.load_sample_0001"):
        client.load_table_from_file(io.BytesIO(variants_parquet(100, 5)), f"{DATASET}.loaded",
                                    job_id="load_sample_0001", job_config=load_config())
    assert client.get_table(f"{DATASET}.loaded").num_rows == 5
    assert client.get_job("load_sample_0001").output_rows == 5


def test_parquet_lists_without_list_inference_are_refused_with_a_hint(sim: Any) -> None:
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET)
    job = client_for(sim).load_table_from_file(io.BytesIO(variants_parquet(0, 2)), f"{DATASET}.nolists",
                                               job_config=config)
    with pytest.raises(exceptions.BadRequest, match="enableListInference"):
        job.result()


def test_load_from_gcs_appends_then_truncates(sim: Any) -> None:
    gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": sim.url})
    bucket = gcs.bucket("fed-node-us-processed")
    bucket.blob("loads/a.parquet").upload_from_string(variants_parquet(0, 3))
    bucket.blob("loads/b.parquet").upload_from_string(variants_parquet(3, 4))
    client = client_for(sim)

    first = client.load_table_from_uri("gs://fed-node-us-processed/loads/*.parquet", f"{DATASET}.from_gcs",
                                       job_config=load_config())
    first.result()
    assert (first.input_files, first.output_rows) == (2, 7)
    client.load_table_from_uri("gs://fed-node-us-processed/loads/a.parquet", f"{DATASET}.from_gcs",
                               job_config=load_config(write_disposition="WRITE_APPEND")).result()
    assert client.get_table(f"{DATASET}.from_gcs").num_rows == 10
    before = len(sim.state.log_entries)
    client.load_table_from_uri("gs://fed-node-us-processed/loads/b.parquet", f"{DATASET}.from_gcs",
                               job_config=load_config(write_disposition="WRITE_TRUNCATE")).result()
    assert client.get_table(f"{DATASET}.from_gcs").num_rows == 4
    change = [e["protoPayload"]["metadata"] for e in sim.state.log_entries[before:]
              if "tableDataChange" in e["protoPayload"].get("metadata", {})]
    assert change[0]["tableDataChange"]["truncated"] is True

    missing = client.load_table_from_uri("gs://fed-node-us-processed/loads/none.parquet", f"{DATASET}.from_gcs",
                                         job_config=load_config())
    with pytest.raises(exceptions.NotFound, match="gs://fed-node-us-processed/loads/none.parquet"):
        missing.result()


def test_load_leaves_job_change_and_table_data_change_entries(sim: Any) -> None:
    client = client_for(sim, principal="loader@fed-node-us.iam.gserviceaccount.com")
    before = len(sim.state.log_entries)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 3)), f"{DATASET}.audited",
                                job_id="audited_load", job_config=load_config()).result()
    written = [e for e in sim.state.log_entries[before:] if e["logName"] == DATA_ACCESS]
    metadata = [e["protoPayload"]["metadata"] for e in written]
    assert [m["jobChange"]["job"]["jobName"] for m in metadata if "jobChange" in m] == \
        [f"projects/{PROJECT}/jobs/audited_load"]
    changes = [e for e in written if "tableDataChange" in e["protoPayload"]["metadata"]]
    assert len(changes) == 1
    assert changes[0]["protoPayload"]["resourceName"] == f"projects/{PROJECT}/datasets/{DATASET}/tables/audited"
    assert changes[0]["protoPayload"]["metadata"]["tableDataChange"]["insertedRowsCount"] == "3"
    assert changes[0]["protoPayload"]["authenticationInfo"]["principalEmail"] == \
        "loader@fed-node-us.iam.gserviceaccount.com"


def test_tabledata_list_pages_through_all_rows_in_order(sim: Any) -> None:
    client = client_for(sim)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 7)), f"{DATASET}.paged",
                                job_config=load_config()).result()
    iterator = client.list_rows(f"{DATASET}.paged", page_size=3)
    pages = [[row["start_position"] for row in page] for page in iterator.pages]
    assert pages == [[0, 1, 2], [3, 4, 5], [6]]
    assert iterator.total_rows == 7
    first = next(iter(client.list_rows(f"{DATASET}.paged", max_results=1)))
    assert first["call"][1] == {"name": "NA12891", "genotype": [-1, -1], "phaseset": "*"}


def test_query_results_page_and_query_and_wait_agree(sim: Any) -> None:
    client = client_for(sim)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 5)), f"{DATASET}.q",
                                job_config=load_config()).result()
    sql = f"SELECT start_position FROM {DATASET}.q ORDER BY start_position"
    paged = client.query(sql).result(page_size=2)
    assert [[r.start_position for r in page] for page in paged.pages] == [[0, 1], [2, 3], [4]]
    assert [r.start_position for r in client.query_and_wait(sql)] == [0, 1, 2, 3, 4]

    with pytest.raises(exceptions.NotFound, match="Dataset fed-node-us:elsewhere"):
        client.query("SELECT 1 FROM elsewhere.t").result()


def test_jobs_list_filters_by_state_user_and_creation_time(sim: Any) -> None:
    client = client_for(sim, principal="analyst@fed-node-us.iam.gserviceaccount.com")
    since = datetime.now(UTC) - timedelta(seconds=1)
    time.sleep(0.01)
    client.query("SELECT 1 AS one", job_id="analyst_query_1", job_retry=None).result()

    mine = [j.job_id for j in client.list_jobs(min_creation_time=since)]
    assert mine == ["analyst_query_1"]
    everyone = list(client.list_jobs(all_users=True, state_filter="done"))
    assert "analyst_query_1" in [j.job_id for j in everyone]
    assert any(j.job_type == "load" for j in everyone)  # the seeded run's loads, by its service account
    loads = [j for j in client.list_jobs(all_users=True, min_creation_time=since - timedelta(days=1))
             if j.job_type == "load"]
    assert loads and all(j.destination.dataset_id == DATASET for j in loads)
    assert [j.job_id for j in client.list_jobs(all_users=True, state_filter="running")] == []


def test_new_nested_fields_load_only_with_allow_field_addition(sim: Any) -> None:
    client = client_for(sim)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 2)), f"{DATASET}.grow",
                                job_config=load_config()).result()
    names = pa.array(["NA12878", "NA12878"]).dictionary_encode()  # as the pipeline writes sample names
    calls = pa.StructArray.from_arrays([names, pa.array([[0, 1], [1, 1]]), pa.array([31, 12])],
                                       names=["name", "genotype", "DP"])
    wider = pa.table({"reference_name": ["chr2", "chr2"], "start_position": pa.array([5, 6], pa.int64()),
                      "call": pa.ListArray.from_arrays(pa.array([0, 1, 2], pa.int32()), calls),
                      "source_file": ["b.vcf", "b.vcf"]})
    buffer = io.BytesIO()
    pq.write_table(wider, buffer)

    refused = client.load_table_from_file(io.BytesIO(buffer.getvalue()), f"{DATASET}.grow", job_config=load_config())
    with pytest.raises(exceptions.BadRequest, match=r"Cannot add fields \(field: call.DP\)"):
        refused.result()
    added = client.load_table_from_file(io.BytesIO(buffer.getvalue()), f"{DATASET}.grow", job_config=load_config(
        schema_update_options=[bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION]))
    added.result()

    table = client.get_table(f"{DATASET}.grow")
    assert table.num_rows == 4
    assert [f.name for f in table.schema][-1] == "source_file"
    assert [f.name for f in table.schema[5].fields] == ["name", "genotype", "phaseset", "DP"]
    rows = client.query(f"SELECT start_position, c.name, c.DP FROM {DATASET}.grow, UNNEST(call) AS c "
                        "ORDER BY start_position, c.name").result()
    assert [tuple(r.values()) for r in rows] == [
        (0, "NA12878", None), (0, "NA12891", None), (1, "NA12878", None), (1, "NA12891", None),
        (5, "NA12878", 31), (6, "NA12878", 12)]


def test_multipart_load_of_a_known_size_file_and_seeded_table_counts(sim: Any) -> None:
    client = client_for(sim)
    data = variants_parquet(0, 3)
    before = sim.state.stats["bigquery"]
    # With the size known and under 5 MiB the client sends one multipart request.
    job = client.load_table_from_file(io.BytesIO(data), f"{DATASET}.multi", size=len(data), job_config=load_config())
    assert sim.state.stats["bigquery"] - before == 1
    assert job.output_rows == 3

    seeded = client.get_table(f"{DATASET}.variants")
    assert seeded.num_rows == sum(t.rows_loaded for t in sim.state.extras["seed"].tasks)
    assert list(client.list_rows(seeded)) == []  # the seed counts rows; it never materialises them


def test_a_job_in_another_location_does_not_see_the_dataset(sim: Any) -> None:
    client = client_for(sim)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 1)), f"{DATASET}.located",
                                job_config=load_config()).result()
    # Where the data is, the query runs there without being told...
    assert [r.n for r in client.query(f"SELECT COUNT(*) AS n FROM {DATASET}.located").result()] == [1]
    # ...but a job pinned to another location does not find the dataset, as on Google.
    with pytest.raises(exceptions.NotFound, match="Dataset fed-node-us:hospital_data was not found in location US"):
        client.query(f"SELECT COUNT(*) FROM {DATASET}.located", location="US").result()


def test_load_from_a_bucket_outside_the_perimeter_is_denied_and_logged(sim: Any) -> None:
    before = len(sim.state.log_entries)
    job = client_for(sim).load_table_from_uri("gs://fed-node-us-processed-export/x.parquet", f"{DATASET}.leak",
                                              job_config=load_config())
    with pytest.raises(exceptions.Forbidden, match="prohibited by organization's policy"):
        job.result()
    policy = f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fpolicy"
    assert [e["protoPayload"]["serviceName"] for e in sim.state.log_entries[before:] if e["logName"] == policy] == \
        ["bigquery.googleapis.com"]
    assert (DATASET, "leak") not in sim.state.tables


def test_dml_insert_changes_the_table_and_is_audited(sim: Any) -> None:
    client = client_for(sim)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 2)), f"{DATASET}.dml",
                                job_config=load_config()).result()
    before = len(sim.state.log_entries)
    job = client.query(f"INSERT INTO {DATASET}.dml (reference_name, start_position) VALUES ('chrX', 9), ('chrY', 10)")
    job.result()
    assert job.num_dml_affected_rows == 2
    assert client.get_table(f"{DATASET}.dml").num_rows == 4
    changes = [e["protoPayload"]["metadata"]["tableDataChange"] for e in sim.state.log_entries[before:]
               if "tableDataChange" in e.get("protoPayload", {}).get("metadata", {})]
    assert [c["insertedRowsCount"] for c in changes] == ["2"]


def test_a_query_leaves_a_table_data_read_entry_per_table(sim: Any) -> None:
    sim.state.iam_policy["bindings"].append({"role": "roles/bigquery.dataViewer",
                                             "members": ["serviceAccount:analyst@fed-node-us.iam.gserviceaccount.com"]})
    client = client_for(sim, principal="analyst@fed-node-us.iam.gserviceaccount.com")
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 2)), f"{DATASET}.read_me",
                                job_config=load_config()).result()
    before = len(sim.state.log_entries)
    client.query(f"SELECT a.start_position FROM {DATASET}.read_me a JOIN {DATASET}.read_me b "
                 "USING (start_position)").result()
    reads = [e for e in sim.state.log_entries[before:]
             if "tableDataRead" in e.get("protoPayload", {}).get("metadata", {})]
    assert [e["protoPayload"]["resourceName"] for e in reads] == \
        [f"projects/{PROJECT}/datasets/{DATASET}/tables/read_me"]
    assert reads[0]["protoPayload"]["authenticationInfo"]["principalEmail"] == "analyst@fed-node-us.iam.gserviceaccount.com"


def test_schema_patch_adds_nested_fields_but_never_drops_one(sim: Any) -> None:
    client = client_for(sim)
    client.load_table_from_file(io.BytesIO(variants_parquet(0, 2)), f"{DATASET}.evolve",
                                job_config=load_config()).result()
    table = client.get_table(f"{DATASET}.evolve")
    call = table.schema[5]
    wider_call = bigquery.SchemaField("call", "RECORD", mode="REPEATED",
                                      fields=[*call.fields, bigquery.SchemaField("GQ", "INTEGER")])
    table.schema = [*table.schema[:5], wider_call, bigquery.SchemaField("source_file", "STRING")]
    updated = client.update_table(table, ["schema"])
    assert [f.name for f in updated.schema[5].fields][-1] == "GQ"
    assert [r.GQ for r in client.query(f"SELECT c.GQ FROM {DATASET}.evolve, UNNEST(call) c").result()] == [None] * 4

    updated.schema = updated.schema[:-1]
    with pytest.raises(exceptions.BadRequest, match="Cannot remove fields"):
        client.update_table(updated, ["schema"])
    assert client.get_table(f"{DATASET}.evolve").schema[-1].name == "source_file"


def test_dataset_and_table_keys_must_exist_in_the_dataset_location(sim: Any) -> None:
    client = client_for(sim)
    dataset = bigquery.Dataset(f"{PROJECT}.cmek_probe")
    dataset.location = "us-central1"
    dataset.default_encryption_configuration = bigquery.EncryptionConfiguration(  # a central KMS project's key
        kms_key_name="projects/kms-central/locations/us/keyRings/genomics/cryptoKeys/bq")
    with pytest.raises(exceptions.BadRequest, match="does not match the data location us-central1"):
        client.create_dataset(dataset)
    table = bigquery.Table(f"{PROJECT}.{DATASET}.cmek_table", schema=VARIANT_SCHEMA[:2])
    table.encryption_configuration = bigquery.EncryptionConfiguration(kms_key_name=KEY + "-missing")
    with pytest.raises(exceptions.BadRequest, match="does not exist"):
        client.create_table(table)


def test_streaming_insert_writes_rows_dedupes_insert_ids_and_reports_unknown_fields(sim: Any) -> None:
    client = client_for(sim)
    table = client.create_table(bigquery.Table(f"{PROJECT}.{DATASET}.streamed", schema=VARIANT_SCHEMA))
    rows = [{"reference_name": "chr1", "start_position": 10,
             "call": [{"name": "NA12878", "genotype": [0, 1], "phaseset": None}]},
            {"reference_name": "chr1", "start_position": 11, "call": []}]
    assert client.insert_rows(table, rows, row_ids=["a", "b"]) == []
    assert client.insert_rows(table, rows[:1], row_ids=["a"]) == []  # a retried row is not written twice
    assert client.get_table(table).num_rows == 2
    got = [(r.start_position, r.call) for r in client.list_rows(table)]
    assert got == [(10, [{"name": "NA12878", "genotype": [0, 1], "phaseset": None}]), (11, [])]

    errors = client.insert_rows_json(table, [{"start_position": 12}, {"start_position": 13, "nope": 1}])
    assert [e["errors"][0]["reason"] for e in errors] == ["stopped", "invalid"]
    assert client.get_table(table).num_rows == 2


def test_eu_node_allows_its_region_and_refuses_us_central1(sim_factory: Any) -> None:
    sim = sim_factory(node="eu")
    client = bigquery.Client(project="fed-node-eu", credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": sim.url})
    allowed = bigquery.Dataset("fed-node-eu.scratch_eu")
    allowed.location = "europe-west4"
    assert client.create_dataset(allowed).location == "europe-west4"
    refused = bigquery.Dataset("fed-node-eu.probe_us")
    refused.location = "us-central1"
    with pytest.raises(exceptions.BadRequest, match="constraints/gcp.resourceLocations"):
        client.create_dataset(refused)


def test_a_failed_truncating_load_keeps_the_old_rows_and_required_fields_refuse_nulls(sim: Any) -> None:
    client = client_for(sim)
    schema = [bigquery.SchemaField("reference_name", "STRING", mode="REQUIRED"),
              bigquery.SchemaField("start_position", "INTEGER")]
    table = client.create_table(bigquery.Table(f"{PROJECT}.{DATASET}.strict", schema=schema))
    good, bad = io.BytesIO(), io.BytesIO()
    pq.write_table(pa.table({"reference_name": ["chr1"], "start_position": pa.array([1], pa.int64())}), good)
    pq.write_table(pa.table({"reference_name": ["chr2", None], "start_position": pa.array([2, 3], pa.int64())}), bad)
    client.load_table_from_file(io.BytesIO(good.getvalue()), table, job_config=load_config()).result()

    failing = client.load_table_from_file(io.BytesIO(bad.getvalue()), table,
                                          job_config=load_config(write_disposition="WRITE_TRUNCATE"))
    with pytest.raises(exceptions.BadRequest, match="Required field reference_name cannot be null"):
        failing.result()
    assert [r.reference_name for r in client.list_rows(table)] == ["chr1"]


def test_a_failed_load_into_a_new_table_leaves_no_table(sim: Any) -> None:
    client = client_for(sim)
    bad = io.BytesIO()
    pq.write_table(pa.table({"reference_name": [None]}), bad)
    config = load_config(schema=[bigquery.SchemaField("reference_name", "STRING", mode="REQUIRED")])
    with pytest.raises(exceptions.BadRequest, match="cannot be null"):
        client.load_table_from_file(io.BytesIO(bad.getvalue()), f"{DATASET}.never", job_config=config).result()
    with pytest.raises(exceptions.NotFound):
        client.get_table(f"{DATASET}.never")


def test_dataset_and_table_mutations_leave_admin_activity_entries(sim: Any) -> None:
    client = client_for(sim)
    before = len(sim.state.log_entries)
    dataset = bigquery.Dataset(f"{PROJECT}.audited_ds")
    dataset.location = "us-central1"
    client.create_dataset(dataset)
    client.create_table(bigquery.Table(f"{PROJECT}.audited_ds.t", schema=VARIANT_SCHEMA[:2]))
    client.delete_dataset("audited_ds", delete_contents=True)
    activity = [e["protoPayload"] for e in sim.state.log_entries[before:]
                if e["logName"] == f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity"]
    assert [p["methodName"].rsplit(".", 1)[-1] for p in activity] == ["InsertDataset", "InsertTable", "DeleteDataset"]
    assert activity[1]["metadata"]["tableCreation"]["table"]["tableName"] == \
        f"projects/{PROJECT}/datasets/audited_ds/tables/t"
