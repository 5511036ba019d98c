"""The simulator's Batch runs the real task through this function (docs/architecture.md,
"Batch task execution in the simulator").

``run_task(invocation) -> outcome`` is a picklable top-level function: the simulator calls it
in a process pool with the task's environment (the job's variables plus ``BATCH_TASK_INDEX``,
``BATCH_JOB_ID``, ``SOVAUDIT_TARGET`` = the simulator's URL...). Like a Batch VM running the
container, it starts the image's command — ``sovaudit pipeline task`` — as a fresh process with
that environment, and returns its exit code and output lines. A fresh interpreter also keeps the
task clear of whatever the pool worker inherited from the simulator when it was forked (server
threads, DuckDB and Arrow thread pools), which a task using Arrow in the forked worker itself
can trip over. The product does not import the simulator, so the outcome is a small dataclass
of its own with the attributes the contract names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

# The image's command, run without the front door so that it works before `pipeline` is wired.
TASK_COMMAND = (sys.executable, "-m", "sovaudit.pipeline.commands", "task")
DEFAULT_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class SimTaskOutcome:
    exit_code: int
    log_lines: list[str] = field(default_factory=list)


def _timeout(runnable: Any, environment: dict[str, str]) -> float:
    text = str(environment.get("SOVAUDIT_TASK_TIMEOUT", "")) or str((runnable or {}).get("timeout", ""))
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s?", text.strip())
    return float(match.group(1)) if match else DEFAULT_TIMEOUT_SECONDS


def run_task(invocation: Any) -> SimTaskOutcome:
    environment = {str(k): str(v) for k, v in (getattr(invocation, "environment", {}) or {}).items()}
    environment.setdefault("BATCH_TASK_INDEX", str(getattr(invocation, "task_index", 0)))
    environment.setdefault("BATCH_JOB_ID", str(getattr(invocation, "job_name", "")).rsplit("/", 1)[-1])
    environment.setdefault("BATCH_JOB_UID", str(getattr(invocation, "job_uid", "")))
    runnable = getattr(invocation, "runnable", {}) or {}
    if "script" in runnable and "container" not in runnable:
        return _script_outcome(str((runnable.get("script") or {}).get("text", "")))
    try:
        done = subprocess.run(TASK_COMMAND, env={**os.environ, **environment}, capture_output=True, text=True,
                              timeout=_timeout(runnable, environment), check=False)
    except subprocess.TimeoutExpired as expired:
        return SimTaskOutcome(50005, [f"sovaudit task timed out after {expired.timeout:.0f} s"])
    except OSError as error:
        return SimTaskOutcome(1, [f"sovaudit task could not start: {error}"])
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return SimTaskOutcome(done.returncode, lines)


_EXIT = re.compile(r"\bexit\s+(\d+)\s*$")


def _script_outcome(script: str) -> SimTaskOutcome:
    """A script runnable is not the pipeline image (verify's probe job runs `true`): starting the
    pipeline task for it fails with exit 1, which made an accepted probe look like a job that failed
    for another reason. The script is never executed on this host (anything on loopback can submit
    a job); like the simulator's default runner, a trailing `exit N` decides the code, else 0."""
    match = _EXIT.search(script.strip())
    code = int(match.group(1)) if match else 0
    return SimTaskOutcome(code, [f"script runnable ({script.strip()[:60]!r}) finished with exit code {code}"])
