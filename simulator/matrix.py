"""The fault matrix: `sovaudit verify` against the clean nodes and every declared scenario.

Each scenario declares the controls it must make FAIL, those it must make ERROR and those a waiver
must turn into WAIVED. A row runs the real CLI against a fresh simulator and records what verify
actually concluded, so the same rows serve the test that gates a release
(`tests/audit/test_verify_e2e.py`) and the table in docs/reliability.md
(`python scripts/reliability_matrix.py`), which therefore cannot drift apart.

A scenario's optional `policy:` block (waivers, a stricter confidential type...) is merged into the
node's shipped policy pack and passed to verify as `--policy FILE`: the node is the same, only what
the auditor demands of it changes.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sovaudit.simulator.node import Scenario, deep_merge, list_scenarios, policy_overlay

VERIFY_JOB = "preprocess-genomes-001"


@dataclass(frozen=True)
class MatrixRow:
    """What one scenario promised and what verify found."""

    name: str
    node: str
    description: str
    declared_fails: frozenset[str]
    declared_errors: frozenset[str]
    observed_fails: frozenset[str]
    observed_errors: frozenset[str]
    exit_code: int
    verdict: str
    declared_waived: frozenset[str] = frozenset()
    observed_waived: frozenset[str] = frozenset()
    # verify's JSON result, for tests that look past the outcomes (findings, probes).
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def expected_exit(self) -> int:
        return 1 if self.declared_fails else 3 if self.declared_errors else 0

    @property
    def caught(self) -> bool:
        """Exactly the declared controls failed, errored or were waived, nothing else, with the gate's exit code."""
        return (self.observed_fails == self.declared_fails and self.observed_errors == self.declared_errors
                and self.observed_waived == self.declared_waived and self.exit_code == self.expected_exit)


def scenario_policy_file(scenario: Scenario, node: str, directory: Path) -> Path | None:
    """The node's shipped pack with the scenario's `policy:` block merged in, written under `directory`.

    Returns None when the scenario demands nothing beyond the shipped pack. The merged pack goes
    through the product's own loader, so a bad overlay fails here naming the scenario's file.
    """
    from sovaudit.policies.pack import PolicyError, load_policy, resolve_policy

    overlay = policy_overlay(scenario, node)
    if not overlay:
        return None
    shipped = Path(resolve_policy(node).path)
    merged = deep_merge(yaml.safe_load(shipped.read_text(encoding="utf-8")), overlay)
    merged["description"] = f"{merged.get('description', '')} (with scenario {scenario.name}'s policy overlay)"
    path = directory / f"{shipped.stem}+{scenario.name}.yaml"
    path.write_text(yaml.safe_dump(merged, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        load_policy(path)
    except PolicyError as exc:
        raise ValueError(f"{scenario.path}: field 'policy' makes an invalid pack when merged into {shipped}: "
                         f"{exc}") from exc
    return path


def run_row(scenario: Scenario | None, *, node: str = "us", extra_args: Sequence[str] = (),
            api_deadline: float = 2.0, out_dir: Path | None = None) -> MatrixRow:
    """Start a simulator with the scenario, run `sovaudit verify` in-process, parse its JSON.

    With `out_dir`, verify also writes its evidence bundle there (for checks of the raw answers)."""
    from click.testing import CliRunner

    from sovaudit.cli import main
    from sovaudit.simulator import start

    scenarios = [scenario.name] if scenario else []
    with tempfile.TemporaryDirectory(prefix="sovaudit-matrix-") as private_dir:
        policy_file = scenario_policy_file(scenario, node, Path(private_dir)) if scenario else None
        policy = str(policy_file) if policy_file else node
        # `start` returns a server that is already serving: entering it as a context manager would start
        # a second serve thread on the same socket, which outlives stop() and spins.
        server = start(node=node, scenarios=scenarios)
        try:
            # The documented gate command: no --job, so verify judges every pipeline job in scope.
            args = ["verify", "--policy", policy, "--target", server.url, "--format", "json",
                    "--api-deadline", str(api_deadline), *(["--out", str(out_dir)] if out_dir else []), *extra_args]
            result = CliRunner().invoke(main, args, catch_exceptions=False)
        finally:
            server.stop()
    start_at = result.stdout.find("{")
    if start_at < 0:
        raise RuntimeError(f"verify printed no JSON for {scenarios or node} (exit {result.exit_code}): "
                           f"{result.output[-2000:]}")
    document = json.loads(result.stdout[start_at:])

    def by(outcome: str) -> frozenset[str]:
        return frozenset(c["id"] for c in document["controls"] if c["outcome"] == outcome)

    return MatrixRow(
        name=scenario.name if scenario else f"clean {node} node", node=node,
        description=scenario.description if scenario else "no fault injected",
        declared_fails=frozenset(scenario.fails) if scenario else frozenset(),
        declared_errors=frozenset(scenario.errors) if scenario else frozenset(),
        observed_fails=by("FAIL"), observed_errors=by("ERROR"), exit_code=result.exit_code,
        verdict=str(document["verdict"]),
        declared_waived=frozenset(scenario.waived) if scenario else frozenset(),
        observed_waived=by("WAIVED"), document=document,
    )


def run_matrix(nodes: Iterable[str] = ("us", "eu")) -> list[MatrixRow]:
    rows = [run_row(None, node=node) for node in nodes]
    rows += [run_row(scenario) for scenario in list_scenarios()]
    return rows


def markdown(rows: Sequence[MatrixRow]) -> str:
    def ids(values: frozenset[str]) -> str:
        return ", ".join(sorted(values)) or "—"

    caught = sum(1 for row in rows if row.caught)
    lines = [
        "| scenario | what it injects | must FAIL | must be ERROR | must be WAIVED | verify found FAIL | found ERROR "
        "| found WAIVED | exit | caught |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        description = " ".join(row.description.split()).replace("|", "\\|")
        lines.append(f"| `{row.name}` | {description} | {ids(row.declared_fails)} | {ids(row.declared_errors)} | "
                     f"{ids(row.declared_waived)} | {ids(row.observed_fails)} | {ids(row.observed_errors)} | "
                     f"{ids(row.observed_waived)} | {row.exit_code} | {'yes' if row.caught else '**NO**'} |")
    lines.append("")
    lines.append(f"{caught} of {len(rows)} rows behave exactly as declared.")
    return "\n".join(lines)
