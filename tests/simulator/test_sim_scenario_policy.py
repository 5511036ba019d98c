"""`sim scenarios --policy NAME` writes the pack a scenario needs, and verify with it reproduces the scenario.

The end-to-end test is what a user does by hand: serve the scenario, write its pack, run verify with
that pack, and read the declared outcome (WAIVED for waiver-valid, FAIL for waiver-expired)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sovaudit.cli import main
from sovaudit.policies.pack import load_policy, resolve_policy


@pytest.mark.parametrize(("name", "outcome", "exit_code"), [("waiver-valid", "WAIVED", 0),
                                                            ("waiver-expired", "FAIL", 1)])
def test_written_pack_reproduces_the_declared_outcome(name: str, outcome: str, exit_code: int, tmp_path: Path,
                                                       sim_factory: Callable[..., Any]) -> None:
    runner = CliRunner()
    pack = tmp_path / "pack.yaml"
    written = runner.invoke(main, ["sim", "scenarios", "--policy", name, "--out", str(pack)])
    assert written.exit_code == 0, written.output
    assert f"--scenario {name}" in written.stderr
    assert len(load_policy(pack).waivers) == 1

    server = sim_factory(scenarios=[name])
    result = runner.invoke(main, ["verify", "--policy", str(pack), "--target", server.url, "--format", "json",
                                  "--api-deadline", "2.0"], catch_exceptions=False)
    document = json.loads(result.stdout[result.stdout.find("{"):])
    outcomes = {c["id"]: c["outcome"] for c in document["controls"]}
    control = "SOV-04" if name == "waiver-valid" else "SEC-02"
    assert outcomes[control] == outcome
    assert result.exit_code == exit_code

    # Without the pack the same node judges differently: the overlay is what makes the outcome.
    if name == "waiver-valid":
        shipped = runner.invoke(main, ["verify", "--policy", "us", "--target", server.url, "--format", "json",
                                       "--api-deadline", "2.0"], catch_exceptions=False)
        plain = json.loads(shipped.stdout[shipped.stdout.find("{"):])
        assert {c["id"]: c["outcome"] for c in plain["controls"]}["SOV-04"] == "FAIL"


def test_stdout_is_the_merged_pack_for_the_chosen_node() -> None:
    result = CliRunner().invoke(main, ["sim", "scenarios", "--policy", "waiver-valid", "--node", "eu"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    eu = load_policy(resolve_policy("eu").path)
    assert doc["project"] == eu.project
    assert doc["waivers"][0]["resource"] == f"projects/_/buckets/{eu.project}-raw-vcfs"


def test_scenario_without_overlay_says_so_and_writes_the_shipped_pack(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(main, ["sim", "scenarios", "--policy", "bucket-multi-region", "--out", str(out)])
    assert result.exit_code == 0
    assert "has no policy overlay" in result.stderr
    assert out.read_text(encoding="utf-8") == Path(resolve_policy("us").path).read_text(encoding="utf-8")


def test_unknown_scenario_exits_2() -> None:
    result = CliRunner().invoke(main, ["sim", "scenarios", "--policy", "no-such-scenario"])
    assert result.exit_code == 2 and "not a known scenario" in result.stderr
