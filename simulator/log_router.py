"""Cloud Logging routing for the simulated node: sinks, exclusions, log buckets, and their effect.

Google does not store every log entry a project produces; the Log Router decides. An entry whose
log is Admin Activity, System Event or Access Transparency always lands in the `_Required` bucket
(that sink cannot be changed, disabled or excluded from). Everything else — Data Access and Policy
Denied included — is stored only if the `_Default` sink is enabled, its filter matches, and no
exclusion (on the sink, or a project exclusion, which Google's API documents as "an exclusion in
the _Default sink") matches. User sinks copy matching entries to their destinations: a log bucket
of the node (stored here, readable by `entries.list`), or anywhere else (another project's bucket,
a dataset, a topic: gone from the node's point of view).

That is the whole reason SEC-08 exists: an insider who excludes `data_access` or `policy` entries
makes SEC-04 and SEC-06 pass on an empty log. So the effect is applied where entries are recorded
(`audit_log.record` calls `route`), and `entries.list` only sees what the node stores.

The configuration is REST JSON (LogSink, LogExclusion, LogBucket as logging.v2 returns them), kept in
`state.extras["logging_config"]`; filters are compiled once per configuration change, so recording
thousands of seeded entries stays cheap (the common case is two log-id lookups per entry).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sovaudit.simulator.logquery import LogFilter, compile_filter
from sovaudit.simulator.state import SimState

CONFIG_KEY = "logging_config"
EXPORTS_KEY = "logging_exports"
REQUIRED = "_Required"
DEFAULT = "_Default"
# The `_Required` sink's filter, as Google documents it (routing overview); it cannot be changed.
REQUIRED_LOG_IDS = (
    "cloudaudit.googleapis.com/activity", "externalaudit.googleapis.com/activity",
    "cloudaudit.googleapis.com/system_event", "externalaudit.googleapis.com/system_event",
    "cloudaudit.googleapis.com/access_transparency", "externalaudit.googleapis.com/access_transparency",
)
REQUIRED_FILTER = " OR ".join(f'LOG_ID("{log_id}")' for log_id in REQUIRED_LOG_IDS)
# `_Default` stores everything `_Required` does not. Whether Google writes that as the sink's own
# `filter` (what `gcloud logging sinks describe _Default` shows) or as an empty filter plus a built-in
# exclusion is [U]; the simulator serves the filter form, and both read the same to the router.
DEFAULT_FILTER = " AND ".join(f'NOT LOG_ID("{log_id}")' for log_id in REQUIRED_LOG_IDS)
_REQUIRED_SET = frozenset(REQUIRED_LOG_IDS)
_BUCKET_DESTINATION = re.compile(r"logging\.googleapis\.com/projects/([^/]+)/locations/([^/]+)/buckets/([^/]+)")


def log_id_of(entry: Mapping[str, Any]) -> str:
    """`cloudaudit.googleapis.com/data_access` from `projects/P/logs/cloudaudit.googleapis.com%2Fdata_access`."""
    name = entry.get("logName")
    if not isinstance(name, str) or "/logs/" not in name:
        return ""
    return unquote(name.split("/logs/", 1)[1])


def bucket_name(project: str, location: str, bucket_id: str) -> str:
    return f"projects/{project}/locations/{location}/buckets/{bucket_id}"


def bucket_destination(project: str, location: str, bucket_id: str) -> str:
    return f"logging.googleapis.com/{bucket_name(project, location, bucket_id)}"


def writer_identity(project_number: str) -> str:
    """The identity Logging writes a same-project sink's entries as (the legacy shared writer)."""
    return f"serviceAccount:service-{project_number}@gcp-sa-logging.iam.gserviceaccount.com"


@dataclass
class LoggingConfig:
    """The node's routing configuration, as REST JSON, plus its compiled form (rebuilt on change)."""

    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)        # sink id -> LogSink
    exclusions: dict[str, dict[str, Any]] = field(default_factory=dict)   # exclusion id -> LogExclusion
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)      # full bucket name -> LogBucket
    compiled: _Compiled | None = None

    def changed(self) -> None:
        self.compiled = None


