"""One Batch task: one VCF in, one Parquet file and one counts manifest out, loaded at most once.

Configuration comes from the environment Batch gives each task (the job spec in ``spec.py``
sets these; ``BATCH_*`` and ``SOVAUDIT_TARGET`` are Batch's and the simulator's own):

===========================  =====================================================================
``INPUT_URIS``               JSON list of inputs (``gs://bucket/object`` or local paths)
``BATCH_TASK_INDEX``         which input this task processes
``BATCH_JOB_ID``             the job, as named in the manifest path ``manifests/<job>/<index>.json``
``SOVAUDIT_RUN_ID``          the run; with the input's sha256 it fixes the load job id
``SOVAUDIT_PROJECT``         project of the storage and BigQuery clients
``SOVAUDIT_BQ_TABLE``        ``project.dataset.table`` to load into (no load when unset)
``SOVAUDIT_BQ_LOCATION``     BigQuery location of the dataset (its region)
``SOVAUDIT_OUTPUT_BUCKET``   bucket for the manifests
``SOVAUDIT_OUT_DIR``         local directory for the Parquet file and manifest (default: a temp dir)
``SOVAUDIT_REFERENCE``       optional reference FASTA (local or ``gs://``) for ``--check-ref``
``SOVAUDIT_VEP_COMMAND``     optional VEP command line (split like a shell would, never run by one)
``SOVAUDIT_TARGET``          ``gcp`` (default) or the simulator's URL
``SOVAUDIT_ATTEST``          ``1``: fetch a Confidential Computing attestation token first (``attest.py``, CC-05)
===========================  =====================================================================

Nothing here imports a Google client at module level: a task must start fast, and a local run
without ``gs://`` inputs or a table needs none.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sovaudit.pipeline.errors import PipelineError, ToolError, VcfInputError
from sovaudit.pipeline.preprocess import PreprocessOptions, PreprocessResult, preprocess

# Range partitioning on start_position: 1000 partitions of 250 kb cover the longest human
# chromosome (chr1, 248.9 Mb); BigQuery allows at most 10 000.
PARTITION_START, PARTITION_END, PARTITION_INTERVAL = 0, 250_000_000, 250_000
CLUSTERING = ("reference_name", "start_position")
# What INT-01 reads from each manifest (sovaudit.audit.views.MANIFEST_FIELDS): TaskReport's first ten.
MANIFEST_FIELDS = ("run_id", "job", "task_index", "input", "input_sha256", "records_in", "records_normalized",
                   "rows_loaded", "load_job_id", "table")
_SUFFIXES = (".vcf.gz", ".vcf.bgz", ".vcf", ".bcf", ".gz")


class TaskConfigError(PipelineError):
    """The task's environment is incomplete or inconsistent."""


