"""`sovaudit verify`, `sovaudit cleanup` and `sovaudit demo`: options in, engine and reports wired.

Exit codes (DESIGN §8): 0 PASS or WARNED (controls waived, not applicable, or SKIPPED by
--no-probes/--posture-only: the gate passes and every report names what was not proven), 1 a
control failed, 3 incomplete (an ERROR and no FAIL), 2 bad usage or input.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sovaudit import interrupts
from sovaudit.progress import quiet_option
from sovaudit.target_option import parse_target, require_credentials, require_listening

if TYPE_CHECKING:
    from sovaudit.audit.engine import Collected
    from sovaudit.audit.models import RunResult
    from sovaudit.cloud import Target
    from sovaudit.policies.pack import PolicyPack


def _err(message: str) -> None:
    from sovaudit.reports.view import terminal_safe

    # Progress lines quote API errors and resource names: show control characters, never obey them.
    click.echo("\n".join(terminal_safe(line) for line in message.split("\n")), err=True)


# Batch job ids (the last segment of projects/P/locations/L/jobs/ID): lower-case letters, digits and
# hyphens, starting with a letter. Checked here because the id is spliced into API paths and the manifest
# prefix; a name like `../x` must never reach a URL.
_JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def _check_job(job_name: str | None) -> None:
    if job_name is not None and not _JOB_ID.match(job_name):
        raise click.BadParameter(
            f"{job_name!r} is not a Batch job id (lower-case letters, digits and hyphens, starting with a "
            "letter, at most 63 characters); pass the id, not the full resource name", param_hint="--job")


def _check_out_dir(out_dir: str | None) -> None:
    """Refuse an --out that cannot hold a bundle before any API call or probe, not after the run."""
    if out_dir is None:
        return
    import os

    path = Path(out_dir).absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise click.BadParameter(f"{out_dir}: {existing} is a file, so no directory can be made there",
                                 param_hint="--out")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{out_dir}: {existing} is not writable by this user", param_hint="--out")
    if existing != path:
        # os.access says yes to root everywhere (/proc, a read-only mount): only trying tells. What is
        # created here is removed again, so a run refused later leaves no --out behind.
        missing = [p for p in (path, *path.parents) if not p.exists()]
        try:
            path.mkdir(parents=True)
        except OSError as error:
            raise click.BadParameter(f"{out_dir}: cannot create the directory: {error.strerror}",
                                     param_hint="--out") from error
        finally:
            for directory in missing:
                try:
                    directory.rmdir()
                except OSError:
                    pass


def _given(ctx: click.Context, *names: str) -> bool:
    """Whether the user typed any of these options (or set them by environment), not just got the default."""
    from click.core import ParameterSource

    return any(ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT) for name in names)


def _load_pack(policy: str, project: str | None) -> PolicyPack:
    from sovaudit.policies.pack import PolicyError, is_project_id, resolve_policy

    if project is not None and not is_project_id(project):
        raise click.BadParameter(
            f"{project!r} is not a project id (6-30 lower-case letters, digits and hyphens, e.g. fed-node-us)",
            param_hint="--project")
    try:
        pack = resolve_policy(policy)
    except PolicyError as error:
        _err(str(error))
        raise SystemExit(2) from error
    return replace(pack, project=project) if project else pack


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    # RFC 3339 demands a full time and an offset: a bare date or a local time read as UTC would
    # silently shift the audit-log window by hours on a machine outside UTC.
    if not _RFC3339.fullmatch(text):
        raise click.BadParameter(
            f"{text!r} is not an RFC 3339 time: give a date, a time and Z or an offset "
            "(e.g. 2026-11-26T16:00:00Z or 2026-11-26T17:00:00+01:00)", param_hint=option)
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as error:
        raise click.BadParameter(f"{text!r} is not an RFC 3339 time (e.g. 2026-11-26T16:00:00Z): {error}",
                                 param_hint=option) from error
    return moment


# A finding's message in the console table is cut here (a Google error quoted in full took 20 lines at
# 80 columns); the whole message stays in result.json and the HTML report.
DETAIL_CHARS = 320


def print_summary(result: dict[str, Any], *, stream: Any = None) -> None:
    """A table per pillar on stdout: what a security engineer reads first."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from sovaudit import terminal
    from sovaudit.reports.headline import headline
    from sovaudit.reports.view import terminal_safe

    console = terminal.console(stream)
    styles = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold yellow", "WAIVED": "cyan",
              "NOT_APPLICABLE": "dim", "SKIPPED": "yellow"}
    verdict_styles = {"PASS": "bold green", "FAIL": "bold red", "INCOMPLETE": "bold yellow", "WARNED": "bold yellow"}
    head = headline(result)
    # The first screen: what was audited, when, by whom, against what, and the verdict with its reason.
    for label, value in (("node", f"{head.node} · policy {head.policy}"), ("target", head.target),
                         ("jobs", f"{head.jobs} · window {head.window}"),
                         ("run", f"{head.run_id} · generated {head.generated_at} by {head.principal}")):
        console.print(Text(terminal_safe(f"{label:>7}: {value}")))
    console.print(Text(terminal_safe(f"verdict: {head.verdict_line}"), style=verdict_styles.get(head.verdict, "bold")))
    for pillar in ("sovereignty", "confidential", "controls", "integrity"):
        rows = [c for c in result["controls"] if c["pillar"] == pillar]
        if not rows:
            continue
        table = Table(title=f"{pillar}", title_justify="left", expand=False)
        # id and outcome never wrap; title and detail share what the terminal leaves (fold: a long
        # resource name with no spaces still breaks rather than pushing the border off screen).
        table.add_column("control", no_wrap=True)
        table.add_column("outcome", no_wrap=True)
        table.add_column("title", overflow="fold", ratio=2)
        table.add_column("detail", overflow="fold", ratio=3, max_width=60)
        for control in rows:
            shown = [f for f in control["findings"] if f["outcome"] == control["outcome"]] or control["findings"]
            detail = shown[0]["message"] if shown else ""
            if len(detail) > DETAIL_CHARS:
                # The table is the first look; the full message is in result.json and the HTML report.
                # Cut in the middle: the head says what is wrong, the tail often names the resource.
                kept = DETAIL_CHARS * 2 // 3
                detail = detail[:kept].rstrip() + " … " + detail[-(DETAIL_CHARS - kept - 3):].lstrip()
            if len(shown) > 1:
                detail += f" (+{len(shown) - 1} more)"
            outcome = control["outcome"]
            # Text cells, not markup: a resource name such as "[/bold]" from the cloud is shown, not parsed.
            table.add_row(Text(terminal_safe(control["id"])), Text(terminal_safe(outcome), style=styles.get(outcome, "")),
                          Text(terminal_safe(control["title"])), Text(terminal_safe(detail)))
        console.print(table)
    scope = result.get("scope") or {}
    judged = [str(ref.get("job")) for ref in scope.get("jobs") or ()]
    if judged:
        window = scope.get("window") or {}
        console.print(Text(terminal_safe(f"jobs judged: {', '.join(judged)}; window {window.get('start')} .. "
                                         f"{window.get('end')}")))
    for line in scope.get("not_judged") or ():
        console.print(Text(terminal_safe(f"NOT judged: {line}"), style="yellow"))
    for line in scope.get("window_gaps") or ():
        console.print(Text(terminal_safe(f"window gap: {line}"), style="bold yellow"))
    summary = ", ".join(f"{k} {v}" for k, v in result["summary"].items() if v)
    console.print(f"verdict: [bold]{escape(terminal_safe(head.verdict))}[/] ({escape(terminal_safe(summary))}) "
                  f"run {escape(terminal_safe(result['run_id']))}")
    console.print(Text(terminal_safe(f"    why: {head.reason}"), style=verdict_styles.get(head.verdict, "")))


