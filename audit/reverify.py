"""`sovaudit verify --evidence DIR`: re-run every control on a bundle's evidence alone.

No network and no probes: the recorded answers, probes' included, are the evidence. The scope (job,
window) and the run's date come from the manifest, so waivers are judged as on the day of the run.
A missing or altered evidence file does not stop the re-evaluation: the controls that read it become
ERROR naming the file, and the run says it no longer matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sovaudit.policies.pack import PolicyPack


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def reverify(run_dir: Path, pack: PolicyPack, *, output_format: str = "table",
             key_paths: Sequence[Path] = (), out_dir: Path | None = None) -> int:
    """Re-evaluate the bundle at `run_dir` (a run-<id>/ directory or its .tar.gz as received).

    With `key_paths` the attestation is checked first and a bundle that is unsigned, tampered or
    signed by another key is refused (exit 1) before anything is called reproduced; without them the
    output says loudly that authenticity was NOT checked. `out_dir` receives the re-evaluated bundle.
    """
    from sovaudit.reports.archive import ArchiveError, opened_bundle

    try:
        with opened_bundle(run_dir) as opened:
            return _reverify(opened, pack, output_format=output_format, key_paths=key_paths, out_dir=out_dir,
                             received_as=Path(run_dir))
    except ArchiveError as error:
        click.echo(f"cannot re-verify: {error}", err=True)
        return 2


def _reverify(run_dir: Path, pack: PolicyPack, *, output_format: str, key_paths: Sequence[Path],
              out_dir: Path | None, received_as: Path | None = None) -> int:
    from sovaudit.audit.commands import print_summary
    from sovaudit.audit.engine import judge
    from sovaudit.audit.models import Scope
    from sovaudit.reports.authenticity import AuthenticityError, check_authenticity
    from sovaudit.reports.bundle import BundleError, load_bundle
    from sovaudit.reports.view import terminal_safe

    try:
        manifest, recorded, evidence = load_bundle(run_dir, strict=False)
    except BundleError as error:
        # `--out DIR` holds run-<id>/ directories; pointing --evidence at DIR itself is the usual slip.
        runs = sorted(p.parent for p in run_dir.glob("run-*/manifest.json")) if run_dir.is_dir() else []
        hint = f"; give a run directory inside it, e.g. --evidence {terminal_safe(str(runs[-1]))}" if runs else ""
        click.echo(f"cannot re-verify: {error}{hint}", err=True)
        return 2
    if key_paths:
        try:
            refusal = check_authenticity(run_dir, key_paths, received_as)
        except AuthenticityError as error:
            click.echo(terminal_safe(f"cannot re-verify: {error}"), err=True)
            return 2
        if refusal:
            line = terminal_safe(f"REFUSED: {refusal}; the re-evaluation of this bundle proves nothing")
            click.echo(line)
            click.echo(line, err=True)
            return 1
        authenticity = "checked: the attestation verifies with the given key(s) and binds this bundle"
        click.echo(f"authenticity {authenticity}", err=True)
    else:
        authenticity = "NOT checked: no --key was given; the bundle may have been edited and re-evaluated to match"
        warning = f"WARNING: the bundle's authenticity was {authenticity}"
        click.echo(warning, err=True)
        if output_format != "json":
            click.echo(warning)
    for item in evidence:
        if item.status == 0 and item.body.startswith(b"evidence file"):
            click.echo(terminal_safe(f"evidence problem: {item.body.decode('utf-8', 'replace')}"), err=True)
    policy_digest = (manifest.get("policy") or {}).get("sha256")
    if policy_digest and policy_digest != pack.sha256:
        click.echo(f"note: the run was judged against policy sha256 {policy_digest}; "
                   f"{pack.path} has sha256 {pack.sha256}", err=True)
    try:
        scope = Scope.from_json(manifest.get("scope") or {})
        started, finished = _time(manifest["started_at"]), _time(manifest["finished_at"])
    except (KeyError, ValueError) as error:
        click.echo(f"cannot re-verify: manifest.json lacks the run's scope or times ({error})", err=True)
        return 2
    result = judge(evidence, pack, scope, run_id=str(manifest.get("run_id", "")),
                   target=str(manifest.get("target", "")), principal=str(manifest.get("principal", "")),
                   started_at=started, finished_at=finished)
    document = result.to_json()
    mismatches = _compare(recorded, document)
    if output_format == "json":
        import json

        click.echo(json.dumps(document | {"reverify": {"matches": not mismatches, "differences": mismatches,
                                                       "authenticity": authenticity}}, indent=2))
    else:
        print_summary(document)
    if out_dir is not None:
        from sovaudit.reports.bundle import BundleError, write_bundle

        meta = {key: manifest[key] for key in ("run_id", "target", "project", "policy", "tool", "principal",
                                                "started_at", "finished_at", "scope") if key in manifest}
        meta["notes"] = [f"re-evaluated offline from {run_dir.name}; authenticity {authenticity}"]
        try:
            written = write_bundle(out_dir, document, evidence, meta)
        except BundleError as error:
            click.echo(terminal_safe(f"could not write the re-evaluated bundle: {error}"), err=True)
            return 2
        click.echo(terminal_safe(f"re-evaluated bundle: {written}"), err=True)
    if recorded is None:
        click.echo("result.json is missing from the bundle: nothing to compare with", err=True)
        return max(result.exit_code, 3) if result.exit_code != 1 else 1
    if mismatches:
        for line in mismatches:
            click.echo(terminal_safe(f"MISMATCH {line}"), err=True)
        click.echo("re-evaluation does NOT reproduce the recorded outcomes", err=True)
        return 1
    click.echo("re-evaluation reproduces every recorded outcome", err=True)
    return result.exit_code


def _compare(recorded: dict[str, Any] | None, fresh: dict[str, Any]) -> list[str]:
    if recorded is None:
        return []
    legacy = _predates_skipped(recorded)
    before = {c["id"]: c["outcome"] for c in recorded.get("controls", [])}
    after = {c["id"]: c["outcome"] for c in fresh["controls"]}
    lines = []
    for control_id in sorted(set(before) | set(after)):
        was, now = before.get(control_id), after.get(control_id)
        # A bundle written before SKIPPED existed recorded a control left out by --no-probes or
        # --posture-only as NOT_APPLICABLE; the same evidence and scope now read SKIPPED. Same judgement.
        if legacy and (was, now) == ("NOT_APPLICABLE", "SKIPPED"):
            continue
        if was != now:
            lines.append(f"{control_id}: recorded {was}, re-evaluated {now}")
    verdict_before, verdict_after = recorded.get("verdict"), fresh["verdict"]
    # Before WARNED existed, a run whose controls were all PASS, WAIVED or NOT_APPLICABLE said PASS
    # (its attestation already said WARNED); with the outcomes matched above, that is the same verdict.
    if legacy and (verdict_before, verdict_after) == ("PASS", "WARNED"):
        verdict_before = "WARNED"
    if verdict_before != verdict_after:
        lines.append(f"verdict: recorded {recorded.get('verdict')}, re-evaluated {fresh['verdict']}")
    return lines


def _predates_skipped(recorded: dict[str, Any]) -> bool:
    """Whether result.json was written before the SKIPPED outcome and the WARNED verdict existed: its
    summary (which counts every outcome the writer knew) has no SKIPPED member."""
    summary = recorded.get("summary")
    return isinstance(summary, dict) and "SKIPPED" not in summary
