"""How the simulator's Batch runs a job's tasks: the runner contract and its executors.

The contract (docs/architecture.md, "Batch task execution in the simulator"): a runner is a
callable `runner(invocation) -> outcome`. `invocation` carries `job_name`, `job_uid`, `task_index`,
`task_count`, `environment` (the taskSpec's variables plus `BATCH_TASK_INDEX`, `BATCH_TASK_COUNT`,
`BATCH_JOB_UID`, `BATCH_JOB_ID`, `BATCH_TASK_RETRY_ATTEMPT`, `SOVAUDIT_TARGET`, the simulator URL, and
`SOVAUDIT_SIM_PROJECT_NUMBER`/`_ZONE`/`_INSTANCE_ID`, standing in for the VM's metadata server)
and `runnable` (the REST JSON of the first runnable); `outcome` has `exit_code` and `log_lines`.

Runners other than the default run in a process pool: real task code (pysam, DuckDB loads) is
CPU-bound and must not share the server's GIL. They must therefore be picklable top-level
functions (`sovaudit.pipeline.simrunner:run_task`). The default runner only sleeps, so it runs on
threads and a 1000-task job stays fast.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_TASK_SECONDS = 0.02
_EXIT = re.compile(r"\bexit\s+(\d+)\s*$")
_SLEEP = re.compile(r"\bsleep\s+(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class TaskInvocation:
    """One attempt of one task, as the runner sees it (picklable)."""

    job_name: str
    job_uid: str
    task_index: int
    task_count: int
    environment: dict[str, str]
    runnable: dict[str, Any]
    attempt: int = 0


@dataclass(frozen=True)
class TaskOutcome:
    """What a task attempt produced: its exit code and the lines it logged."""

    exit_code: int
    log_lines: list[str] = field(default_factory=list)


class TaskRunner(Protocol):
    def __call__(self, invocation: TaskInvocation) -> Any: ...


def default_runner(invocation: TaskInvocation) -> TaskOutcome:
    """Succeed after a short delay, unless the runnable's script says otherwise.

    A script runnable ending in `exit N` exits N and one containing `sleep S` takes S seconds, so a
    test can make a task fail (or run long) through the official client alone, with no custom runner.
    """
    script = str(invocation.runnable.get("script", {}).get("text", ""))
    seconds = DEFAULT_TASK_SECONDS
    sleep = _SLEEP.search(script)
    if sleep:
        seconds = float(sleep.group(1))
    time.sleep(seconds)
    exit_match = _EXIT.search(script.strip())
    exit_code = int(exit_match.group(1)) if exit_match else 0
    lines = [f"task {invocation.task_index} of {invocation.task_count} (attempt {invocation.attempt}) "
             f"started for job {invocation.job_uid}"]
    lines.append(f"task {invocation.task_index} finished with exit code {exit_code}")
    return TaskOutcome(exit_code, lines)


def resolve_runner(spec: TaskRunner | str | None) -> TaskRunner:
    """A runner from a callable, a `module:attribute` string (the CLI's form) or None (the default)."""
    if spec is None:
        return default_runner
    if callable(spec):
        return spec
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise ValueError(f"task runner {spec!r} must be 'module:function', e.g. sovaudit.pipeline.simrunner:run_task")
    runner = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(runner):
        raise ValueError(f"task runner {spec!r}: {module_name} has no callable {attribute!r}")
    return runner  # type: ignore[no-any-return]


def runner_for(state: Any) -> TaskRunner:
    """The runner the simulator was started with: `SimServer(task_runner=...)` sets `state.task_runner`;
    `state.options["task_runner"]` may name one as `module:function` (the CLI's form)."""
    return resolve_runner(getattr(state, "task_runner", None) or state.options.get("task_runner"))


def _picklable(runner: TaskRunner) -> bool:
    try:
        pickle.dumps(runner)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def make_executor(runner: TaskRunner, parallelism: int) -> Executor:
    """Threads for the default runner, processes for real task code; at most `parallelism` at a time.

    A runner that cannot be pickled (a lambda, a closure in a test) cannot cross into a process; it
    runs on threads instead of failing every task.
    """
    workers = max(1, parallelism)
    if runner is default_runner or not _picklable(runner):
        return ThreadPoolExecutor(max_workers=min(workers, 32), thread_name_prefix="sim-batch-task")
    from sovaudit.interrupts import quiet_child

    # Workers ignore the terminal's Ctrl-C (and so do the task processes they start): the command that
    # runs the simulator ends them on an interrupt (sovaudit/interrupts.py), without a traceback each.
    return ProcessPoolExecutor(max_workers=min(workers, os.cpu_count() or 2), initializer=quiet_child)


def run_attempt(runner: TaskRunner, invocation: TaskInvocation) -> TaskOutcome:
    """Call the runner and normalise what it returns; a crash is exit code 1 with the error logged."""
    try:
        outcome = runner(invocation)
    except Exception as exc:  # a broken task must fail the task, not the simulator
        return TaskOutcome(1, [f"task runner raised {type(exc).__name__}: {exc}"])
    return normalise_outcome(outcome)


def normalise_outcome(outcome: Any) -> TaskOutcome:
    exit_code = int(getattr(outcome, "exit_code", 1))
    log_lines = [str(line) for line in getattr(outcome, "log_lines", []) or []]
    return TaskOutcome(exit_code, log_lines)

