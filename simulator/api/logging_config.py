"""Cloud Logging API v2, configuration: sinks, exclusions and log buckets of the node's project.

Served (paths and shapes as in logging.v2.json): `v2/projects/{p}/sinks` list/create and
`.../sinks/{s}` get/patch/update/delete; `v2/projects/{p}/exclusions` list/create and
`.../exclusions/{e}` get/patch/delete; `v2/projects/{p}/locations/{l}/buckets` list (`l` = `-` for
every location)/create (`bucketId`) and `.../buckets/{b}` get/patch/delete. The `_Required` sink
cannot be modified or deleted, `_Default` cannot be deleted (only disabled or re-pointed), a bucket's
location is immutable and a locked bucket's retention cannot change. Every mutation is an Admin
Activity entry (`google.logging.v2.ConfigServiceV2.CreateSink` ...) — which `_Required` always keeps,
so an insider's re-routing stays on record — and takes effect for every entry recorded after it
(`simulator/log_router.py`).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sovaudit.simulator import audit_log, clock, log_router
from sovaudit.simulator.api._common import paged_body, require_project
from sovaudit.simulator.http import Router, SimRequest, rpc_error
from sovaudit.simulator.logquery import LogQueryError, compile_filter
from sovaudit.simulator.state import SimState

API = "logging"
SERVICE = "logging.googleapis.com"
_ID = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,99}")
_SINK_FIELDS = ("destination", "filter", "description", "disabled", "exclusions", "includeChildren",
                "interceptChildren", "bigqueryOptions", "outputVersionFormat")
_EXCLUSION_FIELDS = ("description", "filter", "disabled")
_BUCKET_FIELDS = ("description", "retentionDays", "locked", "analyticsEnabled", "restrictedFields", "indexConfigs",
                  "cmekSettings")


def _config(req: SimRequest) -> log_router.LoggingConfig:
    require_project(req.state, req.path_args["project"])
    cfg = log_router.config(req.state)
    if cfg is None:
        cfg = log_router.install(req.state, {}, clock.rfc3339(clock.now()))
    return cfg


def _body(req: SimRequest) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise rpc_error(400, "Invalid JSON payload: the request body must be an object.")
    return body


def _check_filter(text: Any, where: str) -> None:
    if text in (None, ""):
        return
    try:
        compile_filter(str(text))
    except LogQueryError as exc:
        raise rpc_error(400, f"Invalid {where}: {exc}") from exc


def _mask(req: SimRequest, default: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The updateMask as camelCase field names (clients send either spelling)."""
    text = req.arg("updateMask") or ""
    if not text:
        return default
    fields = []
    for raw in text.split(","):
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), raw.strip())
        if name not in allowed:
            raise rpc_error(400, f"Invalid updateMask: {raw.strip()!r} cannot be updated "
                                 f"(updatable: {', '.join(allowed)}).")
        fields.append(name)
    return tuple(fields)


def _admin(req: SimRequest, method: str, resource_name: str, resource_type: str, labels: Mapping[str, str],
           request: Mapping[str, Any] | None = None) -> None:
    from sovaudit.simulator.api.compute import caller_principal

    record_change(req.state, method, resource_name, resource_type, labels, request,
                  principal=caller_principal(req), timestamp=clock.now())


def record_change(state: SimState, method: str, resource_name: str, resource_type: str, labels: Mapping[str, str],
                  request: Mapping[str, Any] | None, *, principal: str, timestamp: datetime) -> None:
    """The Admin Activity entry for a config mutation; `_Required` stores it whatever the routing,
    so a change made and reverted around a run stays on record. (The `ConfigServiceV2.Update*`
    method strings are [U] in the reference; Create*/Delete* follow the same pattern.)"""
    if resource_type == "audited_resource":   # log buckets have no monitored resource type of their own
        labels = {"service": SERVICE, "method": f"google.logging.v2.ConfigServiceV2.{method}"}
    audit_log.record(state, audit_log.audit_entry(
        state, log_id=audit_log.ACTIVITY, service=SERVICE, method=f"google.logging.v2.ConfigServiceV2.{method}",
        resource_name=resource_name, resource_type=resource_type,
        resource_labels={"project_id": state.project_id, **labels}, principal=principal,
        timestamp=timestamp, permission=_PERMISSIONS[method], permission_type="ADMIN_WRITE",
        request={"@type": f"type.googleapis.com/google.logging.v2.{method}Request", **dict(request or {})}))


