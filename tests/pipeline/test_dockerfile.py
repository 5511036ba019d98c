"""The task image's Dockerfile names a command the CLI really has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

DOCKERFILE = Path(__file__).resolve().parents[2] / "pipeline" / "Dockerfile"


def stages() -> dict[str, dict[str, list[str]]]:
    """ENTRYPOINT and CMD (exec form) per build stage."""
    found: dict[str, dict[str, list[str]]] = {}
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line.strip(), re.IGNORECASE)
        if match:
            current = match.group(1) or ""
            found[current] = {}
            continue
        match = re.match(r"(ENTRYPOINT|CMD)\s+(\[.*\])\s*$", line.strip())
        if match:
            found[current][match.group(1)] = json.loads(match.group(2))
    return {name: spec for name, spec in found.items() if spec}


def cli_group():  # type: ignore[no-untyped-def]
    """The top-level CLI when it wires `pipeline`, else the pipeline group itself (same commands)."""
    from sovaudit import cli

    if "pipeline" in getattr(cli, "SUBCOMMANDS", {}):
        return cli.main, []
    from sovaudit.pipeline.commands import pipeline

    return pipeline, ["pipeline"]


def test_dockerfile_has_a_task_stage_and_a_vep_stage() -> None:
    assert {"task", "task-vep"} <= set(stages())


@pytest.mark.parametrize("stage", ["task", "task-vep"])
def test_entrypoint_command_exists_in_the_cli(stage: str) -> None:
    spec = stages()[stage]
    assert spec["ENTRYPOINT"] == ["sovaudit"]
    argv = spec["CMD"]
    group, prefix = cli_group()
    if prefix:
        assert argv[: len(prefix)] == prefix
        argv = argv[len(prefix):]
    result = CliRunner().invoke(group, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    assert "Run one Batch task" in result.output


def test_job_spec_runs_the_same_command_as_the_image() -> None:
    from sovaudit.pipeline.spec import PlanOptions, build_job
    from sovaudit.policies.pack import resolve_policy

    job = build_job(resolve_policy("us"), PlanOptions(inputs=("gs://b/a.vcf.gz",)), "run-1")
    container = job["taskGroups"][0]["taskSpec"]["runnables"][0]["container"]
    assert [container["entrypoint"], *container["commands"]] == [*stages()["task"]["ENTRYPOINT"],
                                                                  *stages()["task"]["CMD"]]
