"""The renderers: each format says the same thing, validates against its schema, and never runs input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
from report_samples import HOSTILE, make_evidence

from sovaudit.reports.formats import all_formats, get_format
from sovaudit.reports.html import HtmlFormat, evidence_ref
from sovaudit.reports.interface import FormatError
from sovaudit.reports.json_format import JsonFormat
from sovaudit.reports.junit import JunitFormat
from sovaudit.reports.sarif import SarifFormat

SARIF_SCHEMA = Path(__file__).parents[2] / "reports" / "schemas" / "sarif-2.1.0-subset.json"
JUNIT_XSD = Path(__file__).parent / "junit.xsd"


def refs():
    return {item.id: evidence_ref(item.manifest_entry(), item.body) for item in make_evidence()}


def test_json_is_canonical_and_versioned(result):
    first = JsonFormat().render(result)
    reordered = dict(reversed(list(result.items())))
    assert JsonFormat().render(reordered) == first
    assert json.loads(first)["schema"] == "sovaudit/result/v1"
    assert first.endswith(b"\n")


@pytest.mark.parametrize("fmt", all_formats(), ids=lambda f: f.name)
def test_every_format_names_the_field_of_a_malformed_result(fmt, result):
    result["controls"][1]["outcome"] = "MAYBE"
    with pytest.raises(FormatError, match=r"controls\[1\]\.outcome"):
        fmt.render(result)


@pytest.mark.parametrize("fmt", all_formats(), ids=lambda f: f.name)
def test_every_format_refuses_another_schema(fmt, result):
    result["schema"] = "sovaudit/result/v2"
    with pytest.raises(FormatError, match="schema"):
        fmt.render(result)


def test_get_format_knows_each_command_line_name():
    assert [get_format(n).file_name for n in ("json", "html", "junit", "sarif")] == [
        "result.json", "report.html", "junit.xml", "results.sarif"]
    with pytest.raises(KeyError, match="unknown format"):
        get_format("pdf")


def test_html_keeps_a_hostile_name_as_text(result):
    page = HtmlFormat(refs()).render(result).decode()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_is_self_contained_and_forbids_scripts(result):
    page = HtmlFormat(refs(), signing_key_id="ab" * 32).render(result).decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page), "no external asset may be loaded"
    assert "default-src 'none'" in page
    assert "@media print" in page


def test_html_shows_verdict_pillars_waiver_probe_matrix_and_provenance(result):
    page = HtmlFormat(refs(), signing_key_id="cd" * 32).render(result).decode()
    assert 'class="verdict FAIL"' in page
    for pillar in ("Data sovereignty", "Confidential computing", "Security controls"):
        assert pillar in page
    assert "carol@hospital.example" in page and "2027-03-31" in page  # waiver owner and expiry
    assert "POST https://storage.googleapis.com/storage/v1/b" in page  # probe: what was sent
    assert "HTTP 412" in page and "conditionNotMet" in page  # and what Google answered
    assert "ISO/IEC 27001:2022" in page and "164.312(e)(1)" in page
    assert "sha256:" + "ab" * 32 in page and "cd" * 32 in page  # policy digest and signing key id
    assert 'href="evidence/0002-compute-instances.aggregatedList.json"' in page


def test_html_never_links_an_evidence_path_that_leaves_the_bundle(result):
    bad = {"0002": evidence_ref({"id": "0002", "path": "javascript:alert(1)"})}
    page = HtmlFormat(bad).render(result).decode()
    assert "javascript:" not in page


def test_junit_validates_against_the_xsd(result):
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    document = etree.fromstring(JunitFormat().render(result))
    schema.assertValid(document)


def test_junit_maps_outcomes_to_failure_error_and_skipped(result):
    root = ET.fromstring(JunitFormat().render(result))
    cases = {case.get("name").split(":")[0]: case for case in root.iter("testcase")}
    assert cases["SEC-02"].find("failure") is not None
    assert cases["SEC-05"].find("error") is not None
    assert "owner" not in cases["SOV-01"].attrib and list(cases["SOV-01"]) == [cases["SOV-01"].find("system-out")]
    waived = cases["SOV-04"].find("skipped")
    assert waived is not None and "carol@hospital.example" in waived.get("message") and "2027-03-31" in waived.get("message")
    assert cases["SOV-03"].find("skipped") is not None
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("5", "1", "1", "2")


def test_junit_drops_characters_xml_cannot_carry(result):
    result["controls"][1]["findings"][0]["message"] = "bad\x00byte\x1b[31m"
    root = ET.fromstring(JunitFormat().render(result))  # would raise on an invalid character
    assert "badbyte[31m" in ET.tostring(root, encoding="unicode")


def test_sarif_validates_against_the_schema(result):
    schema = json.loads(SARIF_SCHEMA.read_text())
    paths = {ref.id: ref.path for ref in refs().values()}
    log = json.loads(SarifFormat(paths).render(result))
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(log)


def test_sarif_schema_rejects_what_sarif_forbids():
    schema = json.loads(SARIF_SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                                            "results": [{"message": {"text": "m"}, "level": "fatal"}]}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.0.0", "runs": []}, schema)


def test_sarif_has_a_rule_per_control_and_resource_locations(result):
    log = json.loads(SarifFormat().render(result))
    run = log["runs"][0]
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == [c["id"] for c in result["controls"]]
    failed = [r for r in run["results"] if r["ruleId"] == "SEC-02"]
    assert failed[0]["kind"] == "fail" and failed[0]["level"] == "error"
    assert failed[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].endswith(HOSTILE)
    waived = [r for r in run["results"] if r["ruleId"] == "SOV-04"][0]
    assert waived["suppressions"][0]["status"] == "accepted"
    incomplete = [r for r in run["results"] if r["ruleId"] == "SEC-05"][0]
    assert incomplete["kind"] == "fail" and incomplete["level"] == "error"  # incomplete never looks harmless
    assert all(run["results"][i]["ruleIndex"] == [c["id"] for c in result["controls"]].index(run["results"][i]["ruleId"])
               for i in range(len(run["results"])))


def test_the_sample_result_matches_the_shipped_result_schema(result):
    schema = json.loads((SARIF_SCHEMA.parent / "result-v1.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(json.loads(JsonFormat().render(result)))
    result["controls"][0]["pillar"] = "vibes"
    assert not validator.is_valid(result)


def _github_accepts(log: dict) -> None:
    """GitHub code scanning's documented upload requirements, checked one by one."""
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    for run in log["runs"]:
        assert run["tool"]["driver"]["name"]
        for sarif_result in run["results"]:
            assert sarif_result["ruleId"] and sarif_result["message"]["text"]
            physical = sarif_result["locations"][0]["physicalLocation"]
            assert physical["artifactLocation"]["uri"]
            assert isinstance(physical["region"]["startLine"], int) and physical["region"]["startLine"] >= 1


