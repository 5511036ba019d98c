"""Generate a seeded synthetic VCF for the benchmarks (and anyone's experiments).

    python bench/gen_vcf.py OUT.vcf.gz [--records 1000000] [--samples 4] [--seed 7]
        [--compression bgzf|gzip|none] [--reference OUT.fa] [--no-contigs]

Same arguments, same bytes: the shape is `sovaudit.pipeline.synth` (GT/AD/DP/GQ per sample,
~10 % multiallelic, ~12 % indels, VEP CSQ on ~30 % of records). About 16 s per million records.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sovaudit.pipeline.synth import SynthSpec, write_vcf


def cached_vcf(directory: Path, records: int, samples: int = 4, seed: int = 7) -> Path:
    """A benchmark input, generated once per (records, samples, seed) and reused afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"synth-{records}-{samples}s-seed{seed}.vcf.gz"
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        write_vcf(partial, SynthSpec(records=records, samples=samples, seed=seed))
        partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compression", choices=["bgzf", "gzip", "none"], default="bgzf")
    parser.add_argument("--reference", type=Path, help="also write the reference FASTA the REF alleles come from")
    parser.add_argument("--no-contigs", action="store_true", help="omit ##contig lines, as many real files do")
    args = parser.parse_args()
    started = time.perf_counter()
    spec = SynthSpec(records=args.records, samples=args.samples, seed=args.seed, declare_contigs=not args.no_contigs)
    write_vcf(args.out, spec, compression=args.compression, reference_fasta=args.reference)
    print(f"wrote {args.out} ({args.records} records, {args.samples} samples) in "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
