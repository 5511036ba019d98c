"""`sovaudit demo`, the README's main command: runs the pipeline on the simulator, verifies it, signs."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sovaudit.audit.registry import all_controls
from sovaudit.cli import main


def test_demo_runs_the_pipeline_passes_every_control_and_writes_a_verifiable_bundle(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--out", str(tmp_path), "--files", "2", "--records", "300"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # SOV-09 and CC-05 are NOT_APPLICABLE: the us pack names no workload and leaves in-guest attestation off.
    assert f"verdict: PASS (PASS {len(all_controls()) - 2}, NOT_APPLICABLE 2)" in result.output
    run_dir = next(tmp_path.glob("run-*/"))
    public_key = run_dir.parent / f"{run_dir.name}.pub.pem"
    checked = runner.invoke(main, ["report", "verify", str(run_dir / "attestation.intoto.jsonl"),
                                   "--key", str(public_key)], catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    again = runner.invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"], catch_exceptions=False)
    assert again.exit_code == 0, again.output


def test_demo_with_a_scenario_catches_the_violation(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--scenario", "vm-public-ip"],
                                catch_exceptions=False)
    assert result.exit_code == 1
    assert "SEC-02" in result.output and "FAIL" in result.output


def test_demo_refuses_an_unknown_scenario_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--scenario", "no-such-thing"])
    assert result.exit_code == 2
    assert "scenario no-such-thing: is not a known scenario; known: api-slow" in result.output


def test_demo_with_a_waiver_scenario_judges_with_the_amended_pack(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--scenario", "waiver-valid"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "WAIVED" in result.output
    amended = tmp_path / "us-node+waiver-valid.yaml"
    assert amended.is_file() and f"--policy {amended}" in result.output


def test_demo_probe_job_accepted_in_another_region_fails_sov02_not_error(tmp_path: Path) -> None:
    # The demo's Batch runs the real task code; the probe job's `true` script used to be started as the
    # pipeline task, exit 1, and SOV-02 read "failed for another reason" (ERROR) instead of FAIL.
    import json

    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--scenario", "probe-same-country"],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    document = json.loads(next(tmp_path.glob("run-*/result.json")).read_text())
    outcomes = {c["id"]: c["outcome"] for c in document["controls"]}
    assert {k for k, v in outcomes.items() if v not in ("PASS", "NOT_APPLICABLE")} == {"SOV-01", "SOV-02", "SOV-03"}
    assert {k for k, v in outcomes.items() if v == "NOT_APPLICABLE"} == {"SOV-09", "CC-05"}
    assert outcomes["SOV-02"] == "FAIL"
