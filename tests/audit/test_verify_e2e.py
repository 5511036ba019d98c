"""`sovaudit verify` end to end: the CLI, the official clients, the simulator, every control.

Each simulator scenario declares the controls it must make fail (and those it makes incomplete);
verify must find exactly those — no false pass, no collateral failure — and exit with the code a
release gate relies on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from schema_fidelity import check_bundle

from sovaudit.audit.registry import all_controls
from sovaudit.cli import main
from sovaudit.simulator.matrix import run_row
from sovaudit.simulator.node import list_scenarios
from sovaudit.simulator.server import SimServer

ALL_CONTROLS = len(all_controls())


def run_verify(sim: SimServer, *extra: str, policy: str = "us") -> tuple[int, dict[str, Any]]:
    args = ["verify", "--policy", policy, "--target", sim.url, "--job", "preprocess-genomes-001",
            "--format", "json", "--api-deadline", "2", *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    start = result.stdout.find("{")
    assert start >= 0, f"no JSON on stdout (exit {result.exit_code}): {result.output}"
    return result.exit_code, json.loads(result.stdout[start:])


def outcomes(document: dict[str, Any], outcome: str) -> set[str]:
    return {c["id"] for c in document["controls"] if c["outcome"] == outcome}


@pytest.mark.parametrize("node", ["us", "eu"])
def test_clean_node_passes_every_control(sim_factory: Callable[..., SimServer], node: str) -> None:
    code, document = run_verify(sim_factory(node=node), policy=node)
    # The pack's choices: the us pack names no Assured Workloads workload (SOV-09) and leaves in-guest
    # attestation (CC-05) off; the eu pack does both.
    by_choice = {"us": {"SOV-09", "CC-05"}, "eu": set()}[node]
    assert outcomes(document, "NOT_APPLICABLE") == by_choice, document["summary"]
    assert outcomes(document, "PASS") == {c["id"] for c in document["controls"]} - by_choice, document["summary"]
    assert len(document["controls"]) == ALL_CONTROLS
    assert code == 0 and document["verdict"] == "PASS"


SCENARIOS = list_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_fails_exactly_its_declared_controls(scenario: Any, tmp_path: Path) -> None:
    row = run_row(scenario, out_dir=tmp_path)
    # Every answer the simulator gave in this run is in Google's published shape (discovery documents,
    # error envelope, AuditLog and BigQueryAuditMetadata protos): a staged route is only worth catching
    # if Google would answer the same way.
    defects, checked = check_bundle(next(tmp_path.glob("run-*")))
    assert checked and not defects, "\n".join(map(str, defects[:20]))
    assert row.observed_fails == row.declared_fails
    assert row.observed_errors == row.declared_errors
    assert row.observed_waived == row.declared_waived
    assert row.exit_code == row.expected_exit
    assert row.caught


def test_every_control_has_a_scenario_that_makes_it_fail() -> None:
    failing = {control for scenario in SCENARIOS for control in scenario.fails}
    assert len(failing) == ALL_CONTROLS, sorted(failing)


def findings(document: Any, control_id: str) -> list[dict[str, Any]]:
    return next(c for c in document["controls"] if c["id"] == control_id)["findings"]


def test_probes_accepted_in_another_region_of_the_same_country_fail_and_are_deleted(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["probe-same-country"])
    code, document = run_verify(sim)
    assert code == 1 and {"SOV-01", "SOV-02", "SOV-03"} <= outcomes(document, "FAIL")
    by_region: dict[str, list[dict[str, Any]]] = {}
    for probe in document["probes"]:
        by_region.setdefault(probe["resource"].rsplit(" in ", 1)[-1], []).append(probe)
    assert len(by_region["europe-west4"]) == 3 and all(p["refused"] for p in by_region["europe-west4"])
    accepted = by_region["us-east1"]
    assert len(accepted) == 3 and all(not p["refused"] and p["cleanup"] == "deleted" for p in accepted)
    # Nothing the probes created is left: no job, bucket, dataset, nor a VM of a probe job.
    assert not [name for name in sim.state.jobs if "sovaudit-probe" in name]
    assert not [name for name in sim.state.buckets if name.startswith("sovaudit-probe")]
    assert not [name for name in sim.state.datasets if name.startswith("sovaudit_probe")]
    assert not [key for key, vm in sim.state.instances.items() if "sovaudit-probe" in str(vm.get("labels", {}))]


def test_an_expired_waiver_leaves_the_failure_and_says_it_expired() -> None:
    row = run_row(next(s for s in SCENARIOS if s.name == "waiver-expired"))
    failed = [f for f in findings(row.document, "SEC-02") if f["outcome"] == "FAIL"]
    assert len(failed) == 1 and "expired on 2026-06-30" in failed[0]["message"]
    assert next(c for c in row.document["controls"] if c["id"] == "SEC-02")["waiver"] is None


def test_an_in_force_waiver_turns_the_failure_into_waived_and_the_gate_passes() -> None:
    row = run_row(next(s for s in SCENARIOS if s.name == "waiver-valid"))
    sov04 = next(c for c in row.document["controls"] if c["id"] == "SOV-04")
    assert sov04["outcome"] == "WAIVED" and row.exit_code == 0 and row.document["verdict"] == "WARNED"
    assert sov04["waiver"]["owner"] == "data-protection-officer@example.org"
    assert sov04["waiver"]["expires"] == "2099-12-31"
    waived = [f for f in sov04["findings"] if f["outcome"] == "WAIVED"]
    assert [f["resource"] for f in waived] == ["projects/_/buckets/fed-node-us-raw-vcfs"]


def test_vms_deleted_by_batch_are_judged_on_their_insert_audit_entries() -> None:
    row = run_row(next(s for s in SCENARIOS if s.name == "vms-deleted-after-job"))
    assert row.caught and row.exit_code == 0
    for control_id in ("CC-02", "SEC-02", "SOV-06"):
        vm_findings = [f for f in findings(row.document, control_id) if "/instances/" in f["resource"]]
        assert len(vm_findings) == 10, control_id
        assert all("the VM no longer exists" in f["message"] for f in vm_findings), control_id
    assert "10 VM inserts logged for 0 VMs found; 10 no longer exist" in findings(row.document, "CC-03")[-1]["message"]


def test_batch_probe_refused_by_a_failed_job_counts_as_refused(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(batch_refusal="fail")
    code, document = run_verify(sim)
    sov02 = next(c for c in document["controls"] if c["id"] == "SOV-02")
    assert sov02["outcome"] == "PASS", sov02["findings"]
    assert code == 0
    # The accepted probe jobs were deleted, not left running.
    assert not [name for name in sim.state.jobs if "sovaudit-probe" in name]


def test_accepted_probes_fail_and_leave_nothing_behind(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["org-policy-relaxed"])
    code, document = run_verify(sim)
    assert {"SOV-01", "SOV-02", "SOV-03"} <= outcomes(document, "FAIL")
    assert code == 1
    assert not [name for name in sim.state.jobs if "sovaudit-probe" in name]
    assert not [name for name in sim.state.buckets if name.startswith("sovaudit-probe")]
    assert not [name for name in sim.state.datasets if name.startswith("sovaudit_probe")]


def test_no_probes_and_posture_only_are_skipped_and_warned(sim: SimServer) -> None:
    args = ["verify", "--policy", "us", "--target", sim.url, "--posture-only", "--no-probes", "--format", "json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    document = json.loads(result.stdout[result.stdout.find("{"):])
    skipped = outcomes(document, "SKIPPED")
    assert {"SOV-02", "SOV-03", "CC-02", "SEC-04", "INT-01"} <= skipped
    # The policy said nothing about these: the user chose (only the pack's optional SOV-09 and CC-05 are
    # NOT_APPLICABLE, by the pack's own choice).
    assert outcomes(document, "NOT_APPLICABLE") == {"SOV-09", "CC-05"}
    assert outcomes(document, "FAIL") == set() and outcomes(document, "ERROR") == set()
    assert document["verdict"] == "WARNED" and result.exit_code == 0


def test_leftover_probe_from_a_killed_run_is_swept(sim: SimServer, tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="fed-node-us", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": sim.url})
    # What a run killed between create and delete leaves behind (the org policy refuses other regions,
    # so the leftover lives in an allowed one, as an accepted probe would under a relaxed policy).
    bucket = client.bucket("sovaudit-probe-20260101t000000z-deadbe-us-central1")
    bucket.labels = {"sovaudit-probe": "20260101t000000z-deadbe"}
    client.create_bucket(bucket, location="us-central1")
    result = CliRunner().invoke(main, ["cleanup", "--policy", "us", "--target", sim.url], catch_exceptions=False)
    assert "deleted bucket sovaudit-probe-20260101t000000z-deadbe-us-central1" in result.output
    assert result.exit_code == 0
    assert "sovaudit-probe-20260101t000000z-deadbe-us-central1" not in sim.state.buckets


def test_unknown_job_is_bad_input_before_any_probe_or_output(sim: SimServer, tmp_path: Path) -> None:
    # A --job that does not exist is a typo or a stale gate, not a finding about the node: exit 2, before
    # any probe touches the cloud and before anything is written.
    before = len(sim.state.jobs)
    args = ["verify", "--policy", "us", "--target", sim.url, "--job", "no-such-job", "--out", str(tmp_path / "out"),
            "--format", "json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "no-such-job" in result.output and "does not exist" in result.output
    assert not (tmp_path / "out").exists()
    assert len(sim.state.jobs) == before, "a probe job was submitted"


@pytest.mark.parametrize("bound", [("--until", "2020-01-01T00:00:00Z"), ("--since", "2099-01-01T00:00:00Z")],
                         ids=["until-before-job-start", "since-after-job-end"])
def test_one_bound_against_the_jobs_window_that_empties_it_is_bad_input_not_a_finding(
        sim: SimServer, tmp_path: Path, bound: tuple[str, str]) -> None:
    args = ["verify", "--policy", "us", "--target", sim.url, "--job", "preprocess-genomes-001",
            "--out", str(tmp_path / "out"), *bound]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "audit-log window" in result.output and "is empty" in result.output and bound[0] in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not [b for b in sim.state.buckets if b.startswith("sovaudit-probe")]


def test_signed_bundle_reverifies_offline_to_the_same_outcomes(sim_factory: Callable[..., SimServer],
                                                                tmp_path: Path) -> None:
    sim = sim_factory(scenarios=["vm-public-ip"])
    runner = CliRunner()
    keys = runner.invoke(main, ["keys", "generate", "--out", str(tmp_path / "keys")], catch_exceptions=False)
    assert keys.exit_code == 0, keys.output
    private = next(p for p in (tmp_path / "keys").iterdir() if not p.name.endswith(".pub.pem"))
    public = next((tmp_path / "keys").glob("*.pub.pem"))
    code, _ = run_verify(sim, "--out", str(tmp_path / "out"), "--sign-key", str(private))
    assert code == 1
    run_dir = next((tmp_path / "out").glob("run-*"))
    again = runner.invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"], catch_exceptions=False)
    assert "reproduces every recorded outcome" in again.output
    assert again.exit_code == 1
    checked = runner.invoke(main, ["report", "verify", str(run_dir / "attestation.intoto.jsonl"),
                                   "--key", str(public)], catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    # Tampering with one byte of the result is caught by the signature check.
    result_file = run_dir / "result.json"
    result_file.write_bytes(result_file.read_bytes().replace(b'"FAIL"', b'"PASS"', 1))
    tampered = runner.invoke(main, ["report", "verify", str(run_dir / "attestation.intoto.jsonl"),
                                    "--key", str(public)], catch_exceptions=False)
    assert tampered.exit_code == 1
    assert "result.json" in tampered.output


def test_altered_evidence_makes_reverification_error_naming_the_file(sim: SimServer, tmp_path: Path) -> None:
    code, _ = run_verify(sim, "--out", str(tmp_path), "--no-probes")
    assert code == 0
    run_dir = next(tmp_path.glob("run-*"))
    victim = next((run_dir / "evidence").glob("*compute-instances.aggregatedList.json"))
    victim.write_bytes(victim.read_bytes().replace(b"SEV", b"XXX", 1))
    again = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"],
                               catch_exceptions=False)
    assert victim.name in again.output
    assert again.exit_code == 1  # outcomes no longer match the recorded ones


def test_a_bundle_judged_on_insert_entries_reverifies_offline_to_the_same_outcomes(
        sim_factory: Callable[..., SimServer], tmp_path: Path) -> None:
    sim = sim_factory(scenarios=["vms-deleted-public-ip"])
    code, document = run_verify(sim, "--out", str(tmp_path), "--no-probes")
    assert code == 1 and outcomes(document, "FAIL") == {"SEC-02"}
    run_dir = next(tmp_path.glob("run-*"))
    again = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"], catch_exceptions=False)
    assert "reproduces every recorded outcome" in again.output
    assert again.exit_code == 1
