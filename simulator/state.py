"""The live state of one simulated sovereign node.

Every collection holds resources as the REST JSON Google would return (camelCase, unset fields
omitted), so handlers serve them as they are. One re-entrant lock guards everything: the simulator
serves a handful of concurrent clients, and correctness beats lock granularity here.
Each API module owns its collections; cross-API effects (audit entries, org-policy checks) go
through `audit_log` and `enforcement`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StoredObject:
    """A Cloud Storage object: its REST metadata and its bytes."""

    metadata: dict[str, Any]
    data: bytes


@dataclass
class SimState:
    # Node identity (from the node file).
    project_id: str
    project_number: str
    organization: str
    region: str
    zones: list[str]
    node: dict[str, Any] = field(default_factory=dict)       # the merged node file (after scenarios)
    scenarios: list[str] = field(default_factory=list)

    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    stats: Counter[str] = field(default_factory=Counter)       # api -> request count
    # Runtime behaviour: "batch_refusal" ("submit" | "fail"), "job_tasks", "faults" ([{api, status,
    # message?, methods?}]), "latency" ({api: milliseconds}), "max_page_size", "node_file".
    options: dict[str, Any] = field(default_factory=dict)
    # Batch: the callable that runs one task (see docs/architecture.md); None = the default runner.
    task_runner: Callable[[Any], Any] | None = None

    # Org Policy: constraint name (e.g. "gcp.resourceLocations") -> Policy JSON set on the project.
    org_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Resource Manager: the project JSON and its IAM policy (with auditConfigs).
    project: dict[str, Any] = field(default_factory=dict)
    iam_policy: dict[str, Any] = field(default_factory=dict)
    # Access Context Manager: policy name -> AccessPolicy JSON; perimeter name -> ServicePerimeter JSON.
    access_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    perimeters: dict[str, dict[str, Any]] = field(default_factory=dict)
    # KMS: full cryptoKey name -> CryptoKey JSON.
    crypto_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Compute: (zone, name) -> Instance JSON; template name -> InstanceTemplate JSON; op name -> Operation.
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    instance_templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Batch: full job name -> Job JSON.
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Cloud Storage: bucket name -> Bucket JSON; (bucket, object) -> StoredObject.
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    # BigQuery: dataset id -> Dataset JSON; (dataset, table) -> Table JSON; job id -> Job JSON.
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    bq_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Cloud Logging: every entry, in insertion order (LogEntry REST JSON).
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    # Free-form per-API extras (e.g. the BigQuery DuckDB store), keyed by API name.
    extras: dict[str, Any] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        """Monotonic numeric ids, as Google's resources carry (instance ids, operation ids...)."""
        with self.lock:
            counter = self.extras.setdefault("_ids", Counter())
            counter[kind] += 1
            return int(counter[kind])
