"""CC-04: every VM of the run has Google's launch attestation report, and it shows a sound SEV launch.

CC-01..CC-03 prove confidential computing from what was asked for (the template, the VM's
configuration, the insert request). The launch attestation report is what the AMD secure processor
measured when the VM booted, as Google's Virtual Machine Monitor evaluated it (gcp-escape-routes.md
§8.1): the strongest evidence of confidential computing a log gives, short of in-guest attestation.

Honest limits, said in the findings:
* The event is documented for AMD SEV only. Whether SEV-SNP or TDX VMs write it (or another event)
  is [U]. For a pack requiring SEV_SNP, a passing SEV event is accepted as an AMD SEV-family launch
  and the finding says it does not tell SEV-SNP from SEV (CC-02 judges the type); a missing one is
  ERROR (under one reading SNP VMs write none). For TDX, an SEV event is a FAIL (an AMD launch where
  Intel TDX is required) and a missing one is ERROR.
* The integrity log is not an audit log: it passes through `_Default`, so an exclusion (or a disabled
  `_Default`) drops it. A VM without an event is FAIL only while the routing that stored the run's
  entries is intact (`log_integrity.absence_proof_problems`); otherwise it is ERROR naming the routing
  problem (SEC-08 FAILs on the routing itself). An event can never be dropped into a PASS.
* An entry written long after the boot it reports is not Google's record (anyone with
  logging.logEntries.create can write to this log): it FAILs.
"""

from __future__ import annotations

from collections.abc import Iterator

from sovaudit.audit import log_integrity
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import EvidenceIncomplete, Instance, run_vms
from sovaudit.audit.views_attestation import (
    FORBIDDEN_POLICY_BITS,
    LOG_ID,
    LaunchAttestation,
    launch_attestations,
)

# Google's own entries reach Logging within seconds of the boot (the documented example: 2 s). One
# received much later was written after the fact, through entries.write.
MAX_RECEIVE_LAG_SECONDS = 15 * 60
# Technologies whose VMs Google documents as writing the SEV launch event.
SEV_DOCUMENTED = "SEV"


def _event_text(event: LaunchAttestation) -> str:
    return f"boot {event.boot_counter or '0'} at {event.timestamp}"


def _judge_vm(vm: Instance, events: list[LaunchAttestation], required: str, routing: list[str],
              log_ids: tuple[str, ...]) -> Iterator[Finding]:
    """Findings for one VM of the run from the launch events logged for its instance id."""
    first = [e for e in events if e.first_boot]
    evidence = tuple(dict.fromkeys((*vm.evidence, *(i for e in events for i in e.evidence))))
    if not first:
        later = f" (only later boots are logged: {', '.join(_event_text(e) for e in events)})" if events else ""
        what = f"no launch attestation report of its first boot in the Shielded VM integrity log{later}"
        if required != SEV_DOCUMENTED:
            yield Finding.error(vm.resource, f"{vm.name}: {what}; Google documents this event for AMD SEV only and "
                                f"whether {required} VMs write it is unconfirmed, so the launch of a {required} VM "
                                f"cannot be shown from the log{vm.source_note}", evidence or log_ids)
        elif routing:
            yield Finding.error(vm.resource, f"{vm.name}: {what}, and the log routing could have dropped it (the "
                                f"integrity log passes through _Default, which exclusions reach): "
                                f"{'; '.join(routing)}{vm.source_note}", evidence or log_ids)
        else:
            yield Finding.fail(vm.resource, f"{vm.name}: {what}: it did not boot as an AMD SEV Confidential VM, "
                               f"whatever its configuration says{vm.source_note}", evidence or log_ids)
        return
    problems = []
    for event in events:
        said = [f"{_event_text(event)}: {p}" for p in event.problems()]
        lag = event.receive_lag_seconds
        if lag is None or lag > MAX_RECEIVE_LAG_SECONDS:
            when = "at an unreadable time" if lag is None else f"{lag / 60:.0f} minutes after the boot it reports"
            said.append(f"{_event_text(event)}: received {when} (Google writes it within seconds): written "
                        "afterwards through entries.write, not Google's record")
        if event.technology != required and required == "TDX":
            said.append(f"{_event_text(event)}: an AMD {event.technology} launch, the policy requires Intel TDX")
        problems += said
    if problems:
        yield Finding.fail(vm.resource, f"{vm.name}: {'; '.join(problems)}{vm.source_note}", evidence)
        return
    caveat = ""
    if required != SEV_DOCUMENTED:
        caveat = (f"; this event does not tell {required} from SEV (whether {required} VMs write it is unconfirmed): "
                  "the type is judged from the VM's configuration by CC-02")
    bits = first[0].sev_policy or {}
    shown = ", ".join(f"{bit}={str(bits.get(bit, False)).lower()}" for bit in FORBIDDEN_POLICY_BITS)
    yield Finding.ok(vm.resource, f"{vm.name}: AMD SEV launch attested at {first[0].timestamp} "
                     f"(integrityEvaluationPassed=true; {shown}; {len(events)} launch report(s)){caveat}"
                     f"{vm.source_note}", evidence)


