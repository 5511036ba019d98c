"""Data safety when a task dies (issue 6): killed mid-run it loads nothing partial; killed after its load
was accepted and retried, it loads nothing twice; the manifest always states what BigQuery holds.

The task is the real one (`sovaudit pipeline task` in a fresh process, as a Batch VM runs it) on the
simulator; the test's runner kills its first attempt with SIGKILL at a chosen moment, as a preempted
VM or the OOM killer would, and Batch retries it. Nothing of the task is patched: the kill is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.api_core import exceptions

from sovaudit import cloud
from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.preprocess import file_sha256
from sovaudit.pipeline.simrunner import TASK_COMMAND, SimTaskOutcome, run_task
from sovaudit.pipeline.spec import job_id_for
from sovaudit.pipeline.synth import SynthSpec, write_vcf
from sovaudit.pipeline.task import load_job_id

PROJECT, RAW, PROCESSED, LOCATION = "fed-node-us", "fed-node-us-raw-vcfs", "fed-node-us-processed", "us-central1"
DATASET_TABLE = "hospital_data.variants_kill"
TABLE = f"{PROJECT}.{DATASET_TABLE}"
RUN_ID = "20261126T180000Z-dead01"


def target(sim: Any) -> Any:
    return cloud.Target.parse(sim.url)


def table_rows(sim: Any) -> int | None:
    """Rows in the table, None when no load ever created it."""
    client = cloud.bigquery(target(sim), PROJECT, location=LOCATION)
    try:
        client.get_table(TABLE)
    except exceptions.NotFound:
        return None
    return int(next(iter(client.query(f"SELECT COUNT(*) AS n FROM `{TABLE}`").result()))["n"])


def manifests(sim: Any) -> list[dict[str, Any]]:
    blobs = cloud.storage(target(sim), PROJECT).list_blobs(PROCESSED, prefix=f"manifests/{job_id_for(RUN_ID)}/")
    return [json.loads(blob.download_as_bytes()) for blob in blobs]


def load_job_exists(sim: Any, job_id: str) -> bool:
    try:
        cloud.bigquery(target(sim), PROJECT, location=LOCATION).get_job(job_id, location=LOCATION)
    except exceptions.NotFound:
        return False
    return True


def killing_runner(kill_when: Callable[[Path], bool], seen: dict[str, Any], observe: Callable[[], dict[str, Any]],
                   scratch: Path) -> Callable[[Any], SimTaskOutcome]:
    """Attempt 0: run the task, SIGKILL it once ``kill_when(out_dir)`` holds, record ``observe()`` right
    after. Later attempts: the real runner, untouched. A closure, so the simulator runs it on a thread."""

    def runner(invocation: Any) -> SimTaskOutcome:
        if invocation.attempt > 0:
            return run_task(invocation)
        out_dir = scratch / "attempt-0"
        env = {**os.environ, **{str(k): str(v) for k, v in invocation.environment.items()},
               "SOVAUDIT_OUT_DIR": str(out_dir)}
        task = subprocess.Popen(TASK_COMMAND, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while task.poll() is None and time.monotonic() < deadline:
            if kill_when(out_dir):
                task.kill()
                task.wait()
                seen["killed"] = True
                seen["files"] = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
                seen.update(observe())
                return SimTaskOutcome(-9, ["killed by the test (SIGKILL)"])
            time.sleep(0.002)
        task.kill()
        seen["killed"] = False
        return SimTaskOutcome(task.wait(), ["the task ended before the kill"])

    return runner


def submit(sim: Any, uri: str) -> Any:
    return CliRunner().invoke(pipeline, ["submit", "--target", sim.url, "--inputs", uri, "--run-id", RUN_ID,
                                         "--table", TABLE, "--retries", "1", "--timeout", "180"])


@pytest.fixture
def cohort_file(tmp_path: Path) -> Path:
    # Large enough that the conversion lasts far longer than the 2 ms between the runner's looks.
    return write_vcf(tmp_path / "kill.vcf.gz", SynthSpec(records=80_000, samples=4, seed=91))


def upload(sim: Any, path: Path) -> str:
    cloud.storage(target(sim), PROJECT).bucket(RAW).blob(f"cohort/{path.name}").upload_from_filename(str(path))
    return f"gs://{RAW}/cohort/{path.name}"


def test_a_task_killed_mid_conversion_loads_nothing_and_its_retry_loads_everything_once(
        sim_factory: Any, cohort_file: Path, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    job_id = load_job_id(RUN_ID, file_sha256(cohort_file))

    def converting(out_dir: Path) -> bool:  # the Parquet file is being written under its partial name
        return out_dir.is_dir() and any(".partial-" in p.name for p in out_dir.iterdir())

    holder: dict[str, Any] = {}
    observe = lambda: {"rows": table_rows(holder["sim"]), "manifests": manifests(holder["sim"]),  # noqa: E731
                       "load_job": load_job_exists(holder["sim"], job_id)}
    sim = holder["sim"] = sim_factory(task_runner=killing_runner(converting, seen, observe, tmp_path))
    result = submit(sim, upload(sim, cohort_file))
    assert seen.get("killed"), "the first attempt finished before it could be killed: use a larger input"
    # Killed with the Parquet file half-written: no rows, no table, no load job, no manifest, no final file.
    assert (seen["rows"], seen["manifests"], seen["load_job"]) == (None, [], False)
    assert not any(name.endswith(".parquet") or name.endswith(".manifest.json") for name in seen["files"])
    # Batch's retry ran the task again from the start: one load, the manifest states what the table holds.
    assert result.exit_code == 0, result.output
    (manifest,) = manifests(sim)
    assert manifest["records_in"] == 80_000
    assert manifest["rows_loaded"] == manifest["records_normalized"] == table_rows(sim)
    assert manifest["load_job_id"] == job_id


def test_a_task_killed_after_its_load_was_accepted_is_retried_without_loading_twice(
        sim_factory: Any, cohort_file: Path, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    job_id = load_job_id(RUN_ID, file_sha256(cohort_file))
    holder: dict[str, Any] = {}

    def loaded(out_dir: Path) -> bool:  # BigQuery has accepted the task's load job
        return (out_dir / "kill.parquet").exists() and load_job_exists(holder["sim"], job_id)

    observe = lambda: {"rows": table_rows(holder["sim"]), "manifests": manifests(holder["sim"])}  # noqa: E731
    sim = holder["sim"] = sim_factory(task_runner=killing_runner(loaded, seen, observe, tmp_path))
    result = submit(sim, upload(sim, cohort_file))
    assert seen.get("killed"), "the first attempt finished before it could be killed"
    assert seen["rows"] is not None and seen["rows"] > 80_000  # the accepted load is in the table
    assert result.exit_code == 0, result.output
    (manifest,) = manifests(sim)
    # The retry asked for the same load job id, found it, and reported its rows instead of loading again.
    assert table_rows(sim) == seen["rows"] == manifest["rows_loaded"] == manifest["records_normalized"]
    assert manifest["load_job_id"] == job_id
    jobs = list(cloud.bigquery(target(sim), PROJECT, location=LOCATION).list_jobs())
    assert [j.job_id for j in jobs if j.job_id.startswith(f"sovaudit_{RUN_ID}_")] == [job_id]
    # And the verifier agrees: every input processed, the rows loaded equal the normalized records.
    from sovaudit.audit.commands import run_verify
    from sovaudit.policies.pack import resolve_policy

    verdict, _ = run_verify(pack=resolve_policy("us"), target=target(sim), job_name=job_id_for(RUN_ID),
                            posture_only=False, probes=False, since=None, until=None, api_deadline=5.0)
    int01 = next(c for c in verdict.to_json()["controls"] if c["id"] == "INT-01")
    assert int01["outcome"] == "PASS", int01["findings"]
