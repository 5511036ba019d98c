"""CC-05: every task of the run holds a Confidential Computing attestation token bound to it.

CC-01..CC-03 prove from configuration and audit logs what was asked for; a token signed by Google
after it checked the VM's vTPM quote and the AMD/Intel report is the hardware's own word. Each task
stores its token in its manifest (pipeline/attest.py); this control checks each one against the
signing keys archived in the bundle (`confidentialcomputing.jwks`), so `verify --evidence` re-checks
offline. What the simulator's tokens cannot prove is said in docs/confidential-computing.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sovaudit.audit import attestation_token as jwt
from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import BatchJob, EvidenceIncomplete, Instance, complete_items, run_vms
from sovaudit.pipeline.attest import MANIFEST_TOKEN_KEY, attestation_nonce

JWKS_PURPOSE = "confidentialcomputing.jwks"
ISSUER = "https://confidentialcomputing.googleapis.com"
# hwmodel per required type. SEV and TDX are on Google's pages [C]; the SEV-SNP value is not [U]:
# the likely reading is GCP_AMD_SEV_SNP, the other is that Google names SNP VMs GCP_AMD_SEV too. Under
# the second the token cannot tell SNP from SEV, so GCP_AMD_SEV for an SNP pack is ERROR (not shown
# either way), never PASS; CC-02 still proves the type from configuration.
HWMODELS = {"SEV": ("GCP_AMD_SEV",), "SEV_SNP": ("GCP_AMD_SEV_SNP",), "TDX": ("GCP_INTEL_TDX",)}
UNDECIDED_HWMODELS = {"SEV_SNP": ("GCP_AMD_SEV",)}
# dbgstat values that mean the guest could not be debugged; anything else (`enabled`, absent) FAILs.
DEBUG_DISABLED = ("disabled", "disabled-since-boot")
CLOCK_SKEW = timedelta(minutes=5)
MAX_TOKEN_LIFETIME = timedelta(hours=24)   # Google's tokens live 1 h; a longer one was not minted by it

CC_FRAMEWORKS = {"GDPR": ["Art. 32"], "HIPAA": ["164.312(a)(2)(iv)", "164.312(c)(1)"],
                 "NIST-800-53": ["SC-39", "SC-28", "SI-7(9)"], "ISO27001-2022": ["A.8.24", "A.8.26"]}


def _time(value: Any) -> datetime | None:
    """An RFC 3339 time as an aware datetime; Batch writes nanoseconds, Python parses at most micro."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_id(job: BatchJob) -> str:
    """The run id the tasks derived their nonces from: the job's SOVAUDIT_RUN_ID, else its uid (task.py)."""
    group = (job.raw.get("taskGroups") or [{}])[0]
    variables = ((group.get("taskSpec") or {}).get("environment") or {}).get("variables") or {}
    return str(variables.get("SOVAUDIT_RUN_ID") or job.uid)


def _tokens(ctx: ControlContext, job_name: str) -> tuple[dict[int, tuple[str, str]], tuple[str, ...]]:
    """task index -> (token, listing evidence id), from the manifest objects' custom metadata."""
    items = complete_items(ctx.evidence, "storage.manifests")
    prefix = f"manifests/{job_name}/"
    found: dict[int, tuple[str, str]] = {}
    for item in items:
        for obj in item.parsed.get("items") or ():
            name = str(obj.get("name", ""))
            index_text = name[len(prefix):-len(".json")] if name.startswith(prefix) and name.endswith(".json") else ""
            if not index_text.isdigit():
                continue
            token = (obj.get("metadata") or {}).get(MANIFEST_TOKEN_KEY)
            if isinstance(token, str) and token:
                found.setdefault(int(index_text), (token, item.id))
    return found, tuple(item.id for item in items)