def transient_exclusions(state: SimState, exclusions: Sequence[Mapping[str, Any]], *, created: datetime,
                         deleted: datetime, principal: str) -> Callable[[], None]:
    """Seed helper: project exclusions in force from now until the returned callable is called, which
    removes them again; their CreateExclusion/DeleteExclusion entries are dated `created`/`deleted`.
    This is the insider who excludes the run's entries and reverts the change before anyone looks."""
    cfg = log_router.config(state) or log_router.install(state, {}, clock.rfc3339(created))
    for item in exclusions:
        cfg.exclusions[item["name"]] = {"name": item["name"], "filter": item["filter"],
                                        "createTime": clock.rfc3339(created), "updateTime": clock.rfc3339(created)}
    cfg.changed()

    def revert() -> None:
        for item in exclusions:
            body = cfg.exclusions.pop(item["name"], None)
            resource = f"projects/{state.project_id}/exclusions/{item['name']}"
            record_change(state, "CreateExclusion", resource, "logging_exclusion", {"name": item["name"]},
                          {"parent": f"projects/{state.project_id}", "exclusion": body or dict(item)},
                          principal=principal, timestamp=created)
            record_change(state, "DeleteExclusion", resource, "logging_exclusion", {"name": item["name"]},
                          {"name": resource}, principal=principal, timestamp=deleted)
        cfg.changed()

    return revert


_PERMISSIONS = {"CreateSink": "logging.sinks.create", "UpdateSink": "logging.sinks.update",
                "DeleteSink": "logging.sinks.delete", "CreateExclusion": "logging.exclusions.create",
                "UpdateExclusion": "logging.exclusions.update", "DeleteExclusion": "logging.exclusions.delete",
                "CreateBucket": "logging.buckets.create", "UpdateBucket": "logging.buckets.update",
                "DeleteBucket": "logging.buckets.delete"}


# ------------------------------------------------------------------------------------------ sinks

def _sink_labels(sink: Mapping[str, Any]) -> dict[str, str]:
    return {"name": str(sink.get("name", "")), "destination": str(sink.get("destination", ""))}


def _writer_identity(req: SimRequest, name: str) -> str:
    """A sink writing into the node keeps the shared writer; `uniqueWriterIdentity=true` (needed for a
    destination in another project) gets a per-sink service agent, `p{NUMBER}-{N}@gcp-sa-logging`."""
    if (req.arg("uniqueWriterIdentity") or "").lower() == "true":
        serial = int(hashlib.sha256(f"{req.state.project_number}/{name}".encode()).hexdigest()[:8], 16) % 1_000_000
        return f"serviceAccount:p{req.state.project_number}-{serial:06d}@gcp-sa-logging.iam.gserviceaccount.com"
    return log_router.writer_identity(req.state.project_number)


