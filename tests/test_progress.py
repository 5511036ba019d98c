"""Progress on stderr (issue 13 item 6): every wait of a second or more is said, stdout stays machine-readable,
and --quiet (global or per command) silences progress but never the verdict or the errors."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner, Result

from sovaudit import progress
from sovaudit.cli import main
from sovaudit.simulator.server import SimServer

JOB_NAME = "projects/fed-node-us/locations/us-central1/jobs/preprocess-genomes-001"
# Two 429s asking for a one-second wait: the run waits twice, and must say so each time.
SLOW_ORG_POLICY = [{"api": "orgpolicy", "path": ":getEffectivePolicy$", "status": 429, "retry_after": 1,
                    "times": 2}]


def verify_json(sim: SimServer, *before: str, after: tuple[str, ...] = ()) -> Result:
    sim.state.options["faults"] = list(SLOW_ORG_POLICY)
    return CliRunner().invoke(main, [*before, "verify", "--policy", "us", "--target", sim.url, "--no-probes",
                                     "--format", "json", "--api-deadline", "20", *after],
                              catch_exceptions=False)


def test_a_retried_call_and_the_job_picked_by_default_are_said_on_stderr_only(sim: SimServer) -> None:
    result = verify_json(sim)
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)  # the whole of stdout is the JSON document: no progress line mixed in
    lines = result.stderr.splitlines()
    retries = [line for line in lines if line.startswith("orgpolicy.policies.getEffectivePolicy: ")]
    assert len(retries) == 2, result.stderr
    assert retries[0].startswith("orgpolicy.policies.getEffectivePolicy: 429 RESOURCE_EXHAUSTED, retry 1 in 1 s")
    assert "retry 2 in 1 s" in retries[1]
    assert f"job: {JOB_NAME} (newest pipeline job; use --job to choose)" in lines
    assert any(re.fullmatch(r"window: \S+Z \.\. \S+Z \(audit logs are read over this span; --since/--until set it\)",
                            line) for line in lines), result.stderr


def test_a_job_named_with_job_is_said_as_named(sim: SimServer) -> None:
    result = verify_json(sim, after=("--job", "preprocess-genomes-001"))
    assert f"job: {JOB_NAME} (named with --job)" in result.stderr.splitlines()


@pytest.mark.parametrize("where", ["global", "command"])
def test_quiet_silences_progress_but_not_the_verdict(sim: SimServer, where: str) -> None:
    result = verify_json(sim, *(["--quiet"] if where == "global" else []),
                         after=("--quiet",) if where == "command" else ())
    assert result.exit_code == 0
    # --no-probes: the probe controls are SKIPPED by choice, so the run is WARNED (exit 0), not PASS.
    assert json.loads(result.stdout)["verdict"] == "WARNED"
    assert "retry" not in result.stderr and "job: " not in result.stderr and "window: " not in result.stderr
    # What is not progress still prints: the simulator warning is about what the verdict means.
    assert "SIMULATED" in result.stderr


def test_quiet_still_prints_a_collector_that_failed(sim: SimServer) -> None:
    sim.state.options["faults"] = [{"api": "compute", "status": 403}]
    result = CliRunner().invoke(main, ["--quiet", "verify", "--policy", "us", "--target", sim.url, "--no-probes",
                                       "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 3
    assert "could not collect" in result.stderr


def test_short_waits_are_not_worth_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    progress.retrying("compute.instances.get", "503 UNAVAILABLE", 1, 0.1, 60.0, 0.05)
    assert capsys.readouterr().err == ""
    progress.retrying("compute.instances.get", "503 UNAVAILABLE", 5, 3.6, 60.0, 2.0)
    assert capsys.readouterr().err.startswith("compute.instances.get: 503 UNAVAILABLE, retry 5 in 4 s")


def test_an_accepted_probe_job_is_said_while_it_is_awaited_and_deleted(sim_factory) -> None:  # type: ignore[no-untyped-def]
    # Batch accepts the probe job and fails it afterwards: the run waits on it, then deletes it.
    sim = sim_factory("us", batch_refusal="fail")
    result = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", sim.url, "--format", "json"],
                                catch_exceptions=False)
    json.loads(result.stdout)
    lines = result.stderr.splitlines()
    accepted = [line for line in lines if line.startswith("probe job ") and " was accepted in " in line]
    deleted = [line for line in lines if line.startswith("deleting probe projects/fed-node-us/locations/")]
    assert len(accepted) == 2 and len(deleted) == 2, result.stderr  # one per probe region
    assert all("(batch jobs.delete)" in line for line in deleted)
