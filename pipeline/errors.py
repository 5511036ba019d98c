"""The pipeline's exceptions: one family, so that the task and the CLI catch one thing."""

from __future__ import annotations


class PipelineError(Exception):
    """Anything that stops a pipeline step; the message is meant for the person running it."""


class VcfInputError(PipelineError):
    """The input is not a readable VCF: malformed, truncated or not a VCF at all.

    ``record`` names where, as precisely as known: ``line 2031 (chr1:23155)``, ``chr1:23155``
    or ``after chr1:23100``; None when the file fails before its first record.
    """

    def __init__(self, path: str, reason: str, record: str | None = None,
                 hint: str = "check the file with `bcftools view`, or regenerate it") -> None:
        self.path = path
        self.reason = reason
        self.record = record
        self.hint = hint
        where = f"{path}: {record}" if record else path
        super().__init__(f"{where}: {reason} ({hint})")


class ToolError(PipelineError):
    """An external tool (VEP) or a bundled one failed for a reason that is not the input's fault."""
