"""Confidential computing: the workers ran as AMD SEV Confidential VMs (CC-01 … CC-03).

Batch v1 has no confidential-compute field on the instance policy (reference §3): the only way to
get Confidential VMs is an instance template carrying `confidentialInstanceConfig`. A job spec
that writes the field on `instances[0].policy` looks confidential and is not — CC-01 says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sovaudit.audit import vm_history
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import (
    BatchJob,
    ConfidentialConfig,
    InstanceTemplate,
    is_instance_insert_with_body,
    last_segment,
    log_entries,
    run_vms,
)

CC_FRAMEWORKS = {"GDPR": ["Art. 32"], "HIPAA": ["164.312(a)(2)(iv)"], "NIST-800-53": ["SC-39", "SC-28"],
                 "ISO27001-2022": ["A.8.24", "A.8.26"]}


def _confidential_keys(value: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "confidential" in str(key).lower():
                found.append(here)
            found += _confidential_keys(inner, here)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _confidential_keys(inner, f"{path}[{index}]")
    return found


def _type_problem(config: ConfidentialConfig, required: str) -> str:
    if not config.enabled:
        return "confidential compute is not enabled"
    if config.effective_type != required:
        return f"confidential type is {config.effective_type}, the policy requires {required}"
    return ""


@control(
    id="CC-01", pillar=Pillar.CONFIDENTIAL, severity=Severity.CRITICAL,
    title="The job's VMs come from a Confidential VM instance template",
    rationale="Batch v1 creates Confidential VMs only from an instance template with "
              "confidentialInstanceConfig.enableConfidentialCompute; a confidential field on the job's instance "
              "policy is silently ignored and the workers run unencrypted in memory.",
    remediation="gcloud compute instance-templates create sev-n2d-batch --machine-type=n2d-standard-4 "
                "--confidential-compute-type=SEV --maintenance-policy=TERMINATE --no-address ...; then set "
                "allocationPolicy.instances[0].instanceTemplate in the job (`sovaudit pipeline plan`)",
    frameworks=CC_FRAMEWORKS,
    reads=["batch.job", "compute.instance_template"],
    needs_job=True,
)
def job_uses_confidential_template(ctx: ControlContext) -> Iterator[Finding]:
    job = BatchJob.from_log(ctx.evidence)
    required = ctx.policy.confidential.required_type
    if job.instance_template is None:
        misplaced = _confidential_keys(job.instance_policy or {}, "allocationPolicy.instances[0].policy")
        if misplaced:
            yield Finding.fail(job.name, f"the job sets {', '.join(misplaced)}, but Batch v1 has no confidential "
                               "field on the instance policy and ignores it: these VMs are NOT confidential; use "
                               "an instance template", job.evidence)
        else:
            yield Finding.fail(job.name, "the job uses an instance policy, not an instance template: Batch v1 can "
                               "only create Confidential VMs from a template", job.evidence)
        return
    template = InstanceTemplate.from_log(ctx.evidence)
    evidence = job.evidence + template.evidence
    if template.name != last_segment(job.instance_template):
        yield Finding.error(job.instance_template, f"the collected template is {template.name!r}, not the "
                            f"{job.instance_template!r} the job names", evidence)
        return
    problem = _type_problem(template.confidential, required)
    series = template.machine_type.split("-", 1)[0].lower()
    if not problem and series not in ctx.policy.confidential.machine_series:
        problem = (f"machine type {template.machine_type} is not in a series that supports {required} "
                   f"({', '.join(ctx.policy.confidential.machine_series)})")
    resource = template.self_link or job.instance_template
    if problem:
        yield Finding.fail(resource, f"instance template {template.name}: {problem}", evidence)
    else:
        yield Finding.ok(resource, f"the job uses instance template {template.name} with confidential compute "
                         f"{template.confidential.effective_type} on {template.machine_type}", evidence)


@control(
    id="CC-02", pillar=Pillar.CONFIDENTIAL, severity=Severity.CRITICAL,
    title="Every VM of the run is a Confidential VM of the required type",
    rationale="The template is the intent; the VMs are the fact. Each worker labelled with the job's uid must "
              "have confidential compute enabled with the required technology on an AMD series that supports it. "
              "Workers Batch has already deleted are judged on their compute.instances.insert audit entries; a "
              "setMachineType or update during the run that left a worker non-confidential FAILs even when undone.",
    remediation="Recreate the template with --confidential-compute-type=SEV on n2d/c2d/c3d and rerun the job; "
                "enforce with org policy constraints/compute.restrictNonConfidentialComputing",
    frameworks=CC_FRAMEWORKS,
    reads=["compute.job_instances", "logging.instance_inserts", "logging.network_changes"],
    needs_job=True,
)
def vms_are_confidential(ctx: ControlContext) -> Iterator[Finding]:
    conf = ctx.policy.confidential
    run = run_vms(ctx.evidence, ctx.scope.job_uid)
    if not run.vms:
        yield Finding.error(ctx.scope.job or "job", f"no VMs labelled batch-job-uid={ctx.scope.job_uid} were found, "
                            "nor any insert audit entry of one; that the workers were confidential cannot be shown",
                            run.listing_evidence)
        return
    for vm in run.vms:
        problem = _type_problem(vm.confidential, conf.required_type)
        if not problem and vm.machine_series not in conf.machine_series:
            problem = (f"machine type {vm.machine_type} is not in a series that supports {conf.required_type} "
                       f"({', '.join(conf.machine_series)})")
        if problem:
            yield Finding.fail(vm.resource, f"{vm.name}: {problem}{vm.source_note}", vm.evidence)
        else:
            yield Finding.ok(vm.resource, f"{vm.name}: {vm.confidential.effective_type} on {vm.machine_type}"
                             f"{vm.source_note}", vm.evidence)
    history = vm_history.run_history(ctx.evidence, run)
    yield from vm_history.unreadable(history, run, "that they stayed confidential")
    yield from vm_history.confidential_findings(history, run, conf.required_type, tuple(conf.machine_series))


@control(
    id="CC-03", pillar=Pillar.CONFIDENTIAL, severity=Severity.HIGH,
    title="Audit logs record every VM insert of the run as confidential",
    rationale="Admin Activity logs cannot be disabled and outlive the VMs: each compute.instances.insert of the "
              "run must carry confidentialInstanceConfig, and the logs must account for exactly the VMs found. "
              "A relabel that moves a worker out of the job's batch-job-uid scope during the run FAILs (the VM "
              "stays one of the run's), and a change to a worker that no control classifies is ERROR.",
    remediation="Investigate any VM inserted without confidential compute; keep Admin Activity logs (always on) "
                "and route them to a locked bucket: gcloud logging buckets update _Required --locked",
    frameworks={"GDPR": ["Art. 32"], "HIPAA": ["164.312(b)"], "NIST-800-53": ["AU-2", "AU-12", "SC-39"],
                "ISO27001-2022": ["A.8.15", "A.8.24"]},
    reads=["logging.instance_inserts", "compute.job_instances", "logging.network_changes"],
    needs_job=True,
)
def inserts_logged_confidential(ctx: ControlContext) -> Iterator[Finding]:
    required = ctx.policy.confidential.required_type
    uid = ctx.scope.job_uid
    entries = log_entries(ctx.evidence, "logging.instance_inserts")
    run = run_vms(ctx.evidence, uid)
    inserts = []
    for entry in entries:
        if not is_instance_insert_with_body(entry):
            continue
        labels = entry.request.get("labels") or {}
        if uid and "batch-job-uid" in labels and labels["batch-job-uid"] != uid:
            continue  # another job's VM that the query window happened to include
        inserts.append(entry)
    log_ids = ctx.evidence.by_purpose("logging.instance_inserts").ids
    if not inserts:
        yield Finding.error(ctx.scope.job or "job", "no compute.instances.insert entries with a request body were "
                            "found for the job's VMs in its window; the audit trail cannot be checked", log_ids)
        return
    logged_names = set()
    for entry in inserts:
        name = str(entry.request.get("name") or last_segment(entry.resource_name))
        logged_names.add(name)
        problem = _type_problem(ConfidentialConfig.parse(entry.request.get("confidentialInstanceConfig")), required)
        resource = entry.resource_name or name
        if problem:
            yield Finding.fail(resource, f"insert of {name} at {entry.timestamp}: {problem}", entry.evidence)
        else:
            yield Finding.ok(resource, f"insert of {name} at {entry.timestamp} records confidential compute",
                             entry.evidence)
    if not run.vms:
        yield Finding.error(ctx.scope.job or "job", "no VMs of the run were found, live or in the insert logs (by "
                            f"their batch-job-uid label {uid}), to compare with the insert logs",
                            run.listing_evidence)
        return
    history = vm_history.run_history(ctx.evidence, run)
    if history.problem:
        # Without the changes, a relabel out of the job's scope (or any other change) cannot be ruled out.
        yield Finding.error(ctx.scope.job or "job", f"{history.problem}: whether a VM of the run left the job's "
                            "label scope during the run cannot be shown", history.evidence)
    elif uid:
        yield from vm_history.scope_findings(history, uid)
    live_names = {vm.name for vm in run.live}
    deleted_names = {vm.name for vm in run.deleted}
    evidence = tuple(log_ids) + run.listing_evidence + tuple(i for vm in run.live for i in vm.evidence)
    unlogged = sorted(live_names - logged_names)
    unseen = sorted(logged_names - live_names - deleted_names)
    gone = f"; {len(deleted_names)} no longer exist (Batch deletes its VMs) and were judged on their inserts " \
        "above" if deleted_names else ""
    if unlogged or unseen:
        detail = "; ".join(part for part in (
            f"VMs without an insert entry: {', '.join(unlogged)}" if unlogged else "",
            f"inserts without a VM found: {', '.join(unseen)}" if unseen else "") if part)
        yield Finding.fail(ctx.scope.job or "job", f"{len(logged_names)} VM inserts logged, {len(live_names)} VMs "
                           f"found{gone}: {detail}", evidence)
    else:
        yield Finding.ok(ctx.scope.job or "job", f"{len(logged_names)} VM inserts logged for {len(live_names)} VMs "
                         f"found{gone}", evidence)
