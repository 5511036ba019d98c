"""BigQuery's audit entries in the new format (BigQueryAuditMetadata), as Google writes them.

Reference gcp-escape-routes §3: a job is logged in the *job project's* Data Access log as
`jobInsertion` (reason JOB_INSERT_REQUEST for jobs.insert, QUERY_REQUEST for jobs.query) and
`jobChange` (DONE), each with the whole `jobConfig`, `jobStatus` and `jobStats`, methodName
`google.cloud.bigquery.v2.JobService.InsertJob` or `.Query`, resource.type `bigquery_project`. Each
table a job writes gets a `tableDataChange` (reason enum + jobName) and each table it reads a
`tableDataRead`, resource.type `bigquery_dataset`, in the log of the project that owns the table.
Which project receives which event for a cross-project job is [U] (§2, §11 item 4): the simulator
takes the rule Google states for every service ("the project that owns the resource").
BigQuery's Data Access logs are always written (audit_log.ALWAYS_LOGGED_DATA_ACCESS). Legacy
streaming (tabledata.insertAll) writes no entry at all (§3.1), so there is no builder for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sovaudit.simulator import audit_log, clock
from sovaudit.simulator.projects import project_for_id
from sovaudit.simulator.state import SimState

SERVICE = "bigquery.googleapis.com"
INSERT_JOB = "google.cloud.bigquery.v2.JobService.InsertJob"
QUERY = "google.cloud.bigquery.v2.JobService.Query"
QUERY_TEXT_LIMIT = 50_000     # BigQueryAuditMetadata truncates queryConfig.query past this (queryTruncated)
_JOB_TYPES = {"QUERY": "QUERY", "LOAD": "IMPORT", "EXTRACT": "EXPORT", "COPY": "COPY"}
# google.rpc.Code for BigQuery's error reasons, as jobStatus.errorResult is a google.rpc.Status.
_RPC_CODES = {"accessDenied": 7, "notFound": 5, "invalid": 3, "invalidQuery": 3, "duplicate": 6,
              "backendError": 14, "internalError": 13, "quotaExceeded": 8, "responseTooLarge": 3}


def table_path(project: str, dataset: str, table: str) -> str:
    return f"projects/{project}/datasets/{dataset}/tables/{table}"


def _table_ref_path(ref: Mapping[str, Any] | None, default_project: str) -> str | None:
    if not ref or not ref.get("datasetId") or not ref.get("tableId"):
        return None
    return table_path(str(ref.get("projectId") or default_project), str(ref["datasetId"]), str(ref["tableId"]))


def _time(millis: Any) -> str | None:
    if millis in (None, ""):
        return None
    return clock.rfc3339(datetime.fromtimestamp(int(millis) / 1000, tz=UTC))


def _status(job: Mapping[str, Any]) -> dict[str, Any]:
    status = job.get("status") or {}
    state = str(status.get("state") or "PENDING")
    found: dict[str, Any] = {"jobState": state if state in ("PENDING", "RUNNING", "DONE") else "JOB_STATE_UNSPECIFIED"}
    error = status.get("errorResult")
    if error:
        found["errorResult"] = {"code": _RPC_CODES.get(str(error.get("reason")), 2), "message": error.get("message", "")}
        found["errors"] = [{"code": _RPC_CODES.get(str(e.get("reason")), 2), "message": e.get("message", "")}
                           for e in status.get("errors") or [error]]
    return found


def _job_config(job: Mapping[str, Any]) -> dict[str, Any]:
    configuration = job.get("configuration") or {}
    project = job["jobReference"]["projectId"]
    kind = str(configuration.get("jobType") or "")
    config: dict[str, Any] = {"type": _JOB_TYPES.get(kind, "TYPE_UNSPECIFIED")}
    if kind == "QUERY":
        query = configuration.get("query") or {}
        text = str(query.get("query") or "")
        section: dict[str, Any] = {"query": text[:QUERY_TEXT_LIMIT]}
        if len(text) > QUERY_TEXT_LIMIT:
            section["queryTruncated"] = True
        destination = _table_ref_path(query.get("destinationTable"), project)
        if destination:
            section["destinationTable"] = destination
        for key in ("createDisposition", "writeDisposition"):
            if query.get(key):
                section[key] = query[key]
        default = query.get("defaultDataset") or {}
        if default.get("datasetId"):
            section["defaultDataset"] = f"projects/{default.get('projectId') or project}/datasets/{default['datasetId']}"
        section["priority"] = "QUERY_BATCH" if str(query.get("priority")).upper() == "BATCH" else "QUERY_INTERACTIVE"
        key_name = (query.get("destinationEncryptionConfiguration") or {}).get("kmsKeyName")
        if key_name:
            section["destinationTableEncryption"] = {"kmsKeyName": key_name}
        statement = ((job.get("statistics") or {}).get("query") or {}).get("statementType")
        if statement:
            section["statementType"] = statement
        config["queryConfig"] = section
    elif kind == "LOAD":
        load = configuration.get("load") or {}
        # A load from an upload (the pipeline's media upload) has no sourceUris; Google's JSON omits an
        # empty repeated field rather than emitting [].
        load_uris = [str(uri) for uri in load.get("sourceUris") or []]
        section = {"sourceUris": load_uris} if load_uris else {}
        destination = _table_ref_path(load.get("destinationTable"), project)
        if destination:
            section["destinationTable"] = destination
        section["createDisposition"] = str(load.get("createDisposition") or "CREATE_IF_NEEDED")
        section["writeDisposition"] = str(load.get("writeDisposition") or "WRITE_APPEND")
        config["loadConfig"] = section
    elif kind == "EXTRACT":
        extract = configuration.get("extract") or {}
        uris = list(extract.get("destinationUris") or ([extract["destinationUri"]] if extract.get("destinationUri")
                                                       else []))
        section = {"destinationUris": uris}
        source = _table_ref_path(extract.get("sourceTable"), project)
        if source:
            section["sourceTable"] = source
        config["extractConfig"] = section
    elif kind == "COPY":
        copy_config = configuration.get("copy") or {}
        sources = list(copy_config.get("sourceTables") or ([copy_config["sourceTable"]]
                                                           if copy_config.get("sourceTable") else []))
        section = {"sourceTables": [p for p in (_table_ref_path(s, project) for s in sources) if p]}
        destination = _table_ref_path(copy_config.get("destinationTable"), project)
        if destination:
            section["destinationTable"] = destination
        section["createDisposition"] = str(copy_config.get("createDisposition") or "CREATE_IF_NEEDED")
        section["writeDisposition"] = str(copy_config.get("writeDisposition") or "WRITE_EMPTY")
        section["operationType"] = str(copy_config.get("operationType") or "COPY")
        config["tableCopyConfig"] = section
    if configuration.get("labels"):
        config["labels"] = dict(configuration["labels"])
    return config


def _job_stats(job: Mapping[str, Any]) -> dict[str, Any]:
    statistics = job.get("statistics") or {}
    stats: dict[str, Any] = {}
    for key, name in (("creationTime", "createTime"), ("startTime", "startTime"), ("endTime", "endTime")):
        moment = _time(statistics.get(key))
        if moment:
            stats[name] = moment
    if statistics.get("totalSlotMs"):
        stats["totalSlotMs"] = str(statistics["totalSlotMs"])
    if "query" in statistics:
        query = statistics["query"]
        stats["queryStats"] = {"totalProcessedBytes": str(query.get("totalBytesProcessed", "0")),
                               "totalBilledBytes": str(query.get("totalBytesBilled", "0"))}
        if query.get("referencedTables"):
            stats["queryStats"]["referencedTables"] = [
                table_path(t["projectId"], t["datasetId"], t["tableId"]) for t in query["referencedTables"]]
    elif "load" in statistics:
        stats["loadStats"] = {"totalOutputBytes": str(statistics["load"].get("outputBytes", "0"))}
    elif "extract" in statistics:
        stats["extractStats"] = {"totalInputBytes": str(statistics["extract"].get("inputBytes", "0"))}
    return stats


def audit_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """The BigQueryAuditMetadata `Job` of a REST job resource."""
    reference = job["jobReference"]
    return {"jobName": f"projects/{reference['projectId']}/jobs/{reference['jobId']}",
            "jobConfig": _job_config(job), "jobStatus": _status(job), "jobStats": _job_stats(job)}


def _job_entry(state: SimState, job: Mapping[str, Any], method: str, principal: str,
               event: dict[str, Any], timestamp: datetime | None) -> dict[str, Any]:
    reference = job["jobReference"]
    project = str(reference["projectId"])
    location = str(reference.get("location") or state.region)
    error = (job.get("status") or {}).get("errorResult")
    return audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service=SERVICE, method=method,
        resource_name=f"projects/{project}/jobs/{reference['jobId']}", resource_type="bigquery_project",
        resource_labels={"project_id": project, "location": location}, principal=principal,
        timestamp=timestamp or clock.now(), severity="ERROR" if error else "INFO", permission="bigquery.jobs.create",
        metadata={"@type": audit_log.BQ_METADATA_TYPE, **event},
        status={"code": _RPC_CODES.get(str(error.get("reason")), 2), "message": error.get("message", "")}
        if error else None, locations=[location], project=project))


def job_insertion(state: SimState, job: Mapping[str, Any], *, method: str, principal: str,
                  timestamp: datetime | None = None) -> dict[str, Any]:
    reason = "QUERY_REQUEST" if method == QUERY else "JOB_INSERT_REQUEST"
    pending = {**job, "status": {"state": "PENDING"}}
    return _job_entry(state, pending, method, principal,
                      {"jobInsertion": {"job": audit_job(pending), "reason": reason}}, timestamp)


def job_change(state: SimState, job: Mapping[str, Any], *, method: str, principal: str,
               timestamp: datetime | None = None) -> dict[str, Any]:
    return _job_entry(state, job, method, principal,
                      {"jobChange": {"before": "RUNNING", "after": "DONE", "job": audit_job(job)}}, timestamp)


def _table_entry(state: SimState, *, project: str, dataset: str, table: str, method: str, principal: str,
                 permission: str, event: dict[str, Any], location: str,
                 timestamp: datetime | None) -> dict[str, Any]:
    owner = project_for_id(state, project)
    return audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.DATA_ACCESS, service=SERVICE, method=method,
        resource_name=table_path(project, dataset, table), resource_type="bigquery_dataset",
        resource_labels={"project_id": owner.project_id, "dataset_id": dataset}, principal=principal,
        timestamp=timestamp or clock.now(), severity="INFO", permission=permission,
        metadata={"@type": audit_log.BQ_METADATA_TYPE, **event}, locations=[location], project=owner.project_id))


def table_data_change(state: SimState, *, project: str, dataset: str, table: str, job_name: str, method: str,
                      principal: str, location: str, inserted: int = 0, deleted: int = 0, truncated: bool = False,
                      reason: str = "JOB", timestamp: datetime | None = None) -> dict[str, Any]:
    """reason JOB: the table was a job's destination; QUERY: a DML statement changed it."""
    change: dict[str, Any] = {}
    if deleted:
        change["deletedRowsCount"] = str(deleted)
    if inserted or not deleted:
        change["insertedRowsCount"] = str(inserted)
    if truncated:
        change["truncated"] = True
    change.update({"reason": reason, "jobName": job_name})
    return _table_entry(state, project=project, dataset=dataset, table=table, method=method, principal=principal,
                        permission="bigquery.tables.updateData", event={"tableDataChange": change},
                        location=location, timestamp=timestamp)


