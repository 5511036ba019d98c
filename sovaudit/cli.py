"""The front door: a click group that loads each subcommand from its own module on first use.

Subcommands are imported lazily so that `sovaudit --help` and a pipeline task start fast:
the Google Cloud client libraries take seconds to import and most commands need few of them.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from sovaudit import __version__

# command name -> "module:attribute". Add a line here when a subcommand lands; nothing else.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("sovaudit.simulator.commands:sim", "Run the embedded sovereign-node simulator."),
    "verify": ("sovaudit.audit.commands:verify", "Prove the node keeps its promises (exit 0/1/3)."),
    "cleanup": ("sovaudit.audit.commands:cleanup", "Delete probe resources left by interrupted runs."),
    "controls": ("sovaudit.audit.catalog_commands:controls", "List the control catalogue."),
    "policy": ("sovaudit.policies.commands:policy", "Validate policy packs."),
    "report": ("sovaudit.reports.commands:report", "Verify a signed report; render a result again."),
    "keys": ("sovaudit.reports.commands:keys", "Generate signing keys."),
    "pipeline": ("sovaudit.pipeline.commands:pipeline", "Plan, submit and follow the preprocessing job; run it locally."),
    "demo": ("sovaudit.demo:demo", "Verify the embedded simulator's node end to end and sign the bundle."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked or listed in detail."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        # Every command follows one interrupt rule (sovaudit/interrupts.py): exit 3, no child process left,
        # nothing half-written kept, one line naming the signal. Long commands say more with @guarded.
        from sovaudit import interrupts

        with interrupts.guard("before it finished"):
            return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the short help kept here so that --help imports no subcommand module.
        rows = [(name, SUBCOMMANDS[name][1]) for name in sorted(SUBCOMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sovaudit")
@click.option("--quiet", "-q", is_flag=True,
              help="Print no progress on stderr (errors, warnings and the verdict still print); "
                   "every long-running command also takes --quiet itself.")
def main(quiet: bool) -> None:
    """Prove that a Google Cloud sovereign node keeps data sovereignty, confidential
    computing and security controls, with evidence a regulator can re-check."""
    from sovaudit import progress

    # Set on every invocation (not only when given), so one in-process run cannot silence the next.
    progress.set_quiet(quiet)
