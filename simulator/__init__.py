"""The embedded sovereign-node simulator: Google Cloud REST APIs on loopback, for demos and tests.

The product never imports this package; `sovaudit demo`, `sovaudit sim serve`, tests and benchmarks do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sovaudit.simulator.server import SimServer


def start(node: str | Path = "us", scenarios: Iterable[str | Path] = (), job_tasks: int = 10,
          task_runner: Callable[[Any], Any] | None = None, port: int = 0,
          batch_refusal: str = "submit") -> SimServer:
    """Load and validate the node and scenarios, seed the finished job, and start serving.

    Returns the running `SimServer` (`.url`, `.state`); stop it with `.stop()` or use it as a context
    manager. Imports lazily so that `import sovaudit.simulator` stays cheap.
    """
    from sovaudit.simulator.server import SimServer

    server = SimServer(node, scenarios=tuple(scenarios), job_tasks=job_tasks, task_runner=task_runner,
                       batch_refusal=batch_refusal, port=port)
    return server.start()