def table_data_read(state: SimState, *, project: str, dataset: str, table: str, method: str, principal: str,
                    location: str, reason: str, job_name: str | None = None, fields: list[str] | None = None,
                    timestamp: datetime | None = None) -> dict[str, Any]:
    """reason JOB (a job read it), TABLEDATA_LIST_REQUEST, QUERY_REQUEST (jobs.query), ..."""
    read: dict[str, Any] = {}
    if fields:
        read["fields"] = list(fields)
    read["reason"] = reason
    if job_name:
        read["jobName"] = job_name
    return _table_entry(state, project=project, dataset=dataset, table=table, method=method, principal=principal,
                        permission="bigquery.tables.getData", event={"tableDataRead": read}, location=location,
                        timestamp=timestamp)


def table_creation(state: SimState, *, project: str, dataset: str, table: str, job_name: str, method: str,
                   principal: str, location: str, reason: str = "JOB",
                   timestamp: datetime | None = None) -> dict[str, Any]:
    """A job that creates its destination table: `tableCreation` in Admin Activity of the table's
    project (reason JOB for a destination, QUERY for DDL)."""
    owner = project_for_id(state, project)
    name = table_path(project, dataset, table)
    return audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service=SERVICE, method=method, resource_name=name,
        resource_type="bigquery_dataset", resource_labels={"project_id": owner.project_id, "dataset_id": dataset},
        principal=principal, timestamp=timestamp or clock.now(), permission="bigquery.tables.create",
        permission_type="ADMIN_WRITE",
        metadata={"@type": audit_log.BQ_METADATA_TYPE,
                  "tableCreation": {"table": {"tableName": name}, "reason": reason, "jobName": job_name}},
        locations=[location], project=owner.project_id))
