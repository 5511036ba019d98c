"""One rule for Ctrl-C and SIGTERM in every long command (docs/architecture.md, "Interrupts").

A CI runner sends SIGTERM and, 7-30 s later, SIGKILL; a person presses Ctrl-C and expects the prompt
back. So a guarded command, on the first SIGINT or SIGTERM:

1. sets `STOP` (retry sleeps wait on it, so no retry loop outlives the signal);
2. runs the cleanup steps the command registered with `on_interrupt` (verify's: delete the probe
   resources it created), each bounded by its own allowance and announced on stderr;
3. ends every descendant process (pool workers, task subprocesses, bcftools): SIGTERM, then SIGKILL
   after a short grace; this process is made a child subreaper so orphaned grandchildren come back to
   it instead of escaping to init;
4. removes what the command half-wrote (paths registered with `remove_on_interrupt`);
5. prints one line naming the signal and what was not done, and exits 3 ("incomplete").

It does not unwind the stack: the handler finishes the run itself and leaves with `os._exit(3)`, so
no `finally` block, executor shutdown or non-daemon thread (an HTTP call blocked for 30 s) can delay
the exit, and no traceback is printed. A watchdog thread enforces the budget (`BUDGET_SECONDS` plus
the allowances announced) even if a cleanup step hangs. A second signal skips what is left of the
cleanup and exits at once, also without a traceback.

Processes forked from a guarded process inherit the Python handler; there it does nothing for SIGINT
(the terminal sends Ctrl-C to the whole process group, and the parent decides) and exits quietly on
SIGTERM. Pools that start fresh interpreters use `quiet_child` as their initializer for the same effect.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from sovaudit.process_tree import end_descendants, set_subreaper

EXIT_INTERRUPTED = 3
# What a guarded command may spend between the signal and its exit, apart from announced cleanup.
BUDGET_SECONDS = 1.5

# Set on the first SIGINT/SIGTERM: retry loops and pollers wait on it instead of sleeping.
STOP = threading.Event()

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CleanupStep:
    """Work that must still happen after an interrupt (deleting probe resources), with its bound."""

    describe: Callable[[], str | None]   # the stderr line announcing it, or None when there is nothing to do
    run: Callable[[float], None]         # does the work within the seconds it is given
    seconds: float


@dataclass
class _Guard:
    """The state of the guarded command (one per process; mutable by design: signals arrive at any time)."""

    owner_pid: int
    outcome: str                      # "before a verdict; nothing was attested", etc.
    steps: list[CleanupStep] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    # (directory, entries before, name prefixes): entries that appear after the snapshot and start with
    # one of the prefixes (any name when empty) are this run's.
    snapshots: list[tuple[Path, frozenset[str], tuple[str, ...]]] = field(default_factory=list)
    deadline: float = 0.0
    signal_name: str = ""
    finishing: threading.Lock = field(default_factory=threading.Lock)


_guard: _Guard | None = None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def sleep(seconds: float) -> bool:
    """Sleep unless interrupted; True when the run was interrupted (the caller should give up)."""
    return STOP.wait(max(0.0, seconds))


def interrupted() -> bool:
    return STOP.is_set()


def quiet_child() -> None:
    """Initializer for worker processes: ignore Ctrl-C (the parent ends them) and die quietly on SIGTERM.

    SIG_IGN survives exec, so a task subprocess or bcftools started by the worker ignores the
    terminal's Ctrl-C too instead of printing a KeyboardInterrupt traceback."""
    with contextlib.suppress(ValueError):  # not the main thread of the worker: nothing to change
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def set_outcome(text: str) -> None:
    """What the one line says was not done, as the command moves on ("while following job X")."""
    if _guard is not None:
        _guard.outcome = text


def remove_on_interrupt(path: Path) -> None:
    """Remove `path` (file or tree) if the command is interrupted: register only what this run creates."""
    if _guard is not None:
        _guard.paths.append(Path(path))


def new_path(path: Path) -> Path:
    """Register `path` for removal on interrupt when it does not exist yet (it is this run's); return it."""
    if not Path(path).exists():
        remove_on_interrupt(path)
    return Path(path)


def remove_new_entries(directory: Path, prefixes: tuple[str, ...] = ()) -> None:
    """On interrupt, remove the entries of `directory` that are not there now (what this run added);
    with `prefixes`, only those whose name starts with one of them, so that another run writing into
    the same directory at the same time (two CI jobs sharing an --out) loses nothing."""
    if _guard is not None:
        directory = Path(directory).absolute()
        before = frozenset(os.listdir(directory)) if directory.is_dir() else frozenset()
        _guard.snapshots.append((directory, before, tuple(prefixes)))


