"""A stand-in for Ensembl VEP's command line (the real one needs Perl and a 20 GB cache).

It checks the flags the task must pass, then writes what VEP would for a VCF: a CSQ header
with a ``Format:`` and one CSQ entry per record (the records are already split, so allele 1).
"""

from __future__ import annotations

import gzip
import sys

import pysam


def main(argv: list[str]) -> int:
    for flag in ("--vcf", "--allele_number", "--offline", "--input_file", "--output_file"):
        if flag not in argv:
            print(f"fake vep: missing {flag}", file=sys.stderr)
            return 3
    source = argv[argv.index("--input_file") + 1]
    dest = argv[argv.index("--output_file") + 1]
    out = pysam.BGZFile(dest, "wb")  # type: ignore[call-arg]  # the stub wrongly requires index
    with gzip.open(source, "rt") as text:
        for line in text:
            if line.startswith("#CHROM"):
                out.write(b'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
                          b'Ensembl VEP. Format: Allele|Consequence|ALLELE_NUM">\n')
            if line.startswith("#"):
                out.write(line.encode())
                continue
            fields = line.rstrip("\n").split("\t")
            ref, alt = fields[3], fields[4]
            allele = alt[1:] or "-" if len(alt) != len(ref) and alt[:1] == ref[:1] else alt
            csq = f"CSQ={allele}|fake_{len(ref)}_{len(alt)}|1"
            fields[7] = csq if fields[7] == "." else f"{fields[7]};{csq}"
            out.write(("\t".join(fields) + "\n").encode())
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
