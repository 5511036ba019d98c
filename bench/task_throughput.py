"""Task throughput: `sovaudit pipeline run-local` against the seed's `bcftools norm -m -any IN -o OUT.vcf`.

    python bench/task_throughput.py [--records 1000000] [--repeat 3] [--cohort 8] [--cohort-records 1000000]
        [--no-stages] [--workdir /tmp/sovaudit-bench]

Both run on the same synthetic file in the same run, alternating, each as a fresh process (start-up
included). The baseline is the seed's step with Debian's bcftools (`/usr/bin/bcftools`, what the
seed's container installs) when it is installed, else pysam's bundled bcftools; the first line says
which. Ours is the whole task: normalize, convert to load-ready Parquet with calls, manifest. The
figure is the ratio of wall times (baseline / ours: above 1 is faster); the best of --repeat runs
of each is used. Each run also reports CPU seconds (user + system of the process tree) and ours its
peak RSS (the tree's, sampled every 10 ms).

Then, unless --no-stages: CPU seconds per stage of our task, measured one stage at a time (the
child to uncompressed BCF: `bcftools view -Ou` when the decoder splits, else `norm -m -any -Ou`;
decode (and split), table build and Parquet write in this process, on the child's saved output),
and which conversion path `run-local` took (a record the split refuses raises here: the task
itself would have fallen back to norm).

Then the cohort (--cohort N files of --cohort-records, different seeds): `run-local --workers 2`
over the N files against `xargs -P2` running the seed's step once per file, same run.

The machine's load average is printed first and last: on a shared machine wall times say more
about the neighbours than about the code; CPU seconds much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_vcf import cached_vcf  # noqa: E402
from task_memory import _status_kb, tree  # noqa: E402

DEBIAN_BCFTOOLS = Path("/usr/bin/bcftools")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def baseline_command(source: Path, out: Path) -> tuple[list[str], str]:
    """The seed's step, and which bcftools runs it."""
    if DEBIAN_BCFTOOLS.exists():
        return [str(DEBIAN_BCFTOOLS), "norm", "-m", "-any", str(source), "-o", str(out)], \
            f"Debian's bcftools ({_version()})"
    code = ("import sys, pysam.bcftools as b; "
            "b.norm('-m', '-any', sys.argv[1], '-o', sys.argv[2], catch_stdout=False)")
    return [sys.executable, "-c", code, str(source), str(out)], "pysam's bundled bcftools (Debian's is not installed)"


