"""The fault matrix: `sovaudit verify` against the clean nodes and every declared scenario.

Each scenario declares the controls it must make FAIL and those it must make ERROR. A row runs the
real CLI against a fresh simulator and records what verify actually concluded, so the same rows
serve the test that gates a release (`tests/audit/test_verify_e2e.py`) and the table in
docs/reliability.md (`python scripts/reliability_matrix.py`), which therefore cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sovaudit.simulator.node import Scenario, list_scenarios

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

    @property
    def expected_exit(self) -> int:
        return 1 if self.declared_fails else 3 if self.declared_errors else 0

    @property
    def caught(self) -> bool:
        """Exactly the declared controls failed or errored, nothing else, with the gate's exit code."""
        return (self.observed_fails == self.declared_fails and self.observed_errors == self.declared_errors
                and self.exit_code == self.expected_exit)


def run_row(scenario: Scenario | None, *, node: str = "us", extra_args: Sequence[str] = (),
            api_deadline: float = 2.0) -> MatrixRow:
    """Start a simulator with the scenario, run `sovaudit verify` in-process, parse its JSON."""
    from click.testing import CliRunner

    from sovaudit.cli import main
    from sovaudit.simulator import start

    scenarios = [scenario.name] if scenario else []
    policy = node
    with start(node=node, scenarios=scenarios) as server:
        args = ["verify", "--policy", policy, "--target", server.url, "--job", VERIFY_JOB, "--format", "json",
                "--api-deadline", str(api_deadline), *extra_args]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
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
        "| scenario | what it injects | must FAIL | must be ERROR | verify found FAIL | found ERROR | exit | caught |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        description = " ".join(row.description.split()).replace("|", "\\|")
        lines.append(f"| `{row.name}` | {description} | {ids(row.declared_fails)} | {ids(row.declared_errors)} | "
                     f"{ids(row.observed_fails)} | {ids(row.observed_errors)} | {row.exit_code} | "
                     f"{'yes' if row.caught else '**NO**'} |")
    lines.append("")
    lines.append(f"{caught} of {len(rows)} rows behave exactly as declared.")
    return "\n".join(lines)
