"""`sovaudit verify --evidence DIR`: re-run every control on a bundle's evidence alone.

No network and no probes: the recorded answers, probes' included, are the evidence. The scope (job,
window) and the run's date come from the manifest, so waivers are judged as on the day of the run.
A missing or altered evidence file does not stop the re-evaluation: the controls that read it become
ERROR naming the file, and the run says it no longer matches.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sovaudit.policies.pack import PolicyPack


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def reverify(run_dir: Path, pack: PolicyPack, *, output_format: str = "table") -> int:
    from sovaudit.audit.commands import print_summary
    from sovaudit.audit.engine import judge
    from sovaudit.audit.models import Scope
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

        click.echo(json.dumps(document | {"reverify": {"matches": not mismatches, "differences": mismatches}},
                              indent=2))
    else:
        print_summary(document)
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
    before = {c["id"]: c["outcome"] for c in recorded.get("controls", [])}
    after = {c["id"]: c["outcome"] for c in fresh["controls"]}
    lines = []
    for control_id in sorted(set(before) | set(after)):
        if before.get(control_id) != after.get(control_id):
            lines.append(f"{control_id}: recorded {before.get(control_id)}, re-evaluated {after.get(control_id)}")
    if recorded.get("verdict") != fresh["verdict"]:
        lines.append(f"verdict: recorded {recorded.get('verdict')}, re-evaluated {fresh['verdict']}")
    return lines