@dataclass(frozen=True)
class TaskConfig:
    inputs: tuple[str, ...]
    task_index: int = 0
    job: str = "local"
    run_id: str = "local"
    project: str | None = None
    table: str | None = None
    location: str | None = None
    output_bucket: str | None = None
    out_dir: Path | None = None
    reference: str | None = None
    vep_command: tuple[str, ...] = ()
    target: str = "gcp"
    attest: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TaskConfig:
        raw = env.get("INPUT_URIS", "").strip()
        if not raw:
            raise TaskConfigError("INPUT_URIS is not set: the job must list its inputs (a JSON list)")
        try:
            decoded = json.loads(raw)
            inputs = tuple(str(x) for x in decoded) if isinstance(decoded, list) else (str(decoded),)
        except json.JSONDecodeError:
            inputs = tuple(part.strip() for part in re.split(r"[,\n]", raw) if part.strip())
        try:
            index = int(env.get("BATCH_TASK_INDEX", "0"))
        except ValueError as error:
            raise TaskConfigError(f"BATCH_TASK_INDEX={env.get('BATCH_TASK_INDEX')!r} is not a number") from error
        table = env.get("SOVAUDIT_BQ_TABLE") or None
        project = env.get("SOVAUDIT_PROJECT") or (table.split(".")[0] if table and table.count(".") == 2 else None)
        out_dir = env.get("SOVAUDIT_OUT_DIR")
        return cls(
            inputs=inputs, task_index=index, job=env.get("BATCH_JOB_ID") or env.get("SOVAUDIT_JOB") or "local",
            run_id=env.get("SOVAUDIT_RUN_ID") or env.get("BATCH_JOB_UID") or "local", project=project, table=table,
            location=env.get("SOVAUDIT_BQ_LOCATION") or None, output_bucket=env.get("SOVAUDIT_OUTPUT_BUCKET") or None,
            out_dir=Path(out_dir) if out_dir else None, reference=env.get("SOVAUDIT_REFERENCE") or None,
            vep_command=tuple(shlex.split(env.get("SOVAUDIT_VEP_COMMAND", ""))),
            target=env.get("SOVAUDIT_TARGET") or "gcp", attest=env.get("SOVAUDIT_ATTEST", "") == "1")

    @property
    def input(self) -> str:
        if not 0 <= self.task_index < len(self.inputs):
            raise TaskConfigError(f"BATCH_TASK_INDEX={self.task_index} but INPUT_URIS lists {len(self.inputs)} "
                                  "inputs; the job's taskCount must equal the number of inputs")
        return self.inputs[self.task_index]


@dataclass(frozen=True)
class TaskReport:
    """The manifest INT-01 reads (first ten fields), plus what helps a person reading it."""

    run_id: str
    job: str
    task_index: int
    input: str
    input_sha256: str
    records_in: int
    records_normalized: int
    rows_loaded: int
    load_job_id: str
    table: str
    parquet: str
    seconds: float
    split: int = 0
    mismatch_removed: int = 0
    annotated_with_vep: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)
    attestation_token: str = ""

    def to_json(self) -> str:
        body = asdict(self)
        body["warnings"] = list(self.warnings)
        if not self.attestation_token:
            del body["attestation_token"]   # only runs with in-guest attestation carry one (attest.py)
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    def log_line(self) -> str:
        return (f"sovaudit task {self.task_index} of job {self.job}: input={self.input} "
                f"sha256={self.input_sha256[:16]} records_in={self.records_in} "
                f"records_normalized={self.records_normalized} rows_loaded={self.rows_loaded} "
                f"load_job={self.load_job_id or '-'} table={self.table or '-'} seconds={self.seconds:.2f}")


def load_job_id(run_id: str, input_sha256: str) -> str:
    """The load job's id: fixed by the run and the input's content, so a retried task asks
    BigQuery for a job that already exists (409) instead of loading the rows a second time."""
    safe_run = re.sub(r"[^A-Za-z0-9_-]", "_", run_id)[:200]
    return f"sovaudit_{safe_run}_{input_sha256[:40]}"


def output_stem(uri: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)] or "input"
    return name or "input"


def run_task(config: TaskConfig, *, stem: str | None = None) -> TaskReport:
    """Fetch, preprocess, load (when a table is configured) and record one input.

    Without ``out_dir`` (a Batch VM) the Parquet file lives in a temporary directory that is
    removed once the rows are loaded; the manifest still goes to the output bucket.
    """
    if config.out_dir is None:
        with tempfile.TemporaryDirectory(prefix="sovaudit-out-") as scratch:
            return _run_in(config, Path(scratch), stem)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    return _run_in(config, config.out_dir, stem)


