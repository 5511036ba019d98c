"""CC-05: each task's Confidential Computing token must be Google's, bound to the task, the run and a VM of it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from attestation_evidence import ISSUED, ROGUE, b64, claims, jwks, mint, store
from cryptography.hazmat.primitives import hashes, hmac
from test_controls_evidence import UID, NodeEvidence

from sovaudit.audit import attestation_token as jwt
from sovaudit.audit.models import Outcome
from sovaudit.pipeline.attest import attestation_nonce
from sovaudit.policies.pack import InGuestAttestation, PolicyPack, resolve_policy

AUDIENCE = "https://sovaudit.dev/attestation"


def attested_pack() -> PolicyPack:
    pack = resolve_policy("us")
    return dataclasses.replace(pack, confidential=dataclasses.replace(
        pack.confidential, in_guest_attestation=InGuestAttestation(enabled=True)))


class AttestedNode(NodeEvidence):
    """The clean node whose tasks each stored a genuine token for their own VM (attestation_evidence.py)."""

    def __init__(self) -> None:
        super().__init__(attested_pack())

    def claims(self, index: int) -> dict[str, Any]:
        return claims(self, index, UID)

    def store(self, index: int, token: str | None) -> None:
        store(self, index, token)


@pytest.fixture
def node() -> AttestedNode:
    return AttestedNode()


def messages(result: Any) -> str:
    return " | ".join(f.message for f in result.findings)


def test_cc05_passes_when_every_task_holds_its_own_genuine_token(node: AttestedNode) -> None:
    result = node.run("CC-05")
    assert result.outcome == Outcome.PASS, messages(result)
    assert len(result.findings) == node.task_count and "GCP_AMD_SEV" in result.findings[0].message


def test_cc05_is_not_applicable_with_the_reason_when_the_pack_leaves_it_off() -> None:
    plain = NodeEvidence(resolve_policy("us"))
    result = plain.run("CC-05")
    assert result.outcome == Outcome.NOT_APPLICABLE
    assert "in_guest_attestation" in result.findings[0].message


def test_cc05_fails_when_a_task_stored_no_token(node: AttestedNode) -> None:
    node.store(1, None)
    result = node.run("CC-05")
    assert result.outcome == Outcome.FAIL and "task 1 stored no attestation token" in messages(result)


def test_cc05_fails_for_a_token_signed_by_a_key_the_jwks_does_not_publish(node: AttestedNode) -> None:
    node.store(0, mint(node.claims(0), key=ROGUE))
    result = node.run("CC-05")
    assert result.outcome == Outcome.FAIL and "signature does not verify" in messages(result)


def test_cc05_fails_for_an_unknown_kid(node: AttestedNode) -> None:
    node.store(0, mint(node.claims(0), kid="someone-else"))
    assert "not among the published signing keys" in messages(node.run("CC-05"))


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "HS256"}, {"alg": "RS512"}])
def test_cc05_accepts_only_rs256(node: AttestedNode, header: dict[str, str]) -> None:
    node.store(0, mint(node.claims(0), **header))
    result = node.run("CC-05")
    assert result.outcome == Outcome.FAIL and "only RS256" in messages(result)


def test_cc05_refuses_an_hmac_token_keyed_with_the_public_key(node: AttestedNode) -> None:
    """Algorithm confusion: HS256 with the published modulus as the secret must never verify."""
    head = b64(json.dumps({"alg": "HS256", "kid": "google-1"}).encode())
    body = b64(json.dumps(node.claims(0)).encode())
    mac = hmac.HMAC(jwks()["keys"][0]["n"].encode(), hashes.SHA256())
    mac.update(f"{head}.{body}".encode())
    node.store(0, f"{head}.{body}.{b64(mac.finalize())}")
    assert node.run("CC-05").outcome == Outcome.FAIL


def test_cc05_fails_when_claims_were_edited_after_signing(node: AttestedNode) -> None:
    head, _, signature = mint(node.claims(0)).split(".")
    edited = {**node.claims(0), "dbgstat": "disabled"}
    node.store(0, f"{head}.{b64(json.dumps(edited).encode())}.{signature}")
    assert "signature does not verify" in messages(node.run("CC-05"))


def test_cc05_fails_for_a_token_copied_from_another_task(node: AttestedNode) -> None:
    node.store(1, mint(node.claims(0)))
    result = node.run("CC-05")
    assert result.outcome == Outcome.FAIL and "task 1: " in messages(result) and "eat_nonce" in messages(result)


def test_cc05_fails_for_a_token_of_another_run(node: AttestedNode) -> None:
    node.store(0, mint({**node.claims(0), "eat_nonce": attestation_nonce("another-run", 0)}))
    assert "eat_nonce" in messages(node.run("CC-05"))


def test_cc05_fails_when_the_nonce_is_one_among_several(node: AttestedNode) -> None:
    """A token asked with two tasks' nonces would serve both: exactly this task's nonce is required."""
    node.store(0, mint({**node.claims(0), "eat_nonce": [attestation_nonce(UID, 0), attestation_nonce(UID, 1)]}))
    assert node.run("CC-05").outcome == Outcome.FAIL


def test_cc05_accepts_the_nonce_as_a_one_element_list(node: AttestedNode) -> None:
    node.store(0, mint({**node.claims(0), "eat_nonce": [attestation_nonce(UID, 0)]}))
    assert node.run("CC-05").outcome == Outcome.PASS


def test_cc05_uses_the_jobs_run_id_for_the_nonce(node: AttestedNode) -> None:
    variables = {"SOVAUDIT_RUN_ID": "20261126T150000Z-abc123"}
    node.body("batch.job")["taskGroups"][0]["taskSpec"]["environment"] = {"variables": variables}
    assert node.run("CC-05").outcome == Outcome.FAIL   # the tokens carry nonces of the uid
    for index in range(node.task_count):
        node.store(index, mint({**node.claims(index), "eat_nonce": attestation_nonce(variables["SOVAUDIT_RUN_ID"],
                                                                                      index)}))
    assert node.run("CC-05").outcome == Outcome.PASS


@pytest.mark.parametrize(("claim", "value", "words"), [
    ("iss", "https://accounts.google.com", "iss is"),
    ("aud", "https://someone-else.example", "aud is"),
    ("hwmodel", "GCP_INTEL_TDX", "hwmodel is"),
    ("hwmodel", "GCP_SHIELDED_VM", "hwmodel is"),
    ("dbgstat", "enabled", "could be debugged"),
    ("dbgstat", None, "could be debugged"),
    ("iat", ISSUED - 7200, "outside the run"),
    ("exp", ISSUED + 10 * 86400, "not within"),
    ("exp", "soon", "not integer times"),
])
def test_cc05_fails_for_a_wrong_claim(node: AttestedNode, claim: str, value: Any, words: str) -> None:
    claims = node.claims(0)
    if value is None:
        del claims[claim]
    else:
        claims[claim] = value
    node.store(0, mint(claims))
    result = node.run("CC-05")
    assert result.outcome == Outcome.FAIL and words in messages(result), messages(result)


def test_cc05_fails_for_an_instance_that_is_not_the_runs(node: AttestedNode) -> None:
    claims = node.claims(0)
    claims["submods"]["gce"]["instance_id"] = "4242424242424242424"
    node.store(0, mint(claims))
    assert "not a VM of the run" in messages(node.run("CC-05"))


def test_cc05_fails_for_the_runs_instance_id_in_another_zone(node: AttestedNode) -> None:
    claims = node.claims(0)
    claims["submods"]["gce"]["zone"] = "europe-west4-a"
    node.store(0, mint(claims))
    assert "not a VM of the run" in messages(node.run("CC-05"))


def test_cc05_fails_for_another_project(node: AttestedNode) -> None:
    claims = node.claims(0)
    claims["submods"]["gce"]["project_id"] = "attacker-project"
    node.store(0, mint(claims))
    assert "project_id" in messages(node.run("CC-05"))


def test_cc05_errors_when_the_signing_keys_were_not_collected(node: AttestedNode) -> None:
    node.drop("confidentialcomputing.jwks")
    result = node.run("CC-05")
    assert result.outcome == Outcome.ERROR and "confidentialcomputing.jwks" in messages(result)


def test_cc05_errors_when_the_jwks_holds_no_rsa_key(node: AttestedNode) -> None:
    node.set("confidentialcomputing.jwks", {"keys": [{"kty": "EC", "kid": "x", "crv": "P-256"}]})
    assert node.run("CC-05").outcome == Outcome.ERROR


def test_cc05_errors_when_the_jwks_answer_failed(node: AttestedNode) -> None:
    node.set("confidentialcomputing.jwks", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("CC-05").outcome == Outcome.ERROR


def test_cc05_errors_when_no_vm_of_the_run_is_known(node: AttestedNode) -> None:
    node.set("compute.job_instances", {"kind": "compute#instanceAggregatedList", "items": {}})
    node.drop("logging.instance_inserts")
    assert node.run("CC-05").outcome == Outcome.ERROR


def test_cc05_sev_snp_reading_of_gcp_amd_sev_is_undecided_not_a_pass(node: AttestedNode) -> None:
    pack = attested_pack()
    snp = dataclasses.replace(pack, confidential=dataclasses.replace(pack.confidential, required_type="SEV_SNP"))
    assert node.run("CC-05", pack=snp).outcome == Outcome.ERROR
    for index in range(node.task_count):
        node.store(index, mint({**node.claims(index), "hwmodel": "GCP_AMD_SEV_SNP"}))
    assert node.run("CC-05", pack=snp).outcome == Outcome.PASS


def test_malformed_tokens_are_refused_with_a_reason() -> None:
    for text in ("", "a.b", "not-base64!.x.y", f"{b64(b'[]')}.{b64(b'{}')}.sig"):
        with pytest.raises(jwt.TokenInvalid):
            jwt.parse(text)


def test_nonce_fits_the_apis_size_limits_and_differs_per_task_and_run() -> None:
    nonce = attestation_nonce("20261126T150000Z-abc123", 0)
    assert 10 <= len(nonce.encode()) <= 74
    assert nonce != attestation_nonce("20261126T150000Z-abc123", 1)
    assert nonce != attestation_nonce("20261126T150000Z-abc124", 0)


def test_cc05_reads_batchs_nanosecond_times(node: AttestedNode) -> None:
    """Batch writes `2026-11-26T15:00:00.123456789Z`: more digits than Python parses, and still UTC."""
    job = node.body("batch.job")
    job["createTime"], job["updateTime"] = "2026-11-26T15:00:00.123456789Z", "2026-11-26T15:20:00.987654321Z"
    assert node.run("CC-05").outcome == Outcome.PASS
    job["updateTime"] = "2026-11-26T15:04:00.000000001Z"   # ended before the tokens (15:10) were issued
    assert "outside the run" in messages(node.run("CC-05"))
