"""In-guest attestation (CC-05): the task asks the Confidential Computing API for a token bound to its run.

Behind the pack's `confidential.in_guest_attestation.enabled` (the job spec then sets
``SOVAUDIT_ATTEST=1``), each task, before it touches any data:

1. reads which VM it runs on (project number, zone, numeric instance id) from the metadata server;
2. asks ``projects/{project}/locations/{region}/challenges`` for a challenge (CreateChallenge);
3. calls ``:verifyAttestation`` with its vTPM quote, ``tokenOptions{audience, nonce: [nonce], OIDC}``
   and ``instance``, where ``nonce = attestation_nonce(run_id, task_index)``;
4. keeps the returned OIDC token; the task stores it in its manifest (body and custom metadata), so
   the verifier reads every task's token from the manifest listing it already makes.

What proves what: on Google the token is signed by Google only after it has checked a vTPM quote
over the boot measurements and the AMD SEV / Intel TDX report; its ``hwmodel`` then says which
hardware measured the VM. On the simulator no vTPM exists: the task sends an empty quote and the
simulator mints a token with its own key for the VM named in ``instance``, which proves the plumbing
(nonce binding, signature chain, instance binding) and nothing about a chip (docs/confidential-computing.md).

A task that cannot obtain a token logs why and goes on: the data still gets processed, and CC-05
FAILs the run for the task without a token (the gate is the verifier, not the worker).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovaudit.pipeline.errors import PipelineError

NONCE_PREFIX = "sovaudit:"
# Environment variables set by the job spec (pipeline/spec.py) when the pack turns attestation on.
ATTEST_ENV = "SOVAUDIT_ATTEST"
AUDIENCE_ENV = "SOVAUDIT_ATTEST_AUDIENCE"
REGION_ENV = "SOVAUDIT_ATTEST_REGION"
# A file holding the vTPM attestation (TpmAttestation in REST JSON: quotes, tcgEventLog, akCert...)
# produced in the guest by a TPM tool; sovaudit has no TPM stack of its own (see the module docstring).
TPM_ATTESTATION_FILE_ENV = "SOVAUDIT_TPM_ATTESTATION_FILE"
# Where the simulator's Batch tells a task which VM it runs on, standing in for the metadata server
# (a process on this machine has no metadata server; simulator/api/batch.py sets them).
SIM_VM_ENV = ("SOVAUDIT_SIM_PROJECT_NUMBER", "SOVAUDIT_SIM_ZONE", "SOVAUDIT_SIM_INSTANCE_ID")
MANIFEST_TOKEN_KEY = "attestation_token"


class AttestationError(PipelineError):
    """The task could not obtain an attestation token (logged; CC-05 judges the run)."""


def attestation_nonce(run_id: str, task_index: int) -> str:
    """The nonce a task's token must carry: 64 hex characters of sha256("sovaudit:<run>:<index>").

    64 bytes sits inside the 10..74-byte limit of the API's proto comment and the 8..88 bytes of the
    Confidential Space claims page (reference §8.2). Fixed by the run and the task index, so a token
    copied to another task or another run carries the wrong nonce.
    """
    return hashlib.sha256(f"{NONCE_PREFIX}{run_id}:{task_index}".encode()).hexdigest()


@dataclass(frozen=True)
class VmIdentity:
    """The VM a task runs on, as the metadata server names it."""

    project_number: str
    zone: str
    instance_id: str

    @property
    def instance(self) -> str:
        """VerifyAttestationRequest.instance: projects/{number}/zones/{zone}/instances/{id}."""
        return f"projects/{self.project_number}/zones/{self.zone}/instances/{self.instance_id}"


def vm_identity(env: Mapping[str, str], is_sim: bool) -> VmIdentity:
    if is_sim:
        values = [env.get(name, "") for name in SIM_VM_ENV]
        if not all(values):
            raise AttestationError("the simulator did not say which VM this task runs on "
                                   f"({', '.join(SIM_VM_ENV)} unset)")
        return VmIdentity(*values)
    return _metadata_identity()


def _metadata_identity() -> VmIdentity:
    """Read the VM's identity from the GCE metadata server through google-auth's own helper."""
    import google.auth.transport.requests
    from google.auth.compute_engine import _metadata

    request = google.auth.transport.requests.Request()
    try:
        number = str(_metadata.get(request, "project/numeric-project-id"))
        zone = str(_metadata.get(request, "instance/zone")).rsplit("/", 1)[-1]
        instance_id = str(_metadata.get(request, "instance/id"))
    except Exception as error:  # not on GCE, or the metadata server is unreachable
        raise AttestationError(f"cannot read this VM's identity from the metadata server: {error}") from error
    return VmIdentity(number, zone, instance_id)


def _tpm_attestation(env: Mapping[str, str], is_sim: bool) -> dict[str, Any]:
    path = env.get(TPM_ATTESTATION_FILE_ENV, "")
    if path:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise AttestationError(f"{TPM_ATTESTATION_FILE_ENV}={path}: {error}") from error
        if not isinstance(loaded, dict):
            raise AttestationError(f"{TPM_ATTESTATION_FILE_ENV}={path}: expected a TpmAttestation JSON object")
        return loaded
    if is_sim:
        return {}   # no vTPM here: the simulator vouches for its own VM (module docstring)
    raise AttestationError(f"no vTPM quote: set {TPM_ATTESTATION_FILE_ENV} to the TpmAttestation a TPM tool "
                           "wrote in this guest (sovaudit has no TPM stack of its own)")


def request_token(*, target: Any, project: str, run_id: str, task_index: int,
                  env: Mapping[str, str] | None = None) -> str:
    """CreateChallenge then VerifyAttestation through the official client; the OIDC token."""
    from google.cloud import confidentialcomputing_v1 as cc

    from sovaudit import cloud

    env = os.environ if env is None else env
    region = env.get(REGION_ENV, "")
    audience = env.get(AUDIENCE_ENV, "")
    if not region or not audience:
        raise AttestationError(f"{REGION_ENV} and {AUDIENCE_ENV} must be set when {ATTEST_ENV}=1")
    identity = vm_identity(env, target.is_sim)
    tpm = _tpm_attestation(env, target.is_sim)
    client = cloud.confidential_computing(target)
    try:
        challenge = client.create_challenge(parent=f"projects/{project}/locations/{region}", challenge={})
        request = cc.VerifyAttestationRequest(
            challenge=challenge.name,
            tpm_attestation=cc.TpmAttestation.from_json(json.dumps(tpm), ignore_unknown_fields=False),
            token_options=cc.TokenOptions(audience=audience, nonce=[attestation_nonce(run_id, task_index)],
                                          token_type=cc.TokenType.TOKEN_TYPE_OIDC),
            instance=identity.instance)
        response = client.verify_attestation(request=request)
    except Exception as error:  # google.api_core errors: one line in the task log
        raise AttestationError(f"the Confidential Computing API refused attestation: {error}") from error
    token = str(response.oidc_claims_token or "")
    if token.count(".") != 2:
        raise AttestationError("the Confidential Computing API answered without an OIDC token")
    return token
