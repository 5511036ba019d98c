"""The simulator's Batch runs the real task through this function (docs/architecture.md,
"Batch task execution in the simulator").

``run_task(invocation) -> outcome`` is a picklable top-level function: the simulator calls it
in a process pool with the task's environment (the job's variables plus ``BATCH_TASK_INDEX``,
``BATCH_JOB_ID``, ``SOVAUDIT_TARGET`` = the simulator's URL...). It returns the exit code a
container would have exited with and the lines it would have logged. The product does not
import the simulator, so the outcome is a small dataclass of its own with the same attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SimTaskOutcome:
    exit_code: int
    log_lines: list[str] = field(default_factory=list)


def run_task(invocation: Any) -> SimTaskOutcome:
    from sovaudit.pipeline.errors import PipelineError, VcfInputError
    from sovaudit.pipeline.task import TaskConfig
    from sovaudit.pipeline.task import run_task as run

    environment = dict(getattr(invocation, "environment", {}) or {})
    environment.setdefault("BATCH_TASK_INDEX", str(getattr(invocation, "task_index", 0)))
    environment.setdefault("BATCH_JOB_ID", str(getattr(invocation, "job_name", "")).rsplit("/", 1)[-1])
    environment.setdefault("BATCH_JOB_UID", str(getattr(invocation, "job_uid", "")))
    try:
        config = TaskConfig.from_env(environment)
        report = run(config)
    except VcfInputError as error:
        return SimTaskOutcome(2, [f"sovaudit task failed: {error}"])
    except PipelineError as error:
        return SimTaskOutcome(1, [f"sovaudit task failed: {error}"])
    except Exception as error:  # a cloud API error: the task fails as a container would
        return SimTaskOutcome(1, [f"sovaudit task failed: {type(error).__name__}: {error}"])
    lines = [report.log_line()]
    lines += [f"warning: {w}" for w in report.warnings[:5]]
    return SimTaskOutcome(0, lines)
