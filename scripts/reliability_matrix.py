"""Regenerate docs/reliability.md's fault matrix by running verify against every scenario.

Usage: python scripts/reliability_matrix.py [--check]
With --check, exits 1 when the file on disk differs from a fresh run (for CI or a reviewer).
"""

from __future__ import annotations

import sys
from pathlib import Path

from sovaudit.simulator.matrix import markdown, run_matrix

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def main() -> int:
    table = markdown(run_matrix())
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    fresh = f"{head}{BEGIN}\n{table}\n{END}{tail}"
    if "--check" in sys.argv:
        if fresh != text:
            print("docs/reliability.md is out of date: run python scripts/reliability_matrix.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
