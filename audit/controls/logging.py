"""Log integrity (SEC-08): the audit entries the absence proofs rely on are stored, in the node, in
the jurisdiction.

SEC-04, SEC-06 and the reads control conclude "nothing happened" from an empty answer of the node's
audit log. SEC-08 checks the routing that decides what that log holds; while it fails, those
controls are ERROR (see `sovaudit.audit.log_integrity.absence_proof_problems`).
"""

from __future__ import annotations

from collections.abc import Iterator

from sovaudit.audit.log_integrity import CHANGES_PURPOSE, routing_changes, routing_problems
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import Project
from sovaudit.audit.views_logging import DEFAULT, LoggingConfig


@control(
    id="SEC-08", pillar=Pillar.CONTROLS, severity=Severity.CRITICAL,
    title="The audit entries the absence proofs rely on are stored, in the node, in the jurisdiction",
    rationale="Data Access and Policy Denied entries are not kept by the unchangeable _Required sink: they pass "
              "through _Default, which anyone with project rights can disable, re-point or give an exclusion "
              "(a project exclusion does the same). An excluded entry is never stored, so SEC-04 and SEC-06 "
              "would pass on an empty log. A sink can also copy the node's entries to another project, and a "
              "log bucket can sit outside the jurisdiction. Every enabled exclusion must be listed in the pack by "
              "exact name and filter, even a narrow one: the log cannot prove the absence of what it excludes.",
    remediation="gcloud logging sinks update _Default --log-filter='...' (restore) / gcloud logging sinks "
                "update _Default logging.googleapis.com/projects/P/locations/REGION/buckets/B; "
                "gcloud logging sinks update _Default --remove-exclusions=NAME; gcloud logging sinks delete "
                "SINK (foreign destination); gcloud logging buckets create B --location=REGION  |  terraform: "
                "google_logging_project_bucket_config, google_logging_project_sink, "
                "google_logging_project_exclusion",
    frameworks={"GDPR": ["Art. 30", "Art. 32", "Art. 44"], "HIPAA": ["164.312(b)", "164.312(c)(1)"],
                "NIST-800-53": ["AU-9", "AU-4", "AU-11", "AU-12"], "ISO27001-2022": ["A.8.15", "A.5.33"]},
    reads=["logging.sinks", "logging.exclusions", "logging.buckets", "logging.config_changes",
           "resourcemanager.project"],
)
def log_integrity(ctx: ControlContext) -> Iterator[Finding]:
    config = LoggingConfig.from_log(ctx.evidence)
    # Destinations may name the node by project number; without the project read, such a destination
    # would look foreign, so the control is ERROR rather than a FAIL it cannot stand behind.
    project = Project.from_log(ctx.evidence)
    problems = routing_problems(config, ctx.policy, frozenset({ctx.policy.project, project.project_number}))
    history = ""
    if ctx.scope.window_start is not None and not ctx.scope.posture_only:
        # A run is in scope: the routing must also not have changed since it began (or it may have
        # been different while the run's entries were recorded). Unreadable history is ERROR.
        problems += routing_changes(ctx.evidence)
        history = f"; no routing change since {ctx.scope.window_start.isoformat()}"
    for problem in problems:
        yield Finding.fail(problem.resource, problem.message, problem.evidence)
    if not problems:
        default = config.sink(DEFAULT)
        where = default.destination.text if default is not None else "?"
        listed = len([e for e in config.exclusions if not e.disabled])
        yield Finding.ok(f"projects/{ctx.policy.project}", f"_Default is enabled and stores into {where}; "
                         f"{len(config.sinks)} sinks, {listed} enabled project exclusions (all listed in the pack); "
                         f"every bucket storing the node's entries is in "
                         f"{', '.join(ctx.policy.logging.allowed_locations)}"
                         + (f" (or _Required in {ctx.policy.logging.required_bucket_location})"
                            if ctx.policy.logging.required_bucket_location else "") + history,
                         config.evidence + tuple(ctx.evidence.by_purpose(CHANGES_PURPOSE).ids))
