"""Active negative tests: try to create resources where the policy forbids them.

A probe's request and Google's answer are evidence (`probe.*` purposes); the SOV-02/SOV-03 controls
judge them. Whatever a probe manages to create is deleted before the probe returns (in `finally`),
and everything a probe creates is named `sovaudit-probe-…` and labelled `sovaudit-probe=<run id>` so
`sovaudit cleanup` can find leftovers after a crash or `kill -9`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sovaudit.audit.collectors.context import CollectContext

PROBE_LABEL = "sovaudit-probe"
PROBE_PREFIX = "sovaudit-probe-"


def label_value(run_id: str) -> str:
    """Label values allow lowercase letters, digits, '-' and '_' (63 chars)."""
    return re.sub(r"[^a-z0-9_-]", "-", run_id.lower())[:63]


def resource_suffix(run_id: str, region: str) -> str:
    return f"{label_value(run_id)}-{region}"[:40].rstrip("-")


def delete(ctx: CollectContext, purpose: str, service: str, method: str, call: Callable[[], Any]) -> bool:
    """Delete a probe resource; True when Google accepted the deletion or it was already gone.

    The one rule every probe kind shares: a 404 on delete means nothing is left behind, any other
    failure means something may be, and the report must say so.
    """
    from google.api_core import exceptions

    from sovaudit import progress
    from sovaudit.audit.recorder import CollectionError

    # A probe that was accepted exists in a forbidden region until this returns: say so while it runs.
    progress.say(f"deleting probe {purpose.removeprefix('probe.cleanup:')} ({service} {method})")
    try:
        ctx.recorder.call(purpose, service, method, call, cleanup=True)
        return True
    except CollectionError as error:
        return isinstance(error.__cause__, exceptions.NotFound)
