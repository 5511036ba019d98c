"""CC-05 evidence for the clean node: each task's token, minted for its own VM, and the JWKS to check it.

Kept beside test_controls_evidence.py (like network_evidence.py) so the clean node carries it when its
pack turns in-guest attestation on, and CC-05's own tests can mint variants with the same keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sovaudit.pipeline.attest import attestation_nonce

ISSUED = 1795705800   # 2026-11-26T15:10:00Z: inside the clean job's 15:00..15:20
GOOGLE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROGUE = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: dict[str, Any], key: rsa.RSAPrivateKey = GOOGLE, **header: Any) -> str:
    head = {"alg": "RS256", "kid": "google-1", "typ": "JWT", **header}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


def jwks(key: rsa.RSAPrivateKey = GOOGLE, kid: str = "google-1") -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                      "n": b64(numbers.n.to_bytes(256, "big")), "e": b64(numbers.e.to_bytes(3, "big"))}]}


def vm_of(node: Any, index: int) -> dict[str, Any]:
    scoped = node.body("compute.job_instances")["items"]
    vms = [vm for scope in scoped.values() for vm in scope.get("instances", ())]
    return next(vm for vm in vms if vm["name"].split("-group0-")[1].startswith(f"{index}-"))


def claims(node: Any, index: int, run_id: str) -> dict[str, Any]:
    vm = vm_of(node, index)
    zone = vm["zone"].rsplit("/", 1)[1]
    return {"aud": node.pack.confidential.in_guest_attestation.audience,
            "iss": "https://confidentialcomputing.googleapis.com", "iat": ISSUED, "nbf": ISSUED,
            "exp": ISSUED + 3600, "eat_nonce": attestation_nonce(run_id, index), "hwmodel": "GCP_AMD_SEV",
            "swname": "GCE", "dbgstat": "disabled-since-boot", "secboot": True,
            "submods": {"gce": {"zone": zone, "project_id": node.project, "project_number": node.number,
                                "instance_name": vm["name"], "instance_id": vm["id"]}}}


def store(node: Any, index: int, token: str | None) -> None:
    metadata = node.body("storage.manifests")["items"][index].setdefault("metadata", {})
    if token is None:
        metadata.pop("attestation_token", None)
    else:
        metadata["attestation_token"] = token


def clean(node: Any, run_id: str) -> None:
    """Every task's genuine token and the JWKS, when the node's pack turns in-guest attestation on."""
    if not node.pack.confidential.in_guest_attestation.enabled:
        return
    node.set("confidentialcomputing.jwks", jwks())
    for index in range(node.task_count):
        store(node, index, mint(claims(node, index, run_id)))
