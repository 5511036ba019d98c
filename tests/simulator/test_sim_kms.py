"""Cloud KMS through the official client: CMEK key locations, and the attestation signing key."""

from __future__ import annotations

import hashlib

import google_crc32c
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.api_core import exceptions
from google.cloud import kms as kms_types
from sim_clients import kms

RING = "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics"
SIGNER = f"{RING}/cryptoKeys/attestation/cryptoKeyVersions/1"


def test_cmek_keys_live_in_the_node_region(sim_shared) -> None:
    client = kms(sim_shared.url)
    key = client.get_crypto_key(name=f"{RING}/cryptoKeys/gcs-raw")
    assert key.name.split("/")[3] == "us-central1"
    assert key.purpose == kms_types.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT
    assert key.primary.state == kms_types.CryptoKeyVersion.CryptoKeyVersionState.ENABLED
    names = {k.name.rsplit("/", 1)[-1] for k in client.list_crypto_keys(parent=RING)}
    assert names == {"gcs-raw", "gcs-processed", "bq", "attestation"}
    assert [r.name for r in client.list_key_rings(parent="projects/fed-node-us/locations/us-central1")] == [RING]


def test_unknown_key_is_not_found(sim_shared) -> None:
    with pytest.raises(exceptions.NotFound):
        kms(sim_shared.url).get_crypto_key(name=f"{RING}/cryptoKeys/nope")


def test_asymmetric_sign_verifies_with_the_published_public_key(sim_shared) -> None:
    client = kms(sim_shared.url)
    public = client.get_public_key(name=SIGNER)
    assert public.algorithm == kms_types.CryptoKeyVersion.CryptoKeyVersionAlgorithm.EC_SIGN_P256_SHA256
    assert public.pem_crc32c == int.from_bytes(google_crc32c.Checksum(public.pem.encode()).digest(), "big")
    message = b"in-toto statement bytes"
    digest = hashlib.sha256(message).digest()
    crc = int.from_bytes(google_crc32c.Checksum(digest).digest(), "big")
    signed = client.asymmetric_sign(request={"name": SIGNER, "digest": {"sha256": digest}, "digest_crc32c": crc})
    assert signed.verified_digest_crc32c is True
    assert signed.signature_crc32c == int.from_bytes(google_crc32c.Checksum(signed.signature).digest(), "big")
    key = serialization.load_pem_public_key(public.pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signed.signature, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        key.verify(signed.signature, b"tampered", ec.ECDSA(hashes.SHA256()))


def test_sign_with_a_wrong_digest_checksum_is_refused(sim_shared) -> None:
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(exceptions.BadRequest):
        kms(sim_shared.url).asymmetric_sign(request={"name": SIGNER, "digest": {"sha256": digest},
                                                     "digest_crc32c": 12345})


def test_symmetric_key_has_no_public_key(sim_shared) -> None:
    with pytest.raises(exceptions.BadRequest, match="not an asymmetric signing key"):
        kms(sim_shared.url).get_public_key(name=f"{RING}/cryptoKeys/bq/cryptoKeyVersions/1")
