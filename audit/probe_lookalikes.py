"""Probe-labelled resources the sweep kept: SOV-02 / SOV-03 FAIL on each (pure: evidence in, findings out).

The sweep (`audit/probes/cleanup.py`) lists probe-named, probe-labelled resources of other runs and
deletes only those whose Admin Activity create entry names the verifier. Whatever it listed and did not
try to delete is a resource in (or claiming to be a probe of) a forbidden region that this tool did not
create: someone made it look like a leftover, perhaps while the location policy was briefly relaxed.
It is kept as evidence and is a FAIL. The listings precede this run's own probes, so every labelled
resource in them belongs to another run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.models import Finding
from sovaudit.audit.probes import PROBE_LABEL, PROBE_PREFIX
from sovaudit.audit.probes.bigquery import DATASET_PREFIX
from sovaudit.audit.views import EvidenceIncomplete, LogEntry, location_in_name, log_entries

CREATES_PURPOSE = "cleanup.creates"


@dataclass(frozen=True)
class Lookalike:
    kind: str          # batch-job | bucket | dataset
    name: str          # as the delete call names it (the `probe.cleanup:` key minus its kind prefix)
    cleanup_key: str   # the `probe.cleanup:<key>` a sweep deletion records
    resource: str      # as Admin Activity names it
    location: str
    evidence: tuple[str, ...]


def creators_by_resource(entries: Iterable[LogEntry], resources: Iterable[str]) -> dict[str, set[str]]:
    """Principals of the successful create entries naming each resource exactly. Batch may log a job
    under the project id or number, so for jobs the `/locations/L/jobs/ID` tail is compared."""
    wanted = list(resources)
    found: dict[str, set[str]] = {}
    for entry in entries:
        if entry.status.get("code"):
            continue
        for resource in wanted:
            if entry.resource_name == resource or (
                    "/jobs/" in resource and "/locations/" in resource
                    and entry.resource_name.endswith(resource[resource.index("/locations/"):])):
                found.setdefault(resource, set()).add(entry.principal)
    return found


def _labelled(labels: Any) -> bool:
    return isinstance(labels, dict) and labels.get(PROBE_LABEL) is not None


def lookalikes(log: EvidenceLog) -> list[Lookalike]:
    """Every probe-named, probe-labelled resource the sweep's listings returned."""
    found: list[Lookalike] = []
    for purpose in log.purposes("cleanup.list:batch:"):
        for item in log.by_purpose(purpose).items:
            if not item.ok:
                continue
            for job in item.parsed.get("jobs") or ():
                name = str(job.get("name", ""))
                if _labelled(job.get("labels")) and name.rsplit("/", 1)[-1].startswith(PROBE_PREFIX):
                    found.append(Lookalike("batch-job", name, name, name, location_in_name(name), (item.id,)))
    for item in log.by_purpose("cleanup.list:buckets").items:
        if not item.ok:
            continue
        for bucket in item.parsed.get("items") or ():
            name = str(bucket.get("name", ""))
            if _labelled(bucket.get("labels")) and name.startswith(PROBE_PREFIX):
                found.append(Lookalike("bucket", name, f"buckets/{name}", f"projects/_/buckets/{name}",
                                       str(bucket.get("location", "")).lower(), (item.id,)))
    for item in log.by_purpose("cleanup.list:datasets").items:
        if not item.ok:
            continue
        for dataset in item.parsed.get("datasets") or ():
            ref = dataset.get("datasetReference") or {}
            project, dataset_id = str(ref.get("projectId", "")), str(ref.get("datasetId", ""))
            if _labelled(dataset.get("labels")) and dataset_id.startswith(DATASET_PREFIX):
                found.append(Lookalike("dataset", f"{project}.{dataset_id}", f"datasets/{project}.{dataset_id}",
                                       f"projects/{project}/datasets/{dataset_id}",
                                       str(dataset.get("location", "")).lower(), (item.id,)))
    return found


def kept_findings(log: EvidenceLog, kinds: tuple[str, ...]) -> Iterator[Finding]:
    """A FAIL for every listed probe look-alike of these kinds that the sweep did not delete."""
    candidates = [c for c in lookalikes(log) if c.kind in kinds]
    attempted = set(log.purposes("probe.cleanup:"))
    kept = [c for c in candidates if f"probe.cleanup:{c.cleanup_key}" not in attempted]
    if not kept:
        return
    creators: dict[str, set[str]] = {}
    creates_ids: tuple[str, ...] = ()
    if log.by_purpose(CREATES_PURPOSE).items:
        try:
            creators = creators_by_resource(log_entries(log, CREATES_PURPOSE), [c.resource for c in kept])
            creates_ids = tuple(log.by_purpose(CREATES_PURPOSE).ids)
        except EvidenceIncomplete as exc:
            creates_ids = exc.evidence_ids
    for candidate in kept:
        who = creators.get(candidate.resource)
        by = f"created by {', '.join(sorted(who))}" if who else "no Admin Activity create entry names its creator"
        yield Finding.fail(
            candidate.resource,
            f"{candidate.kind} {candidate.name} in {candidate.location or 'an unknown location'} carries the "
            f"{PROBE_LABEL} label but this tool did not create it ({by}): a resource outside the jurisdiction "
            "that nobody accounts for; kept as evidence, not swept",
            candidate.evidence + creates_ids)
