"""Sign → verify round trips, and every tampering a regulator must be told about, by name."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from report_samples import make_evidence, make_result

from sovaudit.reports.attestation import (
    PREDICATE_TYPE,
    build_statement,
    envelope_line,
    sign_statement,
    summarise_tests,
)
from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.keys import generate_key, load_public_key, load_signing_key
from sovaudit.reports.verify import EnvelopeError, verify_envelope_file


@pytest.fixture
def signed_bundle(tmp_path: Path, keypair):
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=load_signing_key(keypair.private_path))
    return run, load_public_key(keypair.public_path)


def _verify(run: Path, key, bundle: Path | None = None):
    return verify_envelope_file(run / "attestation.intoto.jsonl", [key] if not isinstance(key, list) else key, bundle)


def _rewrite_envelope(run: Path, change) -> None:
    path = run / "attestation.intoto.jsonl"
    envelope = json.loads(path.read_text())
    change(envelope)
    path.write_bytes(envelope_line(envelope))


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def test_round_trip_verifies_every_subject(signed_bundle):
    run, key = signed_bundle
    outcome = _verify(run, key)
    assert outcome.ok, outcome.failures
    names = {s["name"] for s in outcome.statements[0]["subject"]}
    assert {"result.json", "report.html", "manifest.json", "junit.xml", "results.sarif"} <= names
    assert {item.path for item in make_evidence()} <= names
    assert outcome.notes == ()


def test_statement_is_an_in_toto_test_result(signed_bundle):
    run, key = signed_bundle
    statement = _verify(run, key).statements[0]
    predicate = statement["predicate"]
    assert statement["predicateType"] == PREDICATE_TYPE
    assert predicate["result"] == "FAILED" and predicate["url"] == make_result()["run_id"]
    assert predicate["failedTests"] == ["SEC-02", "SEC-05"]
    # SOV-03 is NOT_APPLICABLE: the signed pack says it does not apply, so it is in no test list.
    assert predicate["warnedTests"] == ["SOV-04"] and predicate["passedTests"] == ["SOV-01"]
    assert "SOV-03" not in predicate["failedTests"]
    assert predicate["configuration"][1]["digest"] == {"sha256": "ab" * 32}
    assert predicate["sovaudit"]["incompleteControls"] == ["SEC-05"]
    assert predicate["sovaudit"]["signingKeyId"] == key.keyid


def test_result_is_passed_only_when_every_control_passed():
    result = make_result()
    for control in result["controls"]:
        control["outcome"] = "PASS"
    assert summarise_tests(result)[0] == "PASSED"
    # NOT_APPLICABLE (the signed pack says it does not apply) passes, shown: in no test list.
    result["controls"][0]["outcome"] = "NOT_APPLICABLE"
    verdict, passed, warned, failed = summarise_tests(result)
    assert verdict == "PASSED" and result["controls"][0]["id"] not in passed + warned + failed
    result["controls"][1]["outcome"] = "SKIPPED"
    assert summarise_tests(result)[0] == "WARNED"
    for control in result["controls"]:
        control["outcome"] = "NOT_APPLICABLE"
    assert summarise_tests(result)[0] == "FAILED"   # nothing tested at all is never PASSED


@pytest.mark.parametrize("subject", ["result.json", "report.html", "manifest.json", "junit.xml", "results.sarif",
                                     "oscal-ar.json", "oscal-poam.json", "evidence/0002-compute-instances.aggregatedList.json"])
def test_one_flipped_byte_in_any_subject_is_named(signed_bundle, subject):
    run, key = signed_bundle
    path = run / subject
    path.write_bytes(_flip(path.read_bytes(), 10))
    outcome = _verify(run, key)
    assert not outcome.ok
    assert [(f.what, f.reason.split(":")[0]) for f in outcome.failures] == [(f"subject '{subject}'", "altered")]


def test_one_flipped_byte_in_the_payload_breaks_the_signature(signed_bundle):
    run, key = signed_bundle

    def flip_payload(envelope):
        payload = base64.b64decode(envelope["payload"])
        envelope["payload"] = base64.b64encode(_flip(payload, len(payload) // 2)).decode()

    _rewrite_envelope(run, flip_payload)
    outcome = _verify(run, key)
    assert outcome.failures[0].what == "signature 1" and "does not verify" in outcome.failures[0].reason
    assert outcome.failures[1].reason.startswith("not checked")  # subjects of a forged statement are not read


def test_one_flipped_byte_in_the_signature_is_caught(signed_bundle):
    run, key = signed_bundle

    def flip_signature(envelope):
        sig = base64.b64decode(envelope["signatures"][0]["sig"])
        envelope["signatures"][0]["sig"] = base64.b64encode(_flip(sig, len(sig) - 3)).decode()

    _rewrite_envelope(run, flip_signature)
    assert "does not verify" in _verify(run, key).failures[0].reason


def test_a_changed_payload_type_breaks_the_signature(signed_bundle):
    run, key = signed_bundle
    _rewrite_envelope(run, lambda e: e.update(payloadType="application/json"))
    assert "does not verify" in _verify(run, key).failures[0].reason


def test_wrong_key_is_reported_as_unknown(signed_bundle, tmp_path):
    run, _ = signed_bundle
    other = load_public_key(generate_key(tmp_path / "other", "ed25519").public_path)
    failure = _verify(run, other).failures[0]
    assert failure.what == "signature 1" and "unknown key" in failure.reason


def test_wrong_key_does_not_claim_the_bundle_files_are_uncovered(signed_bundle, tmp_path):
    run, _ = signed_bundle
    other = load_public_key(generate_key(tmp_path / "other", "ed25519").public_path)
    outcome = _verify(run, other)
    assert not outcome.ok and outcome.notes == ()


def test_keyid_mismatch_is_named(signed_bundle):
    run, key = signed_bundle
    _rewrite_envelope(run, lambda e: e["signatures"][0].update(keyid="00" * 32))
    failure = _verify(run, key).failures[0]
    assert "keyid mismatch" in failure.reason and key.keyid in failure.reason


def test_a_second_signature_by_an_unknown_key_fails(signed_bundle, tmp_path):
    run, key = signed_bundle
    stranger = load_signing_key(generate_key(tmp_path / "stranger", "ecdsa-p256").private_path)

    def add_signature(envelope):
        payload = base64.b64decode(envelope["payload"])
        pae = b"DSSEv1 %d %b %d %b" % (len(envelope["payloadType"]), envelope["payloadType"].encode(), len(payload), payload)
        sig = stranger.sign(pae)
        envelope["signatures"].append({"keyid": sig.keyid, "sig": base64.b64encode(bytes.fromhex(sig.signature)).decode()})

    _rewrite_envelope(run, add_signature)
    outcome = _verify(run, key)
    assert [c.ok for c in outcome.checks[:2]] == [True, False]
    assert outcome.failures[0].what == "signature 2" and "unknown key" in outcome.failures[0].reason
    assert _verify(run, [key, stranger.public_key]).ok  # both keys known: both signatures count


def _sign_subjects(tmp_path: Path, names: list[str]) -> tuple[Path, object]:
    pair = generate_key(tmp_path / "k", "ed25519")
    statement = build_statement(make_result(), [(name, "0" * 64) for name in names])
    _, envelope = sign_statement(statement, [load_signing_key(pair.private_path)])
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "attestation.intoto.jsonl").write_bytes(envelope_line(envelope))
    return bundle, load_public_key(pair.public_path)


@pytest.mark.parametrize("name", ["../outside.json", "/etc/passwd", "evidence/../../x", "a//b", "C:\\x", "./result.json"])
def test_subject_names_that_escape_the_bundle_are_refused(tmp_path, name):
    bundle, key = _sign_subjects(tmp_path, [name])
    (tmp_path / "outside.json").write_text("{}")
    failure = _verify(bundle, key).failures[0]
    assert failure.reason.startswith("refused:")


def test_a_symlink_out_of_the_bundle_is_refused(tmp_path):
    bundle, key = _sign_subjects(tmp_path, ["result.json"])
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    os.symlink(secret, bundle / "result.json")
    failure = _verify(bundle, key).failures[0]
    assert "outside the bundle" in failure.reason


def test_a_missing_subject_is_named(signed_bundle):
    run, key = signed_bundle
    (run / "junit.xml").unlink()
    failure = _verify(run, key).failures[0]
    assert failure.what == "subject 'junit.xml'" and failure.reason.startswith("missing")


def test_a_statement_without_subjects_never_passes(tmp_path):
    bundle, key = _sign_subjects(tmp_path, [])
    assert "no subject" in _verify(bundle, key).failures[0].reason


def test_an_unsigned_extra_file_is_noted(signed_bundle):
    run, key = signed_bundle
    (run / "evidence" / "9999-extra.json").write_text("{}")
    outcome = _verify(run, key)
    assert outcome.ok and "evidence/9999-extra.json" in outcome.notes[0]


def test_every_envelope_line_must_verify(signed_bundle, tmp_path):
    run, key = signed_bundle
    path = run / "attestation.intoto.jsonl"
    line = path.read_bytes()
    path.write_bytes(line + line)
    assert _verify(run, key).ok
    stranger = load_signing_key(generate_key(tmp_path / "s", "ed25519").private_path)
    _, other = sign_statement(build_statement(make_result(), [("result.json", "0" * 64)]), [stranger])
    path.write_bytes(line + envelope_line(other))
    failures = _verify(run, key).failures
    assert failures[0].what == "envelope 2 signature 1" and "unknown key" in failures[0].reason


def test_result_json_given_as_the_envelope_is_named_for_what_it_is(signed_bundle):
    run, key = signed_bundle
    with pytest.raises(EnvelopeError, match="is a JSON document, not an envelope file.*attestation.intoto.jsonl"):
        verify_envelope_file(run / "result.json", [key])
