"""The pipeline on the simulator: real task code in Batch tasks, loads through the BigQuery client.

Everything goes through the official clients (`sovaudit.cloud`) against the embedded simulator;
`sovaudit.pipeline.simrunner.run_task` is the runner the simulator's Batch calls for each task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit import cloud
from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.simrunner import run_task
from sovaudit.pipeline.synth import SynthSpec, write_vcf

BAD = Path(__file__).resolve().parents[1] / "data" / "bad" / "vcf"
PROJECT, RAW, PROCESSED = "fed-node-us", "fed-node-us-raw-vcfs", "fed-node-us-processed"
TABLE = f"{PROJECT}.hospital_data.variants_run"
RUN_ID = "20261126T170000Z-0c0ffe"


class Invocation:
    """What the simulator hands a runner (docs/architecture.md), for re-running one task by hand."""

    def __init__(self, environment: dict[str, str], task_index: int) -> None:
        self.environment = environment
        self.task_index = task_index
        self.job_name = environment["BATCH_JOB_ID"]
        self.job_uid = environment.get("BATCH_JOB_UID", "")


def upload(sim: Any, paths: list[Path]) -> list[str]:
    storage = cloud.storage(cloud.Target.parse(sim.url), PROJECT)
    for path in paths:
        storage.bucket(RAW).blob(f"cohort/{path.name}").upload_from_filename(str(path))
    return [f"gs://{RAW}/cohort/{p.name}" for p in paths]


def submit(sim: Any, uris: list[str], *extra: str) -> Any:
    return CliRunner().invoke(pipeline, ["submit", "--target", sim.url, "--inputs", ",".join(uris),
                                         "--run-id", RUN_ID, "--table", TABLE, "--timeout", "120", *extra])


def table_rows(sim: Any) -> int:
    client = cloud.bigquery(cloud.Target.parse(sim.url), PROJECT, location="us-central1")
    return int(next(iter(client.query(f"SELECT COUNT(*) AS n FROM `{TABLE}`").result()))["n"])


def manifests(sim: Any, job_id: str) -> list[dict[str, Any]]:
    storage = cloud.storage(cloud.Target.parse(sim.url), PROJECT)
    blobs = sorted(storage.list_blobs(PROCESSED, prefix=f"manifests/{job_id}/"), key=lambda b: b.name)
    return [json.loads(b.download_as_bytes()) for b in blobs]


@pytest.fixture
def pipeline_sim(sim_factory: Any) -> Any:
    return sim_factory(task_runner=run_task)


def test_submitted_job_runs_real_tasks_and_loads_every_normalized_record(pipeline_sim: Any,
                                                                          tmp_path: Path) -> None:
    files = [write_vcf(tmp_path / f"s{i}.vcf.gz", SynthSpec(records=400, samples=3, seed=40 + i)) for i in range(2)]
    result = submit(pipeline_sim, upload(pipeline_sim, files))
    assert result.exit_code == 0, result.output
    assert "job SUCCEEDED" in result.output
    assert "records_normalized=" in result.output  # the tasks' log lines, shown while following
    job_id = result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    written = manifests(pipeline_sim, job_id)
    assert [m["task_index"] for m in written] == [0, 1]
    assert all(m["rows_loaded"] == m["records_normalized"] > m["records_in"] == 400 for m in written)
    assert all(m["load_job_id"].startswith(f"sovaudit_{RUN_ID}_") and m["table"] == TABLE for m in written)
    assert table_rows(pipeline_sim) == sum(m["records_normalized"] for m in written)


def test_a_retried_task_finds_its_load_job_and_loads_nothing_twice(pipeline_sim: Any, tmp_path: Path) -> None:
    files = [write_vcf(tmp_path / "s.vcf.gz", SynthSpec(records=300, samples=2, seed=50))]
    result = submit(pipeline_sim, upload(pipeline_sim, files))
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    before = table_rows(pipeline_sim)
    first = manifests(pipeline_sim, job_id)[0]
    env = {"INPUT_URIS": json.dumps(upload(pipeline_sim, files)), "BATCH_TASK_INDEX": "0",
           "BATCH_JOB_ID": job_id, "SOVAUDIT_RUN_ID": RUN_ID, "SOVAUDIT_PROJECT": PROJECT,
           "SOVAUDIT_BQ_TABLE": TABLE, "SOVAUDIT_BQ_LOCATION": "us-central1", "SOVAUDIT_OUTPUT_BUCKET": PROCESSED,
           "SOVAUDIT_TARGET": pipeline_sim.url}
    retry = run_task(Invocation(env, 0))
    assert retry.exit_code == 0, retry.log_lines
    assert table_rows(pipeline_sim) == before
    again = manifests(pipeline_sim, job_id)[0]
    assert (again["load_job_id"], again["rows_loaded"]) == (first["load_job_id"], first["rows_loaded"])


def test_a_malformed_input_fails_its_task_with_the_record_named_in_the_log(pipeline_sim: Any,
                                                                           tmp_path: Path) -> None:
    good = write_vcf(tmp_path / "good.vcf.gz", SynthSpec(records=200, samples=2, seed=51))
    result = submit(pipeline_sim, upload(pipeline_sim, [good, BAD / "missing-sample.vcf"]), "--retries", "3")
    assert result.exit_code == 1
    assert "job FAILED" in result.output
    assert "line 7 (chr1:400)" in result.output
    assert "failed task 1" in result.output
    assert table_rows(pipeline_sim) == manifests(pipeline_sim, result.stdout.strip().splitlines()[-1]
                                                 .rsplit("/", 1)[-1])[0]["records_normalized"]


def test_the_engine_finds_every_input_processed_and_loaded_int01_passes(pipeline_sim: Any, tmp_path: Path) -> None:
    from sovaudit.audit.commands import run_verify
    from sovaudit.policies.pack import resolve_policy

    files = [write_vcf(tmp_path / f"v{i}.vcf.gz", SynthSpec(records=250, samples=2, seed=70 + i)) for i in range(2)]
    result = submit(pipeline_sim, upload(pipeline_sim, files))
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    verdict, _ = run_verify(pack=resolve_policy("us"), target=cloud.Target.parse(pipeline_sim.url), job_name=job_id,
                            posture_only=False, probes=False, since=None, until=None, api_deadline=5.0)
    outcomes = {c["id"]: c for c in verdict.to_json()["controls"]}
    assert outcomes["INT-01"]["outcome"] == "PASS", outcomes["INT-01"]["findings"]
    assert len(outcomes["INT-01"]["findings"]) == 2
    assert outcomes["CC-01"]["outcome"] == "PASS"


def test_status_reports_the_finished_job(pipeline_sim: Any, tmp_path: Path) -> None:
    files = [write_vcf(tmp_path / "st.vcf.gz", SynthSpec(records=100, samples=1, seed=80))]
    result = submit(pipeline_sim, upload(pipeline_sim, files), "--no-follow")
    assert result.exit_code == 0, result.output
    name = result.stdout.strip().splitlines()[-1]
    shown = CliRunner().invoke(pipeline, ["status", name.rsplit("/", 1)[-1], "--target", pipeline_sim.url,
                                          "--follow", "--timeout", "60"])
    assert shown.exit_code == 0, shown.output
    final = CliRunner().invoke(pipeline, ["status", name, "--target", pipeline_sim.url])
    assert json.loads(final.stdout)["state"] == "SUCCEEDED"
    assert json.loads(final.stdout)["counts"] == {"SUCCEEDED": 1}


def test_run_pipeline_helper_uploads_plans_and_follows_to_success(pipeline_sim: Any, tmp_path: Path) -> None:
    from sovaudit.pipeline.submit import run_pipeline, upload_inputs
    from sovaudit.pipeline.synth import demo_inputs
    from sovaudit.policies.pack import resolve_policy

    pack = resolve_policy("us")
    target = cloud.Target.parse(pipeline_sim.url)
    uris = upload_inputs(target, pack, demo_inputs(tmp_path, count=2, records=200), prefix="demo/")
    logged: list[str] = []
    plan, final = run_pipeline(target, pack, uris, table=TABLE, poll_seconds=0.2, on_log=logged.append)
    assert final.state == "SUCCEEDED" and final.counts == {"SUCCEEDED": 2}
    assert plan.job_id.startswith("sovaudit-")
    assert sum("records_normalized=" in line for line in logged) == 2


def test_submit_creates_a_missing_template_and_refuses_a_non_confidential_one(sim_factory: Any) -> None:
    from dataclasses import replace

    from google.cloud import compute_v1

    from sovaudit.pipeline.spec import PlanOptions, build_plan
    from sovaudit.pipeline.submit import SubmitError, ensure_template
    from sovaudit.policies.pack import resolve_policy

    sim = sim_factory()
    target = cloud.Target.parse(sim.url)
    shipped = resolve_policy("us")
    pack = replace(shipped, pipeline=replace(shipped.pipeline, instance_template="sev-n2d-fresh"))
    plan = build_plan(pack, PlanOptions(inputs=("gs://b/a.vcf.gz",), run_id=RUN_ID))
    assert ensure_template(target, pack, plan) == "created"
    created = cloud.compute_templates(target).get(project=pack.project, instance_template="sev-n2d-fresh")
    assert created.properties.confidential_instance_config.enable_confidential_compute
    assert created.properties.confidential_instance_config.confidential_instance_type == "SEV"
    assert not created.properties.network_interfaces[0].access_configs
    assert ensure_template(target, pack, plan) == "exists"

    plain = replace(shipped, pipeline=replace(shipped.pipeline, instance_template="plain-n2d"))
    body = build_plan(plain, PlanOptions(inputs=("gs://b/a.vcf.gz",), run_id=RUN_ID)).template
    del body["properties"]["confidentialInstanceConfig"]
    cloud.compute_templates(target).insert(
        project=pack.project, instance_template_resource=compute_v1.InstanceTemplate.from_json(json.dumps(body))
    ).result()
    with pytest.raises(SubmitError, match="not SEV confidential"):
        ensure_template(target, plain, build_plan(plain, PlanOptions(inputs=("gs://b/a.vcf.gz",), run_id=RUN_ID)))


def test_run_local_load_appends_to_an_existing_variant_table_adding_info_columns(sim_factory: Any,
                                                                                 tmp_path: Path) -> None:
    # A table shaped like Variant Transforms' core columns (what an earlier run or another tool
    # created): the load fills it and adds this file's INFO/FORMAT fields instead of refusing.
    from google.cloud import bigquery as bq

    sim = sim_factory()
    client = cloud.bigquery(cloud.Target.parse(sim.url), PROJECT, location="us-central1")
    field = bq.SchemaField
    table = bq.Table(f"{PROJECT}.hospital_data.variants_existing", schema=[
        field("reference_name", "STRING", "REQUIRED"), field("start_position", "INTEGER", "REQUIRED"),
        field("end_position", "INTEGER", "REQUIRED"), field("reference_bases", "STRING"),
        field("alternate_bases", "RECORD", "REPEATED", fields=[field("alt", "STRING")]),
        field("names", "STRING", "REPEATED"), field("quality", "FLOAT"), field("filter", "STRING", "REPEATED"),
        field("call", "RECORD", "REPEATED", fields=[field("name", "STRING"), field("genotype", "INTEGER", "REPEATED"),
                                                    field("phased", "BOOLEAN")])])
    client.create_table(table)
    example = Path(__file__).resolve().parents[2] / "examples" / "sample-001.vcf.gz"
    result = CliRunner().invoke(pipeline, ["run-local", str(example), "--out", str(tmp_path),
                                           "--load", sim.url, "--table", f"{PROJECT}.hospital_data.variants_existing",
                                           "--run-id", "existing-1"])
    assert result.exit_code == 0, result.output
    totals = json.loads(result.stdout)
    assert totals["rows_loaded"] == totals["records_normalized"] == 2337
    columns = [f.name for f in client.get_table(table.reference).schema]
    assert columns[:8] == ["reference_name", "start_position", "end_position", "reference_bases",
                           "alternate_bases", "names", "quality", "filter"]
    assert {"DP", "AN", "MQ", "DB"} <= set(columns)


def test_a_script_runnable_is_not_started_as_the_pipeline_task() -> None:
    class ScriptInvocation(Invocation):
        runnable = {"script": {"text": "true"}}

    ok = run_task(ScriptInvocation({"BATCH_JOB_ID": "sovaudit-probe-x"}, 0))
    assert ok.exit_code == 0 and "script runnable" in ok.log_lines[0]

    class FailingScript(Invocation):
        runnable = {"script": {"text": "echo no\nexit 3"}}

    assert run_task(FailingScript({"BATCH_JOB_ID": "j"}, 0)).exit_code == 3
