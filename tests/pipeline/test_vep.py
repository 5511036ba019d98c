"""VEP annotation: run on the normalized records when configured; skipped for annotated inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sovaudit.pipeline.errors import ToolError
from sovaudit.pipeline.preprocess import PreprocessOptions, preprocess
from sovaudit.pipeline.synth import SynthSpec, write_vcf

FAKE_VEP = (sys.executable, str(Path(__file__).with_name("fake_vep.py")))


def test_configured_vep_annotates_every_split_record_with_its_own_allele(tmp_path: Path) -> None:
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=300, samples=2, seed=60, csq_fraction=0))
    result = preprocess(source, tmp_path / "out.parquet", PreprocessOptions(vep_command=FAKE_VEP))
    assert result.annotated and result.has_csq
    rows = pq.read_table(result.parquet).to_pylist()
    assert len(rows) == result.records_normalized > 300
    for row in rows:
        ref, alt = row["reference_bases"], row["alternate_bases"][0]["alt"]
        entries = row["alternate_bases"][0]["CSQ"]
        assert [e["Consequence"] for e in entries] == [f"fake_{len(ref)}_{len(alt)}"]
        assert entries[0]["ALLELE_NUM"] == "1"


def test_an_input_that_already_has_csq_keeps_it_and_vep_is_not_run(tmp_path: Path) -> None:
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=200, samples=2, seed=61, csq_fraction=0.5))
    failing_vep = (sys.executable, "-c", "import sys; sys.exit(7)")
    result = preprocess(source, tmp_path / "out.parquet", PreprocessOptions(vep_command=failing_vep))
    assert not result.annotated and result.has_csq
    rows = pq.read_table(result.parquet).to_pylist()
    assert any(r["alternate_bases"][0]["CSQ"] for r in rows)
    assert all(e["Consequence"] != "" for r in rows for e in r["alternate_bases"][0]["CSQ"])


def test_a_failing_vep_is_a_tool_error_naming_the_exit_code(tmp_path: Path) -> None:
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=50, samples=1, seed=62, csq_fraction=0))
    failing_vep = (sys.executable, "-c", "import sys; print('cache not found', file=sys.stderr); sys.exit(7)")
    with pytest.raises(ToolError, match="exit 7.*cache not found"):
        preprocess(source, tmp_path / "out.parquet", PreprocessOptions(vep_command=failing_vep))
    assert not (tmp_path / "out.parquet").exists()
