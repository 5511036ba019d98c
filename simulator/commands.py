"""`sovaudit sim`: serve the simulator on loopback, list its scenarios.

Bad node or scenario files end with exit code 2 and a message naming the file and the field, never
a traceback: they are user input.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from sovaudit import interrupts

# The runner `sim serve` gives the simulator's Batch unless --stub-tasks: the same real task code the
# demo runs (a fresh `sovaudit pipeline task` process per task), named as `module:function` so that
# it stays a picklable top-level function and the simulator package imports no pipeline code itself.
REAL_TASK_RUNNER = "sovaudit.pipeline.simrunner:run_task"


def serve_task_runner(stub_tasks: bool) -> Any:
    """The task runner `sim serve` starts the simulator with: the real task code by default, so a
    submitted job reads its inputs, writes manifests and loads rows, and a missing input fails the
    task and the job as on Google; None (the simulator's fast stub that only sleeps) with --stub-tasks."""
    if stub_tasks:
        return None
    from sovaudit.simulator.batch_runner import resolve_runner

    return resolve_runner(REAL_TASK_RUNNER)


@click.group()
def sim() -> None:
    """Run the embedded sovereign-node simulator (Google Cloud REST APIs on loopback)."""


@sim.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Loopback port to listen on (0 = any free port).")
@click.option("--node", default="us", show_default=True, help="us, eu, or the path of a node YAML file.")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME",
              help="Apply a scenario overlay (repeatable); see `sovaudit sim scenarios`.")
@click.option("--job-tasks", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="Tasks (and VMs) of the seeded finished job preprocess-genomes-001.")
@click.option("--batch-refusal", type=click.Choice(["submit", "fail"]), default="submit", show_default=True,
              help="How Batch refuses a job outside the allowed locations: at submit (400 FAILED_PRECONDITION) "
                   "or by failing the accepted job with no VM created.")
@click.option("--stub-tasks", is_flag=True,
              help="Do not run submitted Batch jobs' task code: every task sleeps briefly and succeeds (a "
                   "script runnable's trailing `exit N` decides its code). Faster, but a job writes no "
                   "manifests and loads no rows, and a missing input is not noticed.")
@interrupts.guarded(": the simulator stopped")
def serve(port: int, node: str, scenarios: tuple[str, ...], job_tasks: int, batch_refusal: str,
          stub_tasks: bool = False) -> None:
    """Serve one simulated node until interrupted (Ctrl-C).

    Submitted Batch jobs run the real pipeline task code (`sovaudit pipeline task`, as in `sovaudit
    demo`): a job reads its gs:// inputs, writes manifests and loads BigQuery rows, and an input that
    does not exist fails its task and the job. --stub-tasks keeps the fast stub runner instead.
    """
    from sovaudit.simulator import start
    from sovaudit.simulator.node import NodeFileError

    try:
        server = start(node=node, scenarios=scenarios, job_tasks=job_tasks, port=port, batch_refusal=batch_refusal,
                       task_runner=serve_task_runner(stub_tasks))
    except NodeFileError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            click.echo(f"error: port {port} is in use; choose another with --port (--port 0 picks a free one)",
                       err=True)
        else:
            click.echo(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; choose another with "
                       "--port", err=True)
        raise SystemExit(2) from None
    state = server.state
    applied = ", ".join(state.scenarios) or "none"
    click.echo(f"sovaudit simulator: node {state.project_id} ({state.region}), scenarios: {applied}", err=True)
    click.echo(f"seeded job preprocess-genomes-001 with {job_tasks} task(s); submitted jobs run "
               + ("stub tasks (--stub-tasks)" if stub_tasks else "the real pipeline task code") + "; try:", err=True)
    click.echo(f"  curl {server.url}/v2/projects/{state.project_id}/policies/gcp.resourceLocations:getEffectivePolicy",
               err=True)
    click.echo(server.url)   # stdout: the endpoint, for scripts
    sys.stdout.flush()

    # Ctrl-C/SIGTERM end the process here (sovaudit/interrupts.py): the task processes of running jobs are
    # ended with it and the server's threads die with the process, so there is nothing to unwind.
    while True:
        signal.pause() if hasattr(signal, "pause") else server._thread.join()  # noqa: SLF001


@sim.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--policy", "policy_for", metavar="NAME",
              help="Instead of listing, write the policy pack scenario NAME needs for `verify --policy`.")
@click.option("--node", type=click.Choice(["us", "eu"]), default="us", show_default=True,
              help="With --policy: the node whose shipped pack the overlay merges into.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --policy: write the pack to this file (default: stdout).")
def scenarios(as_json: bool, policy_for: str | None, node: str, out: Path | None) -> None:
    """List the scenarios and the controls each must make fail (or error).

    With --policy NAME, write the node's shipped pack merged with the scenario's `policy:` overlay
    (waivers, confidential machine type...), so `sim serve --scenario NAME` plus
    `verify --policy FILE` reproduces the declared outcome outside the matrix."""
    from sovaudit.simulator.node import NodeFileError, list_scenarios

    if policy_for is not None:
        _write_scenario_policy(policy_for, node, out)
        return
    try:
        found = list_scenarios()
    except NodeFileError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if as_json:
        click.echo(json.dumps([sc.summary() for sc in found], indent=2))
        return
    width = max((len(sc.name) for sc in found), default=10)
    for sc in found:
        fails = ", ".join(sc.fails) or "-"
        errors = f"  errors: {', '.join(sc.errors)}" if sc.errors else ""
        click.echo(f"{sc.name:<{width}}  fails: {fails}{errors}")
        click.echo(f"{'':<{width}}  {sc.description}")


def _write_scenario_policy(name: str, node: str, out: Path | None) -> None:
    """Write the pack a scenario needs; the merge is the matrix's own (scenario_policy_file), not a copy."""
    from sovaudit.policies.pack import resolve_policy
    from sovaudit.simulator.matrix import scenario_policy_file
    from sovaudit.simulator.node import NodeFileError, load_scenario

    try:
        scenario = load_scenario(name)
        with tempfile.TemporaryDirectory(prefix="sovaudit-policy-") as directory:
            merged = scenario_policy_file(scenario, node, Path(directory))
            if merged is None:
                shipped = Path(resolve_policy(node).path)
                click.echo(f"scenario {scenario.name} has no policy overlay: the shipped {node} pack "
                           f"({shipped}) is the one it needs", err=True)
                text = shipped.read_text(encoding="utf-8")
            else:
                text = merged.read_text(encoding="utf-8")
    except (NodeFileError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}: run `sovaudit sim serve --node {node} --scenario {scenario.name}` and "
               f"`sovaudit verify --policy {out}`", err=True)