def run_verify(*, pack: PolicyPack, target: Target, job_name: str | tuple[str, ...] | None, posture_only: bool,
               probes: bool, since: datetime | None, until: datetime | None, api_deadline: float,
               run_id: str | None = None) -> tuple[RunResult, Collected]:
    from sovaudit.audit import engine
    from sovaudit.cloud import principal

    names = (job_name,) if isinstance(job_name, str) else tuple(job_name or ())
    options = engine.VerifyOptions(target=target, pack=pack, jobs=names, posture_only=posture_only,
                                   probes=probes, since=since, until=until, api_deadline_seconds=api_deadline,
                                   **({"run_id": run_id} if run_id else {}))
    collected = engine.collect(options)
    result = engine.judge(collected.evidence, pack, collected.scope, run_id=options.run_id, target=str(target),
                          principal=principal(target), started_at=collected.started_at,
                          finished_at=collected.finished_at)
    return result, collected


def write_outputs(out: Path, result: RunResult, collected: Collected, *, signer: Any,
                  bundle: bool, redact: bool, tsa_url: str | None = None,
                  policy_file: str | Path | None = None) -> Path:
    from sovaudit.reports import bundle as bundle_writer

    meta = {
        "run_id": result.run_id, "target": result.target, "project": result.project,
        "policy": {"name": result.policy_name, "path": result.policy_path, "sha256": result.policy_sha256},
        "tool": {"name": "sovaudit", "version": result.tool_version}, "principal": result.principal,
        "started_at": result.to_json()["started_at"], "finished_at": result.to_json()["finished_at"],
        "scope": result.scope.to_json() | {"probes_enabled": result.scope.probes_enabled,
                                           "reasons": list(result.scope.reasons)},
        "swept": [{"kind": s.kind, "name": s.name, "deleted": s.deleted} for s in collected.swept],
        "notes": list(collected.notes),
    }
    try:
        # result.policy_path is only the file's name (never an absolute local path in a report); the
        # bytes come from the file the pack was loaded from.
        policy_bytes: bytes | None = Path(policy_file or result.policy_path).read_bytes()
    except OSError:
        policy_bytes = None  # e.g. a shipped pack inside a zip; the statement still carries its digest
    timestamper = None
    if tsa_url:
        from functools import partial

        from sovaudit.reports.timestamp import request_timestamp

        timestamper = partial(request_timestamp, tsa_url)
    return Path(bundle_writer.write_bundle(out, result.to_json(), collected.evidence, meta, signer=signer,
                                           pack_tar=bundle, redact=redact, timestamper=timestamper,
                                           policy_bytes=policy_bytes))