@pytest.mark.parametrize("include_passes", [False, True])
def test_sarif_meets_github_code_scanning_requirements(result, include_passes):
    schema = json.loads(SARIF_SCHEMA.read_text())
    log = json.loads(SarifFormat({ref.id: ref.path for ref in refs().values()}, include_passes).render(result))
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(log)
    _github_accepts(log)
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "policy.yaml"
               for r in log["runs"][0]["results"])


def test_sarif_schema_refuses_a_region_without_a_real_line():
    schema = json.loads(SARIF_SCHEMA.read_text())
    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"message": {"text": "m"}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": "policy.yaml"},
                                                                         "region": {"startLine": 0}}}]}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_sarif_emits_only_what_needs_attention_unless_asked_for_everything(result):
    default = json.loads(SarifFormat().render(result))["runs"][0]
    everything = json.loads(SarifFormat(include_passes=True).render(result))["runs"][0]
    assert {r["properties"]["outcome"] for r in default["results"]} <= {"FAIL", "ERROR", "WAIVED"}
    assert {r["ruleId"] for r in default["results"]} >= {"SEC-02", "SEC-05", "SOV-04"}
    assert "SOV-01" not in {r["ruleId"] for r in default["results"]}  # a pass
    assert {"pass", "notApplicable"} <= {r["kind"] for r in everything["results"]}
    assert len(everything["results"]) > len(default["results"])
    # Every control keeps its rule, so a clean run still names what it checked.
    assert len(default["tool"]["driver"]["rules"]) == len(result["controls"])


