"""Typed views of the node's Cloud Logging routing configuration (sinks, exclusions, log buckets).

Parsed from the raw REST JSON of `logging.sinks`, `logging.exclusions` and `logging.buckets`
(logging.v2 LogSink, LogExclusion, LogBucket) so SEC-08 and the absence proofs that depend on it
judge the same thing online and offline. A listing that failed or stopped early raises
EvidenceIncomplete, which evaluation turns into ERROR.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import PURPOSE_API, complete_items

LOGGING_PURPOSES = {
    "logging.sinks": "logging projects.sinks.list",
    "logging.exclusions": "logging projects.exclusions.list",
    "logging.buckets": "logging projects.locations.buckets.list",
    "logging.config_changes": "logging entries.list",
}
# Registered here, not in views.py, so each evidence family keeps its names beside its views.
PURPOSE_API.update(LOGGING_PURPOSES)

REQUIRED = "_Required"
DEFAULT = "_Default"
_BUCKET_DESTINATION = re.compile(r"logging\.googleapis\.com/projects/([^/]+)/locations/([^/]+)/buckets/([^/]+)")
_BUCKET_NAME = re.compile(r"projects/([^/]+)/locations/([^/]+)/buckets/([^/]+)")
_PROJECT_DESTINATION = re.compile(r"logging\.googleapis\.com/projects/([^/]+)")


@dataclass(frozen=True)
class LogExclusion:
    name: str
    filter: str
    disabled: bool
    where: str          # "project exclusion" or "exclusion on sink _Default"
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str, evidence: tuple[str, ...]) -> LogExclusion:
        return cls(str(data.get("name", "")), str(data.get("filter", "")), data.get("disabled") is True, where,
                   evidence)


@dataclass(frozen=True)
class Destination:
    """Where a sink sends entries. `kind`: log_bucket, log_project, storage, bigquery, pubsub or unknown."""

    text: str
    kind: str
    project: str = ""       # the project a log bucket / log project / dataset / topic lives in ('' for GCS)
    location: str = ""      # a log bucket's location
    bucket_id: str = ""     # a log bucket's id

    @classmethod
    def parse(cls, text: str) -> Destination:
        bucket = _BUCKET_DESTINATION.fullmatch(text)
        if bucket:
            return cls(text, "log_bucket", bucket.group(1), bucket.group(2), bucket.group(3))
        project = _PROJECT_DESTINATION.fullmatch(text)
        if project:
            return cls(text, "log_project", project.group(1))
        for prefix, kind in (("storage.googleapis.com/", "storage"), ("bigquery.googleapis.com/", "bigquery"),
                             ("pubsub.googleapis.com/", "pubsub")):
            if text.startswith(prefix):
                owner = re.match(r"projects/([^/]+)", text[len(prefix):])
                return cls(text, kind, owner.group(1) if owner else "")
        return cls(text, "unknown")


@dataclass(frozen=True)
class LogSink:
    name: str
    destination: Destination
    filter: str
    disabled: bool
    exclusions: tuple[LogExclusion, ...]
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], evidence: tuple[str, ...]) -> LogSink:
        name = str(data.get("name", ""))
        exclusions = tuple(LogExclusion.parse(e, f"exclusion on sink {name}", evidence)
                           for e in data.get("exclusions") or () if isinstance(e, Mapping))
        return cls(name, Destination.parse(str(data.get("destination", ""))), str(data.get("filter", "")),
                   data.get("disabled") is True, exclusions, evidence)


@dataclass(frozen=True)
class LogBucket:
    name: str
    project: str
    location: str
    bucket_id: str
    lifecycle_state: str
    retention_days: int | None
    locked: bool
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], evidence: tuple[str, ...]) -> LogBucket:
        name = str(data.get("name", ""))
        match = _BUCKET_NAME.fullmatch(name)
        project, location, bucket_id = match.groups() if match else ("", "", "")
        retention = data.get("retentionDays")
        return cls(name, project, location, bucket_id,
                   # An omitted lifecycleState is read as unknown, never as ACTIVE.
                   str(data.get("lifecycleState") or "LIFECYCLE_STATE_UNSPECIFIED"),
                   retention if isinstance(retention, int) and not isinstance(retention, bool) else None,
                   data.get("locked") is True, evidence)


@dataclass(frozen=True)
class LoggingConfig:
    """The project's sinks, project exclusions and log buckets, each from its complete listing."""

    sinks: tuple[LogSink, ...]
    exclusions: tuple[LogExclusion, ...]
    buckets: tuple[LogBucket, ...]
    evidence: tuple[str, ...]

    def sink(self, name: str) -> LogSink | None:
        return next((s for s in self.sinks if s.name == name), None)

    def bucket(self, location: str, bucket_id: str) -> LogBucket | None:
        return next((b for b in self.buckets if (b.location, b.bucket_id) == (location, bucket_id)), None)

    @classmethod
    def from_log(cls, log: EvidenceLog) -> LoggingConfig:
        sinks: list[LogSink] = []
        exclusions: list[LogExclusion] = []
        buckets: list[LogBucket] = []
        ids: list[str] = []
        for purpose, field_name in (("logging.sinks", "sinks"), ("logging.exclusions", "exclusions"),
                                    ("logging.buckets", "buckets")):
            for item in complete_items(log, purpose):
                ids.append(item.id)
                for data in item.parsed.get(field_name) or ():
                    if not isinstance(data, Mapping):
                        continue
                    if field_name == "sinks":
                        sinks.append(LogSink.parse(data, (item.id,)))
                    elif field_name == "exclusions":
                        exclusions.append(LogExclusion.parse(data, "project exclusion", (item.id,)))
                    else:
                        buckets.append(LogBucket.parse(data, (item.id,)))
        return cls(tuple(sinks), tuple(exclusions), tuple(buckets), tuple(ids))
