"""BigQuery jobs that move data between tables, projects and buckets: copy and extract jobs, query
results written to a destination table (in the node's dataset or another project's), CREATE TABLE
AS SELECT, and EXPORT DATA.

These are the routes by which data leaves a node through BigQuery (reference gcp-escape-routes §3.5),
so each one is judged as Google judges it before any effect crosses the project: the perimeter
(`enforcement.check_perimeter_egress`) refuses it, and a refusal fails the *job*
(`status.errorResult`, reason accessDenied) while jobs.insert still answers 200. What is written is
real: rows land in DuckDB, extracted files land as objects in the simulated Cloud Storage, and each
effect is audit-logged in the project that owns the resource (a foreign table's tableDataChange in
its project, an object create in the bucket's project under that project's audit config).

Another project's datasets exist when the node file declares them (`foreign_datasets`); their
DuckDB schema is `project:dataset` (bqstore.store_dataset). Knowingly not faithful: extract and
EXPORT DATA write one file per URI (the `*` becomes 000000000000); AVRO is written as JSON lines;
compression is ignored; copy jobs' SNAPSHOT/CLONE/RESTORE behave as COPY.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sovaudit.simulator import audit_log, bq_audit, clock, enforcement
from sovaudit.simulator.bqstore import BigQueryStoreError, QueryResult, store_dataset
from sovaudit.simulator.http import ApiError, SimRequest
from sovaudit.simulator.projects import bucket_owner, project_for_id
from sovaudit.simulator.state import SimState, StoredObject

WRITE_DENIED = "Access Denied: BigQuery BigQuery: Permission denied while writing data."
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_EXPORT = re.compile(r"^\s*EXPORT\s+DATA\b", re.IGNORECASE)
_OPTIONS_AS = re.compile(r"\bOPTIONS\s*\((?P<options>.*?)\)\s*AS\s+(?P<query>.+)$", re.IGNORECASE | re.DOTALL)
_OPTION = re.compile(r"(\w+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|(\w+))")


@dataclass(frozen=True)
class TableRef:
    """A table the node can address: its own, or one in a declared foreign dataset."""

    project: str
    dataset: str
    table: str
    key: str            # the DuckDB schema / state.tables dataset key
    location: str
    is_node: bool

    @property
    def path(self) -> str:
        return bq_audit.table_path(self.project, self.dataset, self.table)


def foreign_datasets(state: SimState) -> dict[str, dict[str, Any]]:
    """`project:dataset` -> dataset resource, for the node file's `foreign_datasets`."""
    found: dict[str, dict[str, Any]] = state.extras.setdefault("foreign_datasets", {})
    return found


def dataset_locations(state: SimState) -> dict[str, str]:
    """Every dataset a query may name, by store key, with its location."""
    locations = {dataset_id: str(body.get("location", "US")) for dataset_id, body in state.datasets.items()}
    locations.update({key: str(body.get("location", "US")) for key, body in foreign_datasets(state).items()})
    return locations


def resolve(state: SimState, reference: Mapping[str, Any] | None, what: str = "Table") -> TableRef:
    reference = reference or {}
    project = str(reference.get("projectId") or state.project_id)
    dataset, table = str(reference.get("datasetId") or ""), str(reference.get("tableId") or "")
    is_node = project in (state.project_id, state.project_number)
    project = state.project_id if is_node else project
    key = store_dataset(project, dataset, state.project_id)
    body = state.datasets.get(dataset) if is_node else foreign_datasets(state).get(key)
    if body is None or not table:
        raise BigQueryStoreError(f"Not found: {'Dataset' if body is None else what} {project}:{dataset}"
                                 + (f".{table}" if body is not None else ""), "notFound")
    return TableRef(project, dataset, table, key, str(body.get("location", "US")), is_node)


def from_key(state: SimState, key: str, table: str) -> TableRef:
    project, _, dataset = key.rpartition(":")
    return resolve(state, {"projectId": project or state.project_id, "datasetId": dataset, "tableId": table})


def job_name(job: Mapping[str, Any]) -> str:
    reference = job["jobReference"]
    return f"projects/{reference['projectId']}/jobs/{reference['jobId']}"


