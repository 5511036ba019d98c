"""The width tables are drawn at: the user's terminal, not a fixed 120 columns.

A fixed width broke every row on an 80-column terminal (each line wrapped by the terminal itself, so
the table's borders fell apart). `shutil.get_terminal_size` honours COLUMNS first (CI, `COLUMNS=80
sovaudit verify ...`), then the real terminal; when stdout is a pipe or a file there is no terminal,
and the wide default keeps logs and saved output on one line per row, as before.
"""

from __future__ import annotations

import shutil
import sys
from typing import IO, Any

# Used only when neither COLUMNS nor a terminal says: wide enough for one line per row in a log file.
UNBOUNDED_WIDTH = 120
# Narrower than this and no table stays readable; draw at this width and let the terminal wrap.
MINIMUM_WIDTH = 40


def width() -> int:
    columns = shutil.get_terminal_size((UNBOUNDED_WIDTH, 24)).columns
    return max(MINIMUM_WIDTH, columns)


def console(file: IO[str] | None = None) -> Any:
    """A rich Console drawing at `width()` onto `file` (stdout by default)."""
    from rich.console import Console

    return Console(file=file or sys.stdout, width=width())
