"""Scope integrity: the gate judges every pipeline job in scope, over a window that covers them.

Through the CLI against the simulator: a violating job followed by a clean one, a window cut short
before the end of a job, --job repeated, and an offline re-verification of a multi-job bundle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sovaudit.cli import main
from sovaudit.simulator.server import SimServer

CLEAN = "preprocess-genomes-001"
EARLIER = "preprocess-genomes-000"
# What the window-dependent controls read; each must ERROR when the window leaves part of a job out.
WINDOW_CONTROLS = {"SEC-04", "SEC-06", "SEC-07", "SEC-08", "SEC-09", "CC-03", "CC-04"}


def verify(sim: SimServer, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--policy", "us", "--target", sim.url, "--format", "json", "--api-deadline", "2",
            "--no-probes", *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    start = result.stdout.find("{")
    assert start >= 0, f"no JSON (exit {result.exit_code}): {result.output}"
    return result.exit_code, json.loads(result.stdout[start:])


def by_outcome(document: dict[str, Any], outcome: str) -> set[str]:
    return {c["id"] for c in document["controls"] if c["outcome"] == outcome}


def control(document: dict[str, Any], control_id: str) -> dict[str, Any]:
    return next(c for c in document["controls"] if c["id"] == control_id)


def test_without_job_a_violating_job_before_a_clean_one_is_judged_and_fails(
        sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["scope-violating-job-then-clean"])
    code, document = verify(sim)
    assert code == 1
    assert by_outcome(document, "FAIL") == {"SEC-02"}
    assert [ref["job"] for ref in document["scope"]["jobs"]] == [CLEAN, EARLIER]
    assert document["scope"]["not_judged"] == []
    failing = [f for f in control(document, "SEC-02")["findings"] if f["outcome"] == "FAIL"]
    assert failing and all("preprocess-genom" in f["message"] or "external address" in f["message"] for f in failing)
    # The window covers both jobs' lives.
    earliest = min(datetime.fromisoformat(ref["created"].replace("Z", "+00:00")) for ref in document["scope"]["jobs"])
    assert datetime.fromisoformat(document["scope"]["window"]["start"].replace("Z", "+00:00")) <= earliest


def test_naming_only_the_clean_job_passes_it_but_names_the_job_left_out(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["scope-violating-job-then-clean"])
    code, document = verify(sim, "--job", CLEAN)
    assert "SEC-02" not in by_outcome(document, "FAIL")
    assert [ref["job"] for ref in document["scope"]["jobs"]] == [CLEAN]
    assert len(document["scope"]["not_judged"]) == 1 and EARLIER in document["scope"]["not_judged"][0]
    # Repeating --job judges both.
    code, document = verify(sim, "--job", CLEAN, "--job", EARLIER)
    assert code == 1 and by_outcome(document, "FAIL") == {"SEC-02"}
    assert {ref["job"] for ref in document["scope"]["jobs"]} == {CLEAN, EARLIER}


def test_two_clean_jobs_pass_and_both_are_listed(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["scope-two-jobs-clean"])
    code, document = verify(sim)
    assert code == 0, by_outcome(document, "FAIL") | by_outcome(document, "ERROR")
    assert [ref["job"] for ref in document["scope"]["jobs"]] == [CLEAN, EARLIER]
    # SEC-02 judged the VMs of both jobs (by their insert entries: Batch deleted the earlier job's).
    resources = {f["resource"] for f in control(document, "SEC-02")["findings"]}
    assert any("preprocess-genom" in r for r in resources)
    assert len([r for r in resources if "/instances/" in r]) == 12   # 10 + 2 workers


def _job_end(sim: SimServer) -> datetime:
    job = next(j for name, j in sim.state.jobs.items() if name.endswith(f"/jobs/{CLEAN}"))
    return max(datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")) for e in job["status"]["statusEvents"])


def test_an_until_before_the_job_ends_makes_the_window_controls_error_naming_the_gap(sim: SimServer) -> None:
    end = _job_end(sim)
    until = (end - timedelta(minutes=30)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, document = verify(sim, "--job", CLEAN, "--until", until)
    assert code == 3, by_outcome(document, "FAIL")
    errors = by_outcome(document, "ERROR")
    assert WINDOW_CONTROLS <= errors, WINDOW_CONTROLS - errors
    assert "SOV-01" not in errors and "CC-01" not in errors   # posture and job-spec controls are unaffected
    gap = document["scope"]["window_gaps"]
    assert len(gap) == 1 and CLEAN in gap[0] and "not searched" in gap[0]
    messages = [f["message"] for f in control(document, "SEC-04")["findings"] if f["outcome"] == "ERROR"]
    assert any("does not cover the whole run" in m for m in messages)


def test_a_wider_window_is_not_a_gap(sim: SimServer) -> None:
    end = _job_end(sim)
    since = (end - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (end + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")   # before an analyst's later read
    code, document = verify(sim, "--job", CLEAN, "--since", since, "--until", until)
    assert code == 0, by_outcome(document, "FAIL") | by_outcome(document, "ERROR")
    assert document["scope"]["window_gaps"] == []
    # Without --job the same window judges the same job.
    code, document = verify(sim, "--since", since, "--until", until)
    assert code == 0 and [ref["job"] for ref in document["scope"]["jobs"]] == [CLEAN]


def test_a_multi_job_bundle_reverifies_offline_to_the_same_outcomes(sim_factory: Callable[..., SimServer],
                                                                    tmp_path: Path) -> None:
    sim = sim_factory(scenarios=["scope-violating-job-then-clean"])
    code, document = verify(sim, "--out", str(tmp_path))
    (run,) = tmp_path.glob("run-*")
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--evidence", str(run), "--format", "json"],
                                catch_exceptions=False)
    again = json.loads(result.stdout[result.stdout.find("{"):])
    assert result.exit_code == code == 1
    assert {c["id"]: c["outcome"] for c in again["controls"]} == {c["id"]: c["outcome"] for c in document["controls"]}
    # Both jobs' specs are kept apart as evidence.
    purposes = {item["purpose"] for item in json.loads((run / "manifest.json").read_text())["evidence"]}
    assert {f"batch.job:{CLEAN}", f"batch.job:{EARLIER}"} <= purposes
