"""Whether the audit entries the absence proofs read are stored, in the node, in the jurisdiction.

SEC-04 (no egress), SEC-06 (no VPC-SC violations) and the reads control prove that something did
NOT happen by finding no Data Access / Policy Denied entry for it. That only means something if every
such entry was stored where the query looks. Neither log goes to `_Required`: both pass through the
`_Default` sink, which an insider with project rights can disable, re-point, or give an exclusion
(e.g. `LOG_ID("cloudaudit.googleapis.com/data_access")`); a project exclusion does the same. A user
sink can copy the node's entries to another project, and a log bucket can sit outside the
jurisdiction. `routing_problems` judges the recorded configuration; SEC-08 reports each problem as a
FAIL, and `absence_proof_problems` is what the absence proofs add to their ERROR finding while any
problem (or unreadable configuration) stands.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import EvidenceIncomplete, Project, log_entries
from sovaudit.audit.views_logging import DEFAULT, REQUIRED, Destination, LogBucket, LoggingConfig
from sovaudit.policies.pack import PolicyPack

# `_Default`'s documented filter: everything `_Required` does not store. Whether Google returns it as
# the sink's `filter` or leaves `filter` empty is [U]; both store every Data Access and Policy Denied
# entry, so both are accepted. Any other filter is a change an insider made.
_REQUIRED_LOG_IDS = (
    "cloudaudit.googleapis.com/activity", "externalaudit.googleapis.com/activity",
    "cloudaudit.googleapis.com/system_event", "externalaudit.googleapis.com/system_event",
    "cloudaudit.googleapis.com/access_transparency", "externalaudit.googleapis.com/access_transparency",
)
DEFAULT_SINK_FILTERS = frozenset({"", " AND ".join(f'NOT LOG_ID("{log_id}")' for log_id in _REQUIRED_LOG_IDS)})


@dataclass(frozen=True)
class RoutingProblem:
    """One reason the node's audit entries may not be stored, in the node, in the jurisdiction."""

    resource: str
    message: str
    evidence: tuple[str, ...]


def _normalized(text: str) -> str:
    return " ".join(text.split())


def node_project_ids(evidence: EvidenceLog, pack: PolicyPack) -> frozenset[str]:
    """The node's project id and, when the project was read, its number (destinations may use either)."""
    try:
        return frozenset({pack.project, Project.from_log(evidence).project_number})
    except EvidenceIncomplete:
        return frozenset({pack.project})


def _location_problem(bucket: LogBucket, pack: PolicyPack) -> str:
    routing = pack.logging
    if bucket.location in routing.allowed_locations:
        return ""
    if bucket.bucket_id == REQUIRED and routing.required_bucket_location and \
            bucket.location == routing.required_bucket_location:
        return ""
    where = ("global (Google does not say where such entries are stored)" if bucket.location == "global"
             else bucket.location)
    accepted = ", ".join(routing.allowed_locations) or "none"
    return f"log bucket {bucket.name} stores the node's entries in {where}, outside the allowed log " \
           f"locations ({accepted})"