@dataclass(frozen=True)
class _Route:
    """One enabled non-`_Required` sink, ready to apply."""

    name: str
    destination: str
    match: LogFilter | None          # None = the sink's filter selects everything
    exclusions: tuple[LogFilter, ...]
    stores_in_node: bool             # the destination is an ACTIVE log bucket of this node
    is_default_shape: bool           # _Default with its documented filter and no exclusions: fast path


@dataclass(frozen=True)
class _Compiled:
    routes: tuple[_Route, ...]


def config(state: SimState) -> LoggingConfig | None:
    value = state.extras.get(CONFIG_KEY)
    return value if isinstance(value, LoggingConfig) else None


def _enabled_exclusions(items: Any) -> list[str]:
    return [str(item.get("filter") or "") for item in items or ()
            if isinstance(item, Mapping) and not item.get("disabled") and item.get("filter")]


def node_bucket(state: SimState, cfg: LoggingConfig, destination: str) -> dict[str, Any] | None:
    """The node's log bucket a destination names (by project id or number), or None."""
    match = _BUCKET_DESTINATION.fullmatch(destination or "")
    if not match or match.group(1) not in {state.project_id, state.project_number}:
        return None
    return cfg.buckets.get(bucket_name(state.project_id, match.group(2), match.group(3)))


def _compile(state: SimState, cfg: LoggingConfig) -> _Compiled:
    routes = []
    project_exclusions = _enabled_exclusions(cfg.exclusions.values())
    for name, sink in cfg.sinks.items():
        if name == REQUIRED or sink.get("disabled"):
            continue
        filter_text = str(sink.get("filter") or "").strip()
        exclusions = _enabled_exclusions(sink.get("exclusions"))
        if name == DEFAULT:
            # The exclusions API edits "exclusions in the _Default sink"; whether they are the same list
            # as the sink's `exclusions[]` is [U]: both are applied, so either reading drops the entry.
            exclusions += project_exclusions
        bucket = node_bucket(state, cfg, str(sink.get("destination") or ""))
        routes.append(_Route(
            name=name, destination=str(sink.get("destination") or ""),
            match=compile_filter(filter_text) if filter_text else None,
            exclusions=tuple(compile_filter(text) for text in exclusions),
            stores_in_node=bucket is not None and bucket.get("lifecycleState", "ACTIVE") == "ACTIVE",
            is_default_shape=filter_text == DEFAULT_FILTER and not exclusions))
    return _Compiled(tuple(routes))


def route(state: SimState, entry: Mapping[str, Any]) -> bool:
    """Apply the node's routing to one entry: True when the node stores it (in one of its buckets).

    Entries a sink sends elsewhere are kept in `state.extras["logging_exports"]` (destination ->
    entries), where the other project would see them; the node's `entries.list` never does.
    `sample(insertId, f)` in a filter is the logquery module's deterministic hash sample, so the
    same entries are always the ones dropped. Call with `state.lock` held.
    """
    cfg = config(state)
    if cfg is None:
        return True   # a node without a logging section: everything is stored (the old behaviour)
    if cfg.compiled is None:
        cfg.compiled = _compile(state, cfg)
    log_id = log_id_of(entry)
    required = log_id in _REQUIRED_SET
    stored = required and bucket_name(state.project_id, "global", REQUIRED) in cfg.buckets
    for sink in cfg.compiled.routes:
        if sink.is_default_shape:
            if required:
                continue
        elif sink.match is not None and not sink.match.matches(entry):
            continue
        if any(exclusion.matches(entry) for exclusion in sink.exclusions):
            continue
        if sink.stores_in_node:
            stored = True
        else:
            state.extras.setdefault(EXPORTS_KEY, {}).setdefault(sink.destination, []).append(entry)
    return stored


# ------------------------------------------------------------------------------------------ building

def omit_defaults(body: Mapping[str, Any]) -> dict[str, Any]:
    """Logging answers proto3 JSON: a field at its default ('', false, 0, [], {}) is left out."""
    return {k: v for k, v in body.items() if v not in ("", False, 0, [], {}, None) or v is True}

