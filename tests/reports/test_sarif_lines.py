"""SARIF results point at the line of the policy pack that states the requirement (issue 13 item 10):
not line 1 (`apiVersion`) for every alert, and the same line when the bundle is re-rendered."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sovaudit.audit.commands import verify
from sovaudit.audit.registry import all_controls
from sovaudit.reports.policy_lines import PolicyLines
from sovaudit.reports.sarif import SarifFormat

PACK = Path(__file__).parents[2] / "policies" / "us-node.yaml"
WAIVER = """\
  - control: SOV-04
    resource: "projects/_/buckets/fed-node-us-raw-vcfs"
    owner: dpo@example.org
    justification: legacy bucket, migration tracked in CHG-2291
    expires: 2099-12-31
"""


def line_text(text: str, line: int) -> str:
    return text.splitlines()[line - 1]


def test_each_control_points_at_the_field_it_checks_in_the_shipped_pack() -> None:
    text = PACK.read_text()
    lines = PolicyLines.of(text.encode())
    expected = {"SOV-01": "allowed_policy_values:", "SEC-03": "service_account:", "SEC-01": "name: accessPolicies/",
                "CC-02": "required_type", "SEC-09": "egress:", "SEC-08": "allowed_locations: [us-central1]",
                "SOV-07": "allowed_countries: [US]", "SOV-08": "allowed_reasons: [CUSTOMER_INITIATED_ACCESS"}
    for control_id, words in expected.items():
        assert words in line_text(text, lines.line_for({"id": control_id, "outcome": "FAIL"})), control_id
    # Every registered control (a newer one through its pillar's section) lands past apiVersion.
    for registered in all_controls():
        meta = registered.meta
        assert lines.line_for({"id": meta.id, "pillar": meta.pillar.value, "outcome": "FAIL"}) > 1, meta.id


def test_a_waived_result_points_at_its_waiver() -> None:
    text = PACK.read_text().replace("waivers: []", "waivers:\n" + WAIVER.rstrip("\n"))
    lines = PolicyLines.of(text.encode())
    control = {"id": "SOV-04", "pillar": "sovereignty", "outcome": "WAIVED",
               "waiver": {"control": "SOV-04", "resource": "projects/_/buckets/fed-node-us-raw-vcfs"}}
    assert line_text(text, lines.line_for(control)).strip() == "- control: SOV-04"
    assert "buckets:" in line_text(text, lines.line_for(dict(control, outcome="FAIL")))


def test_without_a_readable_pack_every_result_stays_at_line_1() -> None:
    for stored in (None, b"\xff\xfe not utf-8", b"a: [1"):
        assert PolicyLines.of(stored).line_for({"id": "SEC-03", "outcome": "FAIL"}) == 1


def test_a_real_bundle_places_each_alert_on_its_requirement_and_re_renders_identically(sim_factory,
                                                                                     tmp_path: Path) -> None:
    server = sim_factory("us", ("vm-public-ip",))
    ran = CliRunner().invoke(verify, ["--policy", "us", "--target", server.url, "--no-probes", "--out",
                                      str(tmp_path / "out")])
    assert ran.exit_code == 1, ran.output
    [run] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    policy_text = (run / "policy.yaml").read_text()
    results = json.loads((run / "results.sarif").read_text())["runs"][0]["results"]
    sec02 = [r for r in results if r["ruleId"] == "SEC-02"]
    assert sec02
    for result in sec02:
        line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
        assert "subnetwork:" in line_text(policy_text, line)
    again = SarifFormat({}, policy_lines=PolicyLines.of((run / "policy.yaml").read_bytes()))
    document = json.loads((run / "result.json").read_text())
    assert {r["locations"][0]["physicalLocation"]["region"]["startLine"]
            for r in json.loads(again.render(document))["runs"][0]["results"]} == \
        {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}
