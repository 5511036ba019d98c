"""Progress lines on stderr: one place that says what the tool is waiting for, and one switch (`--quiet`).

Why: a run that retries a flaky API, waits for a probe job or follows a pipeline job can be silent for
a minute; a user (or a CI log) cannot tell a slow API from a hang. Every wait of about a second or
more says what it waits for here. Progress goes to stderr only, so `verify --format json` and other
machine-readable stdout stay clean, and it never makes a request of its own.

`--quiet` (global `sovaudit --quiet CMD`, or per command) silences progress only: errors, warnings and
the verdict are printed by their callers through other paths and are never silenced here.

The switch is process-wide on purpose: the retry loop lives deep in the recorder, shared by every
collector thread, and threading a flag through every signature would couple them all to the CLI.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# A wait shorter than this is not worth a line: quick retries (0.1 s backoff) would only add noise.
NOTABLE_WAIT_SECONDS = 1.0

_lock = threading.Lock()
_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (True) or restore (False) progress lines for the rest of the process."""
    global _quiet
    with _lock:
        _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def say(message: str) -> None:
    """One progress line on stderr, unless --quiet. Cloud-supplied text is shown, never obeyed (control
    characters escaped), and lines from concurrent collectors never interleave."""
    if not _quiet:
        warn(message)


def warn(message: str) -> None:
    """A line that --quiet must not hide (a collector that failed, a gap in the window): same stream,
    same escaping, printed always."""
    from sovaudit.reports.view import terminal_safe

    text = "\n".join(terminal_safe(line) for line in message.split("\n"))
    with _lock:
        print(text, file=sys.stderr, flush=True)


def retrying(api: str, reason: str, attempt: int, delay_seconds: float, deadline_seconds: float,
             spent_seconds: float) -> None:
    """Say that a call failed transiently and when it is tried again, if that wait is worth saying.

    A retry's total count is not known in advance (the loop is bounded by a deadline, not a count), so
    the line gives the attempt about to be made and what remains of the deadline instead of "n/N"."""
    if delay_seconds < NOTABLE_WAIT_SECONDS and spent_seconds + delay_seconds < NOTABLE_WAIT_SECONDS:
        return
    left = max(0.0, deadline_seconds - spent_seconds)
    say(f"{api}: {reason}, retry {attempt} in {delay_seconds:.0f} s "
        f"(gives up {left:.0f} s from now; --api-deadline sets it)")


def _quiet_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        set_quiet(True)
    return value


def quiet_option(command: F) -> F:
    """`--quiet`/`-q` for one command: the per-command spelling of the global `sovaudit --quiet`.

    Eager and unexposed, so it takes effect before the other options are checked and the command's
    function never sees it."""
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, is_eager=True,
                        callback=_quiet_callback,
                        help="Print no progress on stderr (errors, warnings and the verdict still print).")(command)
