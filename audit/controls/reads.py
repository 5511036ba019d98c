"""SEC-07: during the run, only the pack's principals read the node's objects and tables.

A read leaves a DATA_READ entry: `storage.objects.get`/`list` for Cloud Storage (only when the
project's audit config enables storage DATA_READ) and a `tableDataRead` event for BigQuery (on by
default). The control is an absence proof like SEC-04: it is ERROR, never PASS, when read logging is
off or exempts someone, when the log could not be read, and when the window holds no read at all
although the job read its inputs in it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sovaudit.audit.log_integrity import absence_proof_evidence, absence_proof_problems
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import EvidenceIncomplete, IamAuditConfigs, LogEntry, log_entries
from sovaudit.policies.pack import PolicyPack

PURPOSE = "logging.data_reads"
EXAMPLES_PER_PRINCIPAL = 3


@dataclass(frozen=True)
class Read:
    """One read in the window: who, what, when."""

    principal: str
    what: str
    timestamp: str
    evidence: tuple[str, ...]


def _is_read(entry: LogEntry) -> bool:
    if entry.status.get("code"):
        return False  # refused (IAM, VPC-SC): nothing was read; SEC-06 lists perimeter denials
    if entry.service_name == "storage.googleapis.com":
        return entry.method_name in ("storage.objects.get", "storage.objects.list")
    return entry.service_name == "bigquery.googleapis.com" and "tableDataRead" in entry.metadata


def _member_emails(readers: Sequence[str]) -> frozenset[str]:
    """The principal emails the pack's readers stand for. A log entry names a person or a service
    account, never a group, so `group:` readers match only an entry whose principal is that group."""
    return frozenset(member.partition(":")[2] for member in readers if ":" in member)


def window_reads(entries: Sequence[LogEntry]) -> list[Read]:
    return [Read(entry.principal, entry.resource_name, entry.timestamp, entry.evidence)
            for entry in entries if _is_read(entry)]





@control(
    id="SEC-07", pillar=Pillar.CONTROLS, severity=Severity.CRITICAL,
    title="Only the pack's principals read the node's objects and tables during the run",
    rationale="Reading a genome is enough to take it out of the jurisdiction: a principal outside the node who "
              "reads the VCFs or the variants table has copied them, whatever the perimeter says about writes. "
              "Every object read (Cloud Storage DATA_READ) and every table read (BigQuery tableDataRead) in the "
              "run's window must come from a principal on the pack's exact readers list. Absence of other "
              "readers is only proven when read logging is on with no exemptions and the run's own reads "
              "appear in the window.",
    remediation="Remove the reader's bindings (gcloud storage buckets remove-iam-policy-binding gs://BUCKET "
                "--member=MEMBER --role=ROLE; drop its dataset access[] entry), and enable storage DATA_READ "
                "audit logs with no exemptions  |  terraform: google_project_iam_audit_config "
                "{service = \"storage.googleapis.com\", audit_log_config {log_type = \"DATA_READ\"}}",
    frameworks={"GDPR": ["Art. 32", "Art. 44"], "HIPAA": ["164.312(b)", "164.312(a)(1)"],
                "NIST-800-53": ["AC-3", "AC-6", "AU-2", "AU-6"], "ISO27001-2022": ["A.5.15", "A.8.3", "A.8.15"]},
    reads=[PURPOSE, "resourcemanager.iam_policy", "resourcemanager.folder", "resourcemanager.ancestor_iam"],
    needs_job=True,
)
def only_pack_readers(ctx: ControlContext) -> Iterator[Finding]:
    pack: PolicyPack = ctx.policy
    resource = f"projects/{pack.project}"
    window = ctx.scope.window_text
    log_ids = tuple(ctx.evidence.by_purpose(PURPOSE).ids)
    if pack.readers is None:
        yield Finding.error(resource, "the policy pack lists no readers, so no read can be judged allowed or "
                            "not; add readers: [serviceAccount:...] to the pack", ())
        return
    try:
        configs = IamAuditConfigs.from_log(ctx.evidence)
    except EvidenceIncomplete as exc:
        yield Finding.error(resource, f"whether reads are logged cannot be shown: {exc.message}", exc.evidence_ids)
        return
    try:
        reads = window_reads(log_entries(ctx.evidence, PURPOSE))
    except EvidenceIncomplete as exc:
        yield Finding.error(resource, f"the window's reads could not be read: {exc.message}",
                            configs.evidence + exc.evidence_ids)
        return
    allowed = _member_emails(pack.readers)
    outsiders: dict[str, list[Read]] = defaultdict(list)
    for read in reads:
        if read.principal not in allowed:
            outsiders[read.principal or "an unnamed principal"].append(read)
    for principal, found in sorted(outsiders.items()):
        examples = ", ".join(f"{r.what} at {r.timestamp}" for r in found[:EXAMPLES_PER_PRINCIPAL])
        more = f" and {len(found) - EXAMPLES_PER_PRINCIPAL} more" if len(found) > EXAMPLES_PER_PRINCIPAL else ""
        objects = len({r.what for r in found})
        yield Finding.fail(resource, f"{principal} is not among the pack's readers and read {len(found)} time(s), "
                           f"{objects} distinct object(s)/table(s), in {window}: {examples}{more}",
                           tuple(dict.fromkeys(i for r in found for i in r.evidence)))
    problems = configs.data_access_problems("DATA_READ")
    routing = absence_proof_problems(ctx.evidence, ctx.policy)
    if problems or routing:
        see = " and ".join(c for c, found in (("SEC-05", problems), ("SEC-08", routing)) if found)
        yield Finding.error(resource, "that nobody else read the node's data cannot be proven: "
                            + "; ".join(problems + routing) + f" (see {see})",
                            configs.evidence + log_ids + (absence_proof_evidence(ctx.evidence) if routing else ()))
    elif not reads:
        yield Finding.error(resource, f"no reads at all were logged in the window {window}; the run's own reads of "
                            "its inputs should appear, so the read log is incomplete", configs.evidence + log_ids)
    elif not outsiders:
        principals = ", ".join(sorted({r.principal for r in reads}))
        yield Finding.ok(resource, f"{len(reads)} logged reads in {window}, all by the pack's readers ({principals})",
                         configs.evidence + log_ids)
