"""BigQuery audit entries (BigQueryAuditMetadata) as typed writes, for SEC-04.

Google logs a BigQuery job twice in the job project's Data Access log: `jobInsertion` when it is
inserted (reason JOB_INSERT_REQUEST for jobs.insert, QUERY_REQUEST for jobs.query) and `jobChange`
when it changes state, both with the full `jobConfig` (reference gcp-escape-routes §3.3). Tables it
changes get a `tableDataChange` entry in the *table's* project log ([U]: which project gets which
event for cross-project jobs is unconfirmed; a table change naming a foreign table in the node's log
is judged as well, so both readings are covered). This module turns such entries into `BigQueryJob`
and `TableDataChange` values naming every destination: tables (query destinationTable, DML/DDL
targets parsed from the SQL, copy and load destinations) and Cloud Storage URIs (extract
destinationUris, `EXPORT DATA` URIs from the SQL). What it cannot read is a `problem`, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.sql_writes import sql_writes
from sovaudit.audit.views import LogEntry

BQ_METADATA_TYPE = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
_TABLE_NAME = re.compile(r"^projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$")
_DATASET_NAME = re.compile(r"^projects/([^/]+)/datasets/([^/]+)$")
_GCS_URI = re.compile(r"^gs://([^/]+)(?:/.*)?$")


@dataclass(frozen=True)
class TableName:
    project: str
    dataset: str
    table: str

    @property
    def path(self) -> str:
        return f"projects/{self.project}/datasets/{self.dataset}/tables/{self.table}"

    @property
    def dotted(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @classmethod
    def parse(cls, value: Any) -> TableName | None:
        """`projects/P/datasets/D/tables/T` (the audit form) or a REST `{projectId, datasetId, tableId}`."""
        if isinstance(value, Mapping):
            parts = (value.get("projectId"), value.get("datasetId"), value.get("tableId"))
            return cls(*map(str, parts)) if all(parts) else None
        match = _TABLE_NAME.match(str(value or ""))
        return cls(*match.groups()) if match else None


def gcs_bucket(uri: str) -> str | None:
    """The bucket of a `gs://bucket/...` URI; None for any other scheme (s3://, https://, a connection)."""
    match = _GCS_URI.match(uri.strip())
    return match.group(1) if match else None


@dataclass(frozen=True)
class BigQueryJob:
    """One job as its audit entries describe it; `destinations_*` are what it writes."""

    job_name: str
    method: str
    job_type: str                        # QUERY, COPY, EXPORT, IMPORT
    statement_type: str
    principal: str
    timestamp: str
    destination_tables: tuple[TableName, ...]
    temporary_tables: tuple[str, ...]    # script/session temp tables: they live in the job's project
    destination_uris: tuple[str, ...]    # extract destinationUris and EXPORT DATA URIs
    source_uris: tuple[str, ...]         # load sourceUris / LOAD DATA files (imports)
    error: str                           # the job's errorResult message, "" when it did not fail
    done: bool
    problems: tuple[str, ...]            # what could not be read: SEC-04 is ERROR for these
    evidence: tuple[str, ...]
    ref: str


@dataclass(frozen=True)
class TableDataChange:
    table: TableName | None
    job_name: str
    reason: str
    principal: str
    timestamp: str
    evidence: tuple[str, ...]
    ref: str
    resource_name: str


@dataclass(frozen=True)
class BigQueryEntries:
    jobs: tuple[BigQueryJob, ...]
    changes: tuple[TableDataChange, ...]
    unclassified: tuple[LogEntry, ...]   # a BigQuery entry in the write listing that is neither


def is_bigquery(entry: LogEntry) -> bool:
    return entry.service_name == "bigquery.googleapis.com"


def _job_project(job_name: str) -> str:
    match = re.match(r"^projects/([^/]+)/jobs/", job_name)
    return match.group(1) if match else ""


def _dataset_of(value: Any) -> tuple[str, str] | None:
    if isinstance(value, Mapping):
        project, dataset = value.get("projectId"), value.get("datasetId")
        return (str(project), str(dataset)) if project and dataset else None
    match = _DATASET_NAME.match(str(value or ""))
    return (match.group(1), match.group(2)) if match else None


def _query_writes(config: Mapping[str, Any], job_project: str) -> tuple[list[TableName], list[str], list[str],
                                                                        list[str], list[str]]:
    """Tables, temp tables, export URIs, load URIs and problems of a query job's SQL text."""
    tables: list[TableName] = []
    temporary: list[str] = []
    problems: list[str] = []
    if config.get("queryTruncated"):
        # Over 50K characters the text is cut: an EXPORT DATA or INSERT past the cut is unseen.
        problems.append("the query text is truncated in the audit entry (queryTruncated); read the job with "
                        "jobs.get to judge it")
    query = config.get("query")
    if not isinstance(query, str):
        return tables, temporary, [], [], [*problems, "the entry carries no query text"]
    writes = sql_writes(query)
    problems.extend(writes.problems)
    default = _dataset_of(config.get("defaultDataset"))
    for target in writes.tables:
        parts = target.parts
        if len(parts) == 3:
            tables.append(TableName(*parts))
        elif len(parts) == 2:
            # `dataset.table` names the job's project; whether a defaultDataset in another project
            # changes that is not confirmed, so both readings are judged.
            tables.append(TableName(job_project, *parts))
            if default is not None and default[0] != job_project:
                tables.append(TableName(default[0], *parts))
        elif len(parts) == 1 and target.temporary:
            temporary.append(parts[0])
        elif len(parts) == 1 and default is not None:
            tables.append(TableName(default[0], default[1], parts[0]))
        elif len(parts) == 1:
            # BigQuery only resolves a bare name inside a script's session (a temp table).
            temporary.append(parts[0])
        else:
            problems.append(f"{target.statement} names {'.'.join(parts)!r}, which is not a table path")
    return tables, temporary, list(writes.export_uris), list(writes.load_uris), problems


def parse_job(entry: LogEntry) -> BigQueryJob | None:
    """A jobInsertion/jobChange entry as a BigQueryJob; None for any other entry."""
    metadata = entry.metadata
    event = metadata.get("jobInsertion") or metadata.get("jobChange")
    if not isinstance(event, Mapping):
        return None
    job = event.get("job") or {}
    job_name = str(job.get("jobName") or entry.resource_name)
    config = job.get("jobConfig") or {}
    status = job.get("jobStatus") or {}
    job_type = str(config.get("type") or "TYPE_UNSPECIFIED")
    project = _job_project(job_name)
    tables: list[TableName] = []
    temporary: list[str] = []
    uris: list[str] = []
    sources: list[str] = []
    problems: list[str] = []
    statement = ""
    sections = [k for k in ("queryConfig", "loadConfig", "extractConfig", "tableCopyConfig") if k in config]
    if len(sections) != 1:
        problems.append(f"the job config holds {', '.join(sections) or 'no known section'} "
                        f"(type {job_type}); its destinations cannot be read")
    if "queryConfig" in config:
        query = config["queryConfig"] or {}
        statement = str(query.get("statementType") or "")
        found, temporary, uris, sources, found_problems = _query_writes(query, project)
        tables.extend(found)
        problems.extend(found_problems)
        if query.get("destinationTable"):
            destination = TableName.parse(query["destinationTable"])
            if destination is None:
                problems.append(f"queryConfig.destinationTable {query['destinationTable']!r} is not a table path")
            else:
                tables.append(destination)
    if "loadConfig" in config:
        load = config["loadConfig"] or {}
        sources.extend(str(u) for u in load.get("sourceUris") or [])
        _destination(load.get("destinationTable"), "loadConfig", tables, problems)
    if "tableCopyConfig" in config:
        copy = config["tableCopyConfig"] or {}
        _destination(copy.get("destinationTable"), "tableCopyConfig", tables, problems)
    if "extractConfig" in config:
        extract = config["extractConfig"] or {}
        if extract.get("destinationUrisTruncated"):
            problems.append("extractConfig.destinationUris is truncated in the audit entry")
        found_uris = [str(u) for u in extract.get("destinationUris") or []]
        if not found_uris:
            problems.append("the extract job names no destinationUris")
        uris.extend(found_uris)
    error = status.get("errorResult") or ({"message": entry.status.get("message") or "failed"}
                                          if entry.status.get("code") else {})
    return BigQueryJob(
        job_name=job_name, method=entry.method_name, job_type=job_type, statement_type=statement,
        principal=entry.principal, timestamp=entry.timestamp, destination_tables=tuple(dict.fromkeys(tables)),
        temporary_tables=tuple(temporary), destination_uris=tuple(dict.fromkeys(uris)),
        source_uris=tuple(sources), error=str(error.get("message") or error.get("code") or "") if error else "",
        done=str(status.get("jobState") or event.get("after") or "") == "DONE",
        problems=tuple(problems), evidence=entry.evidence, ref=entry.ref)


def _destination(value: Any, section: str, tables: list[TableName], problems: list[str]) -> None:
    destination = TableName.parse(value)
    if destination is None:
        problems.append(f"{section}.destinationTable {value!r} is not a table path")
    else:
        tables.append(destination)


def parse_change(entry: LogEntry) -> TableDataChange | None:
    change = entry.metadata.get("tableDataChange")
    if not isinstance(change, Mapping):
        return None
    reason = change.get("reason")
    return TableDataChange(
        table=TableName.parse(entry.resource_name), job_name=str(change.get("jobName") or ""),
        reason=str(reason) if isinstance(reason, str) else repr(reason), principal=entry.principal,
        timestamp=entry.timestamp, evidence=entry.evidence, ref=entry.ref, resource_name=entry.resource_name)


def _merge(first: BigQueryJob, second: BigQueryJob) -> BigQueryJob:
    """One job seen twice (insertion and change): the union of what both say, the later status."""
    later = second if second.done or not first.done else first
    return BigQueryJob(
        job_name=first.job_name, method=first.method or second.method, job_type=later.job_type,
        statement_type=first.statement_type or second.statement_type, principal=first.principal or second.principal,
        timestamp=first.timestamp,
        destination_tables=tuple(dict.fromkeys(first.destination_tables + second.destination_tables)),
        temporary_tables=tuple(dict.fromkeys(first.temporary_tables + second.temporary_tables)),
        destination_uris=tuple(dict.fromkeys(first.destination_uris + second.destination_uris)),
        source_uris=tuple(dict.fromkeys(first.source_uris + second.source_uris)),
        error=later.error, done=first.done or second.done,
        problems=tuple(dict.fromkeys(first.problems + second.problems)),
        evidence=tuple(dict.fromkeys(first.evidence + second.evidence)), ref=first.ref)


def bigquery_entries(entries: Iterable[LogEntry]) -> BigQueryEntries:
    """Sort the BigQuery entries of a write listing into jobs (one per jobName), table changes and
    the rest; reads (`tableDataRead`) are not writes and are left out."""
    jobs: dict[str, BigQueryJob] = {}
    changes: list[TableDataChange] = []
    unclassified: list[LogEntry] = []
    for entry in entries:
        if not is_bigquery(entry):
            continue
        if "tableDataRead" in entry.metadata:
            continue
        job = parse_job(entry)
        if job is not None:
            jobs[job.job_name] = _merge(jobs[job.job_name], job) if job.job_name in jobs else job
            continue
        change = parse_change(entry)
        if change is not None:
            changes.append(change)
            continue
        unclassified.append(entry)
    return BigQueryEntries(tuple(jobs.values()), tuple(changes), tuple(unclassified))