def _version() -> str:
    done = subprocess.run([str(DEBIAN_BCFTOOLS), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "version unknown"


def timed(argv: list[str], *, sample_rss: bool = False) -> tuple[float, float, float, str]:
    """(wall s, CPU s of the process tree, peak tree RSS MB or 0, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sum(_status_kb(pid, "VmRSS:") for pid in tree(process.pid)))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_rss:
        sampler.start()
    out, err = process.communicate()
    wall = time.perf_counter() - started
    stop.set()
    if sample_rss:
        sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(argv[:4])}... failed (exit {process.returncode}): {err.decode()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak / 1024, out.decode()


def ours_command(inputs: list[Path], out_dir: Path, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "sovaudit.pipeline.commands", "run-local", *map(str, inputs), "--out", str(out_dir),
            "--run-id", "bench", "--workers", str(workers)]


def stages(source: Path, scratch: Path) -> list[tuple[str, float]]:
    """CPU seconds of each stage of the compiled path, one stage at a time (see the docstring)."""
    from sovaudit.pipeline import native
    from sovaudit.pipeline.convert import MAX_FIELD_BYTES, use_fast_allocator, write_parquet
    from sovaudit.pipeline.schema import layout_from_header
    from sovaudit.pipeline.vcfinput import read_header, variant_header

    use_fast_allocator()
    module = native.load()
    if module is None:
        return [("compiled decoder unavailable: no stage figures", 0.0)]
    header = variant_header(read_header(source).lines, scratch, str(source))
    tag = "CSQ" in header.info and "Format:" in (header.info["CSQ"].description or "")
    layout = layout_from_header(header, original_record_tag=tag)
    bcf = scratch / "normalized.bcf"
    split = native.split_enabled()  # the task's path: view -Ou + the decoder's split, else norm -Ou
    if split:
        child = [sys.executable, "-m", "sovaudit.pipeline.bcftools", "view", "--no-version"]
        child_name = "bcftools view -Ou, no split (child process, incl. start-up; reads the .gz with zlib)"
    else:
        child = [sys.executable, "-m", "sovaudit.pipeline.bcftools", "norm", "-m", "-any", "--no-version"]
        child += ["--old-rec-tag", "SOVAUDIT_OLD_REC"] if tag else []
        child_name = "bcftools norm -m -any -Ou (child process, incl. start-up; reads the .gz with zlib)"
    _, norm_cpu, _, _ = timed([*child, "-Ou", "-o", str(bcf), str(source)])
    fd = os.open(bcf, os.O_RDONLY)
    try:
        started = time.thread_time()
        reader = native.NativeReader(module, fd, layout, MAX_FIELD_BYTES, split=split)
        batches = list(reader.batches())
        decode = time.thread_time() - started
    finally:
        os.close(fd)
    converter = native.NativeConverter(layout, reader)
    started = time.thread_time()
    tables = [converter.convert(batch) for batch in batches]
    build = time.thread_time() - started

    class Ready:
        schema = converter.schema

        def convert(self, table):  # type: ignore[no-untyped-def]
            return table

    process_before = time.process_time()
    write_parquet(iter(tables), layout, scratch / "stage.parquet", converter=Ready())
    write = time.process_time() - process_before
    bcf.unlink()
    return [(child_name, norm_cpu),
            ("decode BCF into column buffers (_bcfarrow" + (", with the split)" if split else ")"), decode),
            ("build the Arrow table (incl. CSQ per allele)", build), ("Parquet write", write)]


def cohort(files: int, records: int, samples: int, workdir: Path, scratch: Path) -> None:
    inputs = [cached_vcf(workdir, records, samples, seed=100 + i) for i in range(files)]
    base_out = scratch / "cohort-baseline"
    base_out.mkdir()
    pairs: list[str] = []
    for path in inputs:
        pairs += [str(base_out / f"{path.name}.vcf"), str(path)]
    bcftools = [str(DEBIAN_BCFTOOLS)] if DEBIAN_BCFTOOLS.exists() else \
        [sys.executable, "-m", "sovaudit.pipeline.bcftools"]
    xargs = ["xargs", "-0", "-P2", "-n2", *bcftools, "norm", "-m", "-any", "-o"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(xargs, input="\0".join(pairs).encode(), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    base_wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    base_cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    wall, cpu, peak, _ = timed(ours_command(inputs, scratch / "cohort-ours", workers=2), sample_rss=True)
    print(f"cohort: {files} files x {records} records ({samples} samples), 2 at a time")
    print(f"  baseline xargs -P2 bcftools norm -m -any -> VCF : {base_wall:6.2f} s wall, {base_cpu:6.2f} s CPU")
    print(f"  sovaudit pipeline run-local --workers 2 -> Parquet: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
          f"peak RSS {peak:.0f} MB")
    print(f"  ratio (baseline / ours, wall): {base_wall / wall:.2f}  (goal >= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cohort", type=int, default=8, help="files in the cohort measurement (0: skip it)")
    parser.add_argument("--cohort-records", type=int, default=1_000_000)
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage CPU figures")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sovaudit-bench")
    args = parser.parse_args()
    print(f"start: {load()}", flush=True)
    source = cached_vcf(args.workdir, args.records, args.samples)
    base_runs: list[tuple[float, float]] = []
    our_runs: list[tuple[float, float, float]] = []
    totals: dict = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        scratch = Path(tmp)
        argv, which = baseline_command(source, scratch / "baseline.vcf")
        print(f"baseline: {which}", flush=True)
        for attempt in range(args.repeat):
            wall, cpu, _, _ = timed(argv)
            base_runs.append((wall, cpu))
            wall, cpu, peak, out = timed(ours_command([source], scratch / f"ours-{attempt}"), sample_rss=True)
            our_runs.append((wall, cpu, peak))
            totals = json.loads(out)
            shutil.rmtree(scratch / f"ours-{attempt}", ignore_errors=True)
        base = min(base_runs)
        mine = min(our_runs)
        print(f"input: {source} ({args.records} records, {args.samples} samples; "
              f"{totals.get('records_normalized')} rows after norm -m -any)")
        print(f"baseline bcftools norm -m -any -> VCF : {base[0]:6.2f} s  {args.records / base[0] / 1e6:5.2f} M rec/s, "
              f"{base[1]:5.2f} s CPU (runs: {', '.join(f'{w:.2f}' for w, _ in base_runs)})")
        print(f"sovaudit pipeline run-local -> Parquet: {mine[0]:6.2f} s  {args.records / mine[0] / 1e6:5.2f} M rec/s, "
              f"{mine[1]:5.2f} s CPU, peak RSS {mine[2]:.0f} MB (runs: {', '.join(f'{w:.2f}' for w, _, _ in our_runs)})")
        print(f"ratio (baseline / ours, wall): {base[0] / mine[0]:.2f}  (goal >= 1.0, 1.3 hoped for)", flush=True)
        if not args.no_stages:
            from sovaudit.pipeline import native

            path = "text (bcftools query)" if native.load() is None else \
                "compiled, split in the decoder (bcftools view -Ou + _bcfarrow)" if native.split_enabled() else \
                "compiled (bcftools norm -Ou + _bcfarrow)"
            print(f"conversion path: {path}; CPU seconds per stage, one stage at a time:")
            for name, seconds in stages(source, scratch):
                print(f"  {name:60s} {seconds:5.2f}")
        if args.cohort:
            cohort(args.cohort, args.cohort_records, args.samples, args.workdir, scratch)
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