def _run_in(config: TaskConfig, out_dir: Path, stem: str | None) -> TaskReport:
    started = time.monotonic()
    uri = config.input
    # Attest before any data is read: the token vouches for the VM the data is processed on.
    token, attest_warning = _attest(config)
    stem = stem or output_stem(uri)
    with tempfile.TemporaryDirectory(prefix="sovaudit-fetch-") as tmp:
        source = _fetch(config, uri, Path(tmp))
        reference = _fetch(config, config.reference, Path(tmp)) if config.reference else None
        options = PreprocessOptions(reference=reference, vep_command=config.vep_command)
        try:
            result = preprocess(source, out_dir / f"{stem}.parquet", options)
        except PipelineError as error:
            raise _as_named(error, {source: uri, reference: config.reference}) from error
    job_id, rows_loaded = "", 0
    if config.table:
        job_id = load_job_id(config.run_id, result.sha256)
        rows_loaded = _load(config, result, job_id)
    report = _report(config, uri, result, job_id, rows_loaded, time.monotonic() - started)
    if config.attest:
        report = replace(report, attestation_token=token,
                         warnings=report.warnings + ((attest_warning,) if attest_warning else ()))
    manifest = out_dir / f"{stem}.manifest.json"
    partial = manifest.with_name(f".{manifest.name}.partial")
    partial.write_text(report.to_json())
    os.replace(partial, manifest)
    if config.table and config.output_bucket:
        _upload_manifest(config, report)
    if config.table and rows_loaded != result.records_normalized:
        raise PipelineError(f"{uri}: load job {job_id} wrote {rows_loaded} rows but normalization produced "
                            f"{result.records_normalized}; the manifest records both for INT-01")
    return report


def _as_named(error: PipelineError, copies: dict[Path | None, str | None]) -> PipelineError:
    """The same error naming the user's gs:// URI instead of the task's downloaded copy in a temporary
    directory, which the person fixing the file has never seen."""
    renames = {str(copy): name for copy, name in copies.items() if copy is not None and name and str(copy) != name}
    if not renames:
        return error
    if isinstance(error, VcfInputError):
        path = renames.get(error.path, error.path)
        reason = error.reason
        for copy, name in renames.items():
            reason = reason.replace(copy, name)
        return VcfInputError(path, reason, record=error.record, hint=error.hint)
    text = str(error)
    for copy, name in renames.items():
        text = text.replace(copy, name)
    return type(error)(text)


def _report(config: TaskConfig, uri: str, result: PreprocessResult, job_id: str, rows_loaded: int,
            seconds: float) -> TaskReport:
    return TaskReport(run_id=config.run_id, job=config.job, task_index=config.task_index, input=uri,
                      input_sha256=result.sha256, records_in=result.records_in,
                      records_normalized=result.records_normalized, rows_loaded=rows_loaded,
                      load_job_id=job_id, table=config.table or "", parquet=str(result.parquet),
                      seconds=round(seconds, 3), split=result.split, mismatch_removed=result.mismatch_removed,
                      annotated_with_vep=result.annotated, warnings=result.warnings)


def _attest(config: TaskConfig) -> tuple[str, str]:
    """(token, "") or ("", why not): a task without a token still processes its input (attest.py)."""
    if not config.attest:
        return "", ""
    from sovaudit.pipeline import attest

    try:
        token = attest.request_token(target=_target(config), project=_project(config), run_id=config.run_id,
                                     task_index=config.task_index)
    except PipelineError as error:
        print(f"warning: attestation: {error}", file=sys.stderr, flush=True)
        return "", f"attestation: {error}"
    return token, ""


def _target(config: TaskConfig) -> Any:
    from sovaudit.cloud import Target

    return Target.parse(config.target)


def _project(config: TaskConfig) -> str:
    if not config.project:
        raise TaskConfigError("SOVAUDIT_PROJECT is not set (needed for gs:// inputs and loads)")
    return config.project


def _fetch(config: TaskConfig, uri: str | None, workdir: Path) -> Path:
    """A local path for a local path or a ``gs://bucket/object`` (downloaded with the storage client)."""
    assert uri is not None
    if not uri.startswith("gs://"):
        return Path(uri)
    from sovaudit import cloud

    bucket_name, _, object_name = uri[len("gs://"):].partition("/")
    if not bucket_name or not object_name:
        raise TaskConfigError(f"{uri}: expected gs://BUCKET/OBJECT")
    dest = workdir / object_name.rsplit("/", 1)[-1]
    client = cloud.storage(_target(config), _project(config))
    try:
        client.bucket(bucket_name).blob(object_name).download_to_filename(str(dest))
    except Exception as error:  # google.api_core errors; the message names the object
        raise ToolError(f"cannot download {uri}: {error}") from error
    return dest