def job_method(state: SimState, job: Mapping[str, Any]) -> str:
    return str(state.extras.get("bq_job_methods", {}).get(job["jobReference"]["jobId"], bq_audit.INSERT_JOB))


def guard(req: SimRequest, job: Mapping[str, Any], ref: TableRef, permission: str,
          denied_message: str | None = None) -> None:
    """VPC-SC judges a job touching another project's table before anything moves."""
    if ref.is_node:
        return
    owner = project_for_id(req.state, ref.project)
    try:
        enforcement.check_perimeter_egress(
            req.state, service="bigquery.googleapis.com", method=job_method(req.state, job),
            target_resource=owner.resource, principal=principal(req), permission=permission,
            resource_names=[ref.path])
    except ApiError as exc:
        raise BigQueryStoreError(denied_message or exc.message, "accessDenied") from exc


def principal(req: SimRequest) -> str:
    from sovaudit.simulator.api.bigquery import _principal
    return _principal(req)


# ---------------------------------------------------------------------------------------------
# reading and writing tables


def _ensure(req: SimRequest, ref: TableRef) -> dict[str, Any]:
    from sovaudit.simulator.api.bigquery import _ensure_duckdb_table
    table = req.state.tables.get((ref.key, ref.table))
    if table is None:
        raise BigQueryStoreError(f"Not found: Table {ref.project}:{ref.dataset}.{ref.table}", "notFound")
    _ensure_duckdb_table(req.state, ref.key, ref.table, table)
    return table


def read_table(req: SimRequest, job: Mapping[str, Any], ref: TableRef) -> tuple[list[dict[str, Any]], pa.Table]:
    """A source table's schema and rows, logging the read (tableDataRead, reason JOB) in its project."""
    from sovaudit.simulator.api.bigquery import store_of
    guard(req, job, ref, "bigquery.tables.getData")
    table = _ensure(req, ref)
    fields = list((table.get("schema") or {}).get("fields") or [])
    data = store_of(req.state).read_arrow(ref.key, ref.table)
    bq_audit.table_data_read(req.state, project=ref.project, dataset=ref.dataset, table=ref.table,
                             method=job_method(req.state, job), principal=principal(req), location=ref.location,
                             reason="JOB", job_name=job_name(job))
    return fields, data


def write_rows(req: SimRequest, job: dict[str, Any], ref: TableRef, fields: list[dict[str, Any]], data: pa.Table,
               *, write: str, create: str = "CREATE_IF_NEEDED", creation_reason: str = "JOB",
               any_location: bool = False) -> int:
    """Write rows into a destination table (created with `fields` when missing), with the
    dispositions BigQuery applies, and log the tableDataChange in the table's project."""
    from sovaudit.simulator.api.bigquery import _new_table, _refresh_counts, store_of
    state = req.state
    guard(req, job, ref, "bigquery.tables.updateData")
    if not any_location and ref.location != job["jobReference"]["location"]:
        raise BigQueryStoreError(f"Not found: Dataset {ref.project}:{ref.dataset} was not found in location "
                                 f"{job['jobReference']['location']}", "notFound")
    store = store_of(state)
    table = state.tables.get((ref.key, ref.table))
    if table is None:
        if create == "CREATE_NEVER":
            raise BigQueryStoreError(f"Not found: Table {ref.project}:{ref.dataset}.{ref.table}", "notFound")
        dataset = state.datasets[ref.dataset] if ref.is_node else foreign_datasets(state)[ref.key]
        table = _new_table(req, dataset, ref.table, {"schema": {"fields": fields}})
        table["id"] = f"{ref.project}:{ref.dataset}.{ref.table}"
        table["tableReference"] = {"projectId": ref.project, "datasetId": ref.dataset, "tableId": ref.table}
        store.create_table(ref.key, ref.table, fields)
        state.tables[(ref.key, ref.table)] = table
        bq_audit.table_creation(state, project=ref.project, dataset=ref.dataset, table=ref.table,
                                job_name=job_name(job), method=job_method(state, job), principal=principal(req),
                                location=ref.location, reason=creation_reason)
    else:
        _ensure(req, ref)
        if write == "WRITE_EMPTY" and store.row_count(ref.key, ref.table):
            raise BigQueryStoreError(f"Already Exists: Table {ref.project}:{ref.dataset}.{ref.table}", "duplicate")
    table_fields = list((table.get("schema") or {}).get("fields") or []) or fields
    rows = store.append_arrow(ref.key, ref.table, data, table_fields, truncate=write == "WRITE_TRUNCATE") \
        if data.num_columns else 0
    table["lastModifiedTime"] = clock.epoch_millis(clock.now())
    _refresh_counts(state, ref.key, ref.table, table, truncated=write == "WRITE_TRUNCATE")
    bq_audit.table_data_change(state, project=ref.project, dataset=ref.dataset, table=ref.table,
                               job_name=job_name(job), method=job_method(state, job), principal=principal(req),
                               location=ref.location, inserted=rows, truncated=write == "WRITE_TRUNCATE")
    return rows


