"""Start-up: the CLI's front door and a pipeline task's start, against Python's own start.

    python bench/startup.py [--quick] [--runs 15]

Each command runs `--runs` times as a fresh process; the median wall time is compared with the
median of `python -c pass` measured in the same run. Goal (issue 7): `sovaudit --help` and a task's
start within 0.3 s of Python's own start. Then one `python -X importtime` run of each lists the
`google.cloud.*` packages it imported and its heaviest top-level imports.

A task's start is `sovaudit pipeline task` (the container's command; `python -m
sovaudit.pipeline.commands task` when the front door does not list `pipeline`) with an environment
that names no input: it imports everything the task module needs, then stops at its first own step.
The last row runs a whole task (seeded input 0) against the simulator, for the modules a real task
imports; its time is work, not start-up, and has no goal.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_machine, sovaudit_command  # noqa: E402

GOAL_SECONDS = 0.3
# Variables that would change what a task does: the start-up row must run with none of them.
TASK_VARIABLES = ("INPUT_URIS", "BATCH_TASK_INDEX", "SOVAUDIT_TARGET", "SOVAUDIT_OUT_DIR")
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class Command:
    label: str
    argv: list[str]
    goal: bool                               # held to GOAL_SECONDS over the baseline
    env: Mapping[str, str] | None = None
    expect_exit: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Imports:
    google_cloud: tuple[str, ...]            # google.cloud packages (e.g. google.cloud.storage)
    heaviest: tuple[tuple[str, float], ...]  # top-level imports by cumulative seconds
    total_seconds: float


def task_command() -> tuple[list[str], str]:
    """The container's command through the front door if it lists `pipeline`, else its module."""
    from sovaudit import cli

    if "pipeline" in getattr(cli, "SUBCOMMANDS", {}):
        return [*sovaudit_command(), "pipeline", "task"], "sovaudit pipeline task"
    return [sys.executable, "-m", "sovaudit.pipeline.commands", "task"], "python -m sovaudit.pipeline.commands task"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in TASK_VARIABLES}


def timed(command: Command, runs: int) -> list[float]:
    times = []
    env = dict(command.env) if command.env is not None else clean_env()
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode not in command.expect_exit:
            raise SystemExit(f"{command.label}: exit {done.returncode}, expected {command.expect_exit}\n"
                             f"{done.stderr[-2000:]}")
    return times


def imports(command: Command) -> Imports:
    argv = command.argv
    if Path(argv[0]).name != Path(sys.executable).name:  # a console script: run it under this interpreter
        argv = [sys.executable, *argv]
    argv = [argv[0], "-X", "importtime", *argv[1:]]
    env = dict(command.env) if command.env is not None else clean_env()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    cloud: set[str] = set()
    top: list[tuple[str, float]] = []
    total = 0
    for match in _IMPORT_LINE.finditer(done.stderr):
        cumulative, depth, module = int(match.group(2)), len(match.group(3)), match.group(4)
        if module.startswith("google.cloud."):
            package = module.split(".")[2]
            # google-cloud-core's shared modules come with any client; name the clients themselves.
            if not package.startswith("_") and package not in {"client", "exceptions", "version", "obsolete"}:
                cloud.add(f"google.cloud.{package}")
        if depth == 1:   # imported by the program itself, not by another module
            top.append((module, cumulative / 1e6))
            total += cumulative
    top.sort(key=lambda pair: -pair[1])
    return Imports(tuple(sorted(cloud)), tuple(top[:5]), total / 1e6)


