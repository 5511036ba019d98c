"""JUnit XML: one testcase per control, so any CI system shows the gate's verdict natively.

FAIL → <failure>, ERROR → <error> (incomplete evidence is never a pass), WAIVED, NOT_APPLICABLE and
SKIPPED (not run by choice: --no-probes, --posture-only) → <skipped> carrying the outcome and reason. Built with ElementTree so every attribute and text is escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from sovaudit.reports.interface import ResultFormat, check_result
from sovaudit.reports.view import control_reason, findings, strip_control_chars, summary, text


def _clean(value: Any) -> str:
    return strip_control_chars(text(value))


def _seconds(control: Mapping[str, Any]) -> float:
    """The control's recorded duration_seconds; 0 when the result predates it or the value is unusable."""
    value = control.get("duration_seconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        return 0.0
    return float(value)


def _time(seconds: float) -> str:
    # JUnit's time is decimal seconds; six places keep microseconds and a stable text for re-rendering.
    return f"{seconds:.6f}"


def _details(control: Mapping[str, Any]) -> str:
    lines = []
    for finding in findings(control):
        evidence = ", ".join(str(e) for e in finding.get("evidence") or [])
        line = f"[{_clean(finding.get('outcome'))}] {_clean(finding.get('resource'))}: {_clean(finding.get('message'))}"
        lines.append(f"{line} (evidence {evidence})" if evidence else line)
    if control.get("remediation"):
        lines.append(f"Remediation: {_clean(control.get('remediation'))}")
    return "\n".join(lines)


class JunitFormat(ResultFormat):
    name = "junit"
    file_name = "junit.xml"
    media_type = "application/xml"

    def render(self, result: Mapping[str, Any]) -> bytes:
        check_result(result)
        counts = summary(result)
        controls = result["controls"]
        totals = {
            "tests": str(len(controls)),
            "failures": str(counts["FAIL"]),
            "errors": str(counts["ERROR"]),
            "skipped": str(counts["WAIVED"] + counts["NOT_APPLICABLE"] + counts["SKIPPED"]),
        }
        policy = result.get("policy") or {}
        suite_name = f"sovaudit {_clean(policy.get('name')) or 'policy'}"
        total_time = _time(sum(_seconds(control) for control in controls))
        root = ET.Element("testsuites", {"name": "sovaudit", **totals, "time": total_time})
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": suite_name,
                **totals,
                "time": total_time,
                "timestamp": _clean(result.get("started_at")),
                # The machine that ran the audit, as recorded in the result (never the target URL, which
                # is a property below); "localhost" for results that predate the field, as JUnit needs one.
                "hostname": _clean(result.get("hostname")) or "localhost",
            },
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in (
            ("run_id", result.get("run_id")),
            ("target", result.get("target")),
            ("verdict", result.get("verdict")),
            ("project", result.get("project")),
            ("policy_sha256", policy.get("sha256")),
            ("tool_version", (result.get("tool") or {}).get("version")),
            *_scope_properties(result.get("scope") or {}),
        ):
            ET.SubElement(properties, "property", {"name": key, "value": _clean(value)})
        for control in controls:
            pillar = _clean(control.get("pillar")) or "controls"
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": f"sovaudit.{pillar}",
                    "name": f"{_clean(control['id'])}: {_clean(control.get('title'))}".rstrip(": "),
                    "time": _time(_seconds(control)),
                },
            )
            outcome = control["outcome"]
            reason = _clean(control_reason(control))
            if outcome == "FAIL":
                element = ET.SubElement(case, "failure", {"message": reason, "type": "FAIL"})
                element.text = _details(control)
            elif outcome == "ERROR":
                element = ET.SubElement(case, "error", {"message": reason, "type": "INCOMPLETE"})
                element.text = _details(control)
            elif outcome in ("WAIVED", "NOT_APPLICABLE", "SKIPPED"):
                ET.SubElement(case, "skipped", {"message": f"{outcome}: {reason}"})
            details = _details(control)
            if details and outcome == "PASS":
                ET.SubElement(case, "system-out").text = details
        ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _scope_properties(scope: dict[str, Any]) -> list[tuple[str, Any]]:
    """The jobs judged, the window and what the scope left out, so a CI reader sees what was judged."""
    window = scope.get("window") or {}
    jobs = [str(ref.get("job", "")) for ref in scope.get("jobs") or ()] or ([scope["job"]] if scope.get("job") else [])
    return [("jobs_judged", ", ".join(jobs)), ("window", f"{window.get('start')} .. {window.get('end')}"),
            *[("not_judged", text) for text in scope.get("not_judged") or ()],
            *[("window_gap", text) for text in scope.get("window_gaps") or ()]]