def _single(value: Any) -> str | None:
    """A claim that must hold exactly one string: a string, or a one-element list of one."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return None


def _claim_problems(claims: Mapping[str, Any], *, audience: str, nonce: str, required: str, project: str,
                    started: datetime | None, ended: datetime | None,
                    vms: Mapping[tuple[str, str], Instance]) -> tuple[list[str], list[str]]:
    """(problems that FAIL, problems that leave the token undecided: ERROR)."""
    problems: list[str] = []
    undecided: list[str] = []
    if claims.get("iss") != ISSUER:
        problems.append(f"iss is {claims.get('iss')!r}, not {ISSUER}")
    if _single(claims.get("aud")) != audience:
        problems.append(f"aud is {claims.get('aud')!r}, not the {audience!r} the tasks ask for")
    if _single(claims.get("eat_nonce")) != nonce:
        problems.append("eat_nonce is not this task's nonce (sha256 of run id and task index): the token was "
                        "issued for another task or run")
    hwmodel = claims.get("hwmodel")
    if hwmodel in UNDECIDED_HWMODELS.get(required, ()):
        undecided.append(f"hwmodel {hwmodel} does not distinguish {required} from SEV (Google's {required} value "
                         "is unconfirmed)")
    elif hwmodel not in HWMODELS.get(required, ()):
        problems.append(f"hwmodel is {hwmodel!r}, the policy requires {required} "
                        f"({' or '.join(HWMODELS.get(required, ('?',)))})")
    if claims.get("dbgstat") not in DEBUG_DISABLED:
        problems.append(f"dbgstat is {claims.get('dbgstat')!r}: the guest could be debugged (memory readable by "
                        "the host)")
    problems += _time_problems(claims, started, ended)
    gce = (claims.get("submods") or {}).get("gce") if isinstance(claims.get("submods"), Mapping) else None
    gce = gce if isinstance(gce, Mapping) else {}
    zone, instance_id = str(gce.get("zone") or ""), str(gce.get("instance_id") or "")
    if gce.get("project_id") != project:
        problems.append(f"submods.gce.project_id is {gce.get('project_id')!r}, not {project}")
    if (zone, instance_id) not in vms:
        problems.append(f"submods.gce names instance {instance_id or '?'} in zone {zone or '?'}, which is not a VM "
                        "of the run")
    return problems, undecided


def _time_problems(claims: Mapping[str, Any], started: datetime | None, ended: datetime | None) -> list[str]:
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        return [f"iat/exp are not integer times (iat {iat!r}, exp {exp!r})"]
    assert isinstance(iat, int) and isinstance(exp, int)
    issued = datetime.fromtimestamp(iat, tz=UTC)
    expires = datetime.fromtimestamp(exp, tz=UTC)
    problems = []
    if not issued < expires <= issued + MAX_TOKEN_LIFETIME:
        problems.append(f"exp {exp} is not within {MAX_TOKEN_LIFETIME} after iat {iat}")
    if started is None or ended is None:
        problems.append("the job's start or end time is unknown, so the token's time cannot be placed in the run")
    elif not started - CLOCK_SKEW <= issued <= ended + CLOCK_SKEW:
        problems.append(f"issued at {issued.isoformat()}, outside the run ({started.isoformat()} .. "
                        f"{ended.isoformat()})")
    return problems


OFF_IN_PACK = ("in-guest attestation is off in the policy pack (confidential.in_guest_attestation.enabled is not "
               "true): the tasks were not asked for tokens, so none are checked")


@control(
    id="CC-05", pillar=Pillar.CONFIDENTIAL, severity=Severity.HIGH,
    title="Every task holds a hardware attestation token bound to it (in-guest attestation)",
    rationale="A token the Confidential Computing API signs after checking the VM's vTPM quote and the "
              "AMD SEV / Intel TDX report is the hardware's own evidence, which configuration and audit logs "
              "(CC-01..CC-03) are not. Each task asks for one bound to a nonce from the run id and its index, so a "
              "token copied from another task, run or VM, one signed by another key, or one from a debuggable "
              "guest does not pass. Applies when the policy pack turns confidential.in_guest_attestation on.",
    remediation="Set confidential.in_guest_attestation.enabled: true in the pack, grant the job's service account "
                "roles/confidentialcomputing.workloadUser (gcloud projects add-iam-policy-binding P "
                "--member=serviceAccount:SA --role=roles/confidentialcomputing.workloadUser) and rerun the job "
                "(`sovaudit pipeline submit`); a task without a token logged why in its Batch task log",
    frameworks=CC_FRAMEWORKS,
    reads=["batch.job", "storage.manifests", "compute.job_instances", "logging.instance_inserts", JWKS_PURPOSE],
    needs_job=True,
    not_applicable=lambda ctx: "" if ctx.policy.confidential.in_guest_attestation.enabled else OFF_IN_PACK,
)
def tasks_hold_attestation_tokens(ctx: ControlContext) -> Iterator[Finding]:
    settings = ctx.policy.confidential.in_guest_attestation
    job = BatchJob.from_log(ctx.evidence)
    key_items = complete_items(ctx.evidence, JWKS_PURPOSE)
    try:
        keys = jwt.rsa_keys(key_items[-1].parsed)
    except jwt.TokenInvalid as error:
        raise EvidenceIncomplete(f"{JWKS_PURPOSE}: {error}", (key_items[-1].id,)) from error
    if not keys:
        raise EvidenceIncomplete(f"{JWKS_PURPOSE}: the JWKS lists no RS256 signing key", (key_items[-1].id,))
    run = run_vms(ctx.evidence, ctx.scope.job_uid)
    if not run.vms:
        yield Finding.error(job.name, "no VMs of the run were found, so no token can be tied to one",
                            run.listing_evidence)
        return
    vms = {(vm.zone, vm.instance_id): vm for vm in run.vms if vm.instance_id}
    tokens, listing = _tokens(ctx, job.name.rsplit("/", 1)[-1])
    run_id = _run_id(job)
    started, ended = _time(job.raw.get("createTime")), _time(job.raw.get("updateTime"))
    base = (key_items[-1].id, *job.evidence)
    for index in range(job.task_count):
        resource = f"{job.name}/taskGroups/group0/tasks/{index}"
        if index not in tokens:
            yield Finding.fail(resource, f"task {index} stored no attestation token in its manifest", listing + base)
            continue
        token_text, item_id = tokens[index]
        evidence = (item_id, *base)
        try:
            token = jwt.parse(token_text)
            jwt.verify(token, keys)
        except jwt.TokenInvalid as error:
            yield Finding.fail(resource, f"task {index}: the token is not Google's: {error}", evidence)
            continue
        problems, undecided = _claim_problems(
            token.claims, audience=settings.audience, nonce=attestation_nonce(run_id, index),
            required=ctx.policy.confidential.required_type, project=ctx.policy.project, started=started,
            ended=ended, vms=vms)
        vm_evidence = tuple(i for vm in vms.values() for i in vm.evidence[:1])[:3]
        if problems:
            yield Finding.fail(resource, f"task {index}: {'; '.join(problems)}", evidence + vm_evidence)
        elif undecided:
            yield Finding.error(resource, f"task {index}: {'; '.join(undecided)}", evidence)
        else:
            gce = token.claims["submods"]["gce"]
            yield Finding.ok(resource, f"task {index}: token signed by key {token.header.get('kid')}, nonce bound to "
                             f"run {run_id}, {token.claims['hwmodel']} on instance {gce['instance_id']} "
                             f"({gce['zone']}), debugging {token.claims['dbgstat']}", evidence)
