"""The decoder's own multi-allelic split (csrc/split.h) against ``bcftools norm -m -any``.

Each comparison runs the same input through the split path (``bcftools view -Ou`` + the
decoder's split, ``preprocess._convert_split``, which must not fall back) and through norm
(``SOVAUDIT_NATIVE_SPLIT=0``: norm splits, the decoder decodes), and demands the identical table
and norm's counts. Records the split does not reproduce must be refused (the task then runs norm:
same output, or norm's own error).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sovaudit.pipeline import native
from sovaudit.pipeline.errors import VcfInputError
from sovaudit.pipeline.preprocess import _convert_split, preprocess
from sovaudit.pipeline.schema import layout_from_header
from sovaudit.pipeline.synth import SynthSpec, write_vcf
from sovaudit.pipeline.vcfinput import read_header, variant_header

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_native import HEADER, RECORDS, assert_same, write  # noqa: E402

FUZZ_HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=100000000>
##INFO=<ID=IA,Number=A,Type=Integer,Description="x">
##INFO=<ID=FA,Number=A,Type=Float,Description="x">
##INFO=<ID=IR,Number=R,Type=Integer,Description="x">
##INFO=<ID=FR,Number=R,Type=Float,Description="x">
##INFO=<ID=IG,Number=G,Type=Integer,Description="x">
##INFO=<ID=FG,Number=G,Type=Float,Description="x">
##INFO=<ID=N1,Number=1,Type=Integer,Description="x">
##INFO=<ID=SD,Number=.,Type=String,Description="x">
##INFO=<ID=SA,Number=A,Type=String,Description="x">
##INFO=<ID=SR,Number=R,Type=String,Description="x">
##INFO=<ID=FL,Number=0,Type=Flag,Description="x">
##FORMAT=<ID=GT,Number=1,Type=String,Description="x">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="x">
##FORMAT=<ID=PL,Number=G,Type=Integer,Description="x">
##FORMAT=<ID=GP,Number=G,Type=Float,Description="x">
##FORMAT=<ID=AF,Number=A,Type=Float,Description="x">
##FORMAT=<ID=AC,Number=A,Type=Integer,Description="x">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="x">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\tS3\tS4
"""


def split_path(source: Path, tmp_path: Path) -> tuple[pa.Table, tuple[int, int]]:
    """The split path's table and (records in, records split); fails when it fell back."""
    module = native.load()
    assert module is not None, "the compiled decoder must be built"
    work = tmp_path / "split-work"
    work.mkdir(exist_ok=True)
    header = read_header(source)
    input_header = variant_header(header.lines, work, str(source))
    tag = any(t in input_header.info and "Format:" in (input_header.info[t].description or "") for t in ("CSQ", "ANN"))
    layout = layout_from_header(input_header, original_record_tag=tag)
    done = _convert_split(module, source, header, layout, work / "split.parquet", work, None)
    assert done is not None, "the split path fell back to norm"
    stats, _ = done
    return pq.read_table(work / "split.parquet"), (stats.records_in, stats.split)


def norm_path(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pa.Table, tuple[int, int]]:
    monkeypatch.setenv(native.SPLIT_ENV, "0")
    result = preprocess(source, tmp_path / "norm.parquet")
    monkeypatch.delenv(native.SPLIT_ENV)
    return pq.read_table(result.parquet), (result.records_in, result.split)


def same_as_norm(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    split, split_counts = split_path(source, tmp_path)
    norm, norm_counts = norm_path(source, tmp_path, monkeypatch)
    assert split_counts == norm_counts
    assert_same(split, norm)
    return split


def test_every_kind_of_value_splits_as_norm_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = same_as_norm(write(tmp_path, RECORDS), tmp_path, monkeypatch)
    assert table.num_rows == len(RECORDS) + 3  # chr1:200 has three ALTs, chr2:80 two


def test_norms_edge_cases_split_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # '*' and symbolic alleles, other ALTs in GT (become REF), phasing, missing and short vectors,
    # haploid samples in Number=G, one value per sample (all missing) copied
    records = [
        "chr1\t10\trs1\tACG\tA,AC,*\t50\tPASS\tAC=1,2,3;AF=0.1,.,0.3;RD=1,2,3,4;DP=5\tGT:AD:GL:AF\t"
        "0/1:1,2,3,4:1,2,3,4,5,6,7,8,9,10:0.5,0.6,0.7\t2|3:.:.:.\t1:5,6,7,8:1,2,3,4:.,1,2",
        "chr1\t20\t.\tA\t<DEL>,T\t.\t.\tAC=1,2\tGT:GL\t./2:1,2,3,4,5,6\t0/0:.\t1:1,2,3",
        "chr1\t20\t.\tA\tT,G\t.\t.\tAC=1,2\tGT:AD\t.:.\t.:.\t.:.",
        "chr1\t30\t.\tA\tT\t.\t.\tAC=1\tGT\t1/1\t0/0\t./.",
        "chr2\t5\t.\tC\tG,T,A,CC\t3\tq10\tDB;RF=0.5,.,.,.,1\tGT:AF\t4|1:.,.,.,1\t3/2:0,0,0,0\t0|4:.",
    ]
    same_as_norm(write(tmp_path, records), tmp_path, monkeypatch)


@pytest.mark.parametrize("seed", [3, 11])
def test_synthetic_files_split_as_norm_splits(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=4000, samples=5, seed=seed))
    table = same_as_norm(source, tmp_path, monkeypatch)
    assert table.num_rows > 4000


