"""Local executor: 8 files with 1 worker and with 2; the speed-up, and that the outputs are identical.

    python bench/local_executor.py [--files 8] [--records 100000] [--workdir /tmp/sovaudit-bench]

Both runs start `run-local` as a fresh process. Identical means: the same Parquet tables (Arrow
equality) and the same counts in every manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_vcf import cached_vcf  # noqa: E402

COUNTS = ("input_sha256", "records_in", "records_normalized", "rows_loaded")


def run(inputs: list[Path], out: Path, workers: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sovaudit.pipeline.commands", "run-local", *map(str, inputs), "--out",
                    str(out), "--workers", str(workers), "--run-id", "bench"], check=True, capture_output=True)
    return time.perf_counter() - started


def identical(left: Path, right: Path) -> bool:
    names = sorted(p.name for p in left.glob("*.parquet"))
    if names != sorted(p.name for p in right.glob("*.parquet")):
        return False
    for name in names:
        if not pq.read_table(left / name).equals(pq.read_table(right / name)):
            return False
        a = json.loads((left / name.replace(".parquet", ".manifest.json")).read_text())
        b = json.loads((right / name.replace(".parquet", ".manifest.json")).read_text())
        if any(a[k] != b[k] for k in COUNTS):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sovaudit-bench")
    args = parser.parse_args()
    inputs = [cached_vcf(args.workdir, args.records, 4, seed=100 + i) for i in range(args.files)]
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        one = run(inputs, Path(scratch) / "one", 1)
        two = run(inputs, Path(scratch) / "two", 2)
        same = identical(Path(scratch) / "one", Path(scratch) / "two")
    print(f"{args.files} files x {args.records} records, {os.cpu_count()} CPUs")
    print(f"1 worker : {one:6.2f} s")
    print(f"2 workers: {two:6.2f} s")
    print(f"speed-up: {one / two:.2f}x (goal >= 1.8x); outputs identical: {same}")


if __name__ == "__main__":
    main()
