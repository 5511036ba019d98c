"""`pipeline plan`: the golden job spec, the engine's job-spec controls, and refused options."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.spec import PlanOptions, build_plan
from sovaudit.policies.pack import resolve_policy

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "plan-us-50.json"
INPUTS = [f"gs://fed-node-us-raw-vcfs/cohort/sample-{i:03d}.vcf.gz" for i in range(50)]
RUN_ID = "20261126T161800Z-3f9a1c"


def plan_json(*extra: str) -> dict[str, Any]:
    args = ["plan", "--policy", "us", "--inputs", ",".join(INPUTS), "--run-id", RUN_ID, "--parallelism", "10",
            "--provisioning", "SPOT", *extra]
    result = CliRunner().invoke(pipeline, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_for_fifty_inputs_matches_the_golden_file() -> None:
    produced = plan_json()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(produced, indent=2) + "\n")
    assert produced == json.loads(GOLDEN.read_text())


def test_plan_carries_what_the_confidential_job_needs() -> None:
    produced = plan_json()
    template, job = produced["instanceTemplate"], produced["job"]
    props = template["properties"]
    assert props["confidentialInstanceConfig"] == {"enableConfidentialCompute": True,
                                                   "confidentialInstanceType": "SEV"}
    assert props["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert all("accessConfigs" not in nic for nic in props["networkInterfaces"])
    assert props["machineType"].startswith("n2d-")
    allocation = job["allocationPolicy"]
    assert allocation["location"]["allowedLocations"] == ["regions/us-central1"]
    assert allocation["instances"] == [{"instanceTemplate":
                                        "projects/fed-node-us/global/instanceTemplates/sev-n2d-batch"}]
    assert "policy" not in allocation["instances"][0]
    assert allocation["serviceAccount"]["email"] == props["serviceAccounts"][0]["email"]
    assert job["logsPolicy"] == {"destination": "CLOUD_LOGGING"}
    group = job["taskGroups"][0]
    assert (group["taskCount"], group["parallelism"]) == ("50", "10")
    assert json.loads(group["taskSpec"]["environment"]["variables"]["INPUT_URIS"]) == INPUTS
    assert job["labels"]["sovaudit-run-id"] == RUN_ID.lower()


def _node_evidence() -> Any:
    import sys

    # Its helpers (network_evidence, attestation_evidence) sit beside it; run alone, this file would
    # not have tests/audit on sys.path.
    helpers = str(HERE.parent / "audit")
    if helpers not in sys.path:
        sys.path.append(helpers)
    spec = importlib.util.spec_from_file_location("_node_evidence", HERE.parent / "audit" / "test_controls_evidence.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_plan(job: dict[str, Any], template: dict[str, Any]) -> Any:
    helpers = _node_evidence()
    node = helpers.NodeEvidence(resolve_policy("us"))
    seeded = node.body("batch.job")
    body = copy.deepcopy(job)
    for key in ("name", "uid", "status", "createTime", "updateTime"):
        body[key] = seeded[key]
    body["taskGroups"][0]["name"] = seeded["taskGroups"][0]["name"]
    node.set("batch.job", body)
    node.set("compute.instance_template", {"kind": "compute#instanceTemplate", "id": "4400000000000000001",
                                           **copy.deepcopy(template)})
    return node


@pytest.mark.parametrize("control_id", ["CC-01", "SEC-02", "SEC-03", "SOV-06"])
def test_planned_job_passes_the_engines_job_spec_controls(control_id: str) -> None:
    built = build_plan(resolve_policy("us"), PlanOptions(inputs=tuple(INPUTS[:2]), run_id=RUN_ID))
    result = _with_plan(built.job, built.template).run(control_id)
    assert result.outcome.value == "PASS", [f.message for f in result.findings]


def test_a_confidential_field_on_the_instance_policy_fails_cc01() -> None:
    # The shape of a job that asks Batch for SEV where Batch v1 has no such field.
    built = build_plan(resolve_policy("us"), PlanOptions(inputs=tuple(INPUTS[:2]), run_id=RUN_ID))
    job = copy.deepcopy(built.job)
    job["allocationPolicy"]["instances"] = [{"policy": {
        "machineType": "n2d-standard-4", "provisioningModel": "SPOT",
        "confidentialInstanceConfig": {"enableConfidentialCompute": True}}}]
    result = _with_plan(job, built.template).run("CC-01")
    assert result.outcome.value == "FAIL"
    assert "ignores it" in result.findings[0].message


@pytest.mark.parametrize(("extra", "complaint"), [
    (["--tasks", "3"], "--tasks 3"),
    (["--machine-type", "e2-standard-4"], "cannot run SEV"),
    (["--retries", "11"], "--retries 11"),
    (["--max-run-duration", "soon"], "--max-run-duration"),
    (["--run-id", "../x"], "--run-id '../x'"),
    (["--run-id", "a b"], "--run-id 'a b'"),
    (["--parallelism", "0"], "--parallelism 0"),
    (["--parallelism", "3"], "--parallelism 3"),
    (["--table", "bad"], "--table 'bad'"),
    (["--table", "fed-node-us.hospital_data.variants;drop"], "--table"),
    (["--image", "x y"], "--image 'x y'"),
    (["--image", "repo/task:1\n--privileged"], "--image"),
])
def test_plan_refuses_options_that_cannot_make_a_confidential_job(extra: list[str], complaint: str) -> None:
    result = CliRunner().invoke(pipeline, ["plan", "--inputs", "gs://fed-node-us-raw-vcfs/a.vcf.gz,gs://fed-node-us-raw-vcfs/b.vcf.gz", *extra])
    assert result.exit_code == 2
    assert complaint in result.output


def test_inputs_may_be_listed_as_arguments_or_in_a_list_file(tmp_path: Path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text("# cohort\ngs://fed-node-us-raw-vcfs/x.vcf.gz\ngs://fed-node-us-raw-vcfs/y.vcf.gz\n")
    result = CliRunner().invoke(pipeline, ["plan", "--inputs", str(listing), "gs://fed-node-us-raw-vcfs/z.vcf.gz"])
    assert result.exit_code == 0, result.output
    variables = json.loads(result.output)["job"]["taskGroups"][0]["taskSpec"]["environment"]["variables"]
    assert json.loads(variables["INPUT_URIS"]) == ["gs://fed-node-us-raw-vcfs/x.vcf.gz", "gs://fed-node-us-raw-vcfs/y.vcf.gz", "gs://fed-node-us-raw-vcfs/z.vcf.gz"]
    none = CliRunner().invoke(pipeline, ["plan"])
    assert none.exit_code == 2 and "name the input VCFs" in none.output


@pytest.mark.parametrize("extra", [["--image", "ubuntu:22.04"], ["--image", "gcr.io/p/task@sha256:" + "a" * 64],
                                   ["--table", "fed-node-us.hospital_data.variants_2026"], ["--run-id", "cohort_7-b"]])
def test_plan_accepts_well_formed_image_table_and_run_id(extra: list[str]) -> None:
    result = CliRunner().invoke(pipeline, ["plan", "--inputs", "gs://fed-node-us-raw-vcfs/a.vcf.gz", *extra])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("given", "where"), [("/data/cohort/a.vcf.gz", "a local path"),
                                              ("gs://other-node-bucket/a.vcf.gz", "bucket 'other-node-bucket'")])
def test_plan_refuses_the_inputs_submit_refuses_with_the_same_message(given: str, where: str) -> None:
    planned = CliRunner().invoke(pipeline, ["plan", "--policy", "us", "--inputs", given])
    submitted = CliRunner().invoke(pipeline, ["submit", "--policy", "us", "--inputs", given,
                                              "--target", "http://127.0.0.1:1"])
    assert planned.exit_code == submitted.exit_code == 2
    assert f"{given} is {where}, not in the node's buckets" in planned.output
    assert planned.output.replace("plan", "submit") == submitted.output


def test_tasks_are_told_to_attest_only_when_the_pack_asks() -> None:
    variables = plan_json()["job"]["taskGroups"][0]["taskSpec"]["environment"]["variables"]
    assert "SOVAUDIT_ATTEST" not in variables
    result = CliRunner().invoke(pipeline, ["plan", "--policy", "eu", "--inputs", "gs://fed-node-eu-raw-vcfs/a.vcf.gz",
                                           "--run-id", RUN_ID])
    assert result.exit_code == 0, result.output
    variables = json.loads(result.output)["job"]["taskGroups"][0]["taskSpec"]["environment"]["variables"]
    assert variables["SOVAUDIT_ATTEST"] == "1" and variables["SOVAUDIT_ATTEST_REGION"] == "europe-west4"
    assert variables["SOVAUDIT_ATTEST_AUDIENCE"] == resolve_policy("eu").confidential.in_guest_attestation.audience
