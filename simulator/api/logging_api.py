"""Cloud Logging API v2: `entries:list` with the Logging query language, and `entries:write`.

Served: entries.list (resourceNames, filter via `simulator.logquery`, orderBy, pageSize, pageToken),
entries.write (logName/resource/labels defaults, partialSuccess, dryRun), projects.logs.list.
Filters are compiled by a real parser; a bad one is a 400 INVALID_ARGUMENT naming the problem, as on
Google. The page token is bound to the query, so changing the filter mid-listing is refused.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import timedelta
from typing import Any, cast
from urllib.parse import unquote

from sovaudit.simulator import audit_log, clock
from sovaudit.simulator.http import Router, SimRequest, rpc_error
from sovaudit.simulator.logquery import LogQueryError, _norm, compile_filter, sort_entries

API = "logging"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_LOG_NAME = re.compile(r"(projects|organizations|folders|billingAccounts)/([^/]+)/logs/([^/]+)")
_PAYLOADS = ("textPayload", "jsonPayload", "protoPayload")


def _scope(req: SimRequest, resource_names: list[str]) -> tuple[str, ...]:
    """The logName prefixes the request covers: the node's project, and the folders and organization
    above it (simulator/hierarchy.py: their own Admin Activity logs hold changes made there); other
    parents the caller cannot read → 403."""
    from sovaudit.simulator import hierarchy

    covers: list[str] = []
    ancestors = set(hierarchy.ancestors(req.state)) | {req.state.organization}
    for name in resource_names:
        parts = name.split("/")
        if len(parts) < 2:
            raise rpc_error(400, f"Invalid resource name: {name!r}.")
        kind, ident = parts[0], parts[1]
        if kind == "projects" and ident in {req.state.project_id, req.state.project_number}:
            covers.append(f"projects/{req.state.project_id}/")
        elif kind in ("organizations", "folders") and f"{kind}/{ident}" in ancestors:
            covers.append(f"{kind}/{ident}/")
        else:
            raise rpc_error(403, f"The caller does not have permission to read logs of {name}.",
                            status="PERMISSION_DENIED")
    return tuple(dict.fromkeys(covers))


def _token(offset: int, query_key: str) -> str:
    raw = json.dumps({"o": offset, "q": query_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(token: str, query_key: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, key = int(data["o"]), data["q"]
    except (ValueError, KeyError, TypeError) as exc:
        raise rpc_error(400, f"Invalid page token: {token!r}.") from exc
    if key != query_key:
        raise rpc_error(400, "The page token does not belong to this query: resourceNames, filter and orderBy "
                             "must be unchanged between pages.")
    return offset


def _body(req: SimRequest) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise rpc_error(400, "Invalid JSON payload: the request body must be an object.")
    return body


def list_entries(req: SimRequest) -> dict[str, Any]:
    body = _body(req)
    resource_names = list(body.get("resourceNames") or [])
    resource_names += [f"projects/{p}" for p in body.get("projectIds") or []]
    if not resource_names:
        raise rpc_error(400, "resourceNames is required: name at least one parent such as projects/PROJECT_ID.")
    covers = _scope(req, resource_names)
    filter_text = body.get("filter") or ""
    order_by = body.get("orderBy") or "timestamp asc"
    try:
        log_filter = compile_filter(filter_text)
        page_size = int(body.get("pageSize") or 0)
    except LogQueryError as exc:
        raise rpc_error(400, f"Invalid filter: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise rpc_error(400, f"Invalid value for pageSize: {body.get('pageSize')!r}") from exc
    # entries.list reference: default 50; a negative value or one above 1000 is rejected.
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise rpc_error(400, f"pageSize must be between 0 and {MAX_PAGE_SIZE}, got {page_size}.")
    page_size = min(page_size or DEFAULT_PAGE_SIZE, int(req.state.options.get("max_page_size") or MAX_PAGE_SIZE))
    query_key = hashlib.sha256(json.dumps([sorted(resource_names), filter_text, order_by]).encode()).hexdigest()[:16]
    offset = _offset(body["pageToken"], query_key) if body.get("pageToken") else 0
    matched = _matched(req, query_key, log_filter, order_by, covers, filter_text)
    chunk = matched[offset:offset + page_size]
    result: dict[str, Any] = {}
    if chunk:
        # Serialised to JSON straight away; entries are never mutated once written, so no copy.
        result["entries"] = chunk
    if offset + page_size < len(matched):
        result["nextPageToken"] = _token(offset + page_size, query_key)
    return result


# One verify asks a dozen distinct log questions at once, several of them over many pages: a cache
# smaller than that evicts a question between its pages and re-filters the whole log for each page.
_CACHED_QUERIES = 32


# A filter whose first conjunct pins logName (`logName="A" AND ...` or `(logName="A" OR logName="B") AND
# ...`; in this query language OR binds tighter than AND, so that conjunct holds for every match).
_LEADING_LOG_NAMES = re.compile(
    r'\s*(?:\(\s*)?(logName\s*=\s*"[^"\\]*"(?:\s+OR\s+logName\s*=\s*"[^"\\]*")*)\s*(\))?\s+AND\s')
_ONE_LOG_NAME = re.compile(r'logName\s*=\s*"([^"\\]*)"')


def _leading_log_names(filter_text: str) -> list[str] | None:
    """The normalised logNames a filter's leading conjunct allows, or None when it pins none."""
    match = _LEADING_LOG_NAMES.match(filter_text)
    if not match or (filter_text.lstrip().startswith("(") != bool(match.group(2))):
        return None
    return list(dict.fromkeys(_norm(name) for name in _ONE_LOG_NAME.findall(match.group(1))))