@control(
    id="CC-04", pillar=Pillar.CONFIDENTIAL, severity=Severity.CRITICAL,
    title="Every VM of the run has a passing launch attestation report from the hardware",
    rationale="Configuration and insert requests show what was asked for; the launch attestation report is what "
              "the AMD secure processor measured when the VM booted, evaluated by Google and written to the "
              "Shielded VM integrity log. Every VM of the run (live or already deleted by Batch) must have one for "
              "its first boot, with integrityEvaluationPassed true and SEV policy bits that allow neither "
              "debugging nor key sharing, for the technology the policy requires. A VM without one did not boot "
              "as an SEV Confidential VM; a report received long after the boot is not Google's. The log is not "
              "an audit log and an exclusion can drop it: while the routing is not intact (SEC-08) a missing "
              "report is ERROR, never a pass.",
    remediation="Recreate the VMs from a Confidential VM template (gcloud compute instance-templates create ... "
                "--confidential-compute-type=SEV) and rerun the job; keep the integrity log: gcloud logging sinks "
                "update _Default --remove-exclusions=NAME (any exclusion matching "
                "logName=\"projects/P/logs/compute.googleapis.com%2Fshielded_vm_integrity\"); restrict "
                "logging.logEntries.create on the project  |  terraform: google_compute_instance_template "
                "confidential_instance_config, google_logging_project_exclusion",
    frameworks={"GDPR": ["Art. 32"], "HIPAA": ["164.312(a)(2)(iv)", "164.312(c)(1)"],
                "NIST-800-53": ["SC-39", "SC-28", "SI-7", "SA-8"], "ISO27001-2022": ["A.8.24", "A.8.26", "A.8.9"]},
    reads=["compute.job_instances", "logging.instance_inserts", "logging.sinks", "logging.exclusions",
           "logging.buckets", "logging.config_changes"],
    needs_job=True,
)
def launch_attested(ctx: ControlContext) -> Iterator[Finding]:
    required = ctx.policy.confidential.required_type
    run = run_vms(ctx.evidence, ctx.scope.job_uid)
    log_ids = tuple(ctx.evidence.by_purpose("logging.instance_inserts").ids)
    if not run.vms:
        yield Finding.error(ctx.scope.job or "job", f"no VMs labelled batch-job-uid={ctx.scope.job_uid} were found, "
                            "nor any insert audit entry of one; whose launch to check cannot be shown",
                            run.listing_evidence + log_ids)
        return
    try:
        events = launch_attestations(ctx.evidence, ctx.policy.project)
    except EvidenceIncomplete as missing:
        yield Finding.error(f"projects/{ctx.policy.project}/logs/{LOG_ID}", "the Shielded VM integrity log could "
                            f"not be read ({missing.message}): the launch attestation of the run's "
                            f"{len(run.vms)} VMs cannot be shown", missing.evidence_ids)
        return
    by_vm: dict[tuple[str, str], list[LaunchAttestation]] = {}
    for event in events:
        by_vm.setdefault((event.instance_id, event.zone), []).append(event)
    routing: list[str] | None = None
    for vm in run.vms:
        if not vm.instance_id:
            yield Finding.error(vm.resource, f"{vm.name}: its numeric instance id is not in the evidence, so its "
                                f"launch attestation report cannot be matched{vm.source_note}", vm.evidence)
            continue
        found = by_vm.get((vm.instance_id, vm.zone), [])
        if not [e for e in found if e.first_boot] and routing is None:
            routing = log_integrity.absence_proof_problems(ctx.evidence, ctx.policy)
        yield from _judge_vm(vm, found, required, routing or [], log_ids)
