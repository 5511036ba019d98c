"""Shared fixtures: the embedded simulator, started in-process on a free loopback port.

`sim` is a fresh us node per test (state may be mutated); `sim_shared` is one us node per test module
for read-only tests (faster); `sim_factory(node=..., scenarios=[...], job_tasks=..., task_runner=...,
batch_refusal=...)` starts any other node and stops it when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sovaudit.simulator import start
from sovaudit.simulator.server import SimServer


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = start(node="us")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sim_shared() -> Iterator[SimServer]:
    server = start(node="us")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimServer]]:
    started: list[SimServer] = []

    def make(node: str | Path = "us", scenarios: tuple[str, ...] | list[str] = (), job_tasks: int = 10,
             task_runner: Callable[[Any], Any] | None = None, batch_refusal: str = "submit") -> SimServer:
        server = start(node=node, scenarios=tuple(scenarios), job_tasks=job_tasks, task_runner=task_runner,
                       batch_refusal=batch_refusal)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture(autouse=True)
def _progress_not_quiet() -> Iterator[None]:
    """`--quiet` is process-wide (sovaudit/progress.py): a test that passes it must not silence the next."""
    from sovaudit import progress

    progress.set_quiet(False)
    yield
    progress.set_quiet(False)
