"""`sovaudit policy validate FILE...`: every problem of every pack, with file, line and field; exit 2 on any."""

from __future__ import annotations

import click


@click.group()
def policy() -> None:
    """Policy packs: what a node promises."""


@policy.command("validate")
@click.argument("files", nargs=-1, required=True)
def validate(files: tuple[str, ...]) -> None:
    """Validate policy packs (paths, or the shipped 'us' / 'eu')."""
    from sovaudit.policies.pack import PolicyError, resolve_policy

    failed = False
    for name in files:
        try:
            pack = resolve_policy(name)
        except PolicyError as exc:
            failed = True
            for error in getattr(exc, "errors", (exc,)):
                click.echo(PolicyError.__str__(error))
            continue
        click.echo(f"{pack.path}: OK ({pack.name}, {len(pack.waivers)} waivers, sha256 {pack.sha256[:12]})")
    if failed:
        raise SystemExit(2)
