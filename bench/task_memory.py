"""Task memory: peak RSS of one `run-local` task at 0.5, 1 and 2 million records.

    python bench/task_memory.py [--sizes 500000,1000000,2000000] [--workdir /tmp/sovaudit-bench]

The task is a small process tree (the Python task, `bcftools norm` and `bcftools query` children).
Reported per size: the peak of the tree's summed RSS (sampled every 10 ms from /proc) and the
sum of each process's own peak (VmHWM; an upper bound that no spike between samples escapes). Goal: at most 500 MB, flat as the file grows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_vcf import cached_vcf  # noqa: E402


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(x) for x in text]
    except OSError:
        pass
    return found


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(root: int) -> list[int]:
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack += _children(pid)
    return found


def measure(source: Path, out_dir: Path) -> tuple[float, float]:
    """(sampled peak of the tree's summed RSS, sum of each process's own peak RSS) in MB."""
    process = subprocess.Popen([sys.executable, "-m", "sovaudit.pipeline.commands", "run-local", str(source),
                                "--out", str(out_dir), "--run-id", "bench"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    peak = 0
    high_water: dict[int, int] = {}
    while process.poll() is None:
        pids = tree(process.pid)
        peak = max(peak, sum(_status_kb(pid, "VmRSS:") for pid in pids))
        for pid in pids:  # VmHWM never decreases, so a spike between samples is still counted
            high_water[pid] = max(high_water.get(pid, 0), _status_kb(pid, "VmHWM:"))
        time.sleep(0.01)
    if process.returncode:
        raise SystemExit(f"run-local failed on {source} (exit {process.returncode})")
    return peak / 1024, sum(high_water.values()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500000,1000000,2000000")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sovaudit-bench")
    args = parser.parse_args()
    print(f"{'records':>10} {'tree peak RSS MB':>17} {'sum of process peaks MB':>24}")
    for size in (int(s) for s in args.sizes.split(",")):
        source = cached_vcf(args.workdir, size, args.samples)
        with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
            tree_mb, bound_mb = measure(source, Path(scratch))
        print(f"{size:>10} {tree_mb:>17.0f} {bound_mb:>24.0f}")
    print("goal: <= 500 MB, flat as the file grows")


if __name__ == "__main__":
    main()