def _load(config: TaskConfig, result: PreprocessResult, job_id: str) -> int:
    """Load the Parquet file with a deterministic job id; an existing job is reused, never repeated."""
    from google.api_core import exceptions
    from google.cloud import bigquery as bq

    from sovaudit import cloud

    assert config.table is not None
    client = cloud.bigquery(_target(config), _project(config), location=config.location)
    job_config = bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET,
        write_disposition=bq.WriteDisposition.WRITE_APPEND,
        create_disposition=bq.CreateDisposition.CREATE_IF_NEEDED,
        range_partitioning=bq.RangePartitioning(
            field="start_position",
            range_=bq.PartitionRange(start=PARTITION_START, end=PARTITION_END, interval=PARTITION_INTERVAL)),
        clustering_fields=list(CLUSTERING),
        # Files of one run may declare different INFO/FORMAT fields: a new field is added, never refused.
        schema_update_options=[bq.SchemaUpdateOption.ALLOW_FIELD_ADDITION],
        labels={"sovaudit-run": re.sub(r"[^a-z0-9_-]", "-", config.run_id.lower())[:63]},
    )
    # Without list inference BigQuery loads a Parquet LIST as a record wrapping list.element.
    parquet_options = bq.ParquetOptions()
    parquet_options.enable_list_inference = True
    job_config.parquet_options = parquet_options
    try:
        with open(result.parquet, "rb") as data:
            job = client.load_table_from_file(data, config.table, job_id=job_id, job_config=job_config,
                                              location=config.location)
    except exceptions.Conflict:
        # A previous attempt of this task already created the job: report what it did.
        job = client.get_job(job_id, location=config.location)
    job.result()
    if job.error_result:
        raise ToolError(f"load job {job_id} failed: {job.error_result.get('message')}")
    return int(job.output_rows or 0)


def _upload_manifest(config: TaskConfig, report: TaskReport) -> None:
    from sovaudit import cloud

    assert config.output_bucket is not None
    client = cloud.storage(_target(config), _project(config))
    name = f"manifests/{config.job}/{config.task_index}.json"
    blob = client.bucket(config.output_bucket).blob(name)
    # The counts also ride as custom metadata, so the verifier reads a 1000-task run from one
    # object listing instead of a download per task.
    metadata = {key: str(value) for key, value in asdict(report).items() if key in MANIFEST_FIELDS}
    if report.attestation_token:
        # CC-05 reads the token from the listing too (pipeline/attest.py); a JWT of ~1.5 KB fits
        # the 8 KiB Cloud Storage allows for custom metadata.
        metadata["attestation_token"] = report.attestation_token
    blob.metadata = metadata   # the property returns a copy: assign the whole mapping
    blob.upload_from_string(report.to_json(), content_type="application/json")


def main(env: Mapping[str, str] | None = None) -> int:
    """Run one task from the environment; print one log line; exit 0, 2 (bad input) or 1."""
    from sovaudit.pipeline.convert import use_fast_allocator

    env = os.environ if env is None else env
    use_fast_allocator()
    try:
        config = TaskConfig.from_env(env)
        report = run_task(config)
    except VcfInputError as error:
        print(f"sovaudit task failed: {error}", file=sys.stderr, flush=True)
        return 2
    except PipelineError as error:
        print(f"sovaudit task failed: {error}", file=sys.stderr, flush=True)
        return 1
    except Exception as error:  # a cloud API error: one line, not a traceback, in the task log
        print(f"sovaudit task failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    print(report.log_line(), flush=True)
    for warning in report.warnings[:5]:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return 0