def write_query_result(req: SimRequest, job: dict[str, Any], result: QueryResult, reference: Mapping[str, Any],
                       *, write: str, create: str = "CREATE_IF_NEEDED", ddl: bool = False) -> None:
    state = req.state
    ref = resolve(state, reference)
    data = pa.Table.from_pylist(result.rows) if result.rows else pa.table({})
    write_rows(req, job, ref, copy.deepcopy(result.schema), data, write=write, create=create,
               creation_reason="QUERY" if ddl else "JOB")


# ---------------------------------------------------------------------------------------------
# copy and extract jobs


def run_copy(req: SimRequest, job: dict[str, Any]) -> None:
    config = job["configuration"]["copy"]
    sources = list(config.get("sourceTables") or ([config["sourceTable"]] if config.get("sourceTable") else []))
    if not sources:
        raise BigQueryStoreError("Copy job requires sourceTables.", "invalid")
    destination = resolve(req.state, config.get("destinationTable"))
    write = str(config.get("writeDisposition") or "WRITE_EMPTY").upper()
    fields: list[dict[str, Any]] = []
    parts = []
    for source in sources:
        source_fields, data = read_table(req, job, resolve(req.state, source))
        fields = fields or source_fields
        parts.append(data)
    data = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    rows = write_rows(req, job, destination, fields, data, write=write, any_location=True,  # cross-region copy
                      create=str(config.get("createDisposition") or "CREATE_IF_NEEDED").upper())
    job["statistics"]["copy"] = {"copiedRows": str(rows), "copiedLogicalBytes": str(rows * len(fields) * 64)}


def _objects_for(uris: list[str]) -> list[tuple[str, str]]:
    found = []
    for uri in uris:
        match = re.match(r"^gs://([^/]+)/(.+)$", uri)
        if not match:
            raise BigQueryStoreError(f"Invalid destination URI {uri!r}: expected gs://BUCKET/OBJECT.", "invalid")
        bucket, name = match.groups()
        if name.count("*") > 1:
            raise BigQueryStoreError(f"Invalid destination URI {uri!r}: only one wildcard is allowed.", "invalid")
        found.append((bucket, name.replace("*", "000000000000")))
    return found


def _encode(data: pa.Table, fmt: str, header: bool = True) -> tuple[bytes, str]:
    fmt = fmt.upper()
    if fmt == "PARQUET":
        sink = io.BytesIO()
        pq.write_table(data, sink)
        return sink.getvalue(), "application/octet-stream"
    rows = data.to_pylist()
    if fmt in ("NEWLINE_DELIMITED_JSON", "JSON", "AVRO"):
        return "".join(json.dumps(r, default=str) + "\n" for r in rows).encode(), "application/json"
    text = io.StringIO()
    writer = csv.writer(text)
    if header:
        writer.writerow(data.column_names)
    writer.writerows([[r.get(c) for c in data.column_names] for r in rows])
    return text.getvalue().encode(), "text/csv"


