"""Errors name what the user gave (their file, option or resource), never an internal path or a Python repr
(issue 13 item 7). Each test feeds one bad input through the CLI and reads the message as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sovaudit import cloud
from sovaudit.cli import main
from sovaudit.simulator.server import SimServer

HEADER = "##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"
RECORD = "chr1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/1\n"
# htslib refuses a #CHROM line that names a sample twice, and a #CHROM line without its fixed columns.
DUPLICATE_SAMPLE = HEADER + COLUMNS + "\tS1\tS1\n" + RECORD
CUT_COLUMNS = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\n"


def leaks(text: str) -> list[str]:
    """What must never reach a user: the task's temporary copies, the install, a Python bytes repr."""
    return [marker for marker in ("/tmp/", "sovaudit-task-", "sovaudit-fetch-", "site-packages", "b'",
                                  "stderr=", "\\n") if marker in text]


def run_local(*args: str) -> Result:
    return CliRunner().invoke(main, ["pipeline", "run-local", "--quiet", *args], catch_exceptions=False)


@pytest.mark.parametrize(("content", "said"), [
    (DUPLICATE_SAMPLE, "cohort.vcf: line 3: sample name 'S1' appears twice"),
    (CUT_COLUMNS, "htslib cannot read the header: "),
])
def test_a_bad_header_names_the_users_file_not_a_temporary_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               content: str, said: str) -> None:
    monkeypatch.chdir(tmp_path)  # a relative name: then any "/tmp/" in the message is ours, not theirs
    Path("cohort.vcf").write_text(content)
    result = run_local("cohort.vcf", "--out", "out")
    assert result.exit_code == 2
    assert "FAILED task 0: cohort.vcf: " in result.stderr and said in result.stderr, result.stderr
    assert leaks(result.stderr) == [], result.stderr


def test_a_reference_that_is_not_fasta_is_named_without_a_repr(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cohort.vcf").write_text(HEADER + COLUMNS + "\tS1\tS2\n" + RECORD)
    Path("genome.fa").write_bytes(b"\x00\x01 not a fasta\n")
    result = run_local("cohort.vcf", "--out", "out", "--reference", "genome.fa")
    assert result.exit_code != 0
    assert "cannot index reference genome.fa: " in result.stderr, result.stderr
    assert leaks(result.stderr) == [] and "[E::" not in result.stderr, result.stderr


def test_a_bad_gs_input_is_named_by_its_uri_not_the_downloaded_copy(sim: SimServer, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = cloud.storage(cloud.Target.parse(sim.url), "fed-node-us")
    storage.bucket("fed-node-us-raw-vcfs").blob("cohort/dup.vcf").upload_from_string(DUPLICATE_SAMPLE)
    result = run_local("gs://fed-node-us-raw-vcfs/cohort/dup.vcf", "--out", "out", "--load", sim.url)
    assert result.exit_code == 2
    assert "gs://fed-node-us-raw-vcfs/cohort/dup.vcf: line 3: sample name 'S1' appears twice" in result.stderr, \
        result.stderr
    assert leaks(result.stderr) == [], result.stderr


def test_a_refused_load_endpoint_names_load_not_target(tmp_path: Path) -> None:
    vcf = tmp_path / "cohort.vcf"
    vcf.write_text(HEADER + COLUMNS + "\tS1\tS2\n" + RECORD)
    result = run_local(str(vcf), "--out", str(tmp_path / "out"), "--load", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert result.stderr.startswith("--load http://127.0.0.1:1: nothing is listening there"), result.stderr
    assert "--target" not in result.stderr


def test_a_load_endpoint_off_loopback_names_load_not_target(tmp_path: Path) -> None:
    result = run_local(str(tmp_path / "x.vcf"), "--out", str(tmp_path / "out"), "--load", "http://example.com:1")
    assert result.exit_code == 2
    assert "--load 'http://example.com:1'" in result.stderr and "--target" not in result.stderr


@pytest.mark.parametrize(("region", "suggested"), [("us-centrl1", "did you mean us-central1"),
                                                    ("mars-north1", "sovaudit policy regions")])
def test_an_unknown_region_says_what_the_user_can_do_not_to_edit_our_code(tmp_path: Path, region: str,
                                                                          suggested: str) -> None:
    shipped = Path(__file__).parents[1] / "policies" / "us-node.yaml"
    pack = tmp_path / "pack.yaml"
    pack.write_text(shipped.read_text().replace("allowed_regions: [us-central1]", f"allowed_regions: [{region}]"))
    result = CliRunner().invoke(main, ["policy", "validate", str(pack)])
    assert result.exit_code == 2
    line = next(line for line in result.output.splitlines() if f"unknown region '{region}'" in line)
    assert suggested in line
    assert "REGION_ZONES" not in line and ".py" not in line and "sovaudit.audit" not in line


def test_policy_regions_lists_the_regions_a_pack_may_name() -> None:
    result = CliRunner().invoke(main, ["policy", "regions"])
    assert result.exit_code == 0
    rows = dict(line.split("\t") for line in result.output.splitlines())
    assert rows["us-central1"].split() == ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]
    assert "europe-west4" in rows


def test_a_malformed_key_file_is_named_without_the_librarys_boilerplate(tmp_path: Path) -> None:
    bad = tmp_path / "operator.pub.pem"
    bad.write_bytes(b"\x00\x01 not pem")
    result = CliRunner().invoke(main, ["report", "verify", str(tmp_path / "x.jsonl"), "--key", str(bad)])
    assert result.exit_code == 2
    assert f"public key {bad} is not a PEM public key" in result.output
    assert "cryptography.io" not in result.output and "Unable to load PEM file" not in result.output


def test_a_policy_file_that_does_not_exist_is_named_without_a_line_0(tmp_path: Path) -> None:
    missing = tmp_path / "our-node.yaml"
    result = CliRunner().invoke(main, ["verify", "--policy", str(missing), "--target", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{missing}: cannot read the pack: No such file or directory"), result.stderr
    assert ":0:" not in result.stderr and "<document>" not in result.stderr