def test_sarif_fingerprints_tell_two_resources_of_one_rule_apart(result):
    failing = result["controls"][1]
    first = dict(failing["findings"][0])
    failing["findings"] = [first, {**first, "resource": "projects/p/buckets/other"}]
    log = json.loads(SarifFormat().render(result))
    hashes = [r["partialFingerprints"]["primaryLocationLineHash"] for r in log["runs"][0]["results"]
              if r["ruleId"] == failing["id"]]
    assert len(hashes) == 2 and len(set(hashes)) == 2


def test_sarif_location_is_the_bundles_policy_file():
    from sovaudit.reports.bundle import POLICY_FILE
    from sovaudit.reports.sarif import POLICY_ARTIFACT

    assert POLICY_ARTIFACT == POLICY_FILE


def test_junit_reports_measured_times_and_the_auditing_host(result):
    result["hostname"] = "ci-runner-7"
    for index, control in enumerate(result["controls"]):
        control["duration_seconds"] = 0.25 * (index + 1)
    root = ET.fromstring(JunitFormat().render(result))
    suite = root.find("testsuite")
    assert suite.get("hostname") == "ci-runner-7"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["target"] == result["target"]
    times = [float(case.get("time")) for case in root.iter("testcase")]
    assert times == [0.25 * (i + 1) for i in range(len(result["controls"]))]
    assert float(suite.get("time")) == pytest.approx(sum(times)) == float(root.get("time"))


@pytest.mark.parametrize("bad", [None, -1, "3", float("nan"), True])
def test_junit_never_writes_a_url_as_hostname_or_an_unusable_time(result, bad):
    result["controls"][0]["duration_seconds"] = bad
    root = ET.fromstring(JunitFormat().render(result))
    suite = root.find("testsuite")
    assert suite.get("hostname") == "localhost" and "://" not in suite.get("hostname")
    assert root.find("testsuite/testcase").get("time") == "0.000000"


def test_html_shows_each_vms_configuration_beside_its_launch_attestation(result):
    vm = "projects/fed-node-us/zones/us-central1-a/instances/worker-0"
    other = "projects/fed-node-us/zones/us-central1-b/instances/worker-1"
    base = next(c for c in result["controls"])
    result = {**result, "controls": [*result["controls"],
        {**base, "id": "CC-02", "pillar": "confidential", "outcome": "PASS", "findings": [
            {"outcome": "PASS", "resource": vm, "message": "worker-0: SEV on n2d-standard-4", "evidence": ["0001"]},
            {"outcome": "PASS", "resource": other, "message": "worker-1: SEV on n2d-standard-4", "evidence": []}]},
        {**base, "id": "CC-04", "pillar": "confidential", "outcome": "FAIL", "findings": [
            {"outcome": "FAIL", "resource": vm, "message": "worker-0: sevPolicy.debugEnabled is true",
             "evidence": ["0002"]},
            {"outcome": "ERROR", "resource": "projects/fed-node-us", "message": "not about one VM", "evidence": []}]}]}
    html = HtmlFormat().render(result).decode()
    table = html.split('id="vm-attestation"', 1)[1].split("</section>", 1)[0]
    row = table.split(vm, 1)[1].split("</tr>", 1)[0]
    assert "SEV on n2d-standard-4" in row and "sevPolicy.debugEnabled is true" in row
    assert "no finding" in table.split(other, 1)[1].split("</tr>", 1)[0]   # worker-1 has no CC-04 finding here
    assert "not about one VM" not in table
