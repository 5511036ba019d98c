"""`sovaudit controls list [--json]`: the control catalogue, as a table or as JSON with all metadata."""

from __future__ import annotations

import json

import click


@click.group()
def controls() -> None:
    """The control catalogue: what sovaudit proves and from which evidence."""


@controls.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print every control's metadata as JSON.")
def list_controls(as_json: bool) -> None:
    """List every control with its pillar, severity, title, framework references and evidence read."""
    from sovaudit.audit.registry import all_controls

    catalogue = all_controls()
    if as_json:
        click.echo(json.dumps([c.meta.to_json() for c in catalogue], indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    from sovaudit import terminal

    table = Table(title=f"sovaudit controls ({len(catalogue)})")
    for column in ("id", "pillar", "severity", "title", "frameworks", "reads"):
        table.add_column(column, overflow="fold")
    for c in catalogue:
        kind = " (probe)" if c.meta.probe else (" (job)" if c.meta.needs_job else "")
        # The README promises framework references here; an auditor maps controls by them.
        frameworks = "; ".join(f"{name} {', '.join(refs)}" for name, refs in c.meta.frameworks.items())
        table.add_row(c.meta.id, c.meta.pillar.value, c.meta.severity.value, c.meta.title + kind,
                      frameworks, ", ".join(c.meta.reads))
    terminal.console().print(table)
