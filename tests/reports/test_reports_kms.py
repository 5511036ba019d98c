"""Signing with Cloud KMS through the official client, against the simulator's KMS over loopback."""

from __future__ import annotations

import pytest
from report_samples import make_evidence, make_result

from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.keys import KeyFileError, load_public_key, public_key_pem
from sovaudit.reports.signing import kms_signer
from sovaudit.reports.verify import verify_envelope_file

RING = "projects/fed-node-us/locations/us-central1/keyRings/fed-node-us-genomics"
SIGNING_VERSION = f"{RING}/cryptoKeys/attestation/cryptoKeyVersions/1"


def test_kms_signed_bundle_verifies_with_the_public_key_kms_hands_out(sim, tmp_path):
    signer = kms_signer(SIGNING_VERSION, sim.url)
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=signer)
    public = tmp_path / "kms.pub.pem"
    public.write_bytes(public_key_pem(signer.public_key))
    key = load_public_key(public)
    assert key.keyid == signer.public_key.keyid
    outcome = verify_envelope_file(run / "attestation.intoto.jsonl", [key])
    assert outcome.ok, outcome.failures
    (run / "manifest.json").write_bytes(b"{}")
    assert [f.what for f in verify_envelope_file(run / "attestation.intoto.jsonl", [key]).failures] == [
        "subject 'manifest.json'"]


def test_kms_key_that_cannot_sign_is_refused_with_the_reason(sim):
    with pytest.raises(KeyFileError, match="is not an asymmetric signing key"):
        kms_signer(f"{RING}/cryptoKeys/bq/cryptoKeyVersions/1", sim.url)


def test_kms_key_name_without_a_version_is_refused(sim):
    with pytest.raises(KeyFileError, match="not a key version"):
        kms_signer(f"{RING}/cryptoKeys/attestation", sim.url)
