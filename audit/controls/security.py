"""Security controls: no public IPs, dedicated identity, no egress (SEC-02 … SEC-06; SEC-01 in perimeter.py).

SEC-04 is an absence proof ("nothing was written outside the allow-list") and is only as good as
the data-access logs behind it: when SEC-05 finds them off, SEC-04 is ERROR, never PASS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sovaudit.audit.log_integrity import absence_proof_evidence, absence_proof_problems
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
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
from sovaudit.policies.pack import PolicyPack

NET_FRAMEWORKS = {"GDPR": ["Art. 32"], "HIPAA": ["164.312(e)(1)"], "NIST-800-53": ["SC-7", "AC-4"],
                  "ISO27001-2022": ["A.8.20", "A.8.22"]}


# SEC-01 (the perimeter, judged whole) lives in audit/controls/perimeter.py.


@control(
    id="SEC-02", pillar=Pillar.CONTROLS, severity=Severity.HIGH,
    title="Batch workers have no external IP",
    rationale="A worker with an external address can reach (and be reached from) the internet, bypassing the "
              "perimeter's network controls. Workers Batch has already deleted are judged on their "
              "compute.instances.insert audit entries.",
    remediation="Set allocationPolicy.network.networkInterfaces[].noExternalIpAddress=true, or remove "
                "accessConfigs from the instance template (gcloud compute instance-templates create ... "
                "--no-address); enforce with constraints/compute.vmExternalIpAccess",
    frameworks=NET_FRAMEWORKS,
    reads=["batch.job", "compute.instance_template", "compute.job_instances", "logging.instance_inserts"],
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


@control(
    id="SEC-03", pillar=Pillar.CONTROLS, severity=Severity.HIGH,
    title="The job and its VMs run as the node's dedicated service account",
    rationale="The default compute service account is shared by everything in the project and often holds "
              "Editor; the pipeline must run as its own narrowly-granted identity. Workers Batch has already "
              "deleted are judged on their compute.instances.insert audit entries.",
    remediation="Set allocationPolicy.serviceAccount.email (and the template's --service-account) to the "
                "node's service account; gcloud iam service-accounts create batch-runner ...",
    frameworks={"GDPR": ["Art. 32"], "HIPAA": ["164.312(a)(1)"], "NIST-800-53": ["AC-6", "AC-2"],
                "ISO27001-2022": ["A.5.15", "A.8.2"]},
    reads=["batch.job", "compute.instance_template", "compute.job_instances", "logging.instance_inserts",
           "resourcemanager.project"],
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


# ------------------------------------------------------------------------------------------------
# Audit logging and egress

_STORAGE_WRITES = ("storage.objects.create", "storage.objects.compose", "storage.objects.rewrite",
                   "storage.objects.copy")
_BUCKET_IN_NAME = re.compile(r"(?:^|/)buckets/([^/]+)")
_DATASET_IN_NAME = re.compile(r"projects/([^/]+)/datasets/([^/]+)")


def data_write_logging_problems(configs: IamAuditConfigs, pack: PolicyPack) -> list[str]:
    """Why storage/BigQuery data writes by the node would not be in the data-access log ([] when they would be)."""
    problems = []
    on, exempted = configs.logged("storage.googleapis.com", "DATA_WRITE")
    if not on:
        problems.append("storage.googleapis.com DATA_WRITE audit logs are not enabled")
    elif exempted:
        problems.append(f"storage.googleapis.com DATA_WRITE exempts {', '.join(exempted)}")
    # BigQuery data-access logs are on by default and cannot be switched off, but principals can be
    # exempted from them, which would hide the node's own writes.
    _, bq_exempted = configs.logged("bigquery.googleapis.com", "DATA_WRITE")
    if bq_exempted:
        problems.append(f"bigquery.googleapis.com DATA_WRITE exempts {', '.join(bq_exempted)}")
    return problems


@control(
    id="SEC-05", pillar=Pillar.CONTROLS, severity=Severity.HIGH,
    title="Data-access audit logs record storage and BigQuery writes and reads",
    rationale="Cloud Storage data-access logs are off by default; without DATA_WRITE logging nobody can show "
              "where objects were written, and SEC-04's proof of no egress is void; without DATA_READ logging "
              "(and with any exemption) nobody can show who read the genomes, and SEC-07's proof is void.",
    remediation="gcloud projects get-iam-policy P > p.yaml; add auditConfigs: [{service: storage.googleapis.com, "
                "auditLogConfigs: [{logType: DATA_WRITE}, {logType: DATA_READ}]}]; gcloud projects "
                "set-iam-policy P p.yaml  |  terraform: google_project_iam_audit_config",
    frameworks={"GDPR": ["Art. 30", "Art. 32"], "HIPAA": ["164.312(b)"], "NIST-800-53": ["AU-2", "AU-12"],
                "ISO27001-2022": ["A.8.15"]},
    reads=["resourcemanager.iam_policy"],
)
def data_access_logs_enabled(ctx: ControlContext) -> Iterator[Finding]:
    from sovaudit.audit.controls.reads import data_read_logging_problems

    configs = IamAuditConfigs.from_log(ctx.evidence)
    resource = f"projects/{ctx.policy.project}"
    # DATA_READ too: SEC-07's proof that only the pack's principals read the data rests on it.
    problems = data_write_logging_problems(configs, ctx.policy) + data_read_logging_problems(configs)
    if problems:
        yield Finding.fail(resource, "; ".join(problems), configs.evidence)
    else:
        yield Finding.ok(resource, "storage DATA_WRITE and DATA_READ logging is on with no exemptions; BigQuery "
                         "data-access logs are always on with no exemptions", configs.evidence)


def _written_bucket(entry: LogEntry) -> str:
    name = entry.resource_labels.get("bucket_name")
    if name:
        return name
    match = _BUCKET_IN_NAME.search(entry.resource_name)
    return match.group(1) if match else ""


def _bigquery_destinations(entry: LogEntry) -> list[tuple[str, str]]:
    """(project, dataset) pairs a BigQuery write names, from resourceName and the metadata."""
    texts = [entry.resource_name, str(entry.metadata)]
    found = []
    for text in texts:
        found += _DATASET_IN_NAME.findall(text)
    return list(dict.fromkeys(found))


def _is_bigquery_write(entry: LogEntry) -> bool:
    if entry.service_name != "bigquery.googleapis.com":
        return False
    method = entry.method_name.lower()
    meta = entry.metadata
    return (any(word in method for word in ("insertall", "appendrows", "tabledata", "insertjob", "jobs.insert"))
            or "tableDataChange" in meta or "jobInsertion" in meta)


@control(
    id="SEC-04", pillar=Pillar.CONTROLS, severity=Severity.CRITICAL,
    title="No data written outside the node's buckets and dataset during the run",
    rationale="Egress through Google APIs leaves a data-access entry: in the run's window every object create "
              "must target a bucket on the exact allow-list and every BigQuery write the node's dataset. Names "
              "are compared exactly: a foreign bucket whose name contains the node's prefix is foreign. Writes "
              "into another project's bucket are logged there; SEC-01's perimeter is what blocks those.",
    remediation="Find the writer in the listed entries (principalEmail), revoke its access to the foreign "
                "bucket, and tighten the perimeter's egress rules (SEC-01)",
    frameworks={"GDPR": ["Art. 44", "Art. 32"], "HIPAA": ["164.312(e)(1)"], "NIST-800-53": ["SC-7", "AC-4", "AU-6"],
                "ISO27001-2022": ["A.8.12", "A.5.14"]},
    reads=["logging.data_writes", "resourcemanager.iam_policy", "logging.sinks", "logging.exclusions",
           "logging.buckets", "logging.config_changes"],
    needs_job=True,
)
def no_egress(ctx: ControlContext) -> Iterator[Finding]:
    pack = ctx.policy
    configs = IamAuditConfigs.from_log(ctx.evidence)
    entries = log_entries(ctx.evidence, "logging.data_writes")
    log_ids = ctx.evidence.by_purpose("logging.data_writes").ids
    window = ctx.scope.window_text
    problems = data_write_logging_problems(configs, pack)
    allowed_buckets = set(pack.buckets.allowed)
    clean = 0
    for entry in entries:
        if entry.status.get("code"):
            continue  # the write was refused (e.g. by VPC-SC): nothing left the node; SEC-06 lists denials
        if entry.method_name in _STORAGE_WRITES:
            bucket = _written_bucket(entry)
            if not bucket:
                yield Finding.error(entry.ref, f"{entry.method_name} at {entry.timestamp} names no bucket",
                                    entry.evidence)
            elif bucket not in allowed_buckets:
                yield Finding.fail(f"projects/_/buckets/{bucket}", f"{entry.principal or 'someone'} wrote "
                                   f"{entry.resource_name} to bucket {bucket!r}, which is not on the allow-list "
                                   f"({', '.join(pack.buckets.allowed)}) at {entry.timestamp}", entry.evidence)
            else:
                clean += 1
        elif _is_bigquery_write(entry):
            destinations = _bigquery_destinations(entry)
            if not destinations:
                yield Finding.error(entry.ref, f"BigQuery write {entry.method_name} at {entry.timestamp} names no "
                                    "dataset", entry.evidence)
            for project, dataset in destinations:
                if (project, dataset) != (pack.project, pack.dataset):
                    yield Finding.fail(f"projects/{project}/datasets/{dataset}", f"{entry.principal or 'someone'} "
                                       f"wrote to dataset {project}.{dataset}, not {pack.project}.{pack.dataset}, at "
                                       f"{entry.timestamp}", entry.evidence)
                else:
                    clean += 1
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
        yield Finding.ok(f"projects/{pack.project}", f"{clean} logged writes in {window}, all to "
                         f"{', '.join(sorted(allowed_buckets))} or {pack.project}.{pack.dataset}",
                         configs.evidence + tuple(log_ids))


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
    entries = log_entries(ctx.evidence, "logging.policy_denied")
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