def write_files(req: SimRequest, job: Mapping[str, Any], uris: list[str], data: pa.Table, fmt: str,
                *, header: bool = True) -> int:
    """Write the exported rows as objects; every bucket is judged by the perimeter first, and each
    object create is logged in its bucket's project (under that project's audit config)."""
    from sovaudit.simulator.api.storage import _bucket_or_404, _new_object_metadata
    state = req.state
    targets = _objects_for(uris)
    for bucket, name in targets:
        owner = bucket_owner(state, bucket)
        if not owner.is_node:
            try:
                enforcement.check_perimeter_egress(
                    state, service="storage.googleapis.com", method="google.storage.objects.create",
                    target_resource=owner.resource, principal=principal(req), permission="storage.objects.create",
                    resource_names=[f"projects/_/buckets/{bucket}/objects/{name}"])
            except ApiError as exc:
                raise BigQueryStoreError(WRITE_DENIED, "accessDenied") from exc
        try:
            _bucket_or_404(state, bucket)
        except ApiError as exc:
            raise BigQueryStoreError(f"Not found: URI gs://{bucket}/{name}", "notFound") from exc
    content, content_type = _encode(data, fmt, header)
    for bucket, name in targets:
        owner = bucket_owner(state, bucket)
        with state.lock:
            bucket_body = _bucket_or_404(state, bucket)
            metadata = _new_object_metadata(state, req.base_url, bucket_body, name, content,
                                            {"contentType": content_type})
            state.objects[(bucket, name)] = StoredObject(metadata=metadata, data=content)
        audit_log.storage_object_access(state, bucket=bucket, object_name=name, principal=principal(req),
                                        timestamp=clock.now(), location=str(bucket_body.get("location", "US")),
                                        project=owner.project_id)
    del job
    return len(targets)


def run_extract(req: SimRequest, job: dict[str, Any]) -> None:
    config = job["configuration"]["extract"]
    uris = list(config.get("destinationUris") or ([config["destinationUri"]] if config.get("destinationUri") else []))
    if not uris:
        raise BigQueryStoreError("Extract job requires destinationUris.", "invalid")
    if not config.get("sourceTable"):
        raise BigQueryStoreError("Extract job requires sourceTable (models are not simulated).", "invalid")
    source = resolve(req.state, config["sourceTable"])
    _, data = read_table(req, job, source)
    files = write_files(req, job, uris, data, str(config.get("destinationFormat") or "CSV"),
                        header=config.get("printHeader", True) is not False)
    job["statistics"]["extract"] = {"destinationUriFileCounts": [str(1) for _ in range(files)],
                                    "inputBytes": str(data.nbytes)}


# ---------------------------------------------------------------------------------------------
# EXPORT DATA and CREATE TABLE AS SELECT


def export_statement(sql: str) -> tuple[dict[str, str], str] | None:
    """(options, inner query) of `EXPORT DATA [WITH CONNECTION c] OPTIONS(...) AS query`, else None."""
    sql = _LEADING_COMMENTS.sub("", sql)
    if not _EXPORT.match(sql):
        return None
    match = _OPTIONS_AS.search(sql)
    if not match:
        raise BigQueryStoreError("Syntax error: EXPORT DATA needs OPTIONS(...) AS query.", "invalidQuery")
    options = {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None)
               for m in _OPTION.finditer(match.group("options"))}
    if "uri" not in options or "format" not in options:
        raise BigQueryStoreError("EXPORT DATA requires the uri and format options.", "invalidQuery")
    return options, match.group("query")


def run_export(req: SimRequest, job: dict[str, Any], options: Mapping[str, str], result: QueryResult) -> None:
    data = pa.Table.from_pylist(result.rows) if result.rows else pa.table({f["name"]: [] for f in result.schema})
    if not options["uri"].startswith("gs://"):
        raise BigQueryStoreError("The simulator exports to gs:// URIs only.", "invalidQuery")
    files = write_files(req, job, [options["uri"]], data, options["format"],
                        header=str(options.get("header", "false")).lower() == "true")
    job["statistics"]["query"]["exportDataStatistics"] = {"fileCount": str(files), "rowCount": str(len(result.rows))}
