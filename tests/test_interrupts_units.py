"""The pieces of the interrupt rule, in process: retry waits end on `interrupts.STOP`, and a process tree
is found and ended whole (the end-to-end rule with real signals: tests/test_interrupts.py)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from sovaudit import interrupts, process_tree
from sovaudit.audit.recorder import CollectionError, Recorder
from sovaudit.simulator.server import SimServer

URL = "{}/v2/projects/fed-node-us/policies/gcp.resourceLocations:getEffectivePolicy"


@pytest.fixture
def stop_event() -> Iterator[threading.Event]:
    interrupts.STOP.clear()
    yield interrupts.STOP
    interrupts.STOP.clear()


def test_a_retry_wait_ends_as_soon_as_the_run_is_interrupted(sim: SimServer, stop_event: threading.Event) -> None:
    # 503 with Retry-After 20 inside a 60 s deadline: the call would sleep 20 s before its next attempt.
    sim.state.options["faults"] = [{"api": "orgpolicy", "status": 503, "retry_after": 20}]
    recorder = Recorder(deadline_seconds=60)
    session = recorder.hook_session(requests.Session())
    threading.Timer(0.5, stop_event.set).start()
    began = time.monotonic()
    with pytest.raises(CollectionError, match="interrupted") as caught:
        recorder.call("orgpolicy.effective", "orgpolicy", "policies.getEffectivePolicy",
                      lambda: session.get(URL.format(sim.url), timeout=5).raise_for_status())
    assert time.monotonic() - began < 3, caught.value.message
    assert [item.status for item in recorder.log()] == [503]


def test_no_call_starts_once_the_run_is_interrupted_but_a_probe_deletion_still_does(
        sim: SimServer, stop_event: threading.Event) -> None:
    recorder = Recorder(deadline_seconds=5)
    session = recorder.hook_session(requests.Session())
    stop_event.set()
    with pytest.raises(CollectionError, match="not called: the run was interrupted"):
        recorder.call("orgpolicy.effective", "orgpolicy", "policies.getEffectivePolicy",
                      lambda: session.get(URL.format(sim.url), timeout=5).raise_for_status())
    assert recorder.request_count() == 0
    recorder.call("probe.cleanup:x", "orgpolicy", "policies.getEffectivePolicy",
                  lambda: session.get(URL.format(sim.url), timeout=5).raise_for_status(), cleanup=True)
    assert [item.status for item in recorder.log()] == [200]


def test_end_descendants_ends_a_whole_tree_including_grandchildren() -> None:
    # A shell with two grandchildren that ignore SIGTERM: only SIGKILL after the grace ends them.
    parent = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(process_tree.descendants(parent.pid)) < 2:
            assert time.monotonic() < deadline, "the grandchildren did not start"
            time.sleep(0.02)
        grandchildren = process_tree.descendants(parent.pid)
        began = time.monotonic()
        process_tree.end_descendants(root=parent.pid)
        assert time.monotonic() - began < 2
        assert process_tree.descendants(parent.pid) == []
        for pid in grandchildren:
            state = _state(pid)
            assert state in {None, "Z"}, f"grandchild {pid} still {state}"
    finally:
        parent.kill()
        parent.wait()


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()[0]