def _log_name_index(state: Any, version: int) -> dict[str, list[dict[str, Any]]]:
    """Entries by normalised logName (string comparisons fold case), rebuilt when the log grows.

    Nine tenths of a busy node's window is other people's Data Access noise; a question about the
    Admin Activity or Policy log need not test it entry by entry."""
    cached = state.extras.get("log_name_index")
    if cached is not None and cached[0] == version:
        return cast(dict[str, list[dict[str, Any]]], cached[1])
    index: dict[str, list[dict[str, Any]]] = {}
    for entry in state.log_entries[:version]:
        index.setdefault(_norm(str(entry.get("logName", ""))), []).append(entry)
    state.extras["log_name_index"] = (version, index)
    return index


def _matched(req: SimRequest, query_key: str, log_filter: Any, order_by: str,
             covers: tuple[str, ...], filter_text: str = "") -> list[dict[str, Any]]:
    """Every entry the query selects, sorted; cached per query while the log does not grow.

    Paging a 100 000-entry log re-ran the filter over every entry for every page; the log is
    append-only, so (query, entry count) identifies a result and later pages are slices of it.
    """
    with req.state.lock:
        version = len(req.state.log_entries)
        cache: dict[tuple[str, int], list[dict[str, Any]]] = req.state.extras.setdefault("logging_queries", {})
        hit = cache.get((query_key, version))
        # The node's entries.list sees its own project's logs (and its ancestors' when asked); entries
        # Google wrote into another project (a write into that project's bucket) are that project's.
        names = _leading_log_names(filter_text) if covers and hit is None else None
        if not covers or hit is not None:
            candidates = []
        elif names is not None:
            # Every entry the filter can select carries one of these logNames: only those are tested.
            index = _log_name_index(req.state, version)
            candidates = [e for name in names for e in index.get(name, ())
                          if e.get("logName", "").startswith(covers)]
        else:
            candidates = [e for e in req.state.log_entries if e.get("logName", "").startswith(covers)]
    if hit is not None:
        return hit
    try:
        matched = sort_entries((e for e in candidates if log_filter.matches(e)), order_by)
    except LogQueryError as exc:
        raise rpc_error(400, f"Invalid orderBy: {exc}") from exc
    with req.state.lock:
        if len(cache) >= _CACHED_QUERIES:
            cache.pop(next(iter(cache)))
        cache[(query_key, version)] = matched
    return matched