def _timestamps(created: str) -> dict[str, str]:
    return {"createTime": created, "updateTime": created}


def default_buckets(state: SimState, created: str) -> dict[str, dict[str, Any]]:
    """`_Required` and `_Default`, both in `global`, as every project gets them."""
    buckets = {}
    for bucket_id, retention, description in ((REQUIRED, 400, "Audit bucket"), (DEFAULT, 30, "Default bucket")):
        name = bucket_name(state.project_id, "global", bucket_id)
        body: dict[str, Any] = {"name": name, "description": description, **_timestamps(created),
                                "retentionDays": retention, "lifecycleState": "ACTIVE"}
        if bucket_id == REQUIRED:
            body["locked"] = True
        buckets[name] = body
    return buckets


def default_sinks(state: SimState, created: str) -> dict[str, dict[str, Any]]:
    sinks = {}
    for sink_id, filter_text in ((REQUIRED, REQUIRED_FILTER), (DEFAULT, DEFAULT_FILTER)):
        sinks[sink_id] = {
            "name": sink_id,
            "destination": bucket_destination(state.project_id, "global", sink_id),
            "filter": filter_text,
            "writerIdentity": writer_identity(state.project_number),
            **_timestamps(created),
            "resourceName": f"projects/{state.project_id}/sinks/{sink_id}",
        }
    return sinks


def build(state: SimState, spec: Mapping[str, Any], created: str) -> LoggingConfig:
    """The configuration a node file's `logging:` section describes (see simulator/node.py).

    `buckets` (id -> {location, retentionDays, locked, description, lifecycleState}) adds user buckets
    (and may move `_Required`/`_Default`, as an organization's storageLocation setting does for new
    projects); `sinks` (id -> LogSink fields) patches `_Default` or adds user sinks; `exclusions`
    (id -> LogExclusion fields) are project exclusions.
    """
    cfg = LoggingConfig(sinks=default_sinks(state, created), buckets={})
    locations = {REQUIRED: "global", DEFAULT: "global"}
    bucket_specs: dict[str, Mapping[str, Any]] = {REQUIRED: {}, DEFAULT: {}}
    for bucket_id, body in (spec.get("buckets") or {}).items():
        bucket_specs[bucket_id] = body
        locations[bucket_id] = str(body.get("location") or "global")
    defaults = default_buckets(state, created)
    for bucket_id, body in bucket_specs.items():
        name = bucket_name(state.project_id, locations[bucket_id], bucket_id)
        base = defaults.get(bucket_name(state.project_id, "global", bucket_id)) or {
            "name": name, **_timestamps(created), "retentionDays": 30, "lifecycleState": "ACTIVE"}
        bucket = omit_defaults({**copy.deepcopy(base),
                                **{k: copy.deepcopy(v) for k, v in body.items() if k != "location"}})
        bucket["name"] = name
        cfg.buckets[name] = bucket
    if locations[REQUIRED] != "global" or locations[DEFAULT] != "global":
        for sink_id in (REQUIRED, DEFAULT):
            cfg.sinks[sink_id]["destination"] = bucket_destination(state.project_id, locations[sink_id], sink_id)
    for sink_id, body in (spec.get("sinks") or {}).items():
        base = cfg.sinks.get(sink_id) or {"name": sink_id, "writerIdentity": writer_identity(state.project_number),
                                          **_timestamps(created),
                                          "resourceName": f"projects/{state.project_id}/sinks/{sink_id}"}
        cfg.sinks[sink_id] = omit_defaults({**base, **copy.deepcopy(dict(body)), "name": sink_id})
    for exclusion_id, body in (spec.get("exclusions") or {}).items():
        cfg.exclusions[exclusion_id] = omit_defaults({"name": exclusion_id, **copy.deepcopy(dict(body)),
                                                      **_timestamps(created)})
    return cfg


def install(state: SimState, spec: Mapping[str, Any], created: str) -> LoggingConfig:
    cfg = build(state, spec, created)
    state.extras[CONFIG_KEY] = cfg
    return cfg