def routing_problems(config: LoggingConfig, pack: PolicyPack, node_ids: frozenset[str]) -> list[RoutingProblem]:
    """Every problem of the node's log routing ([] when the absence proofs can rely on the log)."""
    problems: list[RoutingProblem] = []
    project = f"projects/{pack.project}"
    storing: dict[str, tuple[LogBucket, str]] = {}

    def destination_bucket(sink_name: str, destination: Destination, evidence: tuple[str, ...]) -> None:
        """A sink that stores entries must name an existing, active log bucket of the node."""
        resource = f"{project}/sinks/{sink_name}"
        if destination.kind != "log_bucket" or destination.project not in node_ids:
            owner = f" in project {destination.project}" if destination.project else ""
            problems.append(RoutingProblem(resource, f"sink {sink_name} routes the node's entries to "
                                           f"{destination.text or 'no destination'}{owner}, not to a log bucket "
                                           f"of {pack.project}", evidence))
            return
        bucket = config.bucket(destination.location, destination.bucket_id)
        if bucket is None:
            problems.append(RoutingProblem(resource, f"sink {sink_name} routes to {destination.text}, which is not "
                                           f"among the project's log buckets: its entries are not stored",
                                           evidence + config.evidence))
        elif bucket.lifecycle_state != "ACTIVE":
            problems.append(RoutingProblem(resource, f"sink {sink_name} routes to {bucket.name}, which is "
                                           f"{bucket.lifecycle_state}, not ACTIVE: its entries are not stored",
                                           evidence + bucket.evidence))
        else:
            storing.setdefault(bucket.name, (bucket, sink_name))

    required = config.sink(REQUIRED)
    if required is None:
        problems.append(RoutingProblem(f"{project}/sinks/{REQUIRED}", "the sink listing has no _Required sink, "
                                       "which every project has: the listing cannot be trusted", config.evidence))
    else:
        destination_bucket(REQUIRED, required.destination, required.evidence)

    default = config.sink(DEFAULT)
    if default is None:
        problems.append(RoutingProblem(f"{project}/sinks/{DEFAULT}", "the _Default sink is missing: Data Access "
                                       "and Policy Denied entries are not stored", config.evidence))
    elif default.disabled:
        problems.append(RoutingProblem(f"{project}/sinks/{DEFAULT}", "the _Default sink is disabled: Data Access "
                                       "and Policy Denied entries are not stored", default.evidence))
    else:
        if _normalized(default.filter) not in DEFAULT_SINK_FILTERS:
            problems.append(RoutingProblem(f"{project}/sinks/{DEFAULT}", f"the _Default sink's filter was changed "
                                           f"to {default.filter!r}: entries it no longer matches are not stored",
                                           default.evidence))
        destination_bucket(DEFAULT, default.destination, default.evidence)

    allowed = {(e.name, e.filter) for e in pack.logging.allowed_exclusions}
    exclusions = list(config.exclusions) + list(default.exclusions if default is not None else ())
    for exclusion in exclusions:
        if exclusion.disabled or (exclusion.name, exclusion.filter.strip()) in allowed:
            continue
        resource = f"{project}/exclusions/{exclusion.name}" if exclusion.where == "project exclusion" \
            else f"{project}/sinks/{DEFAULT}"
        problems.append(RoutingProblem(resource, f"{exclusion.where} {exclusion.name!r} drops every entry matching "
                                       f"{exclusion.filter!r} before it is stored, and the policy pack does not "
                                       "list it (name and filter): the log cannot prove the absence of what it "
                                       "excludes", exclusion.evidence))

    for sink in config.sinks:
        if sink.name in {REQUIRED, DEFAULT} or sink.disabled:
            continue
        # A user sink only adds copies: into a bucket of the node it must still respect the jurisdiction;
        # anywhere else the node's entries leave the node.
        destination_bucket(sink.name, sink.destination, sink.evidence)

    for bucket, sink_name in storing.values():
        message = _location_problem(bucket, pack)
        if message:
            problems.append(RoutingProblem(bucket.name, f"{message} (written by sink {sink_name})", bucket.evidence))
    return problems


CHANGES_PURPOSE = "logging.config_changes"


def routing_changes(evidence: EvidenceLog) -> list[RoutingProblem]:
    """Logging config mutations since the run began (Admin Activity, so never excluded).

    The configuration judged is today's; an exclusion in force during the run and deleted before
    verify would leave it clean while the run's entries are gone. Any mutation since the window's
    start is therefore a problem: the routing the run's entries went through is not the one shown.
    Raises EvidenceIncomplete when the history was not (completely) read.
    """
    problems = []
    for entry in log_entries(evidence, CHANGES_PURPOSE):
        method = entry.method_name.rsplit(".", 1)[-1]
        if entry.status.get("code") or method.startswith(("Get", "List")):
            continue   # refused, or a read: nothing changed
        changed = entry.request.get("exclusion") or entry.request.get("sink") or entry.request.get("bucket") or {}
        detail = f" (filter {changed['filter']!r})" if isinstance(changed, dict) and changed.get("filter") else ""
        problems.append(RoutingProblem(entry.resource_name or entry.ref,
                                       f"{entry.principal or 'someone'} called {method} on {entry.resource_name}"
                                       f"{detail} at {entry.timestamp}, during or after the run: the routing its "
                                       "entries went through is not the one judged now", entry.evidence))
    return problems


def absence_proof_problems(evidence: EvidenceLog, pack: PolicyPack) -> list[str]:
    """Why an absence proof read from the node's audit log cannot be trusted ([] when it can).

    Shared by SEC-04, SEC-06 and the reads control (all job controls, so the routing's change history
    since the run's start was collected): while SEC-08 fails, or the routing or its history could not
    be read, "no entry found" proves nothing and those controls are ERROR, never PASS.
    """
    try:
        config = LoggingConfig.from_log(evidence)
    except EvidenceIncomplete as exc:
        return [f"the log routing configuration could not be read ({exc.message})"]
    problems = [p.message for p in routing_problems(config, pack, node_project_ids(evidence, pack))]
    try:
        problems += [p.message for p in routing_changes(evidence)]
    except EvidenceIncomplete as exc:
        problems.append(f"the log routing's change history could not be read ({exc.message})")
    return problems


def absence_proof_evidence(evidence: EvidenceLog) -> tuple[str, ...]:
    """The routing evidence items, for the findings that cite it."""
    return tuple(item.id for purpose in ("logging.sinks", "logging.exclusions", "logging.buckets", CHANGES_PURPOSE)
                 for item in evidence.by_purpose(purpose).items)
