"""Confidential Computing API v1: challenges, attestation tokens, and the keys that sign them.

Served (reference §8.2; no discovery document exists for this API, the shapes follow the PyPI client
google-cloud-confidentialcomputing 0.11.2): `POST v1/projects/*/locations/*/challenges` (CreateChallenge),
`POST v1/{challenge}:verifyAttestation`, and the OIDC discovery document plus the JWKS its `jwks_uri`
names. A challenge is consumed on use and expires after an hour; `tokenOptions.audience` is required
when nonces are given, and each nonce must be 10..74 bytes (the intersection of the two limits Google
states). The simulator has no vTPM to check: it vouches for the VM named in `instance`
(`projects/{number}/zones/{zone}/instances/{id}`) when that VM exists in the project, and mints the
token with its own key (simulator/attestation.py).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from sovaudit.simulator import attestation, clock
from sovaudit.simulator.api._common import require_project
from sovaudit.simulator.http import Router, SimRequest, rpc_error

API = "confidentialcomputing"
CHALLENGE_LIFETIME = timedelta(hours=1)
MIN_NONCE_BYTES, MAX_NONCE_BYTES, MAX_NONCES = 10, 74, 6
_INSTANCE = re.compile(r"^projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$")


def _challenges(req: SimRequest) -> dict[str, dict[str, Any]]:
    challenges: dict[str, dict[str, Any]] = req.state.extras.setdefault("cc_challenges", {})
    return challenges


def create_challenge(req: SimRequest) -> dict[str, Any]:
    args = req.path_args
    require_project(req.state, args["project"])
    now = clock.now()
    nonce = uuid.uuid4().hex
    challenge = {"name": f"projects/{args['project']}/locations/{args['location']}/challenges/{uuid.uuid4()}",
                 "createTime": clock.rfc3339(now), "expireTime": clock.rfc3339(now + CHALLENGE_LIFETIME),
                 "tpmNonce": nonce}
    with req.state.lock:
        _challenges(req)[challenge["name"]] = {**challenge, "_expires": now + CHALLENGE_LIFETIME}
    return challenge   # `used` is false: unset fields are omitted


def _nonces(options: dict[str, Any]) -> list[str]:
    nonces = [str(n) for n in options.get("nonce") or ()]
    if nonces and not options.get("audience"):
        raise rpc_error(400, "token_options.audience is required when nonces are provided.")
    if len(nonces) > MAX_NONCES:
        raise rpc_error(400, f"At most {MAX_NONCES} nonces are allowed, got {len(nonces)}.")
    for nonce in nonces:
        if not MIN_NONCE_BYTES <= len(nonce.encode()) <= MAX_NONCE_BYTES:
            raise rpc_error(400, f"Each nonce must be between {MIN_NONCE_BYTES} and {MAX_NONCE_BYTES} bytes, "
                                 f"got {len(nonce.encode())}.")
    return nonces


def _instance(req: SimRequest, link: str) -> tuple[str, dict[str, Any]]:
    match = _INSTANCE.match(link)
    if not match:
        raise rpc_error(400, f"Invalid instance {link!r}: expected projects/{{number}}/zones/{{zone}}/instances/{{id}}.")
    project, zone, instance_id = match.groups()
    require_project(req.state, project)
    with req.state.lock:
        for (vm_zone, _), vm in req.state.instances.items():
            if vm_zone == zone and str(vm.get("id")) == instance_id:
                return zone, dict(vm)
    raise rpc_error(400, f"Instance {link} was not found or is not a Confidential VM attesting this challenge.",
                    status="FAILED_PRECONDITION")


def verify_attestation(req: SimRequest) -> dict[str, Any]:
    args = req.path_args
    require_project(req.state, args["project"])
    name = f"projects/{args['project']}/locations/{args['location']}/challenges/{args['challenge']}"
    body = req.json() if isinstance(req.json(), dict) else {}
    if not any(key in body for key in ("tpmAttestation", "sevSnpAttestation", "tdCcel")):
        raise rpc_error(400, "tpm_attestation is required.")
    options = body.get("tokenOptions") or {}
    nonces = _nonces(options)
    zone, vm = _instance(req, str(body.get("instance") or ""))
    now = clock.now()
    with req.state.lock:
        challenge = _challenges(req).get(name)
        if challenge is None:
            raise rpc_error(404, f"Challenge {name} not found.")
        if challenge.get("used"):
            raise rpc_error(400, f"Challenge {name} has already been used.", status="FAILED_PRECONDITION")
        if now >= challenge["_expires"]:
            raise rpc_error(400, f"Challenge {name} has expired.", status="FAILED_PRECONDITION")
        challenge["used"] = True
    claims = attestation.claims_for(req.state, vm, zone, audience=str(options.get("audience") or ""),
                                    nonces=nonces, issued_at=int(now.timestamp()))
    return {"oidcClaimsToken": attestation.sign(req.state, claims)}


def openid_configuration(req: SimRequest) -> dict[str, Any]:
    return attestation.discovery(req.base_url)


def signing_keys(req: SimRequest) -> dict[str, Any]:
    return attestation.jwks(req.state)


def register(router: Router) -> None:
    location = "/v1/projects/<project>/locations/<location>"
    router.add("POST", f"{location}/challenges", create_challenge, api=API)
    router.add("POST", f"{location}/challenges/<challenge>:verifyAttestation", verify_attestation, api=API)
    router.add("GET", "/.well-known/openid-configuration", openid_configuration, api=API)
    router.add("GET", attestation.JWKS_PATH, signing_keys, api=API)
