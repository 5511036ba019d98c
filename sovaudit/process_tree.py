"""The process tree below this process: find every descendant and end it (sovaudit/interrupts.py).

Linux /proc is the source: a pool worker's task process and its bcftools are grandchildren that
`multiprocessing` and `subprocess` do not track. Elsewhere (no /proc) ending them is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

# How long descendants get to end on SIGTERM before SIGKILL.
CHILD_GRACE_SECONDS = 0.4


def set_subreaper(on: bool) -> None:
    """Linux: orphaned descendants are re-parented to this process, so none escapes `end_descendants`."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1 if on else 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process visible in /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                text = stat.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int | None = None) -> list[int]:
    """Live (not zombie) descendants of `root` (default: this process)."""
    root = os.getpid() if root is None else root
    table = _parents()
    children: dict[int, list[int]] = {}
    for pid, (parent, _state) in table.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return [pid for pid in found if table[pid][1] != "Z"]


def _reap() -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def end_descendants(grace: float = CHILD_GRACE_SECONDS, root: int | None = None) -> None:
    """SIGTERM every descendant of `root` (default: this process), SIGKILL what is left after `grace`,
    reap what was ours."""
    if not os.path.isdir("/proc"):
        return
    for number in (signal.SIGTERM, signal.SIGKILL):
        pids = descendants(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, number)
        until = time.monotonic() + grace
        while time.monotonic() < until:
            _reap()
            if not descendants(root):
                break
            time.sleep(0.02)
    _reap()
