"""The local executor: a pool of two gives exactly what one worker gives; the CLI reports counts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from sovaudit.pipeline.commands import pipeline
from sovaudit.pipeline.local import config_for, run_local, unique_stems
from sovaudit.pipeline.synth import SynthSpec, write_vcf

BAD = Path(__file__).resolve().parents[1] / "data" / "bad" / "vcf"


def inputs(tmp_path: Path, count: int = 3) -> list[str]:
    return [str(write_vcf(tmp_path / f"in-{i}.vcf.gz", SynthSpec(records=300 + 50 * i, samples=3, seed=30 + i)))
            for i in range(count)]


def test_pool_of_two_gives_the_same_tables_and_counts_as_one_worker(tmp_path: Path) -> None:
    vcfs = inputs(tmp_path)
    one = run_local(config_for(vcfs, tmp_path / "one", "run-1"), workers=1)
    two = run_local(config_for(vcfs, tmp_path / "two", "run-1"), workers=2)
    assert one.ok and two.ok
    counts = [(r.input, r.input_sha256, r.records_in, r.records_normalized) for r in one.reports]
    assert counts == [(r.input, r.input_sha256, r.records_in, r.records_normalized) for r in two.reports]
    for i in range(3):
        left = pq.read_table(tmp_path / "one" / f"in-{i}.parquet")
        right = pq.read_table(tmp_path / "two" / f"in-{i}.parquet")
        assert left.num_rows > 300 and left.equals(right)
        manifest = json.loads((tmp_path / "two" / f"in-{i}.manifest.json").read_text())
        assert manifest["records_normalized"] == left.num_rows
        assert manifest["task_index"] == i


def test_one_bad_file_fails_its_task_only(tmp_path: Path) -> None:
    vcfs = [*inputs(tmp_path, 2), str(BAD / "truncated-gzip.vcf.gz")]
    run = run_local(config_for(vcfs, tmp_path / "out", "run-2"), workers=2)
    assert [r.task_index for r in run.reports] == [0, 1]
    assert [(f.task_index, f.bad_input) for f in run.failures] == [(2, True)]
    assert "truncated-gzip.vcf.gz" in run.failures[0].message
    assert not (tmp_path / "out" / "truncated-gzip.parquet").exists()


def test_same_file_names_get_distinct_outputs() -> None:
    assert unique_stems(["a/x.vcf.gz", "b/x.vcf.gz", "c/y.vcf"]) == ["00000-x", "00001-x", "y"]


def test_run_local_cli_prints_totals_and_exits_2_on_a_bad_input(tmp_path: Path) -> None:
    vcfs = inputs(tmp_path, 1)
    ok = CliRunner().invoke(pipeline, ["run-local", *vcfs, "--out", str(tmp_path / "a"), "--run-id", "r1"])
    assert ok.exit_code == 0, ok.output
    totals = json.loads(ok.stdout)
    assert totals["succeeded"] == 1 and totals["records_in"] == 300
    assert totals["records_normalized"] == pq.read_table(tmp_path / "a" / "in-0.parquet").num_rows
    bad = CliRunner().invoke(pipeline, ["run-local", str(BAD / "bad-pos.vcf"), "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2
    assert "bad-pos.vcf: line 7 (chr1:abc)" in bad.output
