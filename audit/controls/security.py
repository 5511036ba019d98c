"""Security controls: no public IPs, dedicated identity, no egress (SEC-02 … SEC-06; SEC-01 in perimeter.py).

SEC-04 is an absence proof ("nothing was written outside the allow-list") and is only as good as
the data-access logs behind it: when SEC-05 finds them off, SEC-04 is ERROR, never PASS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sovaudit.audit import vm_history
from sovaudit.audit.collectors.logs import STORAGE_WRITE_METHODS
from sovaudit.audit.log_integrity import absence_proof_evidence, absence_proof_problems
from sovaudit.audit.models import ControlContext, Finding, Outcome, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import (
    BatchJob,
    IamAuditConfigs,
    InstanceTemplate,
    LogEntry,
    Project,
    log_entries,
    run_vms,
)
from sovaudit.audit.views_bigquery import (
    BigQueryJob,
    TableDataChange,
    TableName,
    bigquery_entries,
    gcs_bucket,
    is_bigquery,
)
from sovaudit.audit.views_staff_access import is_kms_use, is_transparency_entry
from sovaudit.policies.pack import PolicyPack

NET_FRAMEWORKS = {"GDPR": ["Art. 32"], "HIPAA": ["164.312(e)(1)"], "NIST-800-53": ["SC-7", "AC-4"],
                  "ISO27001-2022": ["A.8.20", "A.8.22"]}


# SEC-01 (the perimeter, judged whole) lives in audit/controls/perimeter.py.


@control(
    id="SEC-02", pillar=Pillar.CONTROLS, severity=Severity.HIGH,
    title="Batch workers have no external IP",
    rationale="A worker with an external address can reach (and be reached from) the internet, bypassing the "
              "perimeter's network controls. Workers Batch has already deleted are judged on their "
              "compute.instances.insert audit entries, and every worker on the window's Admin Activity: an "
              "address added (addAccessConfig, updateAccessConfig, updateNetworkInterface) or removed "
              "(deleteAccessConfig) during the run, or a NIC moved to another network, FAILs even when undone.",
    remediation="Set allocationPolicy.network.networkInterfaces[].noExternalIpAddress=true, or remove "
                "accessConfigs from the instance template (gcloud compute instance-templates create ... "
                "--no-address); enforce with constraints/compute.vmExternalIpAccess",
    frameworks=NET_FRAMEWORKS,
    reads=["batch.job", "compute.instance_template", "compute.job_instances", "logging.instance_inserts",
           "logging.network_changes"],
    needs_job=True,
)
def no_external_ip(ctx: ControlContext) -> Iterator[Finding]:
    job = BatchJob.from_log(ctx.evidence)
    if job.instance_template:
        # With a template, Batch takes the network from the template, not allocationPolicy.network.
        template = InstanceTemplate.from_log(ctx.evidence)
        external = [nic.get("name", f"nic{i}") for i, nic in enumerate(template.network_interfaces)
                    if nic.get("accessConfigs") or nic.get("ipv6AccessConfigs")]
        if external:
            yield Finding.fail(template.self_link or template.name, f"instance template {template.name} gives "
                               f"{', '.join(map(str, external))} an external access config", template.evidence)
        else:
            yield Finding.ok(template.self_link or template.name, f"instance template {template.name} has no "
                             "access config", template.evidence)
    else:
        nics = job.network_interfaces
        if not nics or not all(nic.get("noExternalIpAddress") is True for nic in nics):
            yield Finding.fail(job.name, "the job does not set noExternalIpAddress=true on every network "
                               "interface (Batch's default gives each VM an external IP)", job.evidence)
        else:
            yield Finding.ok(job.name, "the job sets noExternalIpAddress=true", job.evidence)
    run = run_vms(ctx.evidence, job.uid or ctx.scope.job_uid)
    if not run.vms:
        yield Finding.error(job.name, "no VMs labelled with the job's uid were found, nor any insert audit entry of "
                            "one; their addresses cannot be checked", run.listing_evidence)
        return
    for vm in run.vms:
        if vm.access_configs or vm.ipv6_access_configs:
            # An insert body names the access config; Google assigns natIP later unless one was asked for.
            addresses = [str(ac.get("natIP") or ac.get("externalIpv6") or ac.get("name") or ac.get("type")
                             or "access config") for ac in (*vm.access_configs, *vm.ipv6_access_configs)]
            yield Finding.fail(vm.resource, f"{vm.name} has an external address ({', '.join(addresses)})"
                               f"{vm.source_note}", vm.evidence)
        else:
            yield Finding.ok(vm.resource, f"{vm.name} has internal addresses only{vm.source_note}", vm.evidence)
    # What each VM was between its insert and now (or its deletion): the window's Admin Activity.
    history = vm_history.run_history(ctx.evidence, run)
    yield from vm_history.unreadable(history, run, "that they never had an external address")
    yield from vm_history.address_findings(history, run, str(ctx.policy.project), ctx.policy.network.network)


@control(
    id="SEC-03", pillar=Pillar.CONTROLS, severity=Severity.HIGH,
    title="The job and its VMs run as the node's dedicated service account",
    rationale="The default compute service account is shared by everything in the project and often holds "
              "Editor; the pipeline must run as its own narrowly-granted identity. Workers Batch has already "
              "deleted are judged on their compute.instances.insert audit entries, and a setServiceAccount "
              "(or update) to another identity during the run FAILs even when undone.",
    remediation="Set allocationPolicy.serviceAccount.email (and the template's --service-account) to the "
                "node's service account; gcloud iam service-accounts create batch-runner ...",
    frameworks={"GDPR": ["Art. 32"], "HIPAA": ["164.312(a)(1)"], "NIST-800-53": ["AC-6", "AC-2"],
                "ISO27001-2022": ["A.5.15", "A.8.2"]},
    reads=["batch.job", "compute.instance_template", "compute.job_instances", "logging.instance_inserts",
           "resourcemanager.project", "logging.network_changes"],
    needs_job=True,
)
def dedicated_service_account(ctx: ControlContext) -> Iterator[Finding]:
    expected = ctx.policy.service_account
    job = BatchJob.from_log(ctx.evidence)
    project = Project.from_log(ctx.evidence)
    default_sa = project.default_compute_service_account

    def judge(resource: str, what: str, emails: tuple[str, ...], evidence: tuple[str, ...]) -> Finding:
        if not emails:
            return Finding.fail(resource, f"{what} names no service account (Google then uses the default compute "
                                f"service account {default_sa})", evidence)
        wrong = [e for e in emails if e != expected]
        if wrong:
            label = " (the default compute service account)" if default_sa in wrong else ""
            return Finding.fail(resource, f"{what} runs as {', '.join(wrong)}{label}, not {expected}", evidence)
        return Finding.ok(resource, f"{what} runs as {expected}", evidence)

    yield judge(job.name, "the job", (job.service_account,) if job.service_account else (), job.evidence)
    if job.instance_template:
        template = InstanceTemplate.from_log(ctx.evidence)
        yield judge(template.self_link or template.name, f"instance template {template.name}",
                    template.service_accounts, template.evidence)
    run = run_vms(ctx.evidence, job.uid or ctx.scope.job_uid)
    if not run.vms:
        yield Finding.error(job.name, "no VMs labelled with the job's uid were found, nor any insert audit entry of "
                            "one; their identity cannot be checked", run.listing_evidence)
        return
    for vm in run.vms:
        yield judge(vm.resource, f"{vm.name}{vm.source_note}", vm.service_accounts, vm.evidence + project.evidence)
    history = vm_history.run_history(ctx.evidence, run)
    yield from vm_history.unreadable(history, run, f"that they ran as {expected} throughout")
    yield from vm_history.identity_findings(history, run, expected, default_sa)


# ------------------------------------------------------------------------------------------------
# Audit logging and egress

# Cloud Storage methods that put bytes into an object (a copy/rewrite names its destination); the
# `logging.data_writes` filter asks for exactly these.
STORAGE_WRITES = STORAGE_WRITE_METHODS
_BUCKET_IN_NAME = re.compile(r"^projects/_/buckets/([^/]+)(?:/objects/.*)?$")


@control(
    id="SEC-05", pillar=Pillar.CONTROLS, severity=Severity.HIGH,
    title="Data-access audit logs record storage and BigQuery writes and reads",
    rationale="Cloud Storage data-access logs are off by default; without DATA_WRITE logging nobody can show "
              "where objects were written, and SEC-04's proof of no egress is void; without DATA_READ logging "
              "(and with any exemption) nobody can show who read the genomes, and SEC-07's proof is void.",
    remediation="gcloud projects get-iam-policy P > p.yaml; add auditConfigs: [{service: storage.googleapis.com, "
                "auditLogConfigs: [{logType: DATA_WRITE}, {logType: DATA_READ}]}]; gcloud projects "
                "set-iam-policy P p.yaml; remove exemptedMembers set on the project's folders or organization "
                "(gcloud resource-manager folders get-iam-policy / organizations get-iam-policy)  |  terraform: "
                "google_project_iam_audit_config, google_folder_iam_audit_config, google_organization_iam_audit_config",
    frameworks={"GDPR": ["Art. 30", "Art. 32"], "HIPAA": ["164.312(b)"], "NIST-800-53": ["AU-2", "AU-12"],
                "ISO27001-2022": ["A.8.15"]},
    reads=["resourcemanager.iam_policy", "resourcemanager.project", "resourcemanager.folder",
           "resourcemanager.ancestor_iam"],
)
def data_access_logs_enabled(ctx: ControlContext) -> Iterator[Finding]:

    # The project's audit configs and every ancestor's, combined as Google combines them.
    configs = IamAuditConfigs.from_log(ctx.evidence)
    resource = f"projects/{ctx.policy.project}"
    # DATA_READ too: SEC-07's proof that only the pack's principals read the data rests on it.
    problems = configs.data_access_problems("DATA_WRITE") + configs.data_access_problems("DATA_READ")
    if problems:
        yield Finding.fail(resource, "; ".join(problems), configs.evidence)
    else:
        where = {t: ", ".join(configs.enabled_at("storage.googleapis.com", t)) for t in ("DATA_WRITE", "DATA_READ")}
        yield Finding.ok(resource, f"storage DATA_WRITE logging is on (set at {where['DATA_WRITE']}) and DATA_READ "
                         f"(set at {where['DATA_READ']}) with no exemptions at any level; BigQuery data-access logs "
                         "are always on with no exemptions", configs.evidence)


def _written_buckets(entry: LogEntry) -> tuple[str, ...]:
    """Every bucket a storage write entry names: the resource label and the resource name (for a
    copy or rewrite both name the destination; if they ever differ, both are judged)."""
    found = [entry.resource_labels.get("bucket_name", "")]
    match = _BUCKET_IN_NAME.match(entry.resource_name)
    found.append(match.group(1) if match else "")
    return tuple(dict.fromkeys(b for b in found if b))


# tableDataChange.reason (BigQueryAuditMetadata.TableDataChange.Reason).
_CHANGE_REASONS = frozenset({"REASON_UNSPECIFIED", "JOB", "QUERY", "MATERIALIZED_VIEW_REFRESH", "WRITE_API"})


class _EgressJudge:
    """The allow-list of one pack, applied to each kind of destination a write names."""

    def __init__(self, pack: PolicyPack) -> None:
        self.pack = pack
        self.buckets = frozenset(pack.buckets.allowed)

    def table_allowed(self, table: TableName) -> bool:
        if (table.project, table.dataset) == (self.pack.project, self.pack.dataset):
            return True
        # A query's anonymous result table: a hidden dataset (`_` + hash) of the job's own project.
        return table.project == self.pack.project and table.dataset.startswith("_") and \
            table.table.startswith("anon")

    def uri_problem(self, uri: str) -> str | None:
        bucket = gcs_bucket(uri)
        if bucket is None:
            return f"{uri!r} is not a Cloud Storage URI of the node"
        if bucket not in self.buckets:
            return f"bucket {bucket!r} is not on the allow-list ({', '.join(sorted(self.buckets))})"
        return None

    def job(self, job: BigQueryJob) -> Iterator[Finding]:
        who = job.principal or "someone"
        what = f"{job.job_type.lower()} job {job.job_name} ({job.method.rsplit('.', 1)[-1]}" + \
               (f", {job.statement_type}" if job.statement_type else "") + f") by {who} at {job.timestamp}"
        if job.error:
            # A failed job writes nothing (Google logs no tableDataChange for it); a VPC-SC refusal
            # is listed by SEC-06.
            yield Finding.ok(job.job_name, f"{what} failed ({job.error}): nothing was written", job.evidence)
            return
        for problem in job.problems:
            yield Finding.error(job.job_name, f"{what}: {problem}", job.evidence)
        for table in job.destination_tables:
            if self.table_allowed(table):
                yield Finding.ok(table.path, f"{what} wrote {table.dotted}", job.evidence)
            else:
                yield Finding.fail(table.path, f"{what} wrote table {table.dotted}, outside "
                                   f"{self.pack.project}.{self.pack.dataset}", job.evidence)
        for uri in job.destination_uris:
            problem = self.uri_problem(uri)
            if problem:
                yield Finding.fail(uri, f"{what} exported data to {uri}: {problem}", job.evidence)
            else:
                yield Finding.ok(uri, f"{what} exported to {uri}", job.evidence)
        for uri in job.source_uris:
            if self.uri_problem(uri):
                yield Finding.ok(uri, f"note: {what} imported {uri} from outside the node's buckets (an import, "
                                 "not egress)", job.evidence)
        if not (job.destination_tables or job.destination_uris or job.problems):
            yield Finding.ok(job.job_name, f"{what} wrote only its anonymous result or session tables",
                             job.evidence)

    def change(self, change: TableDataChange) -> Finding:
        what = f"tableDataChange ({change.reason}, job {change.job_name or 'none'}) by " \
               f"{change.principal or 'someone'} at {change.timestamp}"
        if change.reason not in _CHANGE_REASONS:
            return Finding.error(change.ref, f"{what}: reason {change.reason} is not a TableDataChange reason; "
                                 "the entry cannot be classified", change.evidence)
        if change.table is None:
            return Finding.error(change.ref, f"{what} names no table ({change.resource_name!r})", change.evidence)
        if not self.table_allowed(change.table):
            return Finding.fail(change.table.path, f"{what} changed table {change.table.dotted}, outside "
                                f"{self.pack.project}.{self.pack.dataset}", change.evidence)
        return Finding.ok(change.table.path, f"{what} changed {change.table.dotted}", change.evidence)

    def storage(self, entry: LogEntry) -> Iterator[Finding]:
        buckets = _written_buckets(entry)
        if not buckets:
            yield Finding.error(entry.ref, f"{entry.method_name} at {entry.timestamp} names no bucket",
                                entry.evidence)
        for bucket in buckets:
            if bucket in self.buckets:
                yield Finding.ok(f"projects/_/buckets/{bucket}", f"{entry.method_name} {entry.resource_name}",
                                 entry.evidence)
            else:
                yield Finding.fail(f"projects/_/buckets/{bucket}", f"{entry.principal or 'someone'} wrote "
                                   f"{entry.resource_name} to bucket {bucket!r} ({entry.method_name}), which is not "
                                   f"on the allow-list ({', '.join(self.pack.buckets.allowed)}) at {entry.timestamp}",
                                   entry.evidence)


@control(
    id="SEC-04", pillar=Pillar.CONTROLS, severity=Severity.CRITICAL,
    title="No data written outside the node's buckets and dataset during the run",
    rationale="Egress through Google APIs leaves a data-access entry: in the run's window every object create, "
              "copy, rewrite, compose or update must target a bucket on the exact allow-list, and every BigQuery "
              "job (by jobs.insert or jobs.query) may write only the node's dataset and export only to those "
              "buckets: query destination tables, DML and DDL targets and EXPORT DATA URIs read from the SQL "
              "text, copy and load destinations, extract destinationUris, and every tableDataChange. Names are "
              "compared exactly: a bucket whose name merely starts with the node's is foreign. A write that "
              "cannot be classified (a truncated or unreadable statement, dynamic SQL, an unknown event) is "
              "ERROR. Not visible here: writes Google does not audit-log (tabledata.insertAll streaming and "
              "Storage Write API appends) and writes into other projects' buckets when only their log records "
              "them; SEC-01's perimeter is what blocks those.",
    remediation="Find the writer in the listed entries (principalEmail), revoke its access to the foreign "
                "bucket or dataset (gcloud storage buckets remove-iam-policy-binding / bq update --source), and "
                "tighten the perimeter's egress rules (SEC-01; terraform google_access_context_manager_service_perimeter)",
    frameworks={"GDPR": ["Art. 44", "Art. 32"], "HIPAA": ["164.312(e)(1)"], "NIST-800-53": ["SC-7", "AC-4", "AU-6"],
                "ISO27001-2022": ["A.8.12", "A.5.14"]},
    reads=["logging.data_writes", "resourcemanager.iam_policy", "logging.sinks", "logging.exclusions",
           "logging.buckets", "logging.config_changes", "resourcemanager.folder", "resourcemanager.ancestor_iam"],
    needs_job=True,
)
def no_egress(ctx: ControlContext) -> Iterator[Finding]:
    pack = ctx.policy
    configs = IamAuditConfigs.from_log(ctx.evidence)
    # The same question returns SOV-08's KMS uses (audit/collectors/logs.py); they are not writes.
    entries = tuple(e for e in log_entries(ctx.evidence, "logging.data_writes") if not is_kms_use(e))
    log_ids = ctx.evidence.by_purpose("logging.data_writes").ids
    window = ctx.scope.window_text
    problems = configs.data_access_problems("DATA_WRITE")
    judge = _EgressJudge(pack)
    findings: list[Finding] = []
    for entry in entries:
        if entry.status.get("code"):
            continue  # the write was refused (e.g. by VPC-SC): nothing left the node; SEC-06 lists denials
        if entry.method_name in STORAGE_WRITES and entry.service_name in ("storage.googleapis.com", ""):
            findings.extend(judge.storage(entry))
        elif not is_bigquery(entry):
            findings.append(Finding.error(entry.ref, f"{entry.service_name} {entry.method_name} at {entry.timestamp} "
                                          "is not a write SEC-04 can classify", entry.evidence))
    # A failed job's jobChange carries a status: keep it, it is what tells the job wrote nothing.
    bigquery = bigquery_entries(entries)
    for job in bigquery.jobs:
        findings.extend(judge.job(job))
    findings.extend(judge.change(change) for change in bigquery.changes)
    for entry in bigquery.unclassified:
        findings.append(Finding.error(entry.ref, f"BigQuery {entry.method_name} at {entry.timestamp} "
                                      f"({', '.join(k for k in entry.metadata if k != '@type') or 'no metadata'}) "
                                      "is not a write SEC-04 can classify", entry.evidence))
    yield from (f for f in findings if f.outcome != Outcome.PASS)
    clean = sum(1 for f in findings if f.outcome == Outcome.PASS)
    log_problems = absence_proof_problems(ctx.evidence, pack)
    if log_problems:
        yield Finding.error(f"projects/{pack.project}", "the absence of egress cannot be proven: the node's log "
                            "may not hold every write: " + "; ".join(log_problems) + " (see SEC-08)",
                            absence_proof_evidence(ctx.evidence) + tuple(log_ids))
    if problems:
        yield Finding.error(f"projects/{pack.project}", "the absence of egress cannot be proven: "
                            + "; ".join(problems) + " (see SEC-05)", configs.evidence + tuple(log_ids))
    if problems or log_problems:
        return
    if not entries:
        yield Finding.error(f"projects/{pack.project}", f"no data writes at all were logged in the window {window}; "
                            "the run's own outputs should appear, so the log evidence is incomplete",
                            configs.evidence + tuple(log_ids))
    else:
        notes = [f.message for f in findings if f.outcome == Outcome.PASS and f.message.startswith("note: ")]
        yield Finding.ok(f"projects/{pack.project}", f"{clean} logged writes in {window}, all to "
                         f"{', '.join(sorted(judge.buckets))} or {pack.project}.{pack.dataset}"
                         + (f"; {'; '.join(notes)}" if notes else ""), configs.evidence + tuple(log_ids))


def _is_vpcsc_violation(entry: LogEntry) -> bool:
    meta_type = str(entry.metadata.get("@type", ""))
    if meta_type.endswith("VpcServiceControlAuditMetadata"):
        return True
    details = entry.status.get("details") or []
    return any(v.get("type") == "VPC_SERVICE_CONTROLS"
               for d in details if isinstance(d, dict) for v in d.get("violations") or [])


@control(
    id="SEC-06", pillar=Pillar.CONTROLS, severity=Severity.MEDIUM,
    title="No VPC Service Controls violations during the run",
    rationale="A VPC-SC denial means something inside (or outside) tried to move data across the perimeter; "
              "each one is listed so it can be explained. Policy Denied logs cannot be disabled, but they are "
              "stored through the _Default sink, which can be disabled or given an exclusion: their absence in "
              "the window is evidence only while SEC-08 shows they are stored (otherwise this control is ERROR).",
    remediation="Read each listed violation (violationReason, principal, resource) and fix the caller or, if "
                "legitimate, add a narrowly-scoped ingress/egress rule to the perimeter",
    frameworks={"GDPR": ["Art. 32", "Art. 33"], "HIPAA": ["164.308(a)(1)(ii)(D)"],
                "NIST-800-53": ["SC-7", "SI-4", "AU-6"], "ISO27001-2022": ["A.8.16"]},
    reads=["logging.policy_denied", "logging.sinks", "logging.exclusions", "logging.buckets",
           "logging.config_changes"],
    needs_job=True,
)
def no_perimeter_violations(ctx: ControlContext) -> Iterator[Finding]:
    # The same question returns SOV-07's Access Transparency entries; they are not denials.
    entries = [e for e in log_entries(ctx.evidence, "logging.policy_denied") if not is_transparency_entry(e)]
    log_ids = ctx.evidence.by_purpose("logging.policy_denied").ids
    violations = [e for e in entries if _is_vpcsc_violation(e)]
    for entry in violations:
        meta = entry.metadata
        perimeter = str((meta.get("securityPolicyInfo") or {}).get("servicePerimeterName", ""))
        mode = " (dry-run: the request was NOT blocked)" if meta.get("dryRun") else ""
        yield Finding.fail(perimeter or entry.ref,
                           f"VPC-SC violation{mode} at {entry.timestamp}: {entry.principal or 'unknown principal'} "
                           f"called {entry.method_name} on {', '.join(meta.get('resourceNames') or []) or entry.resource_name}"
                           f" ({meta.get('violationReason', 'no reason given')})", entry.evidence)
    log_problems = absence_proof_problems(ctx.evidence, ctx.policy)
    if log_problems:
        yield Finding.error(f"projects/{ctx.policy.project}", "the absence of VPC-SC violations cannot be proven: "
                            "Policy Denied entries may not be stored: " + "; ".join(log_problems) + " (see SEC-08)",
                            absence_proof_evidence(ctx.evidence) + tuple(log_ids))
    elif not violations:
        yield Finding.ok(f"projects/{ctx.policy.project}", f"no VPC-SC violations in the window "
                         f"{ctx.scope.window_text} ({len(entries)} other policy-denied entries)", tuple(log_ids))