# freebayes' header declares String fields with Number=A (TYPE, CIGAR), one item per ALT: split.
@pytest.mark.parametrize(("name", "splits"), [("freebayes.vcf.gz", True), ("example-4.1.vcf", True),
                                              ("test.vcf.gz", True), ("exac.vcf.gz", True)])
def test_the_shared_real_vcfs_split_as_norm_splits(name: str, splits: bool, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shared = os.environ.get("SOVAUDIT_CONFORMANCE_VCF") or Path(__file__).resolve().parents[2] / "../shared/data/vcf"
    source = Path(shared) / name
    if not source.exists():
        pytest.skip(f"shared conformance data not present: {source}")
    split, split_counts, did_split = _split_via_preprocess(source, tmp_path, monkeypatch)
    assert did_split == splits
    norm, norm_counts = norm_path(source, tmp_path, monkeypatch)
    assert split_counts == norm_counts
    assert_same(split, norm)


def _split_via_preprocess(source: Path, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> tuple[pa.Table, tuple[int, int], bool]:
    """preprocess as shipped (it adds the header lines a file lacks), and whether the split path
    produced the table (True) or fell back to norm (False)."""
    import sovaudit.pipeline.preprocess as pre

    calls: list[object] = []
    original = pre._convert_split

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        done = original(*args, **kwargs)
        calls.append(done)
        return done

    monkeypatch.setattr(pre, "_convert_split", spy)
    result = preprocess(source, tmp_path / "split.parquet")
    monkeypatch.setattr(pre, "_convert_split", original)
    return pq.read_table(result.parquet), (result.records_in, result.split), bool(calls and calls[0] is not None)


def _value(rng: random.Random, kind: str) -> str:
    if rng.random() < 0.15:
        return "."
    return str(rng.randint(-5, 300)) if kind == "i" else f"{rng.uniform(-50, 50):.5g}"


def _values(rng: random.Random, kind: str, count: int) -> str:
    return ",".join(_value(rng, kind) for _ in range(count))


def fuzz_records(seed: int, count: int) -> list[str]:
    """Multi-allelic records with every Number=A/R/G kind, missing values, haploid and diploid
    samples, ALT alleles of every sort; all of them valid for norm."""
    rng = random.Random(seed)
    lines = []
    pos = 1
    for _ in range(count):
        pos += rng.randint(0, 3)
        n_alt = rng.choice([1, 1, 2, 3, 4, 5])
        alts = rng.sample(["T", "G", "C", "AT", "ATT", "*", "<DEL>", "<INS>", "GC", "TTTA", "<*>", "<NON_REF>"], n_alt)
        n = n_alt + 1
        genotypes = n * (n + 1) // 2
        info = [f"IA={_values(rng, 'i', n_alt)}", f"FA={_values(rng, 'f', n_alt)}", f"IR={_values(rng, 'i', n)}",
                f"FR={_values(rng, 'f', n)}", f"IG={_values(rng, 'i', genotypes)}", f"FG={_values(rng, 'f', genotypes)}",
                f"N1={_value(rng, 'i')}", "SD=a,b", "FL",
                "SA=" + ",".join(rng.choice(["snp", "ins", ".", "complex"]) for _ in range(n_alt)),
                "SR=" + ",".join(rng.choice(["1M", "2M1I", ".", "x"]) for _ in range(n))]
        info = [item for item in info if rng.random() < 0.8]
        samples = []
        haploid_all = rng.random() < 0.2
        for _s in range(4):
            ploidy = 1 if haploid_all or rng.random() < 0.2 else 2
            alleles = [rng.choice([".", *map(str, range(n))]) for _ in range(ploidy)]
            gt = (rng.choice(["/", "|"])).join(alleles)
            g_count = n if ploidy == 1 else genotypes
            fields = [gt,
                      "." if rng.random() < 0.2 else _values(rng, "i", n),
                      "." if rng.random() < 0.2 else _values(rng, "i", g_count),
                      "." if rng.random() < 0.2 else _values(rng, "f", g_count),
                      "." if rng.random() < 0.2 else _values(rng, "f", n_alt),
                      "." if rng.random() < 0.2 else _values(rng, "i", n_alt),
                      _value(rng, "i")]
            samples.append(":".join(fields))
        qual = "." if rng.random() < 0.3 else f"{rng.uniform(0, 100):.3g}"
        lines.append(f"chr1\t{pos}\t{rng.choice(['.', 'rs1', 'a;b'])}\tA\t{','.join(alts)}\t{qual}\tPASS\t"
                     f"{';'.join(info) or '.'}\tGT:AD:PL:GP:AF:AC:DP\t" + "\t".join(samples))
    return lines


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_multiallelic_records_split_as_norm_splits(seed: int, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "fuzz.vcf"
    source.write_text(FUZZ_HEADER + "\n".join(fuzz_records(seed, 400)) + "\n")
    table = same_as_norm(source, tmp_path, monkeypatch)
    assert table.num_rows > 600


# -- what the split refuses: the task runs norm instead ------------------------------------------


def _refused_then_as_norm(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match="fell back"):
        split_path(source, tmp_path)
    shipped = pq.read_table(preprocess(source, tmp_path / "shipped.parquet").parquet)
    norm, _ = norm_path(source, tmp_path, monkeypatch)
    assert_same(shipped, norm)


@pytest.mark.parametrize("record", [
    # an INFO String with Number=A but one item for two ALTs (norm drops the key: not reproduced)
    "chr1\t5\t.\tA\tC,G\t1\tPASS\tNOTE=x\tGT:FT\t0/1:a\t1/2:b\t2/2:c",
    # a FORMAT String with Number=A
    "chr1\t5\t.\tA\tC,G\t1\tPASS\tNOTE=x,y\tGT:FT\t0/1:a,b\t1/2:b,c\t2/2:.",
])
def test_a_string_per_allele_the_split_does_not_reproduce_is_left_to_norm(
        record: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header = HEADER.replace('##INFO=<ID=NOTE,Number=1,', '##INFO=<ID=NOTE,Number=A,')
    if "FT\t0/1:a,b" in record:
        header = header.replace('##FORMAT=<ID=FT,Number=1,', '##FORMAT=<ID=FT,Number=A,')
    source = tmp_path / "in.vcf"
    source.write_text(header + record + "\n")
    _refused_then_as_norm(source, tmp_path, monkeypatch)


def test_records_out_of_order_are_left_to_norm_which_sorts_them(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path, ["chr1\t50\t.\tA\tC\t1\tPASS\tDP=1\tGT\t0/1\t0/0\t1/1",
                              "chr1\t40\t.\tA\tC,G\t1\tPASS\tDP=2\tGT\t0/1\t0/2\t1/1"])
    _refused_then_as_norm(source, tmp_path, monkeypatch)
    assert pq.read_table(tmp_path / "shipped.parquet").column("start_position").to_pylist()[0] < 49


def test_a_wrong_count_gives_norms_own_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path, ["chr1\t5\t.\tA\tC,G\t1\tPASS\tAC=1\tGT\t0/1\t1/2\t2/2"])
    with pytest.raises(AssertionError, match="fell back"):
        split_path(source, tmp_path)
    with pytest.raises(VcfInputError, match="wrong number of fields in INFO/AC"):
        preprocess(source, tmp_path / "out.parquet")


def test_turning_it_off_runs_norm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.SPLIT_ENV, "0")
    assert not native.split_enabled()
    monkeypatch.delenv(native.SPLIT_ENV)
    assert native.split_enabled()


def test_a_file_without_contig_lines_is_split_with_the_lines_the_task_adds(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.vcf"
    source.write_text("".join(line + "\n" for line in HEADER.splitlines() if not line.startswith("##contig"))
                      + "\n".join(RECORDS) + "\n")
    split, split_counts, did_split = _split_via_preprocess(source, tmp_path, monkeypatch)
    assert did_split
    norm, norm_counts = norm_path(source, tmp_path, monkeypatch)
    assert split_counts == norm_counts
    assert_same(split, norm)
    assert split.num_rows == len(RECORDS) + 3


def test_a_refusal_deep_into_a_large_compressed_file_reruns_norm_cleanly(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The refusal comes after several batches (view still running, the ISA-L feeder still writing):
    # view is stopped, the feeder's broken pipe is not an input error, and norm's output is the task's.
    import pysam

    lines = [f"chr1\t{i + 1}\t.\tA\t{'C,G' if i % 7 == 0 else 'T'}\t5\tPASS\tDP={i % 50}\tGT:AD\t"
             f"0/1:1,2{',3' if i % 7 == 0 else ''}\t0/0:.\t1/1:3,4{',5' if i % 7 == 0 else ''}"
             for i in range(80_000)]
    lines.append("chr1\t10\t.\tA\tC\t1\tPASS\tDP=1\tGT\t0/1\t0/0\t1/1")  # before its predecessor
    plain = write(tmp_path, lines, "big.vcf")
    source = tmp_path / "big.vcf.gz"
    pysam.tabix_compress(str(plain), str(source))
    _refused_then_as_norm(source, tmp_path, monkeypatch)
