"""Task throughput: `sovaudit pipeline run-local` against `bcftools norm -m -any IN -o OUT.vcf`.

    python bench/task_throughput.py [--records 1000000] [--repeat 3] [--workdir /tmp/sovaudit-bench]

Both run on the same synthetic file in the same run. The baseline is the seed's step (pysam's
bcftools, normalized VCF text out); ours is the whole task — normalize, convert to load-ready
Parquet with calls, manifest — started as a fresh process, so start-up is included. The figure
is the ratio of records/s (ours / baseline); the best of --repeat runs of each is used.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_vcf import cached_vcf  # noqa: E402


def baseline(source: Path, out: Path) -> float:
    code = ("import sys, pysam.bcftools as b; "
            "b.norm('-m', '-any', sys.argv[1], '-o', sys.argv[2], catch_stdout=False)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(source), str(out)], check=True)
    return time.perf_counter() - started


def ours(source: Path, out_dir: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sovaudit.pipeline.commands", "run-local", str(source), "--out",
                           str(out_dir), "--run-id", "bench"], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sovaudit-bench")
    args = parser.parse_args()
    source = cached_vcf(args.workdir, args.records, args.samples)
    base_times: list[float] = []
    our_times: list[float] = []
    totals: dict = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        for attempt in range(args.repeat):
            base_times.append(baseline(source, Path(scratch) / "baseline.vcf"))
            seconds, totals = ours(source, Path(scratch) / f"ours-{attempt}")
            our_times.append(seconds)
    base, mine = min(base_times), min(our_times)
    print(f"input: {source} ({args.records} records, {args.samples} samples; "
          f"{totals.get('records_normalized')} rows after norm -m -any)")
    print(f"machine: {os.cpu_count()} CPUs")
    print(f"baseline bcftools norm -m -any -> VCF : {base:6.2f} s  {args.records / base / 1e6:5.2f} M records/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in base_times)})")
    print(f"sovaudit pipeline run-local -> Parquet: {mine:6.2f} s  {args.records / mine / 1e6:5.2f} M records/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in our_times)})")
    print(f"ratio (ours / baseline, records/s): {base / mine:.2f}  (goal >= 1.0; below 0.5 is a defect)")


if __name__ == "__main__":
    main()
