"""In-guest attestation end to end: real tasks on the simulator's Batch fetch tokens, and CC-05 judges them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sovaudit import cloud
from sovaudit.pipeline.attest import attestation_nonce
from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.simrunner import run_task
from sovaudit.pipeline.synth import SynthSpec, write_vcf
from sovaudit.pipeline.task import TaskConfig, _attest

PROJECT, RAW, PROCESSED = "fed-node-eu", "fed-node-eu-raw-vcfs", "fed-node-eu-processed"
RUN_ID = "20261126T170000Z-a77e57"


def test_tasks_of_an_attested_pack_store_tokens_that_cc05_accepts(sim_factory: Any, tmp_path: Path) -> None:
    from sovaudit.audit import attestation_token as jwt
    from sovaudit.audit.commands import run_verify
    from sovaudit.policies.pack import resolve_policy

    sim = sim_factory(node="eu", task_runner=run_task)
    target = cloud.Target.parse(sim.url)
    storage = cloud.storage(target, PROJECT)
    uris = []
    for i in range(2):
        path = write_vcf(tmp_path / f"a{i}.vcf.gz", SynthSpec(records=120, samples=1, seed=90 + i))
        storage.bucket(RAW).blob(f"cohort/{path.name}").upload_from_filename(str(path))
        uris.append(f"gs://{RAW}/cohort/{path.name}")
    result = CliRunner().invoke(pipeline, ["submit", "--policy", "eu", "--target", sim.url, "--inputs", ",".join(uris),
                                           "--run-id", RUN_ID, "--timeout", "120"])
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    blobs = sorted(storage.list_blobs(PROCESSED, prefix=f"manifests/{job_id}/"), key=lambda b: b.name)
    assert len(blobs) == 2
    for index, blob in enumerate(blobs):
        claims = jwt.parse(blob.metadata["attestation_token"]).claims
        assert claims["eat_nonce"] == attestation_nonce(RUN_ID, index)
    verdict, _ = run_verify(pack=resolve_policy("eu"), target=target, job_name=job_id, posture_only=False,
                            probes=False, since=None, until=None, api_deadline=5.0)
    cc05 = next(c for c in verdict.to_json()["controls"] if c["id"] == "CC-05")
    assert cc05["outcome"] == "PASS", cc05["findings"]
    assert len(cc05["findings"]) == 2


def test_a_task_that_cannot_attest_says_why_and_carries_on(sim_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sim = sim_factory(node="eu")
    config = TaskConfig(inputs=("x",), project=PROJECT, target=sim.url, attest=True, run_id=RUN_ID)
    token, warning = _attest(config)   # no region, audience or VM identity in this environment
    assert token == "" and warning.startswith("attestation: ")
    assert "warning: attestation:" in capsys.readouterr().err
