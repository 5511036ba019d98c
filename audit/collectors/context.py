"""What every collector is handed: where to call, what to ask about, and where evidence goes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sovaudit.audit.recorder import Recorder
from sovaudit.cloud import Target

if TYPE_CHECKING:
    from sovaudit.policies.pack import PolicyPack

# Per-request timeout: a hung API must not hang a release gate.
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class CollectContext:
    target: Target
    pack: PolicyPack
    recorder: Recorder
    run_id: str
    # Set when the run is interrupted (Ctrl-C, SIGTERM): no new probe starts, running ones clean up.
    stopping: threading.Event = field(default_factory=threading.Event, compare=False)
    # Probes running now (each may hold one resource it created): what an interrupt waits to delete.
    live_probes: set[str] = field(default_factory=set, compare=False)
    # The folders above the project, nearest first (hierarchy.ancestors), once known; INT-02's one
    # change-history query names their Admin Activity logs too. `ancestry_read` is set either way.
    folders: list[str] = field(default_factory=list, compare=False)
    ancestry_read: threading.Event = field(default_factory=threading.Event, compare=False)

    @property
    def project(self) -> str:
        return str(self.pack.project)

    @property
    def region(self) -> str:
        return str(self.pack.region)

    def client(self, factory: Any, *args: Any) -> Any:
        """A client from `sovaudit.cloud`, with the evidence hook attached."""
        return self.recorder.hook(factory(self.target, *args))


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, the form Logging filters and reports use."""
    from datetime import UTC

    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