def _check_tsa(tsa_url: str, *, signed: bool) -> None:
    """--tsa timestamps a signature: without one, or with a URL that is not http(s), stop (exit 2)
    before any API call rather than after the audit."""
    from sovaudit.reports.timestamp import TimestampError, check_tsa_url

    if not signed:
        raise click.UsageError("--tsa timestamps the attestation's signature: give --sign-key or --kms-key too")
    try:
        check_tsa_url(tsa_url)
    except TimestampError as error:
        _err(str(error))
        raise SystemExit(2) from error


def signer_from_options(sign_key: str | None, kms_key: str | None, target: Target | None) -> Any:
    """The attestation signer the options name, or None; a bad key is exit 2 before any API call."""
    if sign_key and kms_key:
        raise click.UsageError("--sign-key and --kms-key are exclusive: sign with one key")
    if not sign_key and not kms_key:
        return None  # before the import: signing pulls in securesystemslib and the KMS client (~0.4 s)
    from sovaudit.reports import signing

    try:
        if sign_key:
            return signing.file_signer(Path(sign_key))
        if kms_key:
            if target is None:
                raise click.UsageError("--kms-key needs --target to reach Cloud KMS")
            return signing.kms_signer(kms_key, target)
    except signing.SigningKeyError as error:
        _err(str(error))
        raise SystemExit(2) from error
    return None


@click.command()
@click.option("--policy", "policy", required=True, help="Policy pack: a YAML file, or 'us' / 'eu' for the shipped ones.")
@click.option("--project", help="Override the pack's project id.")
@click.option("--target", "target_text", default="gcp", show_default=True,
              help="'gcp' (Application Default Credentials) or the simulator's http://127.0.0.1:PORT.")
@click.option("--job", "job_names", multiple=True,
              help="Batch job id to judge; repeat for several. A job that does not exist is exit 2. Default: "
                   "every job carrying the pack's pipeline labels whose life overlaps --since/--until, or, without "
                   "them, [newest such job's creation - the pack's scope.lookback (24h), now]; pipeline jobs seen "
                   "but not judged are named in the result.")
@click.option("--posture-only", is_flag=True, help="Check the node without a job; job controls are SKIPPED (not "
                                                 "proven) and the verdict is at best WARNED (exit 0).")
@click.option("--no-probes", is_flag=True, help="Skip the active negative tests: SOV-02, SOV-03 are SKIPPED (not "
                                              "proven) and the verdict is at best WARNED (exit 0).")
@click.option("--since", help="Start of the audit-log window (RFC 3339); default: the first judged job's creation "
                                "minus a margin. A window starting after a judged job's creation makes the "
                                "window-dependent controls ERROR.")
@click.option("--until", help="End of the audit-log window (RFC 3339); default: the last judged job's end plus a "
                                "margin. A window ending before a judged job ends makes the window-dependent "
                                "controls ERROR.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write the evidence bundle run-<id>/ under DIR.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--sign-key", type=click.Path(dir_okay=False), help="Sign the attestation with this PEM private key.")
