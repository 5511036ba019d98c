"""The compiled path (pipeline/native.py + _bcfarrow.c) against the text path, record by record.

Every test that compares runs the same input twice through ``preprocess``: once as shipped (the
compiled decoder) and once with ``SOVAUDIT_NO_NATIVE=1`` (bcftools query text), and demands the
identical table; the values the text path gives are pinned separately by test_preprocess.py.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pysam.bcftools
import pytest

from sovaudit.pipeline import native
from sovaudit.pipeline.errors import VcfInputError
from sovaudit.pipeline.normalize import RecordStream, _Stage
from sovaudit.pipeline.preprocess import _convert_native, preprocess
from sovaudit.pipeline.schema import layout_from_header
from sovaudit.pipeline.synth import SynthSpec, write_vcf
from sovaudit.pipeline.vcfinput import read_header, variant_header

HEADER = """##fileformat=VCFv4.2
##FILTER=<ID=PASS,Description="All filters passed">
##FILTER=<ID=q10,Description="Quality below 10">
##FILTER=<ID=s50,Description="Less than half of samples have data">
##contig=<ID=chr1,length=1000000>
##contig=<ID=chr2,length=1000000>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">
##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">
##INFO=<ID=RD,Number=R,Type=Integer,Description="Read depth per allele">
##INFO=<ID=RF,Number=R,Type=Float,Description="Fraction per allele">
##INFO=<ID=MQ,Number=1,Type=Float,Description="Mapping quality">
##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">
##INFO=<ID=H2,Number=0,Type=Flag,Description="HapMap2">
##INFO=<ID=NOTE,Number=1,Type=String,Description="Free text">
##INFO=<ID=TAGS,Number=.,Type=String,Description="Tags">
##INFO=<ID=CIPOS,Number=2,Type=Integer,Description="Confidence interval">
##INFO=<ID=VALS,Number=.,Type=Integer,Description="Wide integers">
##INFO=<ID=END,Number=1,Type=Integer,Description="End position">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GL,Number=G,Type=Float,Description="Genotype likelihoods">
##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">
##FORMAT=<ID=FT,Number=1,Type=String,Description="Sample filter">
##FORMAT=<ID=PS,Number=.,Type=Integer,Description="Variable-length values">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\tS3
"""

# Each line exercises something the decoder must get right; the comment says what.
RECORDS = [
    # biallelic, every INFO kind, diploid unphased and phased, a missing sample value
    "chr1\t100\trs1;rs1b\tA\tG\t50.5\tPASS\tDP=30;AC=1;AF=0.5;RD=10,20;RF=0.25,0.75;MQ=59.99;DB;NOTE=hello;"
    "TAGS=a,b,.;CIPOS=-5,5;VALS=1,300,70000\tGT:AD:DP:GL:AF:FT:PS\t0/1:10,20:30:-1.5,-0.1,-9:0.667:PASS:1\t"
    "1|1:0,30:30:-20,-5,-0.01:1:.:1,2,3\t./.:.:.:.:.:.:.",
    # multi-allelic: split by norm, Number=A/R/G values and genotypes recoded per allele
    "chr1\t200\t.\tC\tT,CA,G\t.\tq10;s50\tDP=100;AC=1,2,3;AF=0.1,0.2,0.3;RD=1,2,3,4;RF=.,0.5,.,1e-7;"
    "H2;TAGS=x\tGT:AD:GL:AF:PS\t1/2:5,6,7,8:-1,-2,-3,-4,-5,-6,-7,-8,-9,-10:0.1,0.2,0.3:7\t"
    "0|3:1,.,.,9:.:.,.,0.5:.\t2:3,3,3,3:-0.5,-1.5,-2.5,-3.5:0.123456789,12345.678,0.00001234:9,8",
    # missing QUAL and FILTER, haploid and partly missing genotypes, empty INFO
    "chr2\t50\t.\tG\tA\t.\t.\t.\tGT:DP\t1:7\t.|1:8\t0/.:.",
    # reference-only record (ALT .), INFO/END, big and small floats, negative zero
    "chr2\t60\t.\tT\t.\t1e6\tPASS\tEND=90;MQ=1234567;AF=0\tGT:DP:GL\t0/0:12:-0,-1e-8,-123456.5\t"
    "0/0:13:.\t./.:.:.",
    # a sample with fewer FORMAT fields than the record (trailing fields dropped) and PS
    # vectors of different lengths (end-of-vector padding in BCF)
    "chr2\t70\tid3\tGA\tG\t12\tPASS\tDP=1;VALS=.,.,.;TAGS=.\tGT:AD:PS\t0/1\t0/0:1,2:1,2,3,4,5\t1/1:.,4:6",
    # a deletion spanning the next record and a spanning-deletion allele
    "chr2\t80\t.\tACGT\tA,*\t99\tPASS\tAC=1,1;AF=0.5,0.5\tGT:AD\t1/2:0,1,1\t0/1:2,2,0\t2/2:0,0,5",
]


def write(tmp_path: Path, records: list[str], name: str = "in.vcf") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(records) + "\n")
    return path


def both(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pa.Table, pa.Table]:
    """The table from the compiled path and from the text path."""
    assert native.load() is not None, "the compiled decoder must be built (pip install . compiles it)"
    compiled = preprocess(source, tmp_path / "native.parquet")
    monkeypatch.setenv(native.DISABLE_ENV, "1")
    assert native.load() is None
    text = preprocess(source, tmp_path / "text.parquet")
    monkeypatch.delenv(native.DISABLE_ENV)
    assert compiled.records_normalized == text.records_normalized
    return pq.read_table(compiled.parquet), pq.read_table(text.parquet)


def assert_same(a: pa.Table, b: pa.Table) -> None:
    assert a.schema.equals(b.schema), (a.schema, b.schema)
    for name in a.column_names:
        left, right = a.column(name).to_pylist(), b.column(name).to_pylist()
        for row, (x, y) in enumerate(zip(left, right, strict=True)):
            assert repr(x) == repr(y), f"{name} row {row}: compiled {x!r} != text {y!r}"
    assert a.equals(b)


def test_the_compiled_decoder_is_built() -> None:
    # pip install . builds it (setup.py); a missing module would silently make every comparison
    # below compare the text path with itself.
    # Through native.load(), as the task does: from a checkout (`python -m pytest`) the module is the
    # installed distribution's, since a plain `pip install .` compiles nothing into the source tree.
    from sovaudit.pipeline import native

    _bcfarrow = native.load()
    assert _bcfarrow is not None and hasattr(_bcfarrow, "Decoder")


def test_every_kind_of_value_matches_the_text_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, text = both(write(tmp_path, RECORDS), tmp_path, monkeypatch)
    assert compiled.num_rows == 9
    assert_same(compiled, text)


def test_values_are_the_expected_ones_not_only_equal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, _ = both(write(tmp_path, RECORDS), tmp_path, monkeypatch)
    rows = compiled.to_pylist()
    first = rows[0]
    assert first["names"] == ["rs1", "rs1b"] and first["quality"] == 50.5 and first["filter"] == ["PASS"]
    assert first["DB"] is True and first["H2"] is False and first["NOTE"] == "hello"
    assert first["TAGS"] == ["a", "b", "."] and first["CIPOS"] == [-5, 5] and first["VALS"] == [1, 300, 70000]
    assert first["RD"] == [10, 20] and first["RF"] == [0.25, 0.75] and first["MQ"] == 59.99
    assert first["alternate_bases"] == [{"alt": "G", "AC": 1, "AF": 0.5}]
    calls = first["call"]
    assert [c["genotype"] for c in calls] == [[0, 1], [1, 1], [-1, -1]]
    assert [c["phased"] for c in calls] == [False, True, False]
    assert [c["AD"] for c in calls] == [[10, 20], [0, 30], None]
    assert [c["FT"] for c in calls] == ["PASS", None, None]
    assert calls[0]["GL"] == [-1.5, -0.1, -9.0] and calls[0]["AF"] == 0.667
    # the multi-allelic record, split: the second allele (CA) carries AC=2, AF=0.2, RD=[1,3]
    split = [r for r in rows if r["start_position"] == 199]
    assert [r["alternate_bases"][0]["alt"] for r in split] == ["T", "CA", "G"]
    second = split[1]
    assert second["alternate_bases"][0]["AC"] == 2 and second["RD"] == [1, 3]
    # RF=.,0.5,.,1e-7: T keeps [., 0.5] (a missing element is the sentinel), CA gets [., .]: missing
    assert split[0]["RF"] == [-2147483648.0, 0.5] and second["RF"] is None
    assert second["filter"] == ["q10", "s50"] and second["quality"] is None
    assert [c["genotype"] for c in second["call"]] == [[0, 1], [0, 0], [1]]
    assert [c["phased"] for c in second["call"]] == [False, True, False]
    haploid = next(r for r in rows if r["start_position"] == 49)
    assert [c["genotype"] for c in haploid["call"]] == [[1], [-1, 1], [0, -1]]
    assert [c["phased"] for c in haploid["call"]] == [False, True, False]
    assert haploid["filter"] is None and haploid["names"] is None and haploid["DP"] is None
    ref_only = next(r for r in rows if r["start_position"] == 59)
    assert ref_only["alternate_bases"] == [] and ref_only["end_position"] == 90 and ref_only["quality"] == 1e6
    padded = next(r for r in rows if r["start_position"] == 69)
    assert [c["PS"] for c in padded["call"]] == [None, [1, 2, 3, 4, 5], [6]]
    assert [c["AD"] for c in padded["call"]] == [None, [1, 2], [-2147483648, 4]]
    assert padded["VALS"] is None and padded["TAGS"] is None


@pytest.mark.parametrize("name", ["freebayes.vcf.gz", "example-4.1.vcf", "test.vcf.gz", "exac.vcf.gz"])
def test_the_shared_real_vcfs_match_the_text_path(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = os.environ.get("SOVAUDIT_CONFORMANCE_VCF") or Path(__file__).resolve().parents[2] / "../shared/data/vcf"
    source = Path(shared) / name
    if not source.exists():
        pytest.skip(f"shared conformance data not present: {source}")
    compiled, text = both(source, tmp_path, monkeypatch)
    assert_same(compiled, text)


@pytest.mark.parametrize("seed", [3, 11])
def test_synthetic_files_match_the_text_path(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=4000, samples=5, seed=seed))
    compiled, text = both(source, tmp_path, monkeypatch)
    assert compiled.num_rows > 4000
    assert_same(compiled, text)


def test_floats_read_back_as_bcftools_query_prints_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # htslib prints floats with its own 6-digit rounding; the compiled path must land on the same doubles.
    rng = np.random.default_rng(5)
    magnitudes = 10.0 ** rng.integers(-9, 9, size=3000)
    values = (rng.random(3000) * magnitudes * rng.choice([-1, 1], size=3000)).astype(np.float32)
    lines = [f"chr1\t{i + 1}\t.\tA\tC\t{abs(v):.9g}\tPASS\tMQ={v:.9g};RF={v:.9g},{v * 3:.9g}\tGT:GL\t"
             f"0/1:{v:.9g},{v / 7:.9g},0\t0/0:.\t1/1:1,2,3" for i, v in enumerate(values)]
    compiled, text = both(write(tmp_path, lines), tmp_path, monkeypatch)
    assert_same(compiled, text)


def test_values_too_long_are_refused_as_the_text_path_refuses_them(tmp_path: Path) -> None:
    note = "n" * ((1 << 20) + 1)
    source = write(tmp_path, [f"chr1\t200\t.\tC\tT\t50\tPASS\tNOTE={note}\tGT\t0/1\t0/0\t1/1"])
    with pytest.raises(VcfInputError, match=r"chr1:200\): INFO/NOTE value is 1.0 MiB, above the limit"):
        preprocess(source, tmp_path / "out.parquet")
    source = write(tmp_path, [f"chr1\t300\t.\tC\tT\t50\tPASS\tDP=1\tGT:FT\t0/1:a\t0/0:{note}\t1/1:b"])
    with pytest.raises(VcfInputError, match=r"chr1:300\): FORMAT/FT of sample 2 value is 1.0 MiB"):
        preprocess(source, tmp_path / "out.parquet")


# -- the stream itself ----------------------------------------------------------------------


def bcf_bytes(source: Path, tmp_path: Path, mode: str = "-Ou") -> bytes:
    out = tmp_path / f"stream{mode}.bcf"
    pysam.bcftools.norm("-m", "-any", mode, "-o", str(out), str(source), catch_stdout=False)
    return out.read_bytes()


def layout_of(source: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    return layout_from_header(variant_header(read_header(source).lines, tmp_path, str(source)))


def decode(data: bytes, source: Path, tmp_path: Path) -> int:
    module = native.load()
    assert module is not None
    path = tmp_path / "feed.bcf"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = native.NativeReader(module, fd, layout_of(source, tmp_path), 1 << 20)
        return sum(int(b["rows"]) for b in reader.batches())
    finally:
        os.close(fd)


def test_raw_bcf_and_stored_bgzf_decode_alike_and_compressed_bgzf_is_refused(tmp_path: Path) -> None:
    source = write(tmp_path, RECORDS)
    stored = bcf_bytes(source, tmp_path)
    assert stored[:2] == b"\x1f\x8b"  # what htslib writes for -Ou: BGZF of stored deflate blocks
    assert decode(stored, source, tmp_path) == 9
    assert decode(gzip.decompress(stored), source, tmp_path) == 9
    with pytest.raises(native.NativeDecodeError, match="compressed BGZF"):
        decode(bcf_bytes(source, tmp_path, "-Ob"), source, tmp_path)


@pytest.mark.parametrize("cut", [6, 60, 200])
def test_a_cut_stream_names_the_last_record_decoded(cut: int, tmp_path: Path) -> None:
    source = write(tmp_path, RECORDS)
    raw = gzip.decompress(bcf_bytes(source, tmp_path))
    with pytest.raises(native.NativeDecodeError, match="ends inside a record") as caught:
        decode(raw[:-cut], source, tmp_path)
    records, chrom, pos = caught.value.where
    assert chrom in ("chr1", "chr2") and pos > 0 and records < 9


def test_a_corrupt_stream_from_a_clean_norm_names_the_users_file_and_record(tmp_path: Path) -> None:
    # norm succeeded (its counts are there) but its output is cut: the error names the input the
    # user gave and the last record decoded, not the pipe between the two processes.
    source = write(tmp_path, RECORDS, "cohort-17.vcf")
    raw = gzip.decompress(bcf_bytes(source, tmp_path))
    cut = tmp_path / "cut.bcf"
    cut.write_bytes(raw[:-100])
    stderr_path = tmp_path / "norm.stderr"
    with open(stderr_path, "wb") as log:
        producer = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read()); "
             "sys.stderr.write('Lines   total/split/joined/realigned/mismatch_removed/dup_removed/skipped:"
             "\\t6/1/0/0/0/0/0\\n')", str(cut)], stdout=subprocess.PIPE, stderr=log)
    stream = RecordStream(source=source, stdout=producer.stdout, stages=[_Stage("norm", producer, stderr_path)])
    module = native.load()
    assert module is not None
    with pytest.raises(VcfInputError) as caught:
        _convert_native(module, stream, layout_of(source, tmp_path), tmp_path / "out.parquet")
    message = str(caught.value)
    assert message.startswith(f"{source}: after chr")
    assert "ends inside a record" in message and "/dev/stdout" not in message and "pipe" not in message


def test_without_the_compiled_module_the_text_path_runs_with_one_warning(tmp_path: Path) -> None:
    source = write(tmp_path, RECORDS)
    script = ("import sys; sys.modules['sovaudit.pipeline._bcfarrow'] = None\n"
              "from sovaudit.pipeline.preprocess import preprocess\n"
              f"preprocess({str(source)!r}, {str(tmp_path / 'a.parquet')!r})\n"
              f"preprocess({str(source)!r}, {str(tmp_path / 'b.parquet')!r})\n")
    env = {k: v for k, v in os.environ.items() if k != native.DISABLE_ENV}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "compiled BCF decoder is unavailable" in warnings[0], result.stderr
    compiled = preprocess(source, tmp_path / "c.parquet")
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(compiled.parquet))


def test_disabling_it_by_configuration_is_silent(tmp_path: Path) -> None:
    source = write(tmp_path, RECORDS[:1])
    env = {**os.environ, native.DISABLE_ENV: "1"}
    script = f"from sovaudit.pipeline.preprocess import preprocess; preprocess({str(source)!r}, {str(tmp_path / 'a.parquet')!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert "warning" not in result.stderr


def test_dictionaries_follow_idx_and_default_to_header_order() -> None:
    text = ('##FILTER=<ID=PASS,Description="x",IDX=0>\n##INFO=<ID=DP,Number=1,Type=Integer,Description="a, IDX=9",IDX=3>\n'
            '##contig=<ID=chr2,IDX=1>\n##contig=<ID=chr1,IDX=0>\n')
    found = native.dictionaries(text)
    assert found.strings == {"PASS": 0, "DP": 3} and found.contigs == {"chr2": 1, "chr1": 0}
    plain = native.dictionaries('##INFO=<ID=DP,Number=1>\n##FORMAT=<ID=GT,Number=1>\n##INFO=<ID=GT,Number=1>\n')
    assert plain.strings == {"PASS": 0, "DP": 1, "GT": 2}


def test_a_corrupt_block_inside_a_complete_bgzf_file_fails_the_run(tmp_path: Path) -> None:
    # A complete BGZF file is decompressed by the task itself (ISA-L when installed): a block that
    # does not inflate must fail the run naming the file, never end the records early.
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=20000, samples=4, seed=2))
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    source.write_bytes(bytes(data))
    with pytest.raises(VcfInputError) as caught:
        preprocess(source, tmp_path / "out.parquet")
    assert str(caught.value).startswith(str(source))
    assert not (tmp_path / "out.parquet").exists()


def test_printed_float_is_printf_g_read_back_for_every_magnitude() -> None:
    # pysam's htslib prints a float as "%g" (6 significant digits, half to even on the exact binary
    # value); the decoder reproduces that without text, falling back to text near ties.
    from sovaudit.pipeline import native

    _bcfarrow = native.load()
    assert _bcfarrow is not None

    rng = np.random.default_rng(8)
    values = (rng.random(20000) * 10.0 ** rng.integers(-14, 10, 20000) * rng.choice([-1, 1], 20000)).astype(np.float32)
    ties = np.array([19043.25, 123456.5, 0.5, 2.5e-5, 999999.5, 1e-4, 1e6, 0.0], dtype=np.float32)
    for value in [*values.tolist(), *ties.tolist()]:
        assert _bcfarrow.printed_float(value) == float(f"{np.float32(value):g}"), value
