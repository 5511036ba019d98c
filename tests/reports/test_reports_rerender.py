"""`report render result.json --format X` reproduces the bundle's file byte for byte, for every format.

The bundle is a real one: a verify against the simulator staging a failing route, so findings,
frameworks, evidence links and a POA&M are all present. Any in-memory detail the bundle writer saw
but result.json does not carry (dict order, tuples, the render machine) would show here as a diff.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sovaudit.audit.commands import verify
from sovaudit.reports.commands import report

_FILES = {"json": "result.json", "html": "report.html", "junit": "junit.xml", "sarif": "results.sarif",
          "oscal": "oscal-ar.json", "poam": "oscal-poam.json"}


def test_every_format_re_renders_the_bundle_byte_for_byte(sim_factory, tmp_path: Path) -> None:
    server = sim_factory("us", ("bq-copy-to-foreign-dataset",))
    runner = CliRunner()
    ran = runner.invoke(verify, ["--policy", "us", "--target", server.url, "--out", str(tmp_path / "out")])
    assert ran.exit_code == 1, ran.output
    [run] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    for format_name, file_name in _FILES.items():
        assert (run / file_name).is_file(), file_name
        again = tmp_path / f"again.{format_name}"
        rendered = runner.invoke(report, ["render", str(run / "result.json"), "--format", format_name,
                                          "--out", str(again)])
        assert rendered.exit_code == 0, rendered.output
        assert again.read_bytes() == (run / file_name).read_bytes(), f"{format_name} differs from {file_name}"


def test_a_real_bundle_is_ready_for_ci(sim_factory, tmp_path: Path) -> None:
    """The bundle's JUnit names this machine and real times; its SARIF has only alerts, each placed."""
    import json
    import socket
    from xml.etree import ElementTree as ET

    server = sim_factory("us", ("bq-copy-to-foreign-dataset",))
    ran = CliRunner().invoke(verify, ["--policy", "us", "--target", server.url, "--out", str(tmp_path / "out")])
    assert ran.exit_code == 1, ran.output
    [run] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("hostname") == socket.gethostname()
    assert float(suite.get("time") or 0) > 0
    log = json.loads((run / "results.sarif").read_text())
    results = log["runs"][0]["results"]
    assert results and all(r["kind"] == "fail" for r in results)
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in results)
