"""Compact JWTs signed RS256, checked against a JWKS with `cryptography` alone (no JWT library).

RS256 is RSASSA-PKCS1-v1_5 with SHA-256 over `base64url(header).base64url(payload)` (RFC 7518 §3.3).
Only that algorithm is accepted, and only from an RSA key the JWKS lists under the token's `kid`:
`alg: none`, HMAC with the public key as secret, or a key the token carries itself are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class TokenInvalid(ValueError):
    """The token is malformed or its signature does not verify (the message says which)."""


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise TokenInvalid(f"not base64url: {error}") from error


def _int(text: Any) -> int:
    if not isinstance(text, str) or not text:
        raise TokenInvalid("a JWKS key lacks n or e")
    return int.from_bytes(_b64decode(text), "big")


@dataclass(frozen=True)
class Jwt:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes = field(repr=False)
    signature: bytes = field(repr=False)


def parse(token: str) -> Jwt:
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise TokenInvalid("not a compact JWT (header.payload.signature)")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TokenInvalid(f"header or payload is not JSON: {error}") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenInvalid("header and payload must be JSON objects")
    return Jwt(header, claims, f"{parts[0]}.{parts[1]}".encode(), _b64decode(parts[2]))


def rsa_keys(jwks: Mapping[str, Any]) -> dict[str, rsa.RSAPublicKey]:
    """kid -> RSA public key, for the JWKS's RSA signing keys (others are ignored)."""
    found: dict[str, rsa.RSAPublicKey] = {}
    for key in jwks.get("keys") or ():
        if not isinstance(key, Mapping) or key.get("kty") != "RSA" or key.get("use", "sig") != "sig":
            continue
        if key.get("alg", "RS256") != "RS256" or not key.get("kid"):
            continue
        found[str(key["kid"])] = rsa.RSAPublicNumbers(_int(key.get("e")), _int(key.get("n"))).public_key()
    return found


def verify(token: Jwt, keys: Mapping[str, rsa.RSAPublicKey]) -> None:
    """Raise TokenInvalid unless `token` is RS256-signed by the key the JWKS lists under its kid."""
    if token.header.get("alg") != "RS256":
        raise TokenInvalid(f"alg is {token.header.get('alg')!r}; only RS256 is accepted")
    kid = str(token.header.get("kid") or "")
    key = keys.get(kid)
    if key is None:
        raise TokenInvalid(f"kid {kid!r} is not among the published signing keys ({', '.join(sorted(keys)) or 'none'})")
    try:
        key.verify(token.signature, token.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as error:
        raise TokenInvalid(f"the RS256 signature does not verify against key {kid}") from error
