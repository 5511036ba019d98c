"""The openssl-only recipe for the RFC 3161 timestamp in docs/verifying-a-report.md, step by step."""

from __future__ import annotations

import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest
from local_tsa import LocalTsa, make_ca
from report_samples import make_evidence, make_result

from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.keys import generate_key, load_signing_key
from sovaudit.reports.timestamp import request_timestamp

TOOLS = ("openssl", "jq", "base64", "sha256sum", "head")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="openssl/jq/coreutils missing")


def run(args: list[str], stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, cwd=cwd, capture_output=True, check=False, timeout=60)


def recipe(bundle: Path, root: Path, work: Path) -> tuple[str, str]:
    """(verification line, genTime line) as the documented commands print them."""
    first = run(["head", "-n", "1", str(bundle / "attestation.intoto.jsonl")]).stdout
    sig = run(["base64", "-d"], run(["jq", "-r", ".signatures[0].sig"], first).stdout).stdout
    (work / "sig.bin").write_bytes(sig)
    digest = run(["sha256sum", "sig.bin"], cwd=work).stdout.split()[0].decode()
    check = run(["openssl", "ts", "-verify", "-digest", digest, "-in", str(bundle / "attestation.tsr"),
                 "-CAfile", str(root)])
    verdict = (check.stdout + check.stderr).decode().strip().splitlines()[0]
    text = run(["openssl", "ts", "-reply", "-in", str(bundle / "attestation.tsr"), "-text"]).stdout.decode()
    when = next((line for line in text.splitlines() if line.startswith("Time stamp:")), "")
    return verdict, when


def test_the_documented_openssl_timestamp_recipe(tmp_path):
    (tmp_path / "tsa").mkdir()
    tsa = LocalTsa(tmp_path / "tsa")
    try:
        pair = generate_key(tmp_path / "keys", "ecdsa-p256")
        bundle = write_bundle(tmp_path / "out", make_result(), make_evidence(), {},
                              signer=load_signing_key(pair.private_path), timestamper=partial(request_timestamp, tsa.url))
        work = tmp_path / "work"
        work.mkdir()
        verdict, when = recipe(bundle, tsa.root_pem, work)
        assert verdict == "Verification: OK"
        assert when.startswith("Time stamp: ") and "GMT" in when

        stranger, _, _ = make_ca(tmp_path, "Stranger Root")
        assert recipe(bundle, stranger, work)[0] != "Verification: OK"  # an untrusted TSA is caught

        (bundle / "attestation.tsr").write_bytes(request_timestamp(tsa.url, b"other bytes"))
        assert recipe(bundle, tsa.root_pem, work)[0] != "Verification: OK"  # a token over other bytes is caught
    finally:
        tsa.close()
