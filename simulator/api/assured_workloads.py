"""Assured Workloads API v1: the node's workloads and their violations (SOV-09).

Served as Google does (discovery document `assuredworkloads.v1`):
`GET v1/organizations/{org}/locations/{loc}/workloads/{wl}` (a Workload),
`GET .../workloads/{wl}/violations` with `pageSize` (default 100, at most 1000), `pageToken`,
`interval.startTime`/`interval.endTime` (the violations *active* at some moment between the two, as
ListViolationsRequest documents it) and `workloads/-` for every workload of the location, and
`GET .../workloads/{wl}/violations/{v}`. Another organization answers 403 (Google does not reveal
what the caller cannot see); an unknown workload or violation of the node's organization, 404.

A node file declares its workloads under `assured_workloads` (keyed by workload id: `location`,
`complianceRegime` and any other Workload REST field; `resources` defaults to the node's project as
CONSUMER_PROJECT) with their `violations` (REST fields plus `begin_minutes`, `resolve_minutes`,
`acknowledge_minutes` relative to the recorded job's creation). `seed_violations` turns those
minutes into RFC 3339 times once the recorded run exists, and fills `complianceStatus` from the
unresolved ones, so Google's count and the listing always agree.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import datetime, timedelta
from typing import Any

from sovaudit.simulator import clock
from sovaudit.simulator import schema as s
from sovaudit.simulator.api._common import decode_token, encode_token, paged_body
from sovaudit.simulator.http import Router, SimRequest, rpc_error
from sovaudit.simulator.state import SimState

API = "assuredworkloads"
TYPES = "google.cloud.assuredworkloads_v1.types"
_EXTRA = "assured_workloads"
_RELATIVE = ("begin_minutes", "resolve_minutes", "acknowledge_minutes")

VIOLATION_SPEC = s.Struct(
    required={"id": s.Text(r"[A-Za-z0-9_-]+", "a violation id"),
              "state": s.OneOf(("UNRESOLVED", "RESOLVED", "EXCEPTION"))},
    optional={"begin_minutes": s.Integer(), "resolve_minutes": s.Integer(), "acknowledge_minutes": s.Integer()},
    open=True)
# node file `assured_workloads: {WORKLOAD_ID: {...}}`
WORKLOADS_SPEC = s.MapOf(s.Struct(
    required={"location": s.Text(r"[a-z][a-z0-9-]*", "a location such as europe-west4"),
              "complianceRegime": s.Text(r"[A-Z][A-Z0-9_]*", "a ComplianceRegime such as EU_REGIONS_AND_SUPPORT")},
    optional={"violations": s.ListOf(VIOLATION_SPEC)}, open=True), key_pattern=r"[A-Za-z0-9_-]+")


def install(state: SimState, doc: dict[str, Any]) -> None:
    """The workloads of the node file, as REST JSON keyed by full name (violations come with the seed)."""
    workloads: dict[str, dict[str, Any]] = {}
    for workload_id, spec in (doc.get("assured_workloads") or {}).items():
        name = f"{state.organization}/locations/{spec['location']}/workloads/{workload_id}"
        body = {k: copy.deepcopy(v) for k, v in spec.items() if k not in {"location", "violations"} and v is not None}
        body = {"name": name, "displayName": body.pop("displayName", workload_id), **body}
        body.setdefault("createTime", "2026-01-15T09:30:00Z")
        body.setdefault("resources", [{"resourceId": state.project_number, "resourceType": "CONSUMER_PROJECT"}])
        body.setdefault("resourceMonitoringEnabled", True)
        body.setdefault("violationNotificationsEnabled", True)
        body.setdefault("etag", hashlib.sha256(name.encode()).hexdigest()[:16])
        # proto3 JSON leaves out false booleans: a scenario's `resourceMonitoringEnabled: false` is omitted.
        body = {k: v for k, v in body.items() if v is not False}
        workloads[name] = {"workload": body, "violations": [], "spec": list(spec.get("violations") or ())}
    state.extras[_EXTRA] = workloads


def seed_violations(state: SimState, job_created: datetime) -> None:
    """Give each declared violation its times, relative to the recorded job's creation."""
    for name, entry in (state.extras.get(_EXTRA) or {}).items():
        built = [_violation(state, name, spec, job_created) for spec in entry["spec"]]
        entry["violations"] = built
        unresolved = [v for v in built if v["state"] == "UNRESOLVED"]
        status: dict[str, int] = {}
        for kind, acknowledged, key in (("ORG_POLICY", False, "activeViolationCount"),
                                        ("ORG_POLICY", True, "acknowledgedViolationCount"),
                                        ("RESOURCE", False, "activeResourceViolationCount"),
                                        ("RESOURCE", True, "acknowledgedResourceViolationCount")):
            count = sum(1 for v in unresolved if v.get("violationType", "ORG_POLICY") == kind
                        and bool(v.get("acknowledged")) == acknowledged)
            if count:
                status[key] = count   # int32: a JSON number; zero is the default and left out
        entry["workload"].setdefault("complianceStatus", status)


