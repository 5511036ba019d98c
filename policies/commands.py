"""`sovaudit policy validate FILE...`: every problem of every pack, with file, line and field; exit 2 on any.

Waivers that load but deserve attention (expired, expiring within 30 days, blanket) are warnings on
stderr with exit 0; `--strict` makes them errors (exit 2) for CI gates that want no such waiver."""

from __future__ import annotations

from datetime import date

import click


@click.group()
def policy() -> None:
    """Policy packs: what a node promises."""


@policy.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--strict", is_flag=True,
              help="Treat waiver warnings (expired, expiring within 30 days, blanket) as errors (exit 2).")
def validate(files: tuple[str, ...], strict: bool) -> None:
    """Validate policy packs (paths, or the shipped 'us' / 'eu')."""
    from sovaudit.policies.pack import PolicyError, resolve_policy
    from sovaudit.policies.waiver_lint import waiver_warnings

    failed = False
    today = date.today()
    for name in files:
        try:
            pack = resolve_policy(name)
        except PolicyError as exc:
            failed = True
            for error in getattr(exc, "errors", (exc,)):
                click.echo(PolicyError.__str__(error))
            continue
        warnings = waiver_warnings(pack, today)
        label = "error" if strict else "warning"
        for warning in warnings:
            click.echo(f"{label}: {PolicyError.__str__(warning)}", err=True)
        if strict and warnings:
            failed = True
            continue
        click.echo(f"{pack.path}: OK ({pack.name}, {len(pack.waivers)} waivers, sha256 {pack.sha256[:12]})")
    if failed:
        raise SystemExit(2)


@policy.command("regions")
def regions() -> None:
    """List the regions a pack may name (jurisdiction.allowed_regions, probe_regions) and their zones.

    A region missing here is one this release cannot place: a pack naming it is refused, since an
    unknown region's zones cannot be told apart from a foreign one's."""
    from sovaudit.audit.locations import REGION_ZONES

    for region in sorted(REGION_ZONES):
        click.echo(f"{region}\t{' '.join(f'{region}-{zone}' for zone in REGION_ZONES[region])}")
