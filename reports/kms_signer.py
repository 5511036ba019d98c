"""A securesystemslib Signer backed by Cloud KMS, through the client `sovaudit.cloud.kms(target)` makes.

securesystemslib's own GCPSigner builds its KeyManagementServiceClient with ambient credentials and
the default endpoint, so it cannot point at the simulator (or any target the rest of sovaudit uses),
and it names keys with its own keyid. This signer follows the same steps — hash locally, let KMS
sign the SHA-256 digest — with our client and our keyid (sha256 of the DER SubjectPublicKeyInfo).
Each signature KMS returns is verified against the version's public key before it is used, so a
wrong key version or a corrupted answer can never produce an envelope that does not verify.
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests
from google.api_core.exceptions import RetryError
from google.auth.exceptions import GoogleAuthError
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, SecretsHandler, Signature, Signer, SSlibKey

from sovaudit.reports.keys import KeyFileError, sslib_public_key

_P256 = "EC_SIGN_P256_SHA256"
# Failures below the API layer (no route, reset, TLS, expired credentials): the caller must see a
# KeyFileError naming the key, not a transport traceback.
_UNREACHABLE: tuple[type[Exception], ...] = (requests.RequestException, RetryError, GoogleAuthError, OSError)


class KmsSigner(Signer):
    SCHEME = "gcpkms"

    def __init__(self, client: Any, key_version: str) -> None:
        """`client`: a google.cloud.kms.KeyManagementServiceClient; `key_version`: the full
        `projects/…/locations/…/keyRings/…/cryptoKeys/…/cryptoKeyVersions/N` name."""
        if "/cryptoKeyVersions/" not in key_version:
            raise KeyFileError(
                f"--kms-key {key_version!r} is not a key version; give "
                "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N"
            )
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
        from google.api_core import exceptions as api_exceptions

        self.client = client
        self.key_version = key_version
        try:
            answer = client.get_public_key(request={"name": key_version})
        except api_exceptions.GoogleAPICallError as exc:
            raise KeyFileError(f"Cloud KMS refused getPublicKey for {key_version}: {exc.message}") from exc
        except _UNREACHABLE as exc:
            raise KeyFileError(f"Cloud KMS could not be reached for {key_version}: {exc}") from exc
        algorithm = getattr(answer.algorithm, "name", str(answer.algorithm))
        if algorithm != _P256:
            raise KeyFileError(
                f"KMS key {key_version} uses {algorithm}; sovaudit signs with {_P256} "
                "(create the key with --purpose asymmetric-signing --default-algorithm ec-sign-p256-sha256)"
            )
        pem = answer.pem.encode("utf-8") if isinstance(answer.pem, str) else bytes(answer.pem)
        try:
            public_key = load_pem_public_key(pem)
        except ValueError as exc:
            raise KeyFileError(f"KMS returned an unreadable public key for {key_version}: {exc}") from exc
        self._public_key = sslib_public_key(public_key, f"KMS key {key_version}")

    @property
    def public_key(self) -> SSlibKey:
        return self._public_key

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Key, secrets_handler: SecretsHandler | None = None
    ) -> KmsSigner:
        raise NotImplementedError("build KmsSigner with a client: kms_signer(target, key_version)")

    def sign(self, payload: bytes) -> Signature:
        from google.api_core import exceptions as api_exceptions

        digest = hashlib.sha256(payload).digest()
        try:
            answer = self.client.asymmetric_sign(request={"name": self.key_version, "digest": {"sha256": digest}})
        except api_exceptions.GoogleAPICallError as exc:
            raise KeyFileError(f"Cloud KMS refused asymmetricSign with {self.key_version}: {exc.message}") from exc
        except _UNREACHABLE as exc:
            raise KeyFileError(f"Cloud KMS could not be reached to sign with {self.key_version}: {exc}") from exc
        signature = Signature(self._public_key.keyid, bytes(answer.signature).hex())
        try:
            self._public_key.verify_signature(signature, payload)
        except UnverifiedSignatureError as exc:
            raise KeyFileError(
                f"Cloud KMS returned a signature that does not verify with {self.key_version}'s public key"
            ) from exc
        return signature