def own_output(directory: Path, prefixes: tuple[str, ...] = ()) -> None:
    """On interrupt, leave `directory` as this run found it: remove it (and the parents the run
    creates for it) when it does not exist yet, else remove what the run added to it (a bundle's
    staging directory, a run-<id>/, a partial Parquet), limited to names with `prefixes` if given."""
    directory = Path(directory).absolute()
    if directory.exists():
        remove_new_entries(directory, prefixes)
        return
    outermost = directory
    for parent in directory.parents:
        if parent.exists():
            break
        outermost = parent
    new_path(outermost)


def done_writing() -> None:
    """Every output is complete: an interrupt from now on removes nothing."""
    if _guard is not None:
        _guard.paths.clear()
        _guard.snapshots.clear()


@contextlib.contextmanager
def on_interrupt(step: CleanupStep) -> Iterator[None]:
    """While the block runs, an interrupt first runs `step` (bounded by `step.seconds`)."""
    guard = _guard
    if guard is None:
        yield
        return
    guard.steps.append(step)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            guard.steps.remove(step)


def guarded(outcome: str) -> Callable[[F], F]:
    """Decorate a click command: an interrupt while it runs follows this module's rule.

    `outcome` completes the line "interrupted by SIGINT <outcome>"."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with guard(outcome):
                return command(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@contextlib.contextmanager
def guard(outcome: str) -> Iterator[None]:
    """Install the handlers for the duration of the block (main thread only; elsewhere a no-op)."""
    global _guard
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _guard is not None:
        # Already guarded (the front door guards every command): the command's own words apply inside.
        enclosing = _guard.outcome
        _guard.outcome = outcome
        try:
            yield
        finally:
            _guard.outcome = enclosing
        return
    _guard = _Guard(owner_pid=os.getpid(), outcome=outcome)
    set_subreaper(True)
    previous = {number: signal.signal(number, _handle) for number in _SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        set_subreaper(False)
        _guard = None


def _handle(number: int, frame: FrameType | None) -> None:
    guard = _guard
    if guard is None:
        return
    if os.getpid() != guard.owner_pid:
        # A forked worker: Ctrl-C reaches the whole process group, the parent ends us; SIGTERM is that end.
        if number == signal.SIGTERM:
            os._exit(128 + number)
        return
    name = signal.Signals(number).name
    if guard.signal_name:
        # Second signal: stop waiting for the cleanup steps and leave now.
        _write(f"{name} again: stopping now without waiting for the cleanup")
        _finish(guard)
        return
    guard.signal_name = name
    _silence_other_threads()
    STOP.set()
    guard.deadline = time.monotonic() + BUDGET_SECONDS
    threading.Thread(target=_watchdog, args=(guard,), name="interrupt-watchdog", daemon=True).start()
    for step in list(guard.steps):
        try:
            line = step.describe()
        except Exception:  # noqa: BLE001 - an announcement must never stop the exit
            line = None
        if line is None:
            continue
        guard.deadline += step.seconds
        _write(line)
        with contextlib.suppress(Exception):
            step.run(step.seconds)
    _finish(guard)


def _silence_other_threads() -> None:
    """From the signal on, only this module speaks on stderr (with os.write): collectors giving up
    ("not called: the run was interrupted") and threads whose worker processes were just ended would
    otherwise bury the one line under noise and tracebacks."""
    with contextlib.suppress(OSError):
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
    threading.excepthook = lambda args: None


def _watchdog(guard: _Guard) -> None:
    while time.monotonic() < guard.deadline:
        time.sleep(0.05)
    _finish(guard)


def _finish(guard: _Guard) -> None:
    """End the children, remove the half-written output, say so in one line, exit 3. Runs once."""
    if not guard.finishing.acquire(blocking=False):
        # Another thread is already finishing (the watchdog or the handler): let it, and never return
        # into the interrupted command.
        while True:
            time.sleep(1)
    end_descendants()
    added = [directory / name for directory, before, prefixes in guard.snapshots if directory.is_dir()
             for name in sorted(set(os.listdir(directory)) - before)
             if not prefixes or name.startswith(prefixes)]
    removed = [path for path in (*added, *guard.paths) if _remove(path)]
    named = ", ".join(str(path) for path in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
    where = f"; removed what it half-wrote: {named}" if removed else ""
    separator = "" if guard.outcome[:1] in {":", ";", ","} else " "
    _write(f"interrupted by {guard.signal_name or 'a signal'}{separator}{guard.outcome}{where}")
    if threading.current_thread() is threading.main_thread():
        # Not from the watchdog: the main thread may hold stdout's lock mid-write, and would never let go.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
    os._exit(EXIT_INTERRUPTED)


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            return False
    except OSError:
        return False
    return True


def _write(line: str) -> None:
    # os.write, not print: the handler may run while the main thread is inside a print to stderr.
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode("utf-8", "replace"))
