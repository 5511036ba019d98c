"""The issue's "done when": keys generate + verify --sign-key against the simulator writes a bundle
that report verify accepts, and one changed byte of result.json makes it fail."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sovaudit.audit.commands import verify
from sovaudit.reports.bundle import load_bundle
from sovaudit.reports.commands import keys, report


def test_a_signed_simulator_run_verifies_and_a_changed_byte_does_not(sim, tmp_path):
    runner = CliRunner()
    assert runner.invoke(keys, ["generate", "--out", str(tmp_path / "keys"), "--type", "ecdsa-p256"]).exit_code == 0
    private, public = tmp_path / "keys/sovaudit-ecdsa-p256.pem", tmp_path / "keys/sovaudit-ecdsa-p256.pub.pem"
    ran = runner.invoke(verify, ["--policy", "us", "--target", sim.url, "--out", str(tmp_path / "out"),
                                 "--sign-key", str(private), "--bundle"])
    assert ran.exit_code in (0, 1, 3), ran.output
    [run] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert (tmp_path / "out" / f"{run.name}.tar.gz").is_file()
    envelope = str(run / "attestation.intoto.jsonl")

    good = runner.invoke(report, ["verify", envelope, "--key", str(public)])
    assert good.exit_code == 0, good.output

    manifest, result, evidence = load_bundle(run)
    assert result is not None and manifest["run_id"] == result["run_id"] and len(evidence) == len(manifest["evidence"])
    assert json.loads((run / "result.json").read_text())["exit_code"] == ran.exit_code

    data = bytearray((run / "result.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (run / "result.json").write_bytes(bytes(data))
    bad = runner.invoke(report, ["verify", envelope, "--key", str(public)])
    assert bad.exit_code == 1 and "BAD subject 'result.json': altered" in bad.output
