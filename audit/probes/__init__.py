"""Active negative tests: try to create resources where the policy forbids them.

A probe's request and Google's answer are evidence (`probe.*` purposes); the SOV-02/SOV-03 controls
judge them. Whatever a probe manages to create is deleted before the probe returns (in `finally`),
and everything a probe creates is named `sovaudit-probe-…` and labelled `sovaudit-probe=<run id>` so
`sovaudit cleanup` can find leftovers after a crash or `kill -9`.
"""

from __future__ import annotations

import re

PROBE_LABEL = "sovaudit-probe"
PROBE_PREFIX = "sovaudit-probe-"


def label_value(run_id: str) -> str:
    """Label values allow lowercase letters, digits, '-' and '_' (63 chars)."""
    return re.sub(r"[^a-z0-9_-]", "-", run_id.lower())[:63]


def resource_suffix(run_id: str, region: str) -> str:
    return f"{label_value(run_id)}-{region}"[:40].rstrip("-")