def full_task_command() -> tuple[Command, object]:
    """A whole task on a running simulator: the seeded job's environment, one example VCF as input.

    The example is uploaded through the official storage client (the seed's own inputs are stand-ins
    for evidence, not VCFs a task can process).
    """
    from sovaudit import cloud
    from sovaudit.simulator import start

    sim = start(node="us", job_tasks=2)
    example = Path(__file__).resolve().parents[1] / "examples" / "sample-001.vcf.gz"
    bucket = sim.state.node["buckets"]["raw"]["name"]
    storage = cloud.storage(cloud.Target.parse(sim.url), sim.state.project_id)
    storage.bucket(bucket).blob("bench/sample-001.vcf.gz").upload_from_filename(str(example))
    job = next(iter(sim.state.jobs.values()))
    variables = job["taskGroups"][0]["taskSpec"]["environment"]["variables"]
    env = {**clean_env(), **variables, "INPUT_URIS": f'["gs://{bucket}/bench/sample-001.vcf.gz"]',
           "BATCH_TASK_INDEX": "0", "BATCH_JOB_ID": job["name"].rsplit("/", 1)[-1], "BATCH_JOB_UID": job["uid"],
           "SOVAUDIT_RUN_ID": "bench-startup", "SOVAUDIT_TARGET": sim.url,
           # A table of its own: the seeded one carries the seed's schema, not necessarily the pipeline's.
           "SOVAUDIT_BQ_TABLE": f"{sim.state.project_id}.{sim.state.node['dataset']['id']}.bench_startup"}
    argv, label = task_command()
    return Command(f"{label} (whole task, {example.name})", argv, goal=False, env=env), sim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 runs per command, no whole task")
    parser.add_argument("--runs", type=int, help="runs per command (default 15)")
    args = parser.parse_args()
    runs = args.runs or (5 if args.quick else 15)
    task_argv, task_label = task_command()
    commands = [
        Command("python -c pass (baseline)", [sys.executable, "-c", "pass"], goal=False),
        Command("sovaudit --help", [*sovaudit_command(), "--help"], goal=True),
        Command("sovaudit verify --help", [*sovaudit_command(), "verify", "--help"], goal=False),
        Command(f"{task_label} --help", [*task_argv, "--help"], goal=False),
        Command(f"{task_label} (start: stops at its first step)", task_argv, goal=True, expect_exit=(1,)),
    ]
    print_machine()
    if task_label.startswith("python -m"):
        print("# note: `sovaudit pipeline` is not wired in sovaudit/cli.py; the task runs as its module")
    print(f"# median of {runs} fresh processes; delta = median - baseline median; goal: delta <= "
          f"{GOAL_SECONDS:.1f} s")
    print(f"{'command':<62} {'median s':>8} {'min s':>6} {'delta s':>8} {'x base':>7}  goal")
    baseline = 0.0
    measured: list[tuple[Command, float]] = []
    for command in commands:
        times = timed(command, runs)
        median = statistics.median(times)
        if not measured:
            baseline = median
        verdict = ("met" if median - baseline <= GOAL_SECONDS else "NOT met") if command.goal else ""
        print(f"{command.label:<62} {median:>8.3f} {min(times):>6.3f} {median - baseline:>8.3f} "
              f"{median / baseline:>6.1f}x  {verdict}")
        measured.append((command, median))
    sim = None
    if not args.quick:
        whole, sim = full_task_command()
        try:
            times = timed(whole, 1)
            print(f"{whole.label:<62} {times[0]:>8.3f} {'':>6} {times[0] - baseline:>8.3f} "
                  f"{times[0] / baseline:>6.1f}x  (work, no goal)")
            commands.append(whole)
            print_imports(commands)
        finally:
            sim.stop()  # type: ignore[attr-defined]
    else:
        print_imports(commands)


def print_imports(commands: list[Command]) -> None:
    print("\n# imports (one `python -X importtime` run each; seconds are cumulative, under import tracing)")
    for command in commands[1:]:
        found = imports(command)
        heaviest = ", ".join(f"{name} {seconds:.3f}" for name, seconds in found.heaviest)
        print(f"{command.label}:\n  google.cloud: {', '.join(found.google_cloud) or 'none'}\n"
              f"  heaviest top-level imports: {heaviest} (all top-level: {found.total_seconds:.3f} s)")


if __name__ == "__main__":
    main()
