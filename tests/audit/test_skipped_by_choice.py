"""Controls left unrun by the user's choice (--no-probes, --posture-only) read SKIPPED and WARNED.

Before SKIPPED existed, `--no-probes` turned the critical probe controls NOT_APPLICABLE and the banner,
the table and the gate all said PASS. These tests run the real CLI against the simulator and read
every output a gate, a dashboard or a regulator would.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from lxml import etree, html

import sovaudit
from sovaudit.cli import main
from sovaudit.reports.attestation import build_statement
from sovaudit.reports.sarif import SarifFormat
from sovaudit.simulator.matrix import run_row
from sovaudit.simulator.node import list_scenarios
from sovaudit.simulator.server import SimServer

PROBES = {"SOV-02", "SOV-03"}


def verify(sim: SimServer, tmp_path: Path, *extra: str, policy: str = "us") -> tuple[Result, Path]:
    out = tmp_path / "out"
    args = ["verify", "--policy", policy, "--target", sim.url, "--api-deadline", "2", "--out", str(out), *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    runs = sorted(out.glob("run-*"))
    assert runs, result.output
    return result, runs[-1]


def by_outcome(document: dict[str, Any], outcome: str) -> set[str]:
    return {c["id"] for c in document["controls"] if c["outcome"] == outcome}


@pytest.fixture
def no_probes_run(sim: SimServer, tmp_path: Path) -> tuple[Result, Path]:
    return verify(sim, tmp_path, "--no-probes", "--job", "preprocess-genomes-001")


def test_no_probes_gives_skipped_rows_a_warned_banner_and_exit_0(no_probes_run: tuple[Result, Path]) -> None:
    result, run_dir = no_probes_run
    document = json.loads((run_dir / "result.json").read_text())
    assert by_outcome(document, "SKIPPED") == PROBES
    assert by_outcome(document, "NOT_APPLICABLE") == {"SOV-09", "CC-05"}   # the us pack's choices, not skips
    assert document["verdict"] == "WARNED" and document["summary"]["SKIPPED"] == 2
    # Documented: WARNED exits 0 like a waived run; the banner says what was not proven.
    assert result.exit_code == 0 and document["exit_code"] == 0
    assert re.search(r"^│ SOV-02 +│ SKIPPED", result.stdout, re.M), result.stdout
    assert ("verdict: WARNED: passed with 2 controls not run (--no-probes): SOV-02, SOV-03 were not proven"
            in result.stdout)
    # The first lines of the console answer what, where, by whom, and the verdict with its reason.
    head = result.stdout.split("\n")[:8]
    assert any("node: project fed-node-us" in line for line in head), head
    assert any(line.startswith("verdict: WARNED") for line in head), head


def test_no_probes_is_warned_in_every_format(no_probes_run: tuple[Result, Path]) -> None:
    _, run_dir = no_probes_run
    document = json.loads((run_dir / "result.json").read_text())
    statement = build_statement(document, [])
    predicate = statement["predicate"]
    assert predicate["result"] == "WARNED" and PROBES <= set(predicate["warnedTests"])
    assert predicate["sovaudit"]["skippedControls"] == ["SOV-02", "SOV-03"]
    assert predicate["sovaudit"]["verdict"] == "WARNED"

    junit = etree.fromstring((run_dir / "junit.xml").read_bytes())
    for control_id in PROBES:
        case = junit.xpath(f"//testcase[starts-with(@name, '{control_id}:')]")[0]
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("message", "").startswith("SKIPPED: not run by choice: --no-probes")
        assert case.find("failure") is None and case.find("error") is None

    sarif = json.loads((run_dir / "results.sarif").read_text())
    run = sarif["runs"][0]
    assert not [r for r in run["results"] if r["ruleId"] in PROBES]  # not a failure: only with --sarif-all
    assert run["properties"]["skippedControls"] == ["SOV-02", "SOV-03"]
    every = json.loads(SarifFormat(include_passes=True).render(document))["runs"][0]["results"]
    skipped_results = [r for r in every if r["ruleId"] in PROBES]
    assert {(r["kind"], r["level"]) for r in skipped_results} == {("review", "none")}

    oscal = json.loads((run_dir / "oscal-ar.json").read_text())
    findings = {f["target"]["target-id"]: f["target"]["status"]
                for f in oscal["assessment-results"]["results"][0]["findings"]}
    for control_id in PROBES:
        assert findings[control_id]["state"] == "not-satisfied" and findings[control_id]["reason"] == "other"
        assert findings[control_id]["remarks"].startswith("Not assessed")

    page = html.fromstring((run_dir / "report.html").read_bytes())
    first = page.get_element_by_id("first-screen")
    assert first.xpath(".//*[contains(@class, 'verdict')]//*[@class='word']")[0].text_content() == "WARNED"
    assert "SOV-02, SOV-03 were not proven" in first.get_element_by_id("verdict-reason").text_content()
    badges = page.xpath("//article[@id='SOV-02']//span[contains(@class, 'badge')]")
    assert badges[0].text_content().strip() == "SKIPPED"


def test_posture_only_names_its_option_and_the_job_controls(sim: SimServer, tmp_path: Path) -> None:
    result, run_dir = verify(sim, tmp_path, "--posture-only")
    document = json.loads((run_dir / "result.json").read_text())
    skipped = by_outcome(document, "SKIPPED")
    assert {"CC-02", "SEC-04", "INT-01"} <= skipped and not PROBES & skipped
    assert document["verdict"] == "WARNED" and result.exit_code == 0
    said = " ".join(result.stdout.split())   # the console wraps long lines at the terminal's width
    assert "controls not run (--posture-only): SOV-06, " in said
    assert all(f"{control_id}," in said or f"{control_id} " in said for control_id in ("CC-01", "CC-02", "INT-01"))


def test_a_bundle_from_before_skipped_still_reverifies(no_probes_run: tuple[Result, Path]) -> None:
    # What an older sovaudit wrote for the same run: the probes NOT_APPLICABLE, the verdict PASS, and a
    # summary without SKIPPED. Re-evaluation today reads SKIPPED/WARNED and must call that a match.
    _, run_dir = no_probes_run
    result_file = run_dir / "result.json"
    legacy = json.loads(result_file.read_text())
    for control in legacy["controls"]:
        if control["outcome"] == "SKIPPED":
            control["outcome"] = "NOT_APPLICABLE"
            for finding in control["findings"]:
                finding["outcome"] = "NOT_APPLICABLE"
    legacy["verdict"] = "PASS"
    legacy["summary"] = {k: v for k, v in legacy["summary"].items() if k != "SKIPPED"}
    legacy["summary"]["NOT_APPLICABLE"] = 2
    result_file.write_text(json.dumps(legacy, indent=2, sort_keys=True) + "\n")
    result = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"], catch_exceptions=False)
    assert "re-evaluation reproduces every recorded outcome" in result.output, result.output
    assert result.exit_code == 0


def test_a_new_bundle_whose_skipped_was_edited_to_not_applicable_does_not_reverify(
        no_probes_run: tuple[Result, Path]) -> None:
    # The legacy allowance is only for results written before SKIPPED: a current result.json (its summary
    # counts SKIPPED) relabelled to look as if the policy excused the probes is a mismatch.
    _, run_dir = no_probes_run
    result_file = run_dir / "result.json"
    edited = json.loads(result_file.read_text())
    for control in edited["controls"]:
        if control["outcome"] == "SKIPPED":
            control["outcome"] = "NOT_APPLICABLE"
    result_file.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    result = CliRunner().invoke(main, ["verify", "--evidence", str(run_dir), "--policy", "us"], catch_exceptions=False)
    assert "MISMATCH SOV-02: recorded NOT_APPLICABLE, re-evaluated SKIPPED" in result.output
    assert result.exit_code == 1


def test_no_output_file_carries_an_absolute_local_path(tmp_path: Path) -> None:
    # waiver-valid runs with a merged pack written to a private temporary directory (sovaudit-matrix-*):
    # that path, the install directory, the virtualenv and the home directory must appear in no file.
    scenario = next(s for s in list_scenarios() if s.name == "waiver-valid")
    row = run_row(scenario, out_dir=tmp_path)
    run_dir = next(tmp_path.glob("run-*"))
    document = json.loads((run_dir / "result.json").read_text())
    assert document["policy"]["path"] == "us-node+waiver-valid.yaml"
    install = str(Path(sovaudit.__file__).resolve().parent.parent)
    forbidden = ["sovaudit-matrix-", install, sys.prefix, str(Path.home()) + "/"]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"report.html", "result.json", "manifest.json", "junit.xml", "results.sarif"} <= {p.name for p in files}
    for path in files:
        content = path.read_text(encoding="utf-8", errors="replace")
        for needle in forbidden:
            assert needle not in content, f"{path.relative_to(run_dir)} names {needle!r}"
    assert row.verdict == "WARNED" and row.exit_code == 0


def test_a_waived_run_says_warned_in_the_banner_like_its_attestation(tmp_path: Path) -> None:
    scenario = next(s for s in list_scenarios() if s.name == "waiver-valid")
    run_row(scenario, out_dir=tmp_path)
    run_dir = next(tmp_path.glob("run-*"))
    document = json.loads((run_dir / "result.json").read_text())
    assert build_statement(document, [])["predicate"]["result"] == "WARNED"
    page = html.fromstring((run_dir / "report.html").read_bytes())
    first = page.get_element_by_id("first-screen")
    assert first.xpath(".//*[@class='word']")[0].text_content() == "WARNED"
    reason = first.get_element_by_id("verdict-reason").text_content()
    assert "accepted by waiver: SOV-04" in reason and "data-protection-officer@example.org" in reason


def test_report_verify_tells_the_regulator_what_was_not_proven(sim: SimServer, tmp_path: Path) -> None:
    from sovaudit.reports.keys import generate_key

    key = generate_key(tmp_path / "keys", "ed25519", "auditor")
    _, run_dir = verify(sim, tmp_path, "--no-probes", "--job", "preprocess-genomes-001",
                        "--sign-key", str(key.private_path))
    checked = CliRunner().invoke(main, ["report", "verify", str(run_dir / "attestation.intoto.jsonl"),
                                        "--key", str(key.public_path)], catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    assert re.search(r"verdict: +WARNED", checked.output), checked.output
    assert "NOT proven:   SOV-02, SOV-03 (not run by the auditor's choice)" in checked.output


def test_a_skipped_run_re_renders_byte_for_byte(no_probes_run: tuple[Result, Path], tmp_path: Path) -> None:
    _, run_dir = no_probes_run
    files = {"json": "result.json", "html": "report.html", "junit": "junit.xml", "sarif": "results.sarif",
             "oscal": "oscal-ar.json"}
    for format_name, file_name in files.items():
        again = tmp_path / f"again.{format_name}"
        rendered = CliRunner().invoke(main, ["report", "render", str(run_dir / "result.json"), "--format",
                                             format_name, "--out", str(again)], catch_exceptions=False)
        assert rendered.exit_code == 0, rendered.output
        assert again.read_bytes() == (run_dir / file_name).read_bytes(), f"{format_name} differs from {file_name}"
