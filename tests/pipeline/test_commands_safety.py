"""The pipeline commands as a careful user meets them: no credentials means exit 2 with how to log in,
and task log lines from the cloud reach the terminal escaped, never obeyed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.simrunner import SimTaskOutcome


@pytest.mark.parametrize("argv", [
    ["submit", "--target", "gcp", "--inputs", "gs://fed-node-us-raw-vcfs/a.vcf.gz", "--no-follow"],
    ["status", "preprocess-genomes-001", "--target", "gcp"],
    ["status", "preprocess-genomes-001", "--target", "gcp", "--follow"],
])
def test_submit_and_status_without_credentials_exit_2_saying_how_to_log_in(argv: list[str], tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    result = CliRunner().invoke(pipeline, argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "--target gcp: no usable Application Default Credentials" in result.output
    assert f"{tmp_path / 'adc.json'} was not found" in result.output
    assert "gcloud auth application-default login" in result.output


def test_run_local_load_to_gcp_without_credentials_exits_2_before_any_output(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    example = Path(__file__).resolve().parents[2] / "examples" / "sample-001.vcf.gz"
    result = CliRunner().invoke(pipeline, ["run-local", str(example), "--out", str(tmp_path / "out"), "--load", "gcp"])
    assert result.exit_code == 2, result.output
    assert "no usable Application Default Credentials" in result.output
    assert not (tmp_path / "out").exists()


def test_task_log_lines_with_control_characters_are_shown_escaped(sim_factory: Any) -> None:
    def hostile(invocation: Any) -> SimTaskOutcome:  # a closure: the simulator runs it on a thread
        return SimTaskOutcome(0, ["done \x1b[2J\x1b[31mALL GOOD\x1b[0m\rBAD\u202egnp.exe"])

    sim = sim_factory(task_runner=hostile)
    result = CliRunner().invoke(pipeline, ["submit", "--target", sim.url, "--inputs", "gs://fed-node-us-raw-vcfs/a.vcf",
                                           "--run-id", "esc-1", "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert "done \\x1b[2J\\x1b[31mALL GOOD\\x1b[0m\\rBAD\\u202egnp.exe" in result.output
    assert "\x1b" not in result.output and "\r" not in result.output and "\u202e" not in result.output


@pytest.mark.parametrize("uri, said", [
    ("gs://fed-node-eu-raw-vcfs/a.vcf.gz", "bucket 'fed-node-eu-raw-vcfs'"),
    ("gs://fed-node-us-raw-vcfs-backup/a.vcf.gz", "bucket 'fed-node-us-raw-vcfs-backup'"),
    ("/work/shared/data/vcf/example-4.1.vcf", "a local path"),
])
def test_submit_refuses_inputs_outside_the_nodes_buckets_before_any_api_call(sim_factory: Any, uri: str,
                                                                          said: str) -> None:
    sim = sim_factory()
    jobs_before = len(sim.state.jobs)
    result = CliRunner().invoke(pipeline, ["submit", "--target", sim.url, uri, "--no-follow"])
    assert result.exit_code == 2, result.output
    assert uri in result.output and said in result.output and "gs://fed-node-us-raw-vcfs/" in result.output
    assert len(sim.state.jobs) == jobs_before


@pytest.mark.parametrize("follow", [[], ["--follow", "--timeout", "5"]], ids=["status", "status-follow"])
def test_status_of_an_unknown_job_exits_2_naming_it_without_a_traceback(sim_factory: Any, follow: list[str]) -> None:
    sim = sim_factory()
    result = CliRunner().invoke(pipeline, ["status", "no-such-job", "--target", sim.url, *follow])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Batch job projects/fed-node-us/locations/us-central1/jobs/no-such-job does not exist" in result.output


@pytest.mark.parametrize("argv", [["submit", "gs://fed-node-us-raw-vcfs/a.vcf.gz"], ["status", "preprocess-genomes-001",
                                                                                    "--follow"]])
def test_a_timeout_that_is_not_positive_is_refused_before_any_job_is_submitted(sim_factory: Any,
                                                                               argv: list[str]) -> None:
    sim = sim_factory()
    jobs_before = len(sim.state.jobs)
    result = CliRunner().invoke(pipeline, [*argv, "--target", sim.url, "--timeout", "-1"])
    assert result.exit_code == 2, result.output
    assert "--timeout" in result.output
    assert len(sim.state.jobs) == jobs_before


@pytest.mark.parametrize("table", ["fed-node-eu.hospital_data.variants", "fed-node-us.hospital_data_copy.variants"])
@pytest.mark.parametrize("command", ["plan", "run-local"])
def test_a_table_outside_the_nodes_dataset_is_refused(sim_factory: Any, tmp_path: Path, table: str,
                                                      command: str) -> None:
    if command == "plan":
        argv = ["plan", "--table", table, "gs://fed-node-us-raw-vcfs/a.vcf.gz"]
    else:
        example = Path(__file__).resolve().parents[2] / "examples" / "sample-001.vcf.gz"
        argv = ["run-local", str(example), "--out", str(tmp_path / "out"), "--load", sim_factory().url,
                "--table", table]
    result = CliRunner().invoke(pipeline, argv)
    assert result.exit_code == 2, result.output
    assert f"--table '{table}'" in result.output and "its own dataset fed-node-us.hospital_data" in result.output
    assert not (tmp_path / "out").exists()
