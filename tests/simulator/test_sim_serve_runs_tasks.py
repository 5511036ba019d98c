"""`sovaudit sim serve` runs submitted Batch jobs with the real task code (as the demo does).

The server is the CLI itself, started as a process; the job is submitted with `pipeline submit`
through the official clients. A good input reaches SUCCEEDED with manifests and rows loaded; an
input object that does not exist fails its task and the job, naming the object. `--stub-tasks`
keeps the old fast runner, under which the same missing input "succeeds" (which is why it is off).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit import cloud
from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.synth import SynthSpec, write_vcf
from sovaudit.simulator.batch_runner import default_runner
from sovaudit.simulator.commands import serve_task_runner

PROJECT, RAW, PROCESSED = "fed-node-us", "fed-node-us-raw-vcfs", "fed-node-us-processed"
TABLE = f"{PROJECT}.hospital_data.variants_served"


def _serve(*extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "sovaudit", "sim", "serve", "--port", "0", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        pytest.fail(f"sim serve did not start: {process.communicate()[1]}")
    return process, url


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=20)[1]
    # Stopped by a signal: exit 3 and one line, like every interrupted command (sovaudit/interrupts.py).
    assert process.returncode == 3, stderr
    assert "interrupted by SIGTERM: the simulator stopped" in stderr
    return stderr


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    process, url = _serve()
    try:
        yield url
    finally:
        assert "Traceback" not in _stop(process)


def _submit(url: str, uris: list[str], run_id: str) -> Any:
    return CliRunner().invoke(pipeline, ["submit", "--target", url, "--inputs", ",".join(uris), "--run-id", run_id,
                                         "--table", TABLE, "--retries", "0", "--timeout", "120"])


def _job_id(result: Any) -> str:
    return str(result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1])


def test_the_cli_starts_the_real_runner_by_default_and_the_stub_only_when_asked() -> None:
    assert serve_task_runner(stub_tasks=True) is None  # the simulator's default: the sleeping stub
    real = serve_task_runner(stub_tasks=False)
    assert real is not default_runner and f"{real.__module__}:{real.__name__}" == "sovaudit.pipeline.simrunner:run_task"


def test_a_submitted_job_runs_the_task_code_and_loads_its_rows(served: str, tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "s0.vcf.gz", SynthSpec(records=300, samples=2, seed=71))
    target = cloud.Target.parse(served)
    cloud.storage(target, PROJECT).bucket(RAW).blob(f"served/{vcf.name}").upload_from_filename(str(vcf))
    result = _submit(served, [f"gs://{RAW}/served/{vcf.name}"], "20261207T120000Z-5e7e01")
    assert result.exit_code == 0, result.output
    assert "job SUCCEEDED" in result.output
    blobs = list(cloud.storage(target, PROJECT).list_blobs(PROCESSED, prefix=f"manifests/{_job_id(result)}/"))
    written = [json.loads(blob.download_as_bytes()) for blob in blobs]
    assert [m["task_index"] for m in written] == [0]
    assert written[0]["records_in"] == 300 and written[0]["rows_loaded"] == written[0]["records_normalized"] > 0
    rows = cloud.bigquery(target, PROJECT, location="us-central1").query(f"SELECT COUNT(*) AS n FROM `{TABLE}`")
    assert int(next(iter(rows.result()))["n"]) == written[0]["rows_loaded"]


def test_a_missing_input_object_fails_the_task_and_the_job_naming_it(served: str) -> None:
    missing = f"gs://{RAW}/served/no-such-sample.vcf.gz"
    result = _submit(served, [missing], "20261207T120100Z-5e7e02")
    assert result.exit_code == 1, result.output
    assert "job FAILED" in result.output
    assert "failed task 0" in result.output
    # The task's own log line names the object; the console wraps long lines, so compare without spaces.
    assert f"cannotdownload{missing}" in "".join(result.output.split())
    job = cloud.batch(cloud.Target.parse(served)).get_job(
        name=f"projects/{PROJECT}/locations/us-central1/jobs/{_job_id(result)}")
    assert job.status.state.name == "FAILED"
    assert any("from RUNNING to FAILED" in event.description and "task with index 0 failed" in event.description
               for event in job.status.status_events)
    assert not list(cloud.storage(cloud.Target.parse(served), PROJECT)
                    .list_blobs(PROCESSED, prefix=f"manifests/{_job_id(result)}/"))


def test_stub_tasks_keeps_the_fast_runner_that_never_reads_the_input() -> None:
    process, url = _serve("--stub-tasks")
    try:
        result = _submit(url, [f"gs://{RAW}/served/no-such-sample.vcf.gz"], "20261207T120200Z-5e7e03")
    finally:
        stderr = _stop(process)
    assert result.exit_code == 0, result.output
    assert "job SUCCEEDED" in result.output
    assert "stub tasks (--stub-tasks)" in stderr
