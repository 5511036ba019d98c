"""Keys and the report/keys commands: refusals with clear messages, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_samples import make_evidence, make_result

from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.commands import keys, report
from sovaudit.reports.keys import KeyFileError, generate_key, load_public_key, load_signing_key
from sovaudit.reports.signing import file_signer

BAD = Path(__file__).parents[1] / "data" / "bad"

# Every file of the corpus, with the words its refusal must contain. The set of files is checked
# against this table, so a file added without an expectation fails the test instead of being ignored.
BAD_KEYS = {
    "rsa-2048.pem": "holds a key of type rsa;",
    "ecdsa-p384.pem": "holds a key of type ecdsa-secp384r1;",
    "public-key-given-as-signing-key.pub.pem": "holds a public key",
    "encrypted-without-password.pem": "is encrypted; set SOVAUDIT_SIGNING_KEY_PASSWORD",
    "not-pem.pem": "is not a PEM private key",
    "truncated.pem": "is not a PEM private key",
}
BAD_ENVELOPES = {
    "not-json.jsonl": "is not JSON",
    "empty.jsonl": "is empty",
    "json-array.jsonl": "must be a JSON object",
    "no-payload.jsonl": "no 'payload' field",
    "payload-not-base64.jsonl": "'payload' is not standard base64",
    "sig-not-base64.jsonl": "signature 1 'sig' is not standard base64",
    "signatures-not-a-list.jsonl": "'signatures' must be a list",
    "signature-without-sig.jsonl": "signature 1 has no 'sig' field",
}


def test_the_corpus_has_an_expectation_for_every_file():
    assert {p.name for p in (BAD / "keys").iterdir()} == set(BAD_KEYS)
    assert {p.name for p in (BAD / "envelopes").iterdir()} == set(BAD_ENVELOPES)


@pytest.mark.parametrize("kind,name", [("keys", n) for n in BAD_KEYS] + [("envelopes", n) for n in BAD_ENVELOPES])
def test_bad_input_is_refused_with_exit_2_and_a_clear_message(kind, name, tmp_path, monkeypatch):
    monkeypatch.delenv("SOVAUDIT_SIGNING_KEY_PASSWORD", raising=False)
    copy = tmp_path / name
    shutil.copyfile(BAD / kind / name, copy)
    copy.chmod(0o600)  # so that the content, not the mode, is what gets refused
    if kind == "keys":
        with pytest.raises(KeyFileError) as raised:
            file_signer(copy)
        assert BAD_KEYS[name] in str(raised.value) and str(copy) in str(raised.value)
        return
    public = generate_key(tmp_path / "k").public_path
    outcome = CliRunner().invoke(report, ["verify", str(copy), "--key", str(public)])
    assert outcome.exit_code == 2, outcome.output
    assert BAD_ENVELOPES[name] in outcome.output and "Traceback" not in outcome.output


def test_keys_generate_writes_a_private_key_only_the_owner_can_read(tmp_path):
    outcome = CliRunner().invoke(keys, ["generate", "--out", str(tmp_path), "--type", "ecdsa-p256"])
    assert outcome.exit_code == 0, outcome.output
    private, public = tmp_path / "sovaudit-ecdsa-p256.pem", tmp_path / "sovaudit-ecdsa-p256.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_public_key(public).keyid in outcome.output
    again = CliRunner().invoke(keys, ["generate", "--out", str(tmp_path), "--type", "ecdsa-p256"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_a_private_key_readable_by_others_is_refused(tmp_path):
    pair = generate_key(tmp_path)
    pair.private_path.chmod(0o640)
    with pytest.raises(KeyFileError, match=r"readable by group or others \(mode 0640\); run `chmod 600"):
        load_signing_key(pair.private_path)


def test_a_missing_signing_key_says_how_to_make_one(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist.*sovaudit keys generate"):
        load_signing_key(tmp_path / "nope.pem")


def test_an_encrypted_key_loads_with_its_password(tmp_path, monkeypatch):
    copy = tmp_path / "k.pem"
    shutil.copyfile(BAD / "keys" / "encrypted-without-password.pem", copy)
    copy.chmod(0o600)
    monkeypatch.setenv("SOVAUDIT_SIGNING_KEY_PASSWORD", "correct horse")
    assert load_signing_key(copy).public_key.keytype == "ed25519"


def test_a_private_key_given_as_verification_key_is_refused(tmp_path):
    pair = generate_key(tmp_path)
    with pytest.raises(KeyFileError, match="holds a private key"):
        load_public_key(pair.private_path)


def test_keyid_is_the_sha256_of_the_der_public_key(tmp_path):
    from cryptography.hazmat.primitives import serialization

    pair = generate_key(tmp_path, "ecdsa-p256")
    public = serialization.load_pem_public_key(pair.public_path.read_bytes())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib

    assert pair.key_id == hashlib.sha256(der).hexdigest()
    assert CliRunner().invoke(keys, ["id", str(pair.public_path)]).output.strip() == pair.key_id


@pytest.fixture
def signed_run(tmp_path):
    pair = generate_key(tmp_path / "keys", "ed25519")
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=file_signer(pair.private_path))
    return run, pair.public_path


def test_report_verify_exits_0_on_a_good_bundle(signed_run):
    run, public = signed_run
    outcome = CliRunner().invoke(report, ["verify", str(run / "attestation.intoto.jsonl"), "--key", str(public)])
    assert outcome.exit_code == 0, outcome.output
    assert "VERIFIED: 1 signature(s), 10 subject(s)" in outcome.output


def test_report_verify_exits_1_and_names_the_altered_file(signed_run):
    run, public = signed_run
    (run / "result.json").write_bytes((run / "result.json").read_bytes().replace(b"FAIL", b"PASS", 1))
    outcome = CliRunner().invoke(report, ["verify", str(run / "attestation.intoto.jsonl"), "--key", str(public)])
    assert outcome.exit_code == 1
    assert "BAD subject 'result.json': altered" in outcome.output


def test_report_verify_takes_the_bundle_from_another_place(signed_run, tmp_path):
    run, public = signed_run
    envelope = tmp_path / "elsewhere.jsonl"
    shutil.copyfile(run / "attestation.intoto.jsonl", envelope)
    ok = CliRunner().invoke(report, ["verify", str(envelope), "--key", str(public), "--bundle", str(run)])
    assert ok.exit_code == 0, ok.output
    lost = CliRunner().invoke(report, ["verify", str(envelope), "--key", str(public)])
    assert lost.exit_code == 1 and "missing from the bundle" in lost.output


@pytest.mark.parametrize("problem", ["missing envelope", "missing key", "bad key"])
def test_report_verify_exits_2_on_unusable_input(signed_run, tmp_path, problem):
    run, public = signed_run
    envelope = run / "attestation.intoto.jsonl"
    if problem == "missing envelope":
        envelope = tmp_path / "none.jsonl"
    elif problem == "missing key":
        public = tmp_path / "none.pub.pem"
    else:
        public = tmp_path / "garbage.pub.pem"
        public.write_text("garbage")
    outcome = CliRunner().invoke(report, ["verify", str(envelope), "--key", str(public)])
    assert outcome.exit_code == 2, outcome.output
    assert "error:" in outcome.output


@pytest.mark.parametrize("fmt,marker", [("html", b"<!DOCTYPE html>"), ("junit", b"<testsuites"),
                                        ("sarif", b'"version": "2.1.0"'), ("json", b'"schema": "sovaudit/result/v1"')])
def test_report_render_writes_each_format(signed_run, tmp_path, fmt, marker):
    run, _ = signed_run
    out = tmp_path / f"out.{fmt}"
    outcome = CliRunner().invoke(report, ["render", str(run / "result.json"), "--format", fmt, "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert marker in out.read_bytes()


def test_report_render_of_a_bundle_result_reproduces_its_report(signed_run, tmp_path):
    run, _ = signed_run
    out = tmp_path / "again.html"
    CliRunner().invoke(report, ["render", str(run / "result.json"), "--out", str(out)])
    assert out.read_bytes() == (run / "report.html").read_bytes()


def test_report_render_refuses_what_is_not_a_result(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"schema": "other"}))
    outcome = CliRunner().invoke(report, ["render", str(bad)])
    assert outcome.exit_code == 2 and "expected 'sovaudit/result/v1'" in outcome.output


def test_a_key_name_with_a_path_is_refused(tmp_path):
    with pytest.raises(KeyFileError, match="plain file name"):
        generate_key(tmp_path, "ed25519", "../elsewhere")


def test_a_throwaway_signer_signs_a_bundle_its_written_public_key_verifies(tmp_path):
    from sovaudit.reports.signing import throwaway_signer, write_public_key
    from sovaudit.reports.verify import verify_envelope_file

    signer = throwaway_signer("ecdsa-p256")
    run = write_bundle(tmp_path / "out", make_result(), make_evidence(), {}, signer=signer)
    public = write_public_key(signer, tmp_path / "out" / "demo-signing-key.pub.pem")
    assert verify_envelope_file(run / "attestation.intoto.jsonl", [load_public_key(public)]).ok