@click.option("--kms-key", help="Sign with a Cloud KMS key version (projects/…/cryptoKeyVersions/N).")
@click.option("--tsa", "tsa_url", help="RFC 3161 timestamp authority URL: timestamp the signature (trusted time); "
                                      "an unreachable or refusing TSA is exit 2 and no bundle is written.")
@click.option("--bundle", "pack_tar", is_flag=True, help="Also pack the run directory as run-<id>.tar.gz.")
@click.option("--redact", is_flag=True, help="Replace principal emails in reports with stable pseudonyms.")
@click.option("--evidence", "evidence_dir", type=click.Path(),
              help="Re-evaluate a bundle (run-<id>/ or its .tar.gz) offline instead of collecting (no network, no "
                   "probes); --out DIR writes the re-evaluated bundle. --target and the scope options are "
                   "refused with it (exit 2).")
@click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False),
              help="With --evidence: check the bundle's attestation with this public key (PEM) first and refuse "
                   "an unsigned, tampered or foreign-signed bundle; repeat for several keys.")
@click.option("--api-deadline", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds a call may spend retrying transient API errors before its controls are ERROR.")
@interrupts.guarded("before a verdict; nothing was attested and no bundle was written")
@quiet_option
def verify(policy: str, project: str | None, target_text: str, job_names: tuple[str, ...], posture_only: bool,
           no_probes: bool, since: str | None, until: str | None, out_dir: str | None, output_format: str,
           sign_key: str | None, kms_key: str | None, pack_tar: bool, redact: bool, evidence_dir: str | None,
           key_paths: tuple[str, ...], api_deadline: float, tsa_url: str | None = None) -> None:
    """Prove the node keeps its promises; exit 0 pass or warned, 1 fail, 3 incomplete, 2 bad input.

    \b
    Scope: with --job (repeatable) exactly those jobs are judged. Without it, every Batch job
    carrying the pack's pipeline labels whose life overlaps the search window: --since/--until
    when given, else from the newest pipeline job's creation minus the pack's scope.lookback
    (24h shipped) until now. The audit-log window covers every judged job from creation to end;
    --since/--until may widen it, and one that leaves out part of a judged job makes the
    window-dependent controls ERROR. The result lists the jobs judged (scope.jobs) and names
    pipeline jobs seen but not judged (scope.not_judged).
    """
    job_name = job_names or None
    if posture_only and job_names:
        raise click.UsageError("--posture-only checks the node without a job; do not combine it with --job")
    for name in job_names:
        _check_job(name)
    _check_out_dir(out_dir)
    if (pack_tar or redact or sign_key or kms_key) and not out_dir:
        raise click.UsageError("--bundle, --redact, --sign-key and --kms-key need --out DIR")
    if tsa_url:
        _check_tsa(tsa_url, signed=bool(sign_key or kms_key))
    if key_paths and not evidence_dir:
        raise click.UsageError("--key checks a received bundle: it applies to --evidence only")
    pack = _load_pack(policy, project)
    if evidence_dir:
        if job_name or since or until or posture_only or no_probes:
            raise click.UsageError("--evidence re-evaluates a bundle as recorded: scope options do not apply")
        if _given(click.get_current_context(), "target_text", "api_deadline"):
            # Refused rather than ignored: a user who adds --target expects the node to be asked, and a
            # silent offline answer would read as a fresh verdict about it.
            raise click.UsageError("--evidence re-evaluates a recorded bundle offline and calls no API: "
                                   "--target and --api-deadline do not apply (drop them, or drop --evidence "
                                   "to verify the node again)")
        if sign_key or kms_key or pack_tar or redact:
            raise click.UsageError("--evidence writes the re-evaluated bundle unsigned under --out; "
                                   "--sign-key, --kms-key, --bundle and --redact do not apply")
        from sovaudit.audit.reverify import reverify

        if out_dir:
            interrupts.own_output(Path(out_dir))
        exit_code = reverify(Path(evidence_dir), pack, output_format=output_format,
                             key_paths=tuple(Path(k) for k in key_paths), out_dir=Path(out_dir) if out_dir else None)
        raise SystemExit(exit_code)
    target = parse_target(target_text)
    window_start, window_end = _parse_time(since, "--since"), _parse_time(until, "--until")
    if window_start and window_end and window_start >= window_end:
        raise click.BadParameter(f"--since {since} is not before --until {until}: the audit-log window is empty",
                                 param_hint="--since")
    require_credentials(target)
    interrupts.set_outcome("before a verdict; nothing was attested and no bundle was written (probe resources "
                           f"left behind, if any: `sovaudit cleanup --policy {policy} --target {target_text}`)")
    # Load the key first: a bad key must stop the run before any probe touches the cloud.
    signer = signer_from_options(sign_key, kms_key, target)
    require_listening(target)
    from sovaudit.audit.engine import BadScope, EmptyWindow

    try:
        result, collected = run_verify(pack=pack, target=target, job_name=job_name, posture_only=posture_only,
                                       probes=not no_probes, since=window_start, until=window_end,
                                       api_deadline=api_deadline)
    except EmptyWindow as error:
        raise click.BadParameter(str(error), param_hint="--since/--until") from error
    except BadScope as error:
        raise click.BadParameter(str(error), param_hint="--job") from error
    document = result.to_json()
    if out_dir:
        from sovaudit.reports.bundle import BundleError

        # Only this run's names: another run may be writing its bundle into the same --out.
        interrupts.own_output(Path(out_dir), (f"run-{result.run_id}", f".run-{result.run_id}."))
        try:
            run_dir = write_outputs(Path(out_dir), result, collected, signer=signer, bundle=pack_tar,
                                    redact=redact, tsa_url=tsa_url, policy_file=pack.path)
        except BundleError as error:
            _err(f"could not write the bundle: {error}")
            raise SystemExit(2) from error
        except Exception as error:
            from sovaudit.reports.timestamp import TimestampError

            if not isinstance(error, TimestampError):
                raise
            _err(f"no trusted time, so no bundle was written: {error}")
            raise SystemExit(2) from error
        interrupts.done_writing()
        _err(f"evidence bundle: {run_dir}")
        if signer is None:
            _err("note: the bundle is UNSIGNED (no --sign-key/--kms-key): nothing vouches for its contents")
    if target.kind != "gcp":
        _err(f"SIMULATED: {target_text} is the local simulator; this run is not evidence about a real node")
    if output_format == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        print_summary(document)
    raise SystemExit(result.exit_code)


@click.command()
@click.option("--policy", "policy", required=True, help="Policy pack: a YAML file, or 'us' / 'eu'.")
@click.option("--project", help="Override the pack's project id.")
@click.option("--target", "target_text", default="gcp", show_default=True,
              help="'gcp' or the simulator's http://127.0.0.1:PORT.")
@click.option("--api-deadline", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True)
@interrupts.guarded("before every leftover probe resource was looked at; run `sovaudit cleanup` again")
@quiet_option
def cleanup(policy: str, project: str | None, target_text: str, api_deadline: float) -> None:
    """Delete probe resources left behind by interrupted runs: only those named and labelled as probes
    whose Admin Activity create entry names this verifier; others are kept and reported (exit 1)."""
    from sovaudit.audit.collectors.context import CollectContext
    from sovaudit.audit.engine import new_run_id
    from sovaudit.audit.probes.cleanup import sweep
    from sovaudit.audit.recorder import Recorder
    from sovaudit.reports.view import terminal_safe

    pack = _load_pack(policy, project)
    target = parse_target(target_text)
    require_credentials(target)
    require_listening(target)
    ctx = CollectContext(target, pack, Recorder(deadline_seconds=api_deadline), new_run_id())
    swept = sweep(ctx, list(pack.jurisdiction.probe_regions))
    failures = [s for s in swept if not s.deleted]
    for item in swept:
        if item.kept:
            # Not provably sovaudit's own (name, label and an Admin Activity create by this principal):
            # kept as evidence; `verify` reports it as a SOV-02/SOV-03 FAIL.
            click.echo(terminal_safe(f"KEPT {item.kind} {item.name}: carries the probe label but {item.kept}"))
        else:
            click.echo(terminal_safe(f"{'deleted' if item.deleted else 'COULD NOT DELETE'} {item.kind} {item.name}"))
    incomplete = [p for p in ctx.recorder.log().purposes("cleanup.list")
                  if not ctx.recorder.log().by_purpose(p).complete]
    for purpose in incomplete:
        _err(f"could not list {purpose.removeprefix('cleanup.list:')}: "
             f"{ctx.recorder.log().by_purpose(purpose).problem}")
    if not swept and not incomplete:
        click.echo("no probe leftovers found")
    raise SystemExit(1 if failures else 3 if incomplete else 0)
