"""Run pysam's bundled bcftools in a child process.

Why a child process and not ``pysam.bcftools.norm(...)`` in this one: htslib writes its
diagnostics (the ones that name the bad record, ``... at chr1:100``) straight to file
descriptor 2, so only a child whose stderr we redirect lets us read them; bcftools keeps
global state between calls; and a child lets normalization, text formatting and Arrow
parsing run at the same time on different cores. No bcftools binary is needed: the child
is ``python -m sovaudit.pipeline.bcftools CMD ARGS...`` calling pysam.

``bcftools query`` must be given ``-o /dev/stdout`` rather than relying on its default
stdout: with ``catch_stdout=False`` pysam 0.24 frees the stdout handle twice and aborts.
"""

from __future__ import annotations

import subprocess
import sys
from typing import IO


def command(tool: str, *args: str) -> list[str]:
    """The argument list that runs ``bcftools TOOL ARGS`` through pysam in a fresh interpreter."""
    return [sys.executable, "-m", "sovaudit.pipeline.bcftools", tool, *args]


def spawn(tool: str, *args: str, stdin: IO[bytes] | int | None = None,
          stdout: IO[bytes] | int | None = subprocess.PIPE, stderr: IO[bytes] | int | None = None
          ) -> subprocess.Popen[bytes]:
    """Start ``bcftools TOOL ARGS`` as a child process (argument list, never a shell)."""
    return subprocess.Popen(command(tool, *args), stdin=stdin, stdout=stdout, stderr=stderr)


def main(argv: list[str]) -> int:
    """Entry point of the child: run one bcftools command, echo its messages to stderr."""
    import pysam.bcftools
    from pysam.utils import SamtoolsError

    if not argv:
        sys.stderr.write("usage: python -m sovaudit.pipeline.bcftools TOOL ARGS...\n")
        return 2
    tool = getattr(pysam.bcftools, argv[0], None)
    if tool is None:
        sys.stderr.write(f"unknown bcftools command {argv[0]!r}\n")
        return 2
    try:
        tool(*argv[1:], catch_stdout=False)
    except SamtoolsError as error:
        sys.stderr.write(f"{error.value}\n")
        return 1
    messages = tool.get_messages()
    if messages:
        sys.stderr.write(messages if isinstance(messages, str) else "\n".join(messages))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
