"""The assertion engine: collect evidence through the official clients, then judge it.

Collection and judgement are separate on purpose. `collect` talks to the cloud and returns raw
evidence plus the scope it established; `judge` is pure and is what `verify --evidence` re-runs on a
bundle, offline, to reach the same outcomes.
"""

from __future__ import annotations

import functools
import secrets
import socket
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from sovaudit import __version__, interrupts
from sovaudit import progress as progress_lines
from sovaudit.audit.collectors import (
    access,
    attestation,
    history,
    integrity,
    job,
    logging_config,
    logs,
    network,
    posture,
)
from sovaudit.audit.collectors import assured_workloads as aw_collector
from sovaudit.audit.collectors import scope as scope_rules
from sovaudit.audit.collectors.context import CollectContext
from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.models import ControlContext, RunResult, Scope
from sovaudit.audit.recorder import CollectionError, Recorder
from sovaudit.cloud import Target

if TYPE_CHECKING:
    from sovaudit.audit.probes.cleanup import SweptResource
    from sovaudit.policies.pack import PolicyPack

# Independent questions run concurrently; the APIs are I/O bound and rate limits are generous.
COLLECTOR_THREADS = 8
# After Ctrl-C/SIGTERM, how long the running probe may take to delete what it created (announced on stderr).
PROBE_CLEANUP_SECONDS = 10.0


