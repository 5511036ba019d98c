"""The regulator's recipe from docs/verifying-a-report.md, run step by step with the real tools.

Each step is the documented command, run with an argument list (pipes become `input=`), so the
document cannot drift from what actually verifies.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from report_samples import make_evidence, make_result

from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.keys import generate_key, load_signing_key

TOOLS = ("openssl", "jq", "base64", "sha256sum", "printf", "head", "wc")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="openssl/jq/coreutils missing")


def run(args: list[str], stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, cwd=cwd, capture_output=True, check=False, timeout=60)


def recipe(bundle: Path, key: Path, work: Path) -> tuple[str, str, str, int]:
    """(key id from openssl, key id in the envelope, signature verdict line, sha256sum exit code)."""
    envelope = bundle / "attestation.intoto.jsonl"
    # 1. key ids
    der = run(["openssl", "pkey", "-pubin", "-in", str(key), "-outform", "DER"]).stdout
    key_id = run(["sha256sum"], der).stdout.split()[0].decode()
    first_line = run(["head", "-n", "1", str(envelope)]).stdout
    named_id = run(["jq", "-r", ".signatures[].keyid"], first_line).stdout.decode().strip()
    # 2. payload, signature, PAE
    payload = run(["base64", "-d"], run(["jq", "-r", ".payload"], first_line).stdout).stdout
    (work / "payload.json").write_bytes(payload)
    (work / "sig.bin").write_bytes(run(["base64", "-d"], run(["jq", "-r", ".signatures[0].sig"], first_line).stdout).stdout)
    payload_type = run(["jq", "-r", ".payloadType"], first_line).stdout.decode().strip()
    length = run(["wc", "-c"], payload).stdout.decode().strip()
    header = run(["printf", "DSSEv1 %d %s %d ", str(len(payload_type)), payload_type, length]).stdout
    (work / "pae.bin").write_bytes(header + payload)
    # 3. signature, by key type
    text = run(["openssl", "pkey", "-pubin", "-in", str(key), "-noout", "-text"]).stdout.decode()
    if text.startswith("ED25519"):
        check = run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
                     "-in", "pae.bin", "-sigfile", "sig.bin"], cwd=work)
    else:
        check = run(["openssl", "dgst", "-sha256", "-verify", str(key), "-signature", "sig.bin", "pae.bin"], cwd=work)
    verdict = (check.stdout + check.stderr).decode().strip().splitlines()[0]
    # 4. subjects
    names = run(["jq", "-r", ".subject[].name"], payload).stdout.decode().splitlines()
    assert not any(n.startswith("/") or ".." in n.split("/") for n in names)
    sums = run(["jq", "-r", '.subject[] | "\\(.digest.sha256)  \\(.name)"'], payload).stdout
    checked = run(["sha256sum", "--check", "--strict", "-"], sums, cwd=bundle)
    return key_id, named_id, verdict, checked.returncode


@pytest.mark.parametrize("key_type,good", [("ed25519", "Signature Verified Successfully"), ("ecdsa-p256", "Verified OK")])
def test_the_documented_openssl_recipe_verifies_and_catches_one_changed_byte(tmp_path, key_type, good):
    pair = generate_key(tmp_path / "keys", key_type)
    bundle = write_bundle(tmp_path / "out", make_result(), make_evidence(), {},
                          signer=load_signing_key(pair.private_path))
    work = tmp_path / "work"
    work.mkdir()
    key_id, named_id, verdict, sums_exit = recipe(bundle, pair.public_path, work)
    assert key_id == named_id == pair.key_id
    assert verdict == good
    assert sums_exit == 0

    result_file = bundle / "result.json"
    result_file.write_bytes(result_file.read_bytes().replace(b'"FAIL"', b'"PASS"', 1))
    assert recipe(bundle, pair.public_path, work)[3] != 0  # the altered subject is caught

    envelope = bundle / "attestation.intoto.jsonl"
    original = envelope.read_bytes()
    envelope.write_bytes(original.replace(b'"payload":"ewog', b'"payload":"ewoh', 1))  # '{\n ' becomes '{\n!'
    assert envelope.read_bytes() != original
    assert recipe(bundle, pair.public_path, work)[2] != good  # a changed payload fails the signature
