"""`sovaudit pipeline plan|submit|status|run-local` (and the hidden `task`, the container's entry).

This module only parses options and wires the parts together. It imports no Google client and
no Arrow at module level: `sovaudit pipeline task` starts a Batch task, and start-up time is
paid once per VCF.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from sovaudit import interrupts, progress
from sovaudit.progress import quiet_option
from sovaudit.target_option import parse_target, require_credentials, require_listening

PROVISIONING = click.Choice(["STANDARD", "SPOT"], case_sensitive=False)


def _err(message: str) -> None:
    from sovaudit.reports.view import terminal_safe

    # Messages quote file names, API errors and task log lines: show control characters, never obey them.
    click.echo("\n".join(terminal_safe(line) for line in message.split("\n")), err=True)


def _pack(policy: str) -> Any:
    from sovaudit.policies.pack import PolicyError, resolve_policy

    try:
        return resolve_policy(policy)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="--policy") from error
    except FileNotFoundError as error:
        raise click.BadParameter(f"{policy}: no such policy pack (use us, eu or a path)",
                                 param_hint="--policy") from error


def _checked(check: Any, value: str | None) -> str | None:
    """Run one of spec's option checks; its PlanError names the option."""
    from sovaudit.pipeline.spec import PlanError

    try:
        return check(value) if value is not None else None
    except PlanError as error:
        raise click.UsageError(str(error)) from error