def _check_log_name(req: SimRequest, log_name: str, where: str) -> None:
    match = _LOG_NAME.fullmatch(log_name)
    if not match:
        raise rpc_error(400, f"{where}: logName {log_name!r} must be projects/PROJECT_ID/logs/LOG_ID with the "
                             "LOG_ID URL-encoded.")
    if "/" in unquote(match.group(3)) and "%2F" not in match.group(3).upper():
        raise rpc_error(400, f"{where}: the LOG_ID in {log_name!r} must be URL-encoded.")
    if match.group(1) != "projects" or match.group(2) not in {req.state.project_id, req.state.project_number}:
        raise rpc_error(403, f"{where}: the caller does not have permission to write to {log_name}.",
                        status="PERMISSION_DENIED")


def write_entries(req: SimRequest) -> dict[str, Any]:
    body = _body(req)
    entries = body.get("entries")
    if not isinstance(entries, list) or not entries:
        raise rpc_error(400, "entries is required: write at least one LogEntry.")
    default_log = body.get("logName")
    default_resource = body.get("resource")
    default_labels = body.get("labels") or {}
    prepared = []
    errors: dict[str, Any] = {}
    for index, raw in enumerate(entries):
        where = f"entries[{index}]"
        try:
            entry = copy.deepcopy(raw)
            if not isinstance(entry, dict):
                raise rpc_error(400, f"{where}: a LogEntry must be an object.")
            entry.setdefault("logName", default_log)
            if not entry.get("logName"):
                raise rpc_error(400, f"{where}: logName is required (in the entry or the request).")
            _check_log_name(req, entry["logName"], where)
            if not entry.get("resource"):
                if not default_resource:
                    raise rpc_error(400, f"{where}: resource is required (in the entry or the request).")
                entry["resource"] = copy.deepcopy(default_resource)
            if sum(1 for p in _PAYLOADS if p in entry) > 1:
                raise rpc_error(400, f"{where}: set only one of textPayload, jsonPayload, protoPayload.")
            if default_labels:
                entry["labels"] = {**default_labels, **(entry.get("labels") or {})}
            if entry.get("timestamp"):
                try:
                    entry["timestamp"] = clock.rfc3339(clock.parse(entry["timestamp"]))
                except ValueError as exc:
                    raise rpc_error(400, f"{where}: invalid timestamp {entry['timestamp']!r}.") from exc
            else:
                entry["timestamp"] = clock.rfc3339(clock.now())
            entry.setdefault("severity", "DEFAULT")
            # Logging stamps when it received the entry, whatever time the writer claims for it: a
            # backdated entry shows its lateness here (CC-04 reads it).
            entry["receiveTimestamp"] = clock.rfc3339(clock.now() + timedelta(milliseconds=40))
            prepared.append(entry)
        except Exception as exc:  # collect per-entry errors for partialSuccess
            if not body.get("partialSuccess"):
                raise
            errors[str(index)] = {"code": getattr(exc, "code", 400), "message": str(getattr(exc, "message", exc))}
    if body.get("dryRun"):
        return {}
    for entry in prepared:
        audit_log.record(req.state, entry, receive_delay_ms=40)
    if errors:
        raise rpc_error(400, "Log entries with invalid fields were not written.", details=[
            {"@type": "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors", "logEntryErrors": errors}])
    return {}


def list_logs(req: SimRequest) -> dict[str, Any]:
    project = req.path_args["project"]
    if project not in {req.state.project_id, req.state.project_number}:
        raise rpc_error(403, f"The caller does not have permission to list logs of projects/{project}.",
                        status="PERMISSION_DENIED")
    with req.state.lock:
        names = sorted({e["logName"] for e in req.state.log_entries if isinstance(e.get("logName"), str)})
    return {"logNames": names} if names else {}


def register(router: Router) -> None:
    router.add("POST", "/v2/entries:list", list_entries, api=API)
    router.add("POST", "/v2/entries:write", write_entries, api=API)
    router.add("GET", "/v2/projects/<project>/logs", list_logs, api=API)