def list_sinks(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        sinks = [copy.deepcopy(s) for s in cfg.sinks.values()]
    return paged_body(req, "sinks", sinks, default_size=100)


def _sink(req: SimRequest, cfg: log_router.LoggingConfig) -> dict[str, Any]:
    name = req.path_args["sink"]
    sink = cfg.sinks.get(name)
    if sink is None:
        raise rpc_error(404, f"Sink {name} does not exist", status="NOT_FOUND")
    return sink


def get_sink(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        return copy.deepcopy(_sink(req, cfg))


def _validate_sink(body: Mapping[str, Any]) -> None:
    if not str(body.get("destination") or ""):
        raise rpc_error(400, "Invalid sink: destination is required.")
    _check_filter(body.get("filter"), "filter")
    for index, exclusion in enumerate(body.get("exclusions") or []):
        if not isinstance(exclusion, dict) or not _ID.fullmatch(str(exclusion.get("name") or "")):
            raise rpc_error(400, f"Invalid exclusions[{index}]: name is required (letters, digits, -_.).")
        _check_filter(exclusion.get("filter"), f"exclusions[{index}].filter")


def create_sink(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    body = _body(req)
    name = str(body.get("name") or "")
    if not _ID.fullmatch(name):
        raise rpc_error(400, f"Invalid sink name {name!r}: up to 100 letters, digits, -_. starting with a letter "
                             "or digit.")
    _validate_sink(body)
    now = clock.rfc3339(clock.now())
    with req.state.lock:
        if name in cfg.sinks:
            raise rpc_error(409, f"Sink {name} already exists", status="ALREADY_EXISTS")
        sink = log_router.omit_defaults({
            "name": name, **{k: copy.deepcopy(body[k]) for k in _SINK_FIELDS if k in body},
            "writerIdentity": _writer_identity(req, name), "createTime": now, "updateTime": now,
            "resourceName": f"projects/{req.state.project_id}/sinks/{name}"})
        for exclusion in sink.get("exclusions") or []:
            exclusion.setdefault("createTime", now)
            exclusion.setdefault("updateTime", now)
        cfg.sinks[name] = sink
        cfg.changed()
        _admin(req, "CreateSink", sink["resourceName"], "logging_sink", _sink_labels(sink),
               {"parent": f"projects/{req.state.project_id}", "sink": copy.deepcopy(sink)})
        return copy.deepcopy(sink)


def update_sink(req: SimRequest) -> dict[str, Any]:
    """PATCH and PUT: both are UpdateSink; without an updateMask Google updates destination, filter
    and includeChildren."""
    cfg = _config(req)
    body = _body(req)
    fields = _mask(req, ("destination", "filter", "includeChildren"), _SINK_FIELDS)
    with req.state.lock:
        sink = _sink(req, cfg)
        if sink["name"] == log_router.REQUIRED:
            raise rpc_error(400, "The _Required sink cannot be modified.", status="FAILED_PRECONDITION")
        updated = copy.deepcopy(sink)
        for name in fields:
            if name in body and body[name] not in (None, "", [], False):
                updated[name] = copy.deepcopy(body[name])
            else:
                updated.pop(name, None)
        _validate_sink(updated)
        if (req.arg("uniqueWriterIdentity") or "").lower() == "true":
            updated["writerIdentity"] = _writer_identity(req, updated["name"])
        updated["updateTime"] = clock.rfc3339(clock.now())
        cfg.sinks[updated["name"]] = updated
        cfg.changed()
        _admin(req, "UpdateSink", updated["resourceName"], "logging_sink", _sink_labels(updated),
               {"sinkName": updated["resourceName"], "sink": copy.deepcopy(updated),
                "updateMask": ",".join(fields)})
        return copy.deepcopy(updated)


def delete_sink(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        sink = _sink(req, cfg)
        if sink["name"] in {log_router.REQUIRED, log_router.DEFAULT}:
            raise rpc_error(400, f"The {sink['name']} sink cannot be deleted; disable or update it instead.",
                            status="FAILED_PRECONDITION")
        del cfg.sinks[sink["name"]]
        cfg.changed()
        _admin(req, "DeleteSink", sink["resourceName"], "logging_sink", _sink_labels(sink),
               {"sinkName": sink["resourceName"]})
    return {}


# ------------------------------------------------------------------------------------------ exclusions

def list_exclusions(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        exclusions = [copy.deepcopy(e) for e in cfg.exclusions.values()]
    return paged_body(req, "exclusions", exclusions, default_size=100)


def _exclusion(req: SimRequest, cfg: log_router.LoggingConfig) -> dict[str, Any]:
    name = req.path_args["exclusion"]
    exclusion = cfg.exclusions.get(name)
    if exclusion is None:
        raise rpc_error(404, f"Exclusion {name} does not exist", status="NOT_FOUND")
    return exclusion


def _exclusion_name(req: SimRequest, name: str) -> str:
    return f"projects/{req.state.project_id}/exclusions/{name}"


def get_exclusion(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        return copy.deepcopy(_exclusion(req, cfg))


def create_exclusion(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    body = _body(req)
    name = str(body.get("name") or "")
    if not _ID.fullmatch(name):
        raise rpc_error(400, f"Invalid exclusion name {name!r}: up to 100 letters, digits, -_.")
    if not body.get("filter"):
        raise rpc_error(400, "Invalid exclusion: filter is required.")
    _check_filter(body.get("filter"), "filter")
    now = clock.rfc3339(clock.now())
    with req.state.lock:
        if name in cfg.exclusions:
            raise rpc_error(409, f"Exclusion {name} already exists", status="ALREADY_EXISTS")
        exclusion = log_router.omit_defaults({
            "name": name, **{k: copy.deepcopy(body[k]) for k in _EXCLUSION_FIELDS if k in body},
            "createTime": now, "updateTime": now})
        cfg.exclusions[name] = exclusion
        cfg.changed()
        _admin(req, "CreateExclusion", _exclusion_name(req, name), "logging_exclusion", {"name": name},
               {"parent": f"projects/{req.state.project_id}", "exclusion": copy.deepcopy(exclusion)})
        return copy.deepcopy(exclusion)


def update_exclusion(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    body = _body(req)
    if not req.arg("updateMask"):
        raise rpc_error(400, "Invalid request: updateMask is required.")
    fields = _mask(req, (), _EXCLUSION_FIELDS)
    with req.state.lock:
        updated = copy.deepcopy(_exclusion(req, cfg))
        for field_name in fields:
            if field_name in body and body[field_name] not in (None, "", [], False):
                updated[field_name] = copy.deepcopy(body[field_name])
            else:
                updated.pop(field_name, None)
        if not updated.get("filter"):
            raise rpc_error(400, "Invalid exclusion: filter is required.")
        _check_filter(updated.get("filter"), "filter")
        updated["updateTime"] = clock.rfc3339(clock.now())
        cfg.exclusions[updated["name"]] = updated
        cfg.changed()
        _admin(req, "UpdateExclusion", _exclusion_name(req, updated["name"]), "logging_exclusion",
               {"name": updated["name"]}, {"name": _exclusion_name(req, updated["name"]),
                                          "exclusion": copy.deepcopy(updated), "updateMask": ",".join(fields)})
        return copy.deepcopy(updated)


def delete_exclusion(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        exclusion = _exclusion(req, cfg)
        del cfg.exclusions[exclusion["name"]]
        cfg.changed()
        _admin(req, "DeleteExclusion", _exclusion_name(req, exclusion["name"]), "logging_exclusion",
               {"name": exclusion["name"]}, {"name": _exclusion_name(req, exclusion["name"])})
    return {}


# ------------------------------------------------------------------------------------------ buckets

def list_buckets(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    location = req.path_args["location"]
    with req.state.lock:
        buckets = [copy.deepcopy(b) for name, b in cfg.buckets.items()
                   if location == "-" or name.split("/")[3] == location]
    return paged_body(req, "buckets", buckets, default_size=100)


def _bucket(req: SimRequest, cfg: log_router.LoggingConfig) -> dict[str, Any]:
    name = log_router.bucket_name(req.state.project_id, req.path_args["location"], req.path_args["bucket"])
    bucket = cfg.buckets.get(name)
    if bucket is None:
        raise rpc_error(404, f"Bucket {name} does not exist", status="NOT_FOUND")
    return bucket


def get_bucket(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    with req.state.lock:
        return copy.deepcopy(_bucket(req, cfg))


def _check_retention(body: Mapping[str, Any]) -> None:
    retention = body.get("retentionDays")
    if retention is not None and (not isinstance(retention, int) or isinstance(retention, bool)
                                  or not 0 <= retention <= 3650):
        raise rpc_error(400, f"Invalid retentionDays {retention!r}: between 1 and 3650 (0 means 30).")


def create_bucket(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    body = _body(req)
    location = req.path_args["location"]
    bucket_id = req.arg("bucketId") or ""
    if location == "-":
        raise rpc_error(400, "Invalid parent: a bucket is created in one location, not '-'.")
    if not _ID.fullmatch(bucket_id) or bucket_id.startswith("_"):
        raise rpc_error(400, f"Invalid bucketId {bucket_id!r}: up to 100 letters, digits, -_., not starting with _.")
    _check_retention(body)
    name = log_router.bucket_name(req.state.project_id, location, bucket_id)
    now = clock.rfc3339(clock.now())
    with req.state.lock:
        if any(existing.rsplit("/", 1)[-1] == bucket_id for existing in cfg.buckets):
            raise rpc_error(409, f"Bucket {bucket_id} already exists", status="ALREADY_EXISTS")
        bucket = log_router.omit_defaults({
            "name": name, **{k: copy.deepcopy(body[k]) for k in _BUCKET_FIELDS if k in body},
            "createTime": now, "updateTime": now, "lifecycleState": "ACTIVE"})
        bucket["retentionDays"] = int(bucket.get("retentionDays") or 30)   # 0 at creation means 30 days
        cfg.buckets[name] = bucket
        cfg.changed()
        _admin(req, "CreateBucket", name, "audited_resource", {},
               {"parent": f"projects/{req.state.project_id}/locations/{location}", "bucketId": bucket_id,
                "bucket": copy.deepcopy(bucket)})
        return copy.deepcopy(bucket)


def update_bucket(req: SimRequest) -> dict[str, Any]:
    cfg = _config(req)
    body = _body(req)
    if not req.arg("updateMask"):
        raise rpc_error(400, "Invalid request: updateMask is required.")
    fields = _mask(req, (), _BUCKET_FIELDS)
    _check_retention(body)
    with req.state.lock:
        bucket = _bucket(req, cfg)
        if bucket.get("locked") and "retentionDays" in fields and body.get("retentionDays") != bucket.get(
                "retentionDays"):
            raise rpc_error(400, f"Bucket {bucket['name']} is locked: its retention cannot change.",
                            status="FAILED_PRECONDITION")
        if bucket.get("locked") and "locked" in fields and not body.get("locked"):
            raise rpc_error(400, f"Bucket {bucket['name']} is locked: it cannot be unlocked.",
                            status="FAILED_PRECONDITION")
        updated = copy.deepcopy(bucket)
        for field_name in fields:
            if field_name in body and body[field_name] not in (None, "", [], False):
                updated[field_name] = copy.deepcopy(body[field_name])
            else:
                updated.pop(field_name, None)
        updated["updateTime"] = clock.rfc3339(clock.now())
        cfg.buckets[updated["name"]] = updated
        cfg.changed()
        _admin(req, "UpdateBucket", updated["name"], "audited_resource", {},
               {"name": updated["name"], "bucket": copy.deepcopy(updated), "updateMask": ",".join(fields)})
        return copy.deepcopy(updated)


def delete_bucket(req: SimRequest) -> dict[str, Any]:
    """A deleted bucket is DELETE_REQUESTED for 7 days (undeletable), then gone; it stores nothing meanwhile."""
    cfg = _config(req)
    with req.state.lock:
        bucket = _bucket(req, cfg)
        bucket_id = bucket["name"].rsplit("/", 1)[-1]
        if bucket_id in {log_router.REQUIRED, log_router.DEFAULT}:
            raise rpc_error(400, f"The {bucket_id} bucket cannot be deleted.", status="FAILED_PRECONDITION")
        if bucket.get("locked"):
            raise rpc_error(400, f"Bucket {bucket['name']} is locked and cannot be deleted.",
                            status="FAILED_PRECONDITION")
        bucket["lifecycleState"] = "DELETE_REQUESTED"
        bucket["updateTime"] = clock.rfc3339(clock.now())
        cfg.changed()
        _admin(req, "DeleteBucket", bucket["name"], "audited_resource", {},
               {"name": bucket["name"]})
    return {}


def register(router: Router) -> None:
    project = "/v2/projects/<project>"
    router.add("GET", f"{project}/sinks", list_sinks, api=API)
    router.add("POST", f"{project}/sinks", create_sink, api=API)
    router.add("GET", f"{project}/sinks/<sink>", get_sink, api=API)
    router.add("PATCH", f"{project}/sinks/<sink>", update_sink, api=API)
    router.add("PUT", f"{project}/sinks/<sink>", update_sink, api=API)
    router.add("DELETE", f"{project}/sinks/<sink>", delete_sink, api=API)
    router.add("GET", f"{project}/exclusions", list_exclusions, api=API)
    router.add("POST", f"{project}/exclusions", create_exclusion, api=API)
    router.add("GET", f"{project}/exclusions/<exclusion>", get_exclusion, api=API)
    router.add("PATCH", f"{project}/exclusions/<exclusion>", update_exclusion, api=API)
    router.add("DELETE", f"{project}/exclusions/<exclusion>", delete_exclusion, api=API)
    buckets = f"{project}/locations/<location>/buckets"
    router.add("GET", buckets, list_buckets, api=API)
    router.add("POST", buckets, create_bucket, api=API)
    router.add("GET", f"{buckets}/<bucket>", get_bucket, api=API)
    router.add("PATCH", f"{buckets}/<bucket>", update_bucket, api=API)
    router.add("DELETE", f"{buckets}/<bucket>", delete_bucket, api=API)
