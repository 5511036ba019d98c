"""Probes are always cleaned up: on SIGTERM mid-probe, and after `kill -9` by the next cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from click.testing import CliRunner

from sovaudit.cli import main
from sovaudit.simulator.server import SimServer


def probe_jobs(sim: SimServer) -> list[str]:
    with sim.state.lock:
        return [name for name in sim.state.jobs if "/jobs/sovaudit-probe-" in name]


def start_verify(sim: SimServer) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sovaudit", "verify", "--policy", "us", "--target", sim.url,
         "--job", "preprocess-genomes-001", "--api-deadline", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_sigterm_during_a_probe_deletes_the_accepted_probe_job(sim_factory: Callable[..., SimServer]) -> None:
    # Under a relaxed org policy the probe job is accepted; verify waits for it while we terminate it.
    sim = sim_factory(scenarios=["org-policy-relaxed"])
    process = start_verify(sim)
    try:
        wait_for(lambda: bool(probe_jobs(sim)))
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    # Interrupted means incomplete (3), never 1, which a CI gate reads as "a control failed".
    assert process.returncode == 3, process.stderr.read() if process.stderr else ""
    assert b"interrupted" in (process.stderr.read() if process.stderr else b"")
    assert probe_jobs(sim) == [], "the probe job survived SIGTERM"


def test_kill_9_leftover_is_found_and_deleted_by_cleanup(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["org-policy-relaxed"])
    process = start_verify(sim)
    try:
        wait_for(lambda: bool(probe_jobs(sim)))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    leftovers = probe_jobs(sim)
    assert leftovers, "kill -9 should have left the probe job behind (no finally ran)"
    result = CliRunner().invoke(main, ["cleanup", "--policy", "us", "--target", sim.url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert all(name.rsplit("/", 1)[-1] in result.output for name in leftovers)
    wait_for(lambda: not probe_jobs(sim), seconds=10)


def test_cleanup_never_deletes_an_unlabelled_resource_that_only_looks_like_a_probe(sim: SimServer) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery, storage

    credentials = AnonymousCredentials()
    options = {"api_endpoint": sim.url}
    storage.Client(project="fed-node-us", credentials=credentials, client_options=options).create_bucket(
        "sovaudit-probe-looks-like-one", location="us-central1")
    dataset = bigquery.Dataset("fed-node-us.sovaudit_probe_looks_like_one")
    dataset.location = "us-central1"
    bigquery.Client(project="fed-node-us", credentials=credentials, client_options=options).create_dataset(dataset)
    result = CliRunner().invoke(main, ["cleanup", "--policy", "us", "--target", sim.url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "sovaudit-probe-looks-like-one" in sim.state.buckets
    assert "sovaudit_probe_looks_like_one" in sim.state.datasets


LOOKALIKE = "sovaudit-probe-20261101t080000z-0a1b2c-europe-west4"


def _lookalike_jobs(sim: SimServer) -> list[str]:
    with sim.state.lock:
        return [name for name in sim.state.jobs if name.endswith(f"/jobs/{LOOKALIKE}")]


def test_a_probe_lookalike_created_by_someone_else_is_kept_and_fails(sim_factory: Callable[..., SimServer]) -> None:
    # Named and labelled like a probe, in a forbidden region, but created by insider@example.org: the
    # sweep must not destroy it, `cleanup` says so (exit 1), and verify FAILs SOV-02 naming the creator.
    sim = sim_factory(scenarios=["probe-lookalike-job"])
    assert _lookalike_jobs(sim)
    result = CliRunner().invoke(main, ["cleanup", "--policy", "us", "--target", sim.url], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "KEPT batch-job" in result.output and "insider@example.org" in result.output
    assert _lookalike_jobs(sim), "the sweep deleted a resource it did not create"
    import json

    verify = CliRunner().invoke(main, ["verify", "--policy", "us", "--target", sim.url, "--format", "json",
                                       "--api-deadline", "2"], catch_exceptions=False)
    document = json.loads(verify.stdout[verify.stdout.find("{"):])
    sov02 = next(c for c in document["controls"] if c["id"] == "SOV-02")
    assert sov02["outcome"] == "FAIL"
    assert any(LOOKALIKE in f["message"] and "insider@example.org" in f["message"] and f["outcome"] == "FAIL"
               for f in sov02["findings"])
    assert _lookalike_jobs(sim)


def test_the_verifiers_own_leftover_is_still_swept(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(scenarios=["probe-leftover-swept"])
    assert _lookalike_jobs(sim)
    result = CliRunner().invoke(main, ["cleanup", "--policy", "us", "--target", sim.url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "deleted batch-job" in result.output
    wait_for(lambda: not _lookalike_jobs(sim), seconds=10)


def test_a_labelled_leftover_without_a_create_entry_is_kept(sim: SimServer) -> None:
    # The label and the name alone prove nothing: with the create entry gone from the log the sweep
    # cannot tell who made the bucket, so it keeps it.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="fed-node-us", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": sim.url})
    bucket = client.bucket("sovaudit-probe-20260101t000000z-deadbe-us-central1")
    bucket.labels = {"sovaudit-probe": "20260101t000000z-deadbe"}
    client.create_bucket(bucket, location="us-central1")
    with sim.state.lock:
        sim.state.log_entries[:] = [e for e in sim.state.log_entries
                                    if (e.get("protoPayload") or {}).get("methodName") != "storage.buckets.create"]
    result = CliRunner().invoke(main, ["cleanup", "--policy", "us", "--target", sim.url], catch_exceptions=False)
    assert result.exit_code == 1 and "KEPT bucket" in result.output, result.output
    assert "sovaudit-probe-20260101t000000z-deadbe-us-central1" in sim.state.buckets
