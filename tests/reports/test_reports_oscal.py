"""OSCAL Assessment Results and POA&M: valid under compliance-trestle's models, faithful to result.json.

trestle is a test dependency only (the `test` extra); the product writes the documents by hand and
these tests are what holds them to NIST's models (`extra='forbid'`, UUID v4/v5, aware times,
non-empty arrays).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from report_samples import make_evidence, make_result
from trestle.oscal.assessment_results import Model as ARModel
from trestle.oscal.poam import Model as PoamModel

from sovaudit.reports.bundle import write_bundle
from sovaudit.reports.commands import report
from sovaudit.reports.interface import FormatError
from sovaudit.reports.oscal import NothingToPlan, assessment_results, poam
from sovaudit.simulator.matrix import run_row
from sovaudit.simulator.node import list_scenarios

SCENARIOS = {s.name: s for s in list_scenarios()}


def _manifest() -> dict[str, Any]:
    return {"evidence": [item.manifest_entry() for item in make_evidence()]}


def _result_of(ar: dict[str, Any]) -> dict[str, Any]:
    [one] = ar["assessment-results"]["results"]
    return one


def _finding(ar: dict[str, Any], control_id: str) -> dict[str, Any] | None:
    found = [f for f in _result_of(ar).get("findings", []) if f["target"]["target-id"] == control_id]
    assert len(found) <= 1
    return found[0] if found else None


def _props(item: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in item.get("props", []) if p["name"] == name]


def _uuids(document: Any) -> list[str]:
    if isinstance(document, dict):
        return [v for k, v in document.items() if k.endswith("uuid") and isinstance(v, str)] + [
            u for v in document.values() for u in _uuids(v)]
    if isinstance(document, list):
        return [u for v in document for u in _uuids(v)]
    return []


def test_the_sample_result_is_valid_oscal_and_each_outcome_maps_as_documented() -> None:
    ar = assessment_results(make_result(), _manifest())
    ARModel.model_validate(ar)
    result = _result_of(ar)
    assert result["reviewed-controls"] == {"control-selections": [{"include-all": {}}]}
    assert ar["assessment-results"]["import-ap"] == {"href": "#"}
    assert ar["assessment-results"]["metadata"]["oscal-version"] == "1.1.2"
    assert "20261126T161800Z-3f9a1c" in ar["assessment-results"]["metadata"]["title"]
    assert "fed-node-us" in ar["assessment-results"]["metadata"]["title"]
    states = {cid: (f := _finding(ar, cid)) and (f["target"]["status"]["state"], f["target"]["status"]["reason"])
              for cid in ("SOV-01", "SEC-02", "SEC-05", "SOV-04", "SOV-03")}
    assert states == {"SOV-01": ("satisfied", "pass"), "SEC-02": ("not-satisfied", "fail"),
                      "SEC-05": ("not-satisfied", "other"), "SOV-04": ("not-satisfied", "fail"),
                      "SOV-03": None}  # NOT_APPLICABLE: observed, never claimed satisfied
    assert "Incomplete" in _finding(ar, "SEC-05")["target"]["status"]["remarks"]
    observed = {_props(o, "control-id")[0]: _props(o, "outcome")[0] for o in result["observations"]}
    assert observed["SOV-03"] == "NOT_APPLICABLE" and len(observed) == 5
    risks = {_props(r, "control-id")[0]: r["status"] for r in result["risks"]}
    assert risks == {"SEC-02": "open", "SEC-05": "investigating", "SOV-04": "deviation-approved"}
    for cid in risks:
        assert _finding(ar, cid)["related-risks"] == [
            {"risk-uuid": next(r["uuid"] for r in result["risks"] if _props(r, "control-id") == [cid])}]


def test_findings_carry_the_framework_references_and_point_at_their_observation() -> None:
    sample = make_result()
    ar = assessment_results(sample, _manifest())
    observations = {o["uuid"] for o in _result_of(ar)["observations"]}
    for control in sample["controls"]:
        finding = _finding(ar, control["id"])
        if finding is None:
            continue
        refs = {(p.get("class"), p["value"]) for p in finding["props"] if p["name"] == "framework-reference"}
        expected = {(fw, ref) for fw, refs_ in control["frameworks"].items() for ref in refs_}
        assert refs == expected and expected, control["id"]
        [related] = finding["related-observations"]
        assert related["observation-uuid"] in observations


def test_observations_name_each_evidence_file_with_its_sha256_and_collection_time() -> None:
    sample = make_result()
    entries = {e["id"]: e for e in _manifest()["evidence"]}
    ar = assessment_results(sample, _manifest())
    for control in sample["controls"]:
        [observation] = [o for o in _result_of(ar)["observations"] if _props(o, "control-id") == [control["id"]]]
        cited = sorted({*control["evidence"], *(e for f in control["findings"] for e in f["evidence"])})
        evidence = observation.get("relevant-evidence", [])
        assert [e["href"] for e in evidence] == [entries[eid]["path"] for eid in cited]
        for item, eid in zip(evidence, cited, strict=True):
            assert entries[eid]["sha256"] in item["description"] and _props(item, "sha256") == [entries[eid]["sha256"]]
        if cited:
            latest = max(entries[eid]["collected_at"] for eid in cited)
            assert observation["collected"].startswith(latest.replace("Z", "")[:19])
    with_evidence = [o for o in _result_of(ar)["observations"] if "relevant-evidence" in o]
    assert with_evidence, "the sample cites evidence; no observation names any"


def test_without_a_manifest_the_evidence_is_named_but_no_digest_is_invented() -> None:
    ar = assessment_results(make_result())
    ARModel.model_validate(ar)
    for observation in _result_of(ar)["observations"]:
        for item in observation.get("relevant-evidence", []):
            assert "href" not in item and "sha256 unknown" in item["description"]


def test_rendering_is_deterministic_and_every_uuid_is_v5_and_unique() -> None:
    one = json.dumps(assessment_results(make_result(), _manifest()))
    two = json.dumps(assessment_results(copy.deepcopy(make_result()), _manifest()))
    assert one == two
    ids = _uuids(json.loads(one))
    assert ids and all(uuid.UUID(u).version == 5 for u in ids)
    declared = re.findall(r'"uuid": "([^"]+)"', one)
    assert len(declared) == len(set(declared)) >= len(make_result()["controls"]) * 2
    other = make_result()
    other["run_id"] = "20261127T000000Z-000000"
    assert not set(_uuids(assessment_results(other, _manifest()))) & set(ids)


def test_the_poam_has_a_risk_and_item_per_open_or_waived_control() -> None:
    document = poam(make_result(), _manifest())
    PoamModel.model_validate(document)
    plan = document["plan-of-action-and-milestones"]
    risks = {_props(r, "control-id")[0]: r for r in plan["risks"]}
    assert {cid: r["status"] for cid, r in risks.items()} == {
        "SEC-02": "open", "SEC-05": "investigating", "SOV-04": "deviation-approved"}
    waived = risks["SOV-04"]
    waiver = next(c for c in make_result()["controls"] if c["id"] == "SOV-04")["waiver"]
    assert waived["deadline"] == f"{waiver['expires']}T23:59:59+00:00"
    assert _props(waived, "waiver-owner") == [waiver["owner"]]
    assert _props(waived, "waiver-justification") == [" ".join(waiver["justification"].split())]
    assert "deadline" not in risks["SEC-02"] and risks["SEC-02"]["remediations"][0]["description"]
    items = {i["related-risks"][0]["risk-uuid"] for i in plan["poam-items"]}
    assert items == {r["uuid"] for r in plan["risks"]}
    # The same risk has the same uuid in the AR, so a GRC tool can join the two documents.
    assert {r["uuid"] for r in _result_of(assessment_results(make_result()))["risks"]} == items


def _all_pass() -> dict[str, Any]:
    sample = make_result()
    for control in sample["controls"]:
        control["outcome"] = "PASS"
        control["waiver"] = None
        for finding in control["findings"]:
            finding["outcome"] = "PASS"
    sample["verdict"] = "PASS"
    return sample


def test_nothing_open_means_no_poam_and_no_poam_in_the_bundle(tmp_path: Path) -> None:
    with pytest.raises(NothingToPlan):
        poam(_all_pass())
    run = write_bundle(tmp_path, _all_pass(), make_evidence(), {})
    assert (run / "oscal-ar.json").is_file() and not (run / "oscal-poam.json").exists()
    ARModel.model_validate(json.loads((run / "oscal-ar.json").read_text()))
    assert "risks" not in _result_of(json.loads((run / "oscal-ar.json").read_text()))
    rendered = CliRunner().invoke(report, ["render", str(run / "result.json"), "--format", "poam"])
    assert rendered.exit_code == 0 and rendered.stdout == "" and "no POA&M written" in rendered.stderr


@pytest.mark.parametrize(("target", "flag", "expected"), [
    ("gcp", None, "false"), ("http://127.0.0.1:8080", None, "true"), ("gcp", True, "true"),
    ("GCP", None, "true"), ("gcp ", None, "true")])
def test_a_run_is_real_only_when_its_target_is_exactly_gcp(target: str, flag: bool | None, expected: str) -> None:
    sample = make_result()
    sample["target"] = target
    if flag is not None:
        sample["simulated"] = flag
    ar = assessment_results(sample)
    ARModel.model_validate(ar)
    assert _props(_result_of(ar), "simulated") == [expected]
    assert ("SIMULATED" in ar["assessment-results"]["metadata"]["title"]) == (expected == "true")
    assert ("SIMULATED" in _result_of(ar)["description"]) == (expected == "true")


@pytest.mark.parametrize("when", ["2026-11-26T16:18:00", "yesterday", "", None])
def test_a_time_without_a_zone_or_unparsable_is_refused_naming_the_field(when: str | None) -> None:
    sample = make_result()
    sample["started_at"] = when
    with pytest.raises(FormatError, match="started_at"):
        assessment_results(sample)


def test_hostile_names_and_text_still_make_valid_documents() -> None:
    sample = make_result()
    control = sample["controls"][1]
    control["id"] = "sovaudit:SEC 02\n"
    control["title"] = "  two\nlines  "
    control["frameworks"] = {"NIST 800-53": ["SC-7 "], "GDPR": ["", "Art. 44"]}
    control["findings"][0]["message"] = "\t<b>x</b>\r\n  y "
    sample["project"] = ""
    ar = assessment_results(sample)
    ARModel.model_validate(ar)
    PoamModel.model_validate(poam(sample))
    target = [f["target"]["target-id"] for f in _result_of(ar)["findings"]]
    assert all(re.fullmatch(r"[_A-Za-z][_A-Za-z.0-9-]*", t) for t in target)


def test_render_format_oscal_in_a_bundle_reproduces_the_signed_file(tmp_path: Path) -> None:
    run = write_bundle(tmp_path, make_result(), make_evidence(), {})
    for name, fmt in (("oscal-ar.json", "oscal"), ("oscal-poam.json", "poam")):
        rendered = CliRunner().invoke(report, ["render", str(run / "result.json"), "--format", fmt])
        assert rendered.exit_code == 0, rendered.output
        assert rendered.stdout_bytes == (run / name).read_bytes()


@pytest.mark.parametrize(("scenario", "open_risks", "waived"), [
    (None, set(), set()),
    ("egress-project-bucket", {"SEC-04"}, set()),
    ("waiver-valid", set(), {"SOV-04"}),
])
def test_a_simulator_run_writes_valid_oscal_matching_its_result(
        scenario: str | None, open_risks: set[str], waived: set[str], tmp_path: Path) -> None:
    row = run_row(SCENARIOS[scenario] if scenario else None, out_dir=tmp_path)
    [run] = tmp_path.glob("run-*")
    ar = json.loads((run / "oscal-ar.json").read_text())
    ARModel.model_validate(ar)
    result = json.loads((run / "result.json").read_text())
    for control in result["controls"]:
        finding = _finding(ar, control["id"])
        if control["outcome"] == "NOT_APPLICABLE":   # an observation only (SOV-09, CC-05 on the us pack)
            assert finding is None
            continue
        assert finding is not None and _props(finding, "outcome") == [control["outcome"]]
        assert (finding["target"]["status"]["state"] == "satisfied") == (control["outcome"] == "PASS")
    assert _props(_result_of(ar), "simulated") == ["true"]
    risks = {_props(r, "control-id")[0]: r["status"] for r in _result_of(ar).get("risks", [])}
    assert risks == {**{c: "open" for c in open_risks}, **{c: "deviation-approved" for c in waived}}
    assert row.exit_code == (1 if open_risks else 0)
    poam_path = run / "oscal-poam.json"
    assert poam_path.exists() == bool(risks)
    if risks:
        PoamModel.model_validate(json.loads(poam_path.read_text()))
    manifest = json.loads((run / "manifest.json").read_text())
    paths = {e["path"]: e["sha256"] for e in manifest["evidence"]}
    cited = [e for o in _result_of(ar)["observations"] for e in o.get("relevant-evidence", [])]
    assert cited and all(paths[e["href"]] == _props(e, "sha256")[0] for e in cited)
