"""The first screen of the HTML report and the console: what, where, when, by whom, verdict and why."""

from __future__ import annotations

import copy
import io
from typing import Any

from lxml import html
from report_samples import make_result

from sovaudit.audit.commands import print_summary
from sovaudit.reports.headline import headline, verdict_reason
from sovaudit.reports.html import HtmlFormat


def first_screen(result: dict[str, Any]) -> Any:
    page = html.fromstring(HtmlFormat().render(result))
    # The first section of the body (after the SIMULATED strip), not a table near the bottom.
    sections = page.xpath("//body/section")
    assert sections and sections[0].get("id") == "first-screen"
    return sections[0]


def passing(result: dict[str, Any], *keep: str) -> dict[str, Any]:
    changed = copy.deepcopy(result)
    changed["controls"] = [c for c in changed["controls"] if c["outcome"] in ("PASS", *keep)]
    return changed


def test_the_first_section_names_node_job_window_principal_target_and_why() -> None:
    result = make_result() | {"node": {"project": "fed-node-us", "jurisdiction": "United States",
                                       "regions": ["us-central1"]}, "hostname": "ci-runner-7"}
    first = first_screen(result)
    facts = {cell.get("id"): cell.text_content() for cell in first.xpath(".//td[@id]")}
    assert "fed-node-us" in facts["fact-node"] and "us-central1" in facts["fact-node"]
    assert "United States" in facts["fact-node"]
    assert facts["fact-jobs"] == "preprocess-genomes-001"
    assert facts["fact-window"] == "2026-11-26T15:00:00Z .. 2026-11-26T16:18:00Z"
    assert facts["fact-principal"] == "alice@hospital.example on ci-runner-7"
    assert facts["fact-target"].startswith("simulator at http://127.0.0.1:8080")
    assert "2026-11-26T16:18:04Z" in facts["fact-generated"]
    assert facts["fact-policy"] == "us-node sha256:" + "ab" * 32
    assert first.get_element_by_id("verdict-reason").text_content().startswith("SEC-02 vm <script>")


def test_a_fail_banner_names_the_failing_controls_and_the_incomplete_ones() -> None:
    result = make_result()
    first = first_screen(result)
    assert first.xpath(".//*[@class='word']")[0].text_content() == "FAIL"
    reason = first.get_element_by_id("verdict-reason").text_content()
    assert reason.startswith("SEC-02 vm <script>alert(1)</script> has an external address")
    assert "also incomplete: SEC-05" in reason and "accepted by waiver: SOV-04" in reason


def test_an_incomplete_banner_says_which_evidence_is_missing() -> None:
    result = passing(make_result(), "ERROR")
    assert headline(result).verdict == "INCOMPLETE"
    assert verdict_reason(result).startswith("evidence missing or incomplete for SEC-05 resourcemanager")


def test_a_result_written_before_warned_shows_warned_like_its_attestation() -> None:
    # Stored verdict PASS (older writer), but a control is waived: the attestation said WARNED.
    result = passing(make_result(), "WAIVED") | {"verdict": "PASS"}
    first = first_screen(result)
    assert first.xpath(".//*[@class='word']")[0].text_content() == "WARNED"
    assert "1 failure accepted by waiver: SOV-04 (waived by carol@hospital.example until 2027-03-31" in \
        first.get_element_by_id("verdict-reason").text_content()


def test_a_clean_run_says_every_control_passed() -> None:
    result = passing(make_result())
    assert (headline(result).verdict, verdict_reason(result)) == ("PASS", "all 1 control passed")


def test_a_pass_names_what_the_pack_said_does_not_apply() -> None:
    result = passing(make_result())
    result["controls"].append({**result["controls"][0], "id": "SOV-09", "outcome": "NOT_APPLICABLE"})
    assert headline(result).verdict == "PASS"
    assert verdict_reason(result) == "all 1 control passed; 1 control not applicable by policy: SOV-09"


def test_the_console_starts_with_the_facts_and_the_verdict_line() -> None:
    stream = io.StringIO()
    print_summary(make_result(), stream=stream)
    lines = stream.getvalue().splitlines()
    assert lines[0].strip().startswith("node: project fed-node-us")
    assert lines[1].strip().startswith("target: simulator at http://127.0.0.1:8080")
    assert "preprocess-genomes-001" in lines[2]
    assert "alice@hospital.example" in lines[3]
    assert lines[4].startswith("verdict: FAIL: SEC-02 vm")


def test_the_footer_points_only_into_the_bundle_and_shows_no_policy_path() -> None:
    result = make_result()
    result["policy"]["path"] = "/home/alice/.venv/lib/python3.11/site-packages/sovaudit/policies/us-node.yaml"
    page = HtmlFormat(signing_key_id="ab12").render(result).decode()
    assert "site-packages" not in page and "/home/alice" not in page
    assert "docs/verifying-a-report.md" not in page
    links = html.fromstring(page.encode()).xpath("//a/@href")
    assert all(link.startswith(("#", "evidence/")) or link in ("attestation.intoto.jsonl", "policy.yaml")
               for link in links), links


def test_a_run_with_many_failures_names_each_failing_control_once() -> None:
    result = make_result()
    template = next(c for c in result["controls"] if c["outcome"] == "FAIL")
    result["controls"] = [template | {"id": f"SEC-{n:02d}"} for n in range(1, 9)]
    reason = verdict_reason(result)
    assert reason.count("has an external address") == 5
    assert reason.endswith("; and SEC-06, SEC-07, SEC-08")
