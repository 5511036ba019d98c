"""Signer construction for the CLI: one entry point per key source, one error type to catch.

    file_signer(Path("key.pem"))                      -> securesystemslib CryptoSigner
    kms_signer("projects/…/cryptoKeyVersions/1", target) -> KmsSigner (Cloud KMS, ECDSA P-256)

Both raise SigningKeyError with a message naming the key and the fix; callers print it and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer, SSlibKey

from sovaudit.reports.keys import KeyFileError, load_signing_key

SigningKeyError = KeyFileError
KeyError_ = KeyFileError  # the name audit/commands.py catches


def file_signer(path: Path) -> Signer:
    """A signer for a PEM private key file (Ed25519 or ECDSA P-256, mode 0600)."""
    return load_signing_key(Path(path))


def kms_signer(key_version: str, target: Any) -> Signer:
    """A signer for a Cloud KMS key version, through `sovaudit.cloud.kms(target)` (gcp or the simulator)."""
    from sovaudit import cloud
    from sovaudit.reports.kms_signer import KmsSigner

    if isinstance(target, str):
        target = cloud.Target.parse(target)
    return KmsSigner(cloud.kms(target), key_version)


def throwaway_signer(key_type: str = "ed25519") -> Signer:
    """A signer whose private key lives only in memory (for `sovaudit demo`): write its public half
    with `write_public_key` beside the bundle so the demo's report can be verified, and nothing else."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from securesystemslib.signer import CryptoSigner

    from sovaudit.reports.keys import KEY_TYPES, sslib_public_key

    if key_type not in KEY_TYPES:
        raise KeyFileError(f"unknown key type {key_type!r}; choose {' or '.join(KEY_TYPES)}")
    private_key = ed25519.Ed25519PrivateKey.generate() if key_type == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    return CryptoSigner(private_key, sslib_public_key(private_key.public_key()))


def write_public_key(signer: Signer, path: Path) -> Path:
    """Write a signer's public key as PEM (what `report verify --key` and openssl take)."""
    from sovaudit.reports.bundle import write_atomic
    from sovaudit.reports.keys import public_key_pem

    key = signer.public_key
    if not isinstance(key, SSlibKey):
        raise KeyFileError(f"cannot export the public key of {type(signer).__name__}")
    write_atomic(Path(path), public_key_pem(key))
    return Path(path)
