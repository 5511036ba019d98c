"""Bad VCFs the corpus cannot hold as files: undeclared ids, oversized values, a directory as input.

Each refusal names the file, the record (line and chrom:pos) and the key at fault, and leaves no
Parquet file and no manifest; what the pipeline accepts instead (undeclared contigs, FILTER ids, GT)
loads with the header completed.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.convert import MAX_FIELD_BYTES
from sovaudit.pipeline.errors import VcfInputError
from sovaudit.pipeline.preprocess import PreprocessOptions, preprocess
from sovaudit.pipeline.vcfinput import read_header, variant_header

HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100000>\n"
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    '##INFO=<ID=NOTE,Number=1,Type=String,Description="Free text">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=XS,Number=1,Type=String,Description="Per-sample text">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n"
    "chr1\t100\t.\tA\tC\t50\tPASS\tDP=3\tGT\t0/1\t0/0\n"
)  # the first record is line 8


def vcf(tmp_path: Path, records: str, name: str = "in.vcf", header: str = HEADER) -> Path:
    path = tmp_path / name
    data = (header + records).encode()
    path.write_bytes(gzip.compress(data, 1) if name.endswith(".gz") else data)
    return path


def refused(source: Path, tmp_path: Path, options: PreprocessOptions | None = None) -> str:
    """Run the conversion, which must fail; return the message after checking nothing was written."""
    before = set(tmp_path.iterdir())
    with pytest.raises(VcfInputError) as caught:
        preprocess(source, tmp_path / "out.parquet", options or PreprocessOptions())
    assert set(tmp_path.iterdir()) == before, "a refused input left files behind"
    message = str(caught.value)
    assert message.startswith(f"{source}: "), message
    return message


@pytest.mark.parametrize(("record", "kind", "key"), [
    ("chr1\t200\t.\tC\tT\t50\tPASS\tDP=3\tGT:XX\t0/1:3\t1/1:4\n", "FORMAT", "XX"),
    ("chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;ZZ=4\tGT\t0/1\t1/1\n", "INFO", "ZZ"),
    ("chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;FLAGGY\tGT\t0/1\t1/1\n", "INFO", "FLAGGY"),
])
def test_an_undeclared_info_or_format_key_is_refused_naming_the_key_and_record(record: str, kind: str, key: str,
                                                                               tmp_path: Path) -> None:
    message = refused(vcf(tmp_path, record), tmp_path)
    assert f"line 9 (chr1:200): {kind} key '{key}' is not declared in the header" in message
    assert f"##{kind}=<ID={key}," in message  # the fix, spelled out


def test_undeclared_key_is_named_even_when_the_file_declares_no_contigs(tmp_path: Path) -> None:
    header = HEADER.replace("##contig=<ID=chr1,length=100000>\n", "")
    source = vcf(tmp_path, "chr2\t200\t.\tC\tT\t50\tPASS\tDP=3\tGT:XX\t0/1:3\t1/1:4\n", "in.vcf.gz", header)
    assert "line 8 (chr2:200): FORMAT key 'XX'" in refused(source, tmp_path)


def test_undeclared_contigs_filters_and_gt_are_declared_and_loaded(tmp_path: Path) -> None:
    header = HEADER.replace('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n', "")
    source = vcf(tmp_path, "chr9\t200\t.\tC\tT\t50\tlowq;strand\tDP=3\tGT\t0/1\t1|1\n", header=header)
    result = preprocess(source, tmp_path / "out.parquet")
    rows = pq.read_table(result.parquet).to_pylist()
    assert [(r["reference_name"], r["filter"]) for r in rows] == [("chr1", ["PASS"]), ("chr9", ["lowq", "strand"])]
    assert [c["genotype"] for c in rows[1]["call"]] == [[0, 1], [1, 1]]
    assert rows[1]["call"][1]["phased"] is True
    assert any("contig chr9" in w and "FILTER lowq" in w and "FORMAT GT" in w for w in result.warnings)


def test_an_info_value_above_the_limit_is_refused_by_the_converter_naming_record_and_key(tmp_path: Path) -> None:
    # 2 MiB fits the 8 MiB text block: Arrow parses it and the converter's own limit refuses it.
    source = vcf(tmp_path, f"chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;NOTE={'x' * (2 << 20)}\tGT:XS\t0/1:a\t1/1:b\n")
    message = refused(source, tmp_path)
    assert "line 9 (chr1:200): INFO/NOTE value is 2.0 MiB, above the limit of 1 MiB per field value" in message


def test_a_sample_value_above_the_limit_names_the_format_key_and_the_sample(tmp_path: Path) -> None:
    source = vcf(tmp_path, f"chr1\t200\t.\tC\tT\t50\tPASS\tDP=3\tGT:XS\t0/1:a\t1/1:{'y' * (MAX_FIELD_BYTES + 1)}\n")
    assert "line 9 (chr1:200): FORMAT/XS of sample 2 value is 1.0 MiB, above the limit" in refused(source, tmp_path)


def test_a_value_longer_than_the_text_block_is_located_by_a_pass_over_the_input(tmp_path: Path) -> None:
    # Arrow's "straddling object" error names no record; the diagnostic pass does.
    source = vcf(tmp_path, "chr1\t150\t.\tG\tA\t50\tPASS\tDP=1\tGT\t0/1\t0/0\n"
                           f"chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;NOTE={'x' * (3 << 19)}\tGT\t0/1\t1/1\n",
                 "in.vcf.gz")
    message = refused(source, tmp_path, PreprocessOptions(block_bytes=256 << 10))
    assert "line 10 (chr1:200): INFO/NOTE value is 1.5 MiB, above the limit of 1 MiB per field value" in message


def test_a_record_longer_than_the_block_without_one_huge_value_says_so(tmp_path: Path) -> None:
    # Arrow reads a row spanning two blocks; one spanning more fails with "straddling object".
    source = vcf(tmp_path, f"chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;NOTE={'z' * (400 << 10)}\tGT\t0/1\t1/1\n")
    message = refused(source, tmp_path, PreprocessOptions(block_bytes=128 << 10))
    assert "line 9 (chr1:200): INFO/NOTE value is 0.4 MiB: the normalized record is longer than the " \
           "converter's text block of 0.1 MiB" in message


def test_values_up_to_the_limit_still_load(tmp_path: Path) -> None:
    note = "n" * MAX_FIELD_BYTES
    source = vcf(tmp_path, f"chr1\t200\t.\tC\tT\t50\tPASS\tDP=3;NOTE={note}\tGT:XS\t0/1:a\t1/1:b\n")
    rows = pq.read_table(preprocess(source, tmp_path / "out.parquet").parquet).to_pylist()
    assert rows[1]["NOTE"] == note


def test_a_directory_given_as_input_is_refused_as_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "cohort.vcf"
    folder.mkdir()
    with pytest.raises(VcfInputError, match="cohort.vcf: is a directory"):
        preprocess(folder, tmp_path / "out.parquet")


def test_run_local_refuses_a_directory_input_before_creating_out(tmp_path: Path) -> None:
    folder = tmp_path / "cohort"
    folder.mkdir()
    result = CliRunner().invoke(pipeline, ["run-local", str(folder), "--out", str(tmp_path / "a" / "b")])
    assert result.exit_code == 2, result.output
    assert f"{folder}: is a directory" in result.output
    assert not (tmp_path / "a").exists()


def test_run_local_removes_the_out_it_created_when_every_input_is_refused(tmp_path: Path) -> None:
    source = vcf(tmp_path, "chr1\t200\t.\tC\tT\t50\tPASS\tDP=3\tGT:XX\t0/1:3\t1/1:4\n")
    result = CliRunner().invoke(pipeline, ["run-local", str(source), "--out", str(tmp_path / "a" / "b")])
    assert result.exit_code == 2, result.output
    assert "FORMAT key 'XX'" in result.output
    assert not (tmp_path / "a").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    again = CliRunner().invoke(pipeline, ["run-local", str(source), "--out", str(kept)])
    assert again.exit_code == 2 and kept.is_dir() and not any(kept.iterdir())


def test_run_local_refuses_an_out_below_a_file(tmp_path: Path) -> None:
    source = vcf(tmp_path, "")
    (tmp_path / "report.txt").write_text("a file")
    result = CliRunner().invoke(pipeline, ["run-local", str(source), "--out", str(tmp_path / "report.txt" / "x")])
    assert result.exit_code == 2
    assert "report.txt is a file" in result.output


def test_a_failure_message_with_control_characters_is_printed_escaped(tmp_path: Path) -> None:
    source = vcf(tmp_path, "chr1\t200\t.\tC\tT\t50\tPASS\tDP=3\tGT:X\x1b[2J\t0/1:3\t1/1:4\n")
    result = CliRunner().invoke(pipeline, ["run-local", str(source), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "FORMAT key 'X\\x1b[2J'" in result.output


def test_reading_a_header_leaves_no_file_and_no_open_descriptor(tmp_path: Path) -> None:
    header = read_header(vcf(tmp_path, ""))
    with tempfile.TemporaryDirectory() as private:
        fds = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            variant_header(header.lines, Path(private), "input.vcf")
        assert len(os.listdir("/proc/self/fd")) == fds
        assert os.listdir(private) == []
