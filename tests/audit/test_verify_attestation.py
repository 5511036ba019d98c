"""CC-05 through `sovaudit verify`: the signing keys are archived, and the bundle re-checks the tokens offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from sovaudit.cli import main
from sovaudit.simulator.server import SimServer


def verify_eu(sim: SimServer, out: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["verify", "--policy", "eu", "--target", sim.url, "--job",
                                       "preprocess-genomes-001", "--no-probes", "--format", "json", "--out", str(out)],
                                catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout[result.stdout.find("{"):])


def test_the_archived_jwks_lets_verify_evidence_recheck_every_token_offline(
        sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    code, document = verify_eu(sim_factory(node="eu"), tmp_path)
    assert code == 0
    cc05 = next(c for c in document["controls"] if c["id"] == "CC-05")
    assert cc05["outcome"] == "PASS" and len(cc05["findings"]) == 10
    run_dir = next(tmp_path.glob("run-*"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    jwks_items = [e for e in manifest["evidence"] if e["purpose"] == "confidentialcomputing.jwks"]
    assert len(jwks_items) == 1   # fetched once per verify
    assert jwks_items[0]["id"] in cc05["evidence"]
    again = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "eu"], catch_exceptions=False)
    assert again.exit_code == 0 and "reproduces every recorded outcome" in again.output
    # Swap the archived keys for other ones: the offline re-check no longer reaches PASS.
    jwks_file = run_dir / jwks_items[0]["path"]
    keys = json.loads(jwks_file.read_text())
    keys["keys"][0]["kid"] = "not-the-signer"
    jwks_file.write_text(json.dumps(keys))
    tampered = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "eu"],
                                  catch_exceptions=False)
    assert tampered.exit_code != 0 and jwks_file.name in tampered.output
