"""Signer construction for the CLI: one entry point per key source, one error type to catch.

    file_signer(Path("key.pem"))                      -> securesystemslib CryptoSigner
    kms_signer("projects/…/cryptoKeyVersions/1", target) -> KmsSigner (Cloud KMS, ECDSA P-256)

Both raise SigningKeyError with a message naming the key and the fix; callers print it and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

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
