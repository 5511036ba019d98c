"""Cloud KMS API v1: key metadata (the CMEK keys' locations) and one asymmetric signing key.

Served: keyRings.get/list, cryptoKeys.get/list, cryptoKeyVersions.get,
cryptoKeyVersions.asymmetricSign (ECDSA P-256 over a SHA-256 digest, DER signature) and
cryptoKeyVersions.getPublicKey (PEM, `EC_SIGN_P256_SHA256`) on `.../cryptoKeyVersions/1` of any
ASYMMETRIC_SIGN key — what the attestation signer uses. The private key is generated in memory the
first time a node's key is used and lives as long as the simulator; it is not persisted anywhere.
CRC32C fields are filled as KMS does (int64 as strings), so clients that verify integrity pass.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

import google_crc32c
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from sovaudit.simulator.api._common import paged_body, require_project
from sovaudit.simulator.http import Router, SimRequest, rpc_error

API = "kms"
TYPES = "google.cloud.kms_v1.types"


def _crc(data: bytes) -> str:
    return str(int.from_bytes(google_crc32c.Checksum(data).digest(), "big"))


def _key_ring_name(req: SimRequest) -> str:
    args = req.path_args
    require_project(req.state, args["project"])
    return f"projects/{req.state.project_id}/locations/{args['location']}/keyRings/{args['ring']}"


def _key_rings(req: SimRequest) -> dict[str, dict[str, Any]]:
    rings: dict[str, dict[str, Any]] = {}
    for name in req.state.crypto_keys:
        ring = name.split("/cryptoKeys/")[0]
        rings.setdefault(ring, {"name": ring, "createTime": req.state.crypto_keys[name].get("createTime")})
    return rings


def _not_found(name: str) -> Exception:
    return rpc_error(404, f"{name} not found.")


def get_key_ring(req: SimRequest) -> dict[str, Any]:
    name = _key_ring_name(req)
    ring = _key_rings(req).get(name)
    if ring is None:
        raise _not_found(name)
    return ring


def list_key_rings(req: SimRequest) -> dict[str, Any]:
    require_project(req.state, req.path_args["project"])
    prefix = f"projects/{req.state.project_id}/locations/{req.path_args['location']}/keyRings/"
    rings = [ring for name, ring in sorted(_key_rings(req).items()) if name.startswith(prefix)]
    return paged_body(req, "keyRings", rings, default_size=100, totalSize=len(rings))


def _crypto_key_name(req: SimRequest) -> str:
    return f"{_key_ring_name(req)}/cryptoKeys/{req.path_args['key']}"


def get_crypto_key(req: SimRequest) -> dict[str, Any]:
    name = _crypto_key_name(req)
    with req.state.lock:
        key = req.state.crypto_keys.get(name)
        if key is None:
            raise _not_found(name)
        return copy.deepcopy(key)


def list_crypto_keys(req: SimRequest) -> dict[str, Any]:
    ring = _key_ring_name(req)
    if ring not in _key_rings(req):
        raise _not_found(ring)
    with req.state.lock:
        keys = [copy.deepcopy(k) for n, k in sorted(req.state.crypto_keys.items()) if n.startswith(ring + "/")]
    return paged_body(req, "cryptoKeys", keys, default_size=100, totalSize=len(keys))


def _version(req: SimRequest) -> tuple[str, dict[str, Any], dict[str, Any]]:
    key_name = _crypto_key_name(req)
    name = f"{key_name}/cryptoKeyVersions/{req.path_args['version']}"
    with req.state.lock:
        key = req.state.crypto_keys.get(key_name)
        version = req.state.extras.get("kms_versions", {}).get(name)
    if key is None or version is None:
        raise _not_found(name)
    return name, key, version


def get_version(req: SimRequest) -> dict[str, Any]:
    _, _, version = _version(req)
    return copy.deepcopy(version)


def _signing_key(req: SimRequest, name: str, key: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
    if key.get("purpose") != "ASYMMETRIC_SIGN":
        raise rpc_error(400, f"{name} is not an asymmetric signing key (purpose {key.get('purpose')}).",
                        status="FAILED_PRECONDITION")
    with req.state.lock:
        private_keys = req.state.extras.setdefault("kms_private_keys", {})
        if name not in private_keys:
            private_keys[name] = ec.generate_private_key(ec.SECP256R1())
        private_key: ec.EllipticCurvePrivateKey = private_keys[name]
    return private_key


def get_public_key(req: SimRequest) -> dict[str, Any]:
    name, key, version = _version(req)
    private_key = _signing_key(req, name, key)
    pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"pem": pem.decode(), "algorithm": version["algorithm"], "pemCrc32c": _crc(pem), "name": name,
            "protectionLevel": version.get("protectionLevel", "SOFTWARE")}


def asymmetric_sign(req: SimRequest) -> dict[str, Any]:
    name, key, version = _version(req)
    private_key = _signing_key(req, name, key)
    body = req.json()
    digest_field = body.get("digest") or {}
    if "data" in body or not digest_field:
        raise rpc_error(400, f"{version['algorithm']} keys sign a digest: set `digest.sha256` "
                             "(the `data` field is only for RAW_PKCS1 and Ed25519 keys).")
    if set(digest_field) != {"sha256"}:
        raise rpc_error(400, f"The digest type must be sha256 for {version['algorithm']}, got "
                             f"{', '.join(sorted(digest_field))}.")
    try:
        digest = base64.b64decode(digest_field["sha256"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise rpc_error(400, "Invalid value at 'digest.sha256': not valid base64.") from exc
    if len(digest) != 32:
        raise rpc_error(400, f"The digest length must be 32 bytes for SHA-256, got {len(digest)}.")
    verified = False
    if "digestCrc32c" in body:
        if str(body["digestCrc32c"]) != _crc(digest):
            raise rpc_error(400, "The checksum in field digest_crc32c did not match the data in field digest.")
        verified = True
    signature = private_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return {"signature": base64.b64encode(signature).decode(), "signatureCrc32c": _crc(signature),
            "verifiedDigestCrc32c": verified, "name": name,
            "protectionLevel": version.get("protectionLevel", "SOFTWARE")}


def register(router: Router) -> None:
    ring = "/v1/projects/<project>/locations/<location>/keyRings/<ring>"
    router.add("GET", "/v1/projects/<project>/locations/<location>/keyRings", list_key_rings, api=API,
               response_type=f"{TYPES}:ListKeyRingsResponse")
    router.add("GET", ring, get_key_ring, api=API, response_type=f"{TYPES}:KeyRing")
    router.add("GET", f"{ring}/cryptoKeys", list_crypto_keys, api=API, response_type=f"{TYPES}:ListCryptoKeysResponse")
    router.add("GET", f"{ring}/cryptoKeys/<key>", get_crypto_key, api=API, response_type=f"{TYPES}:CryptoKey")
    version = f"{ring}/cryptoKeys/<key>/cryptoKeyVersions/<version>"
    router.add("GET", version, get_version, api=API, response_type=f"{TYPES}:CryptoKeyVersion")
    router.add("GET", f"{version}/publicKey", get_public_key, api=API, response_type=f"{TYPES}:PublicKey")
    router.add("POST", f"{version}:asymmetricSign", asymmetric_sign, api=API, response_type=f"{TYPES}:AsymmetricSignResponse")