def new_run_id(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class VerifyOptions:
    target: Target
    pack: PolicyPack
    job: str | None = None
    # --job, repeated: every job named is judged (`job` is the one-job spelling, kept for callers).
    jobs: tuple[str, ...] = ()
    posture_only: bool = False
    probes: bool = True
    since: datetime | None = None
    until: datetime | None = None
    api_deadline_seconds: float = 60.0
    run_id: str = field(default_factory=new_run_id)


@dataclass(frozen=True)
class Collected:
    """What collection produced: the raw evidence, the scope it established, and housekeeping notes."""

    evidence: EvidenceLog
    scope: Scope
    started_at: datetime
    finished_at: datetime
    swept: tuple[SweptResource, ...] = ()
    notes: tuple[str, ...] = ()


Progress = Callable[[str], None]


class BadScope(ValueError):
    """The scope the caller asked for cannot be judged (a --job that does not exist): bad input, exit 2
    before any probe runs or anything is written."""


class EmptyWindow(ValueError):
    """--since/--until and the job's own window leave no time to search: bad input, not a finding.

    Judging an empty window would turn "no log entries" into FAIL/ERROR claims about a run that was
    never looked at, so the run stops before any probe or log query."""


def collect(options: VerifyOptions, progress: Progress = progress_lines.say,
            warn: Progress = progress_lines.warn) -> Collected:
    """Collect the evidence. `progress` hears what the run is waiting for (silenced by --quiet);
    `warn` hears what went wrong or is left out, which --quiet must not hide."""
    started = datetime.now(UTC)
    recorder = Recorder(deadline_seconds=options.api_deadline_seconds)
    ctx = CollectContext(options.target, options.pack, recorder, options.run_id)
    notes: list[str] = []
    reasons: list[str] = []
    if not options.probes:
        reasons.append("probes disabled with --no-probes")

    resolved: scope_rules.ResolvedScope | None = None
    named = tuple(options.jobs) or ((options.job,) if options.job else ())
    if options.posture_only:
        reasons.append("posture-only run: job controls do not apply")
    else:
        progress(f"resolving the jobs in scope ({', '.join(named) or 'every pipeline job in the window'})")
        try:
            resolved = scope_rules.resolve(ctx, named, options.since, options.until)
        except scope_rules.NamedJobMissing as missing:
            raise BadScope(f"{missing}; check the id with `sovaudit pipeline status` or omit --job") from missing
        except job.JobNotFound as missing:
            notes.append(str(missing))
            warn(f"job not found: {missing}")
        except CollectionError as error:
            notes.append(str(error))
            warn(f"could not read the job: {error}")

    judged = resolved.jobs if resolved else ()
    job_scope: job.JobScope | None = judged[0] if judged else None
    window_start, window_end = options.since, options.until
    if resolved is not None:
        window_start, window_end = resolved.window_start, resolved.window_end
    if window_start is not None and window_end is not None and window_start >= window_end:
        given = {"--since": options.since, "--until": options.until}
        flags = " and ".join(f"{flag} {moment.isoformat()}" for flag, moment in given.items() if moment) or "the job"
        raise EmptyWindow(
            f"the audit-log window {window_start.isoformat()} .. {window_end.isoformat()} is empty "
            f"({flags} against job {job_scope.name if job_scope else options.job}'s run); "
            "pass a --since before the --until, or omit one to use the job's own start/end")
    for line in _scope_lines(f"projects/{ctx.project}/locations/{ctx.region}/jobs/", named, judged,
                             window_start, window_end):
        progress(line)
    for gap in resolved.gaps if resolved else ():
        warn(f"window gap: {gap}")
    for other in resolved.not_judged if resolved else ():
        warn(f"not judged: {other}")
    scope = Scope(
        job=job_scope.name if job_scope else (named[0] if named else None),
        job_uid=job_scope.uid if job_scope else None,
        window_start=window_start, window_end=window_end,
        posture_only=options.posture_only, probes_enabled=options.probes, reasons=tuple(reasons),
        jobs=resolved.refs if resolved else (), not_judged=resolved.not_judged if resolved else (),
        window_gaps=resolved.gaps if resolved else (),
    )

    tasks: list[tuple[str, Callable[[], Any]]] = [
        ("org policy", lambda: posture.effective_location_policy(ctx)),
        ("project and audit config", lambda: posture.project_and_audit_config(ctx)),
        ("VPC-SC perimeters", lambda: posture.perimeters(ctx)),
        ("log routing", lambda: logging_config.collect(ctx)),
        ("network egress posture", lambda: network.collect(ctx)),
    ]
    if options.pack.assured_workload:
        # SOV-09: only when the pack names a workload (two requests); otherwise no call is made.
        # From the earliest of the window and the judged jobs' creation: a narrowed --since must not drop a
        # violation the run lived under (SOV-09 judges over the same span).
        aw_start = min([window_start, *(j.created for j in judged)]) if window_start is not None else None
        tasks.append(("Assured Workloads workload", lambda: aw_collector.workload(ctx)))
        tasks.append(("Assured Workloads violations", lambda: aw_collector.violations(ctx, aw_start)))
    key_sources: list[Callable[[], list[str]]] = [lambda: posture.buckets(ctx), lambda: posture.dataset(ctx)]
    # Access family (SOV-04/SOV-05 scope and IAM, SEC-07 reads).
    tasks.append(("bucket IAM", lambda: access.bucket_iam(ctx)))
    key_sources += [lambda: access.project_storage(ctx), lambda: access.project_datasets(ctx)]
    if judged and window_start is not None and window_end is not None:
        start, end = window_start, window_end
        count = len(judged)
        for judged_job in judged:
            if judged_job.template:
                tasks.append(("instance template", functools.partial(
                    job.instance_template, ctx, judged_job.template,
                    scope_rules.job_purpose("compute.instance_template", judged_job.name, count))))
            tasks.append(("task manifests", functools.partial(
                integrity.manifests, ctx, judged_job.name,
                scope_rules.job_purpose("storage.manifests", judged_job.name, count))))
        uids = tuple(judged_job.uid for judged_job in judged)
        tasks.append(("job VMs", lambda: job.job_instances(ctx, uids)))
        if options.pack.confidential.in_guest_attestation.enabled:
            tasks.append(("attestation signing keys", lambda: attestation.signing_keys(ctx)))
        kaj = options.pack.key_access_justifications
        for purpose, text in logs.filters(ctx.project, start, end,
                                          kaj.allowed_reasons if kaj else None).items():
            tasks.append((purpose, functools.partial(logs.collect, ctx, purpose, text)))
        tasks.append(("log routing changes", lambda: logging_config.changes(ctx, start)))
        tasks.append(("network changes", lambda: network.changes(ctx, start, end)))
        tasks.append(("posture changes", lambda: history.collect(ctx, start, end)))
        # INT-01 asks what each judged job loaded, not what happened in a window: its loads are read over
        # the jobs' whole lives (and the window), so a narrowed window cannot turn them into "missing".
        life_start = min([start, *(j.created - job.WINDOW_MARGIN for j in judged)])
        life_end = max([end, *(min((j.finished or datetime.now(UTC)) + job.WINDOW_MARGIN, datetime.now(UTC))
                               for j in judged)])
        tasks.append(("load jobs", lambda: integrity.load_jobs(ctx, life_start, life_end)))
        tasks.append(("object and table reads", lambda: access.reads(ctx, start, end)))

    swept: list[SweptResource] = []
    pool = ThreadPoolExecutor(max_workers=COLLECTOR_THREADS)
    try:
        key_futures = [pool.submit(_guard, "buckets/dataset", source, warn) for source in key_sources]
        futures = [pool.submit(_guard, label, fn, warn) for label, fn in tasks]
        probing = None
        if options.probes:
            probing = pool.submit(_guard, "probes", lambda: swept.extend(_probe(ctx, progress, warn)), warn)
            futures.append(probing)
        with interrupts.on_interrupt(_probe_cleanup_step(ctx, probing)):
            key_names = [name for future in key_futures for name in (future.result() or [])]
            if key_names:
                futures.append(pool.submit(_guard, "KMS keys", lambda: posture.kms_keys(ctx, key_names), warn))
            for future in futures:
                future.result()
    except BaseException:
        # Interrupted: start nothing new, but let running probes finish their `finally` deletions.
        ctx.stopping.set()
        progress("interrupted: waiting for running probes to delete what they created")
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    finished = datetime.now(UTC)
    progress(f"collected {recorder.request_count()} API exchanges in {(finished - started).total_seconds():.1f}s")
    return Collected(recorder.log(), scope, started, finished, tuple(swept), tuple(notes))


def _probe_cleanup_step(ctx: CollectContext, probing: Future[Any] | None) -> interrupts.CleanupStep:
    """What Ctrl-C/SIGTERM still waits for: the running probe deleting what it created, bounded."""

    def describe() -> str | None:
        ctx.stopping.set()  # no new probe starts; the running one goes to its `finally` deletion
        if probing is None or probing.done() or not ctx.live_probes:
            return None
        count = len(ctx.live_probes)
        return (f"deleting {count} probe resource{'s' if count > 1 else ''} "
                f"(at most {PROBE_CLEANUP_SECONDS:g} s)...")

    def run(seconds: float) -> None:
        if probing is not None:
            wait([probing], timeout=seconds)

    return interrupts.CleanupStep(describe=describe, run=run, seconds=PROBE_CLEANUP_SECONDS)


def _scope_lines(parent: str, named: tuple[str, ...], judged: tuple[job.JobScope, ...], start: datetime | None,
                 end: datetime | None) -> list[str]:
    """Say which jobs the run judges and over which window: a job picked by default must be named, or
    a user cannot tell that the gate looked at yesterday's run rather than today's."""
    lines = []
    for index, picked in enumerate(judged):
        if named:
            why = "named with --job"
        elif len(judged) == 1:
            why = "newest pipeline job; use --job to choose"
        else:
            why = f"pipeline job {index + 1} of {len(judged)} in the search window; use --job to choose"
        lines.append(f"job: {parent}{picked.name} ({why})")
    if start is not None and end is not None:
        shown = [moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for moment in (start, end)]
        lines.append(f"window: {shown[0]} .. {shown[1]} (audit logs are read over this span; "
                     "--since/--until set it)")
    return lines


def _probe(ctx: CollectContext, progress: Progress, warn: Progress) -> list[SweptResource]:
    from sovaudit.audit.probes import batch as batch_probe
    from sovaudit.audit.probes import bigquery as dataset_probe
    from sovaudit.audit.probes import cleanup
    from sovaudit.audit.probes import storage as bucket_probe

    regions = list(ctx.pack.jurisdiction.probe_regions)
    swept = cleanup.sweep(ctx, regions)
    for item in swept:
        if item.kept:
            warn(f"KEPT a probe-labelled {item.kind} {item.name}: not provably this tool's own ({item.kept})")
        else:
            progress(f"swept a probe left by an earlier run: {item.kind} {item.name} "
                     f"({'deleted' if item.deleted else 'NOT deleted'})")
    for region in regions:
        progress(f"probing {region}: Batch job, bucket, dataset must be refused")
        for probe in (batch_probe.run, bucket_probe.run, dataset_probe.run):
            if ctx.stopping.is_set():
                return swept
            # Marked live for its whole run: it may hold one resource it created until its `finally`.
            live = f"{probe.__module__}:{region}"
            ctx.live_probes.add(live)
            try:
                _guard(f"probe {probe.__module__} {region}", functools.partial(probe, ctx, region), warn)
            finally:
                ctx.live_probes.discard(live)
    return swept


def _guard(label: str, fn: Callable[[], Any], warn: Progress) -> Any:
    """Run one collector; failures are already evidence, so they are reported and never raised."""
    try:
        return fn()
    except CollectionError as error:
        warn(f"could not collect {label}: {error.message}")
    except Exception as exc:  # a collector bug must not abort the run: its controls will be ERROR
        warn(f"collector {label} failed: {exc!r}")
        traceback.print_exc(file=sys.stderr)
    return None


def portable_policy_path(path: str) -> str:
    """The pack's file name only: reports travel to regulators, and an absolute path names the
    auditor's home, virtualenv or install directory without identifying the policy (its name and
    sha256 do; the bundle carries the pack itself as policy.yaml)."""
    return PurePath(str(path).replace("\\", "/")).name if path else ""


def judge(evidence: EvidenceLog, pack: PolicyPack, scope: Scope, *, run_id: str, target: str,
          principal: str, started_at: datetime, finished_at: datetime, today: date | None = None) -> RunResult:
    """Pure: evaluate every registered control on the evidence. Same input, same outcomes."""
    from sovaudit.audit.evaluate import evaluate, probe_records

    context = ControlContext(evidence=evidence, policy=pack, scope=scope, today=today or finished_at.date(),
                             principal=principal)
    results = evaluate(context)
    return RunResult(
        run_id=run_id, target=target, project=str(pack.project), policy_name=str(pack.name),
        policy_path=portable_policy_path(pack.path), policy_sha256=str(pack.sha256), tool_version=__version__,
        principal=principal, started_at=started_at, finished_at=finished_at, scope=scope,
        controls=tuple(results), probes=tuple(probe_records(context)),
        # The machine that judged (JUnit's testsuite hostname); recorded so a re-render elsewhere is identical.
        hostname=socket.gethostname(),
        jurisdiction=str(pack.jurisdiction.name), regions=tuple(pack.jurisdiction.allowed_regions),
    )
