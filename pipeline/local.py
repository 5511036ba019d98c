"""The local executor: the task over many VCFs in a process pool.

Processes, not threads: pysam and the Arrow conversion hold the GIL for long stretches. Each
worker runs exactly the task code a Batch VM runs (``task.run_task``), one input per task
index, so results do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from sovaudit.interrupts import quiet_child
from sovaudit.pipeline.errors import PipelineError
from sovaudit.pipeline.task import TaskConfig, TaskReport, output_stem, run_task


@dataclass(frozen=True)
class TaskFailure:
    task_index: int
    input: str
    message: str
    bad_input: bool


@dataclass(frozen=True)
class LocalRun:
    reports: tuple[TaskReport, ...]
    failures: tuple[TaskFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


def unique_stems(inputs: list[str]) -> list[str]:
    """Output names per input; two inputs with the same file name get their index prefixed."""
    stems = [output_stem(uri) for uri in inputs]
    duplicated = {s for s in stems if stems.count(s) > 1}
    return [f"{i:05d}-{s}" if s in duplicated else s for i, s in enumerate(stems)]


def _one(config: TaskConfig, stem: str) -> TaskReport | TaskFailure:
    from sovaudit.pipeline.convert import use_fast_allocator
    from sovaudit.pipeline.errors import VcfInputError

    use_fast_allocator()

    try:
        return run_task(config, stem=stem)
    except VcfInputError as error:
        return TaskFailure(config.task_index, config.input, str(error), True)
    except PipelineError as error:
        return TaskFailure(config.task_index, config.input, str(error), False)
    except Exception as error:  # a cloud API error in one task must not hide the others' results
        return TaskFailure(config.task_index, config.input, f"{type(error).__name__}: {error}", False)


def run_local(base: TaskConfig, workers: int = 1,
              progress: Callable[[TaskReport | TaskFailure], None] | None = None) -> LocalRun:
    """Run one task per input of ``base.inputs`` (``base.task_index`` is ignored)."""
    inputs = list(base.inputs)
    stems = unique_stems(inputs)
    configs = [replace(base, task_index=i) for i in range(len(inputs))]
    results: list[TaskReport | TaskFailure] = []
    if workers <= 1 or len(inputs) <= 1:
        for config, stem in zip(configs, stems, strict=True):
            results.append(_one(config, stem))
            if progress:
                progress(results[-1])
    else:
        # spawn: a forked copy of a process that already runs Arrow thread pools is not safe.
        context = multiprocessing.get_context("spawn")
        # quiet_child: the terminal's Ctrl-C reaches every worker; the command ends them (sovaudit/interrupts.py).
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=quiet_child) as pool:
            futures = [pool.submit(_one, config, stem) for config, stem in zip(configs, stems, strict=True)]
            for future in as_completed(futures):
                results.append(future.result())
                if progress:
                    progress(results[-1])
    reports = sorted((r for r in results if isinstance(r, TaskReport)), key=lambda r: r.task_index)
    failures = sorted((r for r in results if isinstance(r, TaskFailure)), key=lambda r: r.task_index)
    return LocalRun(reports=tuple(reports), failures=tuple(failures))


def config_for(inputs: list[str], out_dir: Path, run_id: str, *, target: str | None = None,
               project: str | None = None, table: str | None = None, location: str | None = None,
               output_bucket: str | None = None, reference: str | None = None,
               vep_command: tuple[str, ...] = ()) -> TaskConfig:
    return TaskConfig(inputs=tuple(inputs), job=f"run-local-{run_id}", run_id=run_id, project=project,
                      table=table, location=location, output_bucket=output_bucket, out_dir=out_dir,
                      reference=reference, vep_command=vep_command, target=target or "gcp")