def _violation(state: SimState, workload: str, spec: dict[str, Any], created: datetime) -> dict[str, Any]:
    def at(minutes: int) -> str:
        return clock.rfc3339(created + timedelta(minutes=minutes))

    body: dict[str, Any] = {"name": f"{workload}/violations/{spec['id']}"}
    body.update({k: copy.deepcopy(v) for k, v in spec.items() if k not in {"id", *_RELATIVE} and v is not None})
    body.setdefault("violationType", "ORG_POLICY")
    body.setdefault("category", "Location")
    if body["violationType"] == "ORG_POLICY":
        body.setdefault("nonCompliantOrgPolicy", f"projects/{state.project_number}/policies/gcp.resourceLocations")
        body.setdefault("description", "OrgPolicy gcp.resourceLocations has non compliant value.")
    begin = at(int(spec.get("begin_minutes", 10)))
    body.setdefault("beginTime", begin)
    update = begin
    if spec["state"] == "RESOLVED":
        body.setdefault("resolveTime", at(int(spec.get("resolve_minutes", int(spec.get("begin_minutes", 10)) + 20))))
        update = body["resolveTime"]
    if "acknowledge_minutes" in spec:
        body.setdefault("acknowledged", True)
        body.setdefault("acknowledgementTime", at(int(spec["acknowledge_minutes"])))
        update = max(update, body["acknowledgementTime"])
    if spec["state"] == "EXCEPTION":
        body.setdefault("acknowledged", True)
        moment = body.get("acknowledgementTime") or at(int(spec.get("begin_minutes", 10)) + 5)
        body.setdefault("acknowledgementTime", moment)
        body.setdefault("exceptionContexts", [{"acknowledgementTime": moment, "userName": "ops-admin@example.org",
                                               "comment": "accepted as an exception"}])
        body.setdefault("exceptionAuditLogLink", "https://console.cloud.google.com/logs/query;query=exception")
        update = max(update, moment)
    body.setdefault("updateTime", update)
    body.setdefault("auditLogLink", "https://console.cloud.google.com/logs/query;query=violation")
    return body


def _workloads(req: SimRequest) -> dict[str, dict[str, Any]]:
    org = f"organizations/{req.path_args['org']}"
    if org != req.state.organization:
        raise rpc_error(403, f"Permission 'assuredworkloads.workload.get' denied on resource '{org}' (or it may not "
                             "exist).", status="PERMISSION_DENIED")
    return dict(req.state.extras.get(_EXTRA) or {})


def _name(req: SimRequest) -> str:
    args = req.path_args
    return f"organizations/{args['org']}/locations/{args['location']}/workloads/{args['workload']}"


def get_workload(req: SimRequest) -> dict[str, Any]:
    name = _name(req)
    with req.state.lock:
        entry = _workloads(req).get(name)
        if entry is None:
            raise rpc_error(404, f"Workload {name} not found.", status="NOT_FOUND")
        return copy.deepcopy(entry["workload"])


def _time_arg(req: SimRequest, key: str) -> datetime | None:
    text = req.arg(key)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise rpc_error(400, f"Invalid value at '{key}' (type.googleapis.com/google.protobuf.Timestamp), "
                             f"Field '{key}', Illegal timestamp format; timestamps must end with 'Z' or have "
                             "a valid timezone offset.", status="INVALID_ARGUMENT") from exc


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


def _active(violation: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    begin, resolved = _moment(violation.get("beginTime")), _moment(violation.get("resolveTime"))
    if end is not None and begin is not None and begin > end:
        return False
    return not (start is not None and resolved is not None and resolved < start)


def list_violations(req: SimRequest) -> dict[str, Any]:
    args = req.path_args
    start, end = _time_arg(req, "interval.startTime"), _time_arg(req, "interval.endTime")
    if start is not None and end is not None and start > end:
        raise rpc_error(400, "interval.startTime must not be after interval.endTime.", status="INVALID_ARGUMENT")
    with req.state.lock:
        workloads = _workloads(req)
        if args["workload"] == "-":
            prefix = f"organizations/{args['org']}/locations/{args['location']}/workloads/"
            chosen = [entry for name, entry in sorted(workloads.items()) if name.startswith(prefix)]
        else:
            entry = workloads.get(_name(req))
            if entry is None:
                raise rpc_error(404, f"Workload {_name(req)} not found.", status="NOT_FOUND")
            chosen = [entry]
        found = [copy.deepcopy(v) for entry in chosen for v in entry["violations"] if _active(v, start, end)]
    # Google's default order: begin_time descending.
    found.sort(key=lambda v: str(v.get("beginTime") or ""), reverse=True)
    limit = req.state.options.get("aw_page_size")
    if limit:
        offset = decode_token(req.arg("pageToken")) if req.arg("pageToken") else 0
        size = min(int(limit), int(req.arg("pageSize") or 100))
        body: dict[str, Any] = {"violations": found[offset:offset + size]} if found[offset:offset + size] else {}
        if offset + size < len(found):
            body["nextPageToken"] = encode_token(offset + size)
        return body
    return paged_body(req, "violations", found, default_size=100)


def get_violation(req: SimRequest) -> dict[str, Any]:
    name = f"{_name(req)}/violations/{req.path_args['violation']}"
    with req.state.lock:
        entry = _workloads(req).get(_name(req))
        for violation in (entry or {}).get("violations") or ():
            if violation["name"] == name:
                return copy.deepcopy(violation)
    raise rpc_error(404, f"Violation {name} not found.", status="NOT_FOUND")


def register(router: Router) -> None:
    workload = "/v1/organizations/<org>/locations/<location>/workloads/<workload>"
    router.add("GET", workload, get_workload, api=API, response_type=f"{TYPES}:Workload")
    router.add("GET", f"{workload}/violations", list_violations, api=API,
               response_type=f"{TYPES}:ListViolationsResponse")
    router.add("GET", f"{workload}/violations/<violation>", get_violation, api=API, response_type=f"{TYPES}:Violation")