def _inputs(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--inputs` takes gs:// URIs or files; a local file holding one URI per line is a list."""
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            path = Path(part)
            if not part.startswith("gs://") and path.is_file() and path.suffix in (".txt", ".list"):
                found += [line.strip() for line in path.read_text().splitlines() if line.strip()
                          and not line.startswith("#")]
            else:
                found.append(part)
    return tuple(found)


@click.group()
def pipeline() -> None:
    """Plan, submit and follow the confidential Batch pipeline, or run it locally."""


def plan_options(function: Any) -> Any:
    options = [
        click.option("--policy", default="us", show_default=True, help="Policy pack: us, eu or a YAML path."),
        click.option("--inputs", "inputs", multiple=True,
                     help="gs://bucket/object or a file; repeat, comma-separate, or list them after the options; "
                          "a .txt file lists one per line."),
        click.argument("more_inputs", nargs=-1, metavar="[INPUTS]..."),
        click.option("--tasks", type=int, help="Task count (must equal the number of inputs)."),
        click.option("--parallelism", type=int, help="Tasks running at once (default: min(tasks, 10))."),
        click.option("--machine-type", help="Default: the policy's pipeline.machine_type."),
        click.option("--provisioning", type=PROVISIONING, default="STANDARD", show_default=True),
        click.option("--image", help="Task container image (default: REGION-docker.pkg.dev/PROJECT/sovaudit/task:VERSION)."),
        click.option("--max-run-duration", default="3600s", show_default=True),
        click.option("--retries", type=int, default=2, show_default=True, help="maxRetryCount per task (0-10)."),
        click.option("--run-id", help="Run id (default: UTC timestamp + random suffix); fixes the load job ids."),
        click.option("--table", help="BigQuery table project.dataset.table (default: PROJECT.DATASET.variants)."),
        click.option("--vep-command", help="VEP command line run in the task (optional)."),
        click.option("--reference", help="Reference FASTA (gs:// or path in the image) for --check-ref."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _build_plan(policy: str, inputs: tuple[str, ...], **kw: Any) -> tuple[Any, Any]:
    from sovaudit.pipeline.spec import PlanError, PlanOptions, build_plan

    pack = _pack(policy)
    listed = _inputs(inputs + tuple(kw.pop("more_inputs", ()) or ()))
    if not listed:
        raise click.UsageError("name the input VCFs: --inputs gs://bucket/object,... (or list them as arguments)")
    # One check for plan and submit: a plan must never show a job that submit would refuse.
    _check_node_inputs(pack, listed)
    options = PlanOptions(inputs=listed, tasks=kw["tasks"], parallelism=kw["parallelism"],
                          machine_type=kw["machine_type"], provisioning=kw["provisioning"].upper(),
                          image=kw["image"], max_run_duration=kw["max_run_duration"], retries=kw["retries"],
                          run_id=kw["run_id"], table=kw["table"], vep_command=kw["vep_command"],
                          reference=kw["reference"])
    try:
        return pack, build_plan(pack, options)
    except PlanError as error:
        raise click.UsageError(str(error)) from error


@pipeline.command()
@plan_options
def plan(policy: str, inputs: tuple[str, ...], **kw: Any) -> None:
    """Print the instance template and the Batch job as Google REST JSON, without submitting."""
    _, built = _build_plan(policy, inputs, **kw)
    click.echo(json.dumps(built.to_json(), indent=2))


@pipeline.command()
@plan_options
@click.option("--target", default="gcp", show_default=True, help="gcp or the simulator's http://127.0.0.1:PORT.")
@click.option("--job-id", help="Batch job id (default: derived from the run id).")
@click.option("--no-follow", is_flag=True, help="Submit and return; do not wait for the job.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Give up following after this many seconds.")
@interrupts.guarded("before the job was confirmed submitted; `sovaudit pipeline status` shows whether it was")
@quiet_option
def submit(policy: str, inputs: tuple[str, ...], target: str, job_id: str | None, no_follow: bool,
           timeout: float | None, **kw: Any) -> None:
    """Create the template if absent, submit the job and follow it to the end."""
    from dataclasses import replace

    from sovaudit.pipeline import submit as submitting

    resolved = parse_target(target)
    pack, built = _build_plan(policy, inputs, **kw)
    require_credentials(resolved)
    require_listening(resolved)
    if job_id:
        built = replace(built, job_id=job_id)
    try:
        outcome = submitting.ensure_template(resolved, pack, built)
        progress.say(f"instance template {built.template_name}: {outcome}")
        job = submitting.create_job(resolved, pack, built)
    except submitting.SubmitError as error:
        _err(f"error: {error}")
        raise SystemExit(1) from error
    except Exception as error:  # a refusal by the API (location policy, permissions): say it, exit 1
        _err(f"error: the job was not created: {type(error).__name__}: {error}")
        raise SystemExit(1) from error
    interrupts.set_outcome(f"while following {job.name}: the job keeps running on Batch "
                           f"(`sovaudit pipeline status {job.name.rsplit('/', 1)[-1]} --follow`)")
    progress.say(f"submitted {job.name} (uid {job.uid}, run {built.run_id})")
    click.echo(job.name)
    if no_follow:
        return
    final = _follow(resolved, pack, job.name, timeout)
    raise SystemExit(0 if final.state == "SUCCEEDED" else 1)


def _check_node_inputs(pack: Any, listed: tuple[str, ...]) -> None:
    """A submitted job may read only the node's own buckets: a local path does not exist on a Batch VM,
    and another bucket (another node's, another country's) would pull data across the jurisdiction."""
    allowed = tuple(dict.fromkeys((pack.buckets.input, *pack.buckets.allowed)))
    for uri in listed:
        bucket = uri[len("gs://"):].split("/", 1)[0] if uri.startswith("gs://") else None
        if bucket not in allowed:
            where = f"bucket {bucket!r}" if bucket else "a local path"
            raise click.BadParameter(
                f"{uri} is {where}, not in the node's buckets ({', '.join(allowed)}): the job may read only "
                f"data kept in the node; upload it first (gcloud storage cp FILE gs://{pack.buckets.input}/) "
                "or process local files with `sovaudit pipeline run-local`", param_hint="--inputs")


def _job_api_failure(error: Exception, name: str) -> NoReturn:
    """An unknown job is bad input (exit 2, naming it); any other refusal by the API is exit 1."""
    from google.api_core import exceptions

    if isinstance(error, exceptions.NotFound):
        _err(f"error: Batch job {name} does not exist; check the id (`sovaudit pipeline submit` prints the job "
             "name) and --policy, which picks the project and region")
        raise SystemExit(2) from error
    if isinstance(error, exceptions.GoogleAPICallError):
        _err(f"error: Batch refused jobs.get for {name}: HTTP {error.code}: {error.message}")
        raise SystemExit(1) from error
    raise error


def _follow(target: Any, pack: Any, name: str, timeout: float | None) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sovaudit.pipeline import submit as submitting
    from sovaudit.reports.view import terminal_safe

    console = Console(stderr=True, quiet=progress.is_quiet())
    progress.say(f"following {name} until it ends (Ctrl-C stops following; the job keeps running)")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  disable=progress.is_quiet()) as bar:
        progress_id = bar.add_task("tasks", total=None)

        def update(current: Any) -> None:
            done = current.counts.get("SUCCEEDED", 0) + current.counts.get("FAILED", 0)
            summary = " ".join(f"{k.lower()}={current.counts.get(k, 0)}" for k in submitting.TASK_STATES)
            bar.update(progress_id, total=current.task_total or None, completed=done,
                       description=f"{current.state.lower():9} {summary}")

        try:
            final = submitting.follow(target, pack, name, timeout=timeout, on_update=update,
                                      on_log=lambda line: console.print(terminal_safe(line), markup=False,
                                                                        highlight=False))
        except submitting.SubmitError as error:
            _err(f"error: {error}")
            raise SystemExit(1) from error
        except Exception as error:  # an API answer (unknown job, permissions): say which, never a traceback
            _job_api_failure(error, name)
    _err(f"job {final.state}")
    if final.state != "SUCCEEDED":
        for event in final.events[-3:]:
            _err(f"  {event}")
        for task in final.failed_tasks:
            _err(f"  failed task {task}")
    return final


@pipeline.command()
@click.argument("job")
@click.option("--policy", default="us", show_default=True)
@click.option("--target", default="gcp", show_default=True)
@click.option("--follow", "follow_job", is_flag=True, help="Wait until the job ends.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="With --follow: give up after this many seconds.")
@interrupts.guarded("while reading the job: it keeps running on Batch")
@quiet_option
def status(job: str, policy: str, target: str, follow_job: bool, timeout: float | None) -> None:
    """Show a job's state, task counts and latest events (JOB: id or full name)."""
    from sovaudit.pipeline import submit as submitting

    resolved = parse_target(target)
    pack = _pack(policy)
    require_credentials(resolved)
    require_listening(resolved)
    name = submitting.job_name(pack, job)
    if follow_job:
        final = _follow(resolved, pack, name, timeout)
        raise SystemExit(0 if final.state == "SUCCEEDED" else 1)
    try:
        current = submitting.status(resolved, name)
    except Exception as error:
        _job_api_failure(error, name)
    click.echo(json.dumps({"name": current.name, "uid": current.uid, "state": current.state,
                           "counts": current.counts, "events": list(current.events[-5:]),
                           "failed_tasks": list(current.failed_tasks)}, indent=2))
    raise SystemExit(1 if current.state == "FAILED" else 0)


@pipeline.command("run-local")
@click.argument("vcfs", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for one Parquet file and one manifest per input.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--load", "load_target", help="Also load into BigQuery: gcp or the simulator's URL.")
@click.option("--policy", default="us", show_default=True, help="Pack naming the project and dataset for --load.")
@click.option("--table", help="project.dataset.table for --load (default: PROJECT.DATASET.variants).")
@click.option("--run-id", help="Run id (default: new); with the input digest it fixes each load job id.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), help="Reference FASTA for --check-ref.")
@click.option("--vep-command", help="VEP command line (optional).")
@interrupts.guarded("before every task finished: none of its outputs are kept")
@quiet_option
def run_local(vcfs: tuple[str, ...], out_dir: str, workers: int, load_target: str | None, policy: str,
              table: str | None, run_id: str | None, reference: str | None, vep_command: str | None) -> None:
    """Run the task over local VCFs (or gs:// with --load's target) in a process pool."""
    import shlex

    from sovaudit.pipeline.local import config_for, unique_stems
    from sovaudit.pipeline.local import run_local as run
    from sovaudit.pipeline.spec import DEFAULT_TABLE, check_node_table, check_run_id, check_table, new_run_id

    run_id = _checked(check_run_id, run_id) or new_run_id()
    _checked(check_table, table)
    kwargs: dict[str, Any] = {}
    if load_target:
        pack = _pack(policy)
        _checked(lambda value: check_node_table(pack, value), table)
        loaded_into = parse_target(load_target, "--load")
        require_credentials(loaded_into, "--load")
        require_listening(loaded_into, "--load")
        kwargs = {"target": load_target, "project": pack.project, "location": pack.region,
                  "table": table or f"{pack.project}.{pack.dataset}.{DEFAULT_TABLE}",
                  "output_bucket": pack.buckets.output}
    elif any(v.startswith("gs://") for v in vcfs):
        raise click.UsageError("gs:// inputs need --load TARGET (it names the project and the endpoint)")
    _check_local_inputs(vcfs)
    out = Path(out_dir)
    # An interrupted run leaves --out as it found it: what this run added goes (a partial Parquet too),
    # only under this run's output names (NAME.parquet, NAME.manifest.json, .NAME.parquet.partial-PID).
    stems = unique_stems(list(vcfs))
    interrupts.own_output(out, tuple(f"{stem}." for stem in stems) + tuple(f".{stem}." for stem in stems))
    created = _missing_ancestor(out)
    if load_target:
        interrupts.set_outcome("before every task finished: its outputs were removed; rows already loaded stay "
                               f"in {kwargs['table']}")
    config = config_for(list(vcfs), out, run_id, reference=reference,
                        vep_command=tuple(shlex.split(vep_command or "")), **kwargs)

    def show(result: Any) -> None:
        if hasattr(result, "log_line"):
            progress.say(result.log_line())
        else:
            _err(f"FAILED task {result.task_index}: {result.message}")

    progress.say(f"processing {len(vcfs)} input(s) with {workers} worker(s) into {out_dir}; each line below is "
                 "one finished input")
    try:
        outcome = run(config, workers=workers, progress=show)
    finally:
        if created is not None:
            _remove_if_empty(out, created)
    interrupts.done_writing()
    click.echo(json.dumps({"run_id": run_id, "out": str(out_dir), "succeeded": len(outcome.reports),
                           "failed": len(outcome.failures),
                           "records_in": sum(r.records_in for r in outcome.reports),
                           "records_normalized": sum(r.records_normalized for r in outcome.reports),
                           "rows_loaded": sum(r.rows_loaded for r in outcome.reports)}, indent=2))
    if outcome.failures:
        raise SystemExit(2 if all(f.bad_input for f in outcome.failures) else 1)


def _check_local_inputs(vcfs: tuple[str, ...]) -> None:
    """Refuse, before any output exists, a local input that is missing, a directory or unreadable."""
    from sovaudit.pipeline.errors import VcfInputError
    from sovaudit.pipeline.preprocess import check_input_path

    for vcf in vcfs:
        if vcf.startswith("gs://"):
            continue
        try:
            check_input_path(Path(vcf))
        except VcfInputError as error:
            _err(f"error: {error}")
            raise SystemExit(2) from error


def _missing_ancestor(out: Path) -> Path | None:
    """The outermost directory of ``out`` that does not exist yet (None when ``out`` exists): the run
    creates it and removes it again if no task wrote anything. Refuses an ``out`` under a file."""
    missing: Path | None = None
    for candidate in [out, *out.parents]:
        if candidate.exists():
            if not candidate.is_dir():
                raise click.BadParameter(f"{out}: {candidate} is a file, not a directory", param_hint="--out")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise click.BadParameter(f"{out}: {candidate} is not writable", param_hint="--out")
            break
        missing = candidate
    if missing is not None:
        # os.access says yes to root everywhere (/proc, a read-only mount): only creating it tells.
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise click.BadParameter(f"{out}: cannot create the directory: {error.strerror}",
                                     param_hint="--out") from error
    return missing


def _remove_if_empty(out: Path, created: Path) -> None:
    """Remove the directories this run created when every task failed before writing (nothing half-made)."""
    current = out
    while True:
        try:
            current.rmdir()  # only an empty directory goes
        except OSError:
            return
        if current == created:
            return
        current = current.parent


@pipeline.command(hidden=True)
def task() -> None:
    """Run one Batch task from its environment (the container's command)."""
    from sovaudit.pipeline.task import main

    sys.stdout.flush()
    raise SystemExit(main(os.environ))


if __name__ == "__main__":  # `python -m sovaudit.pipeline.commands ...`: the same commands without the front door
    pipeline()
