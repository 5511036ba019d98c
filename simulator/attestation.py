"""The simulator's attestation tokens: its RSA signing keys, their JWKS, and token minting.

Google signs Confidential Computing OIDC tokens (RS256) and publishes the keys as a JWKS at the
`jwks_uri` of https://confidentialcomputing.googleapis.com/.well-known/openid-configuration
(reference §8.2). The simulator does the same with a key it generates per state: a token it mints
proves nonce, signature-chain and instance binding end to end, never that hardware measured a VM.
Scenarios also need a key the JWKS does not publish (a forged token), kept under `rogue`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sovaudit.simulator.state import SimState

ISSUER = "https://confidentialcomputing.googleapis.com"
# The path Google's discovery document names for jwks_uri [T] (policies/pack.py DEFAULT_ATTESTATION_JWKS_URI);
# the simulator serves it under its own URL.
JWKS_PATH = "/service_accounts/v1/metadata/jwk/signer@confidentialspace-sign.iam.gserviceaccount.com"
TOKEN_LIFETIME_SECONDS = 3600   # Google's sample token: exp = iat + 1 h
HWMODEL = {"SEV": "GCP_AMD_SEV", "SEV_SNP": "GCP_AMD_SEV_SNP", "TDX": "GCP_INTEL_TDX"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_key(state: SimState, which: str = "google") -> tuple[str, rsa.RSAPrivateKey]:
    """(kid, private key) for `google` (published) or `rogue` (never published); made once per state."""
    with state.lock:
        keys = state.extras.setdefault("attestation_keys", {})
        if which not in keys:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            numbers = private.public_key().public_numbers()
            kid = hashlib.sha1(numbers.n.to_bytes(256, "big")).hexdigest()
            keys[which] = (kid, private)
        kid, private = keys[which]
        return str(kid), private


def jwks(state: SimState) -> dict[str, Any]:
    kid, private = signing_key(state)
    numbers = private.public_key().public_numbers()
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                      "n": _b64url(numbers.n.to_bytes(256, "big")),
                      "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))}]}


def discovery(base_url: str) -> dict[str, Any]:
    """The OIDC discovery document, shaped as Google's (issuer, jwks_uri, supported algorithms)."""
    return {"issuer": ISSUER, "jwks_uri": f"{base_url}{JWKS_PATH}",
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "dbgstat", "eat_nonce",
                                 "google_service_accounts", "hwmodel", "oemid", "secboot", "submods", "swname",
                                 "swversion"],
            "scopes_supported": ["openid"]}


def sign(state: SimState, claims: Mapping[str, Any], *, key: str = "google",
         header: Mapping[str, Any] | None = None) -> str:
    kid, private = signing_key(state, key)
    head = {"alg": "RS256", "kid": kid, "typ": "JWT", **(header or {})}
    signing_input = f"{_b64url(json.dumps(head, separators=(',', ':')).encode())}." \
                    f"{_b64url(json.dumps(dict(claims), separators=(',', ':')).encode())}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def claims_for(state: SimState, instance: Mapping[str, Any], zone: str, *, audience: str, nonces: list[str],
               issued_at: int) -> dict[str, Any]:
    """The claims Google's token carries for a Confidential VM (reference §8.2's decoded sample)."""
    config = instance.get("confidentialInstanceConfig") or {}
    kind = str(config.get("confidentialInstanceType") or ("SEV" if config.get("enableConfidentialCompute") else ""))
    name = str(instance.get("name", ""))
    shielded = instance.get("shieldedInstanceConfig") or {}
    claims: dict[str, Any] = {
        "aud": audience, "iss": ISSUER, "iat": issued_at, "nbf": issued_at,
        "exp": issued_at + TOKEN_LIFETIME_SECONDS,
        "sub": f"https://www.googleapis.com/compute/v1/projects/{state.project_id}/zones/{zone}/instances/{name}",
        "eat_nonce": nonces if len(nonces) != 1 else nonces[0],
        "secboot": bool(shielded.get("enableSecureBoot", False)), "oemid": 11129,
        # A VM without confidential compute has no hardware report: Google would not mint a CVM token;
        # the simulator says so in the claim rather than refusing, so CC-05 can be shown to catch it.
        "hwmodel": HWMODEL.get(kind, "GCP_SHIELDED_VM"), "swname": "GCE",
        "dbgstat": "disabled-since-boot",
        "submods": {"gce": {"zone": zone, "project_id": state.project_id, "project_number": state.project_number,
                            "instance_name": name, "instance_id": str(instance.get("id", ""))}},
        "google_service_accounts": [str(sa.get("email", "")) for sa in instance.get("serviceAccounts") or ()],
    }
    return claims
