"""Small readings of a result dict shared by the renderers, so each format says the same thing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PILLARS = ("sovereignty", "confidential", "controls", "integrity")
PILLAR_TITLES = {
    "sovereignty": "Data sovereignty",
    "confidential": "Confidential computing",
    "controls": "Security controls",
    "integrity": "Processing integrity",
}
FRAMEWORKS = ("GDPR", "HIPAA", "NIST-800-53", "ISO27001-2022")
FRAMEWORK_TITLES = {
    "GDPR": "GDPR",
    "HIPAA": "HIPAA Security Rule",
    "NIST-800-53": "NIST SP 800-53",
    "ISO27001-2022": "ISO/IEC 27001:2022",
}

#: every control outcome, in the order the reports list them
OUTCOMES = ("PASS", "FAIL", "ERROR", "WAIVED", "NOT_APPLICABLE", "SKIPPED")
#: outcomes that let a gate pass but leave something unproven or accepted: the run is WARNED
#: (in-toto test-result `warnedTests`). SKIPPED counts whatever the control's severity: a promise
#: the user chose not to test is not proven, and severity does not change that.
WARNED_OUTCOMES = ("WAIVED", "SKIPPED")
#: the signed policy pack says the control does not apply (DESIGN §4: "passes, shown"): listed in
#: every report with its reason, in none of the attestation's test lists, and no change to the verdict.
#: Optional evidence a pack does not ask for (SOV-09 without a workload, CC-05 with in-guest
#: attestation off) would otherwise make every run of such a pack WARNED and teach readers to ignore it.
NOT_TESTED_OUTCOMES = ("NOT_APPLICABLE",)
#: outcomes that fail the gate (ERROR is incomplete evidence: never a pass)
FAILED_OUTCOMES = ("FAIL", "ERROR")


def verdict_of(outcomes: Iterable[Any]) -> str:
    """FAIL beats INCOMPLETE beats WARNED beats PASS; no outcome at all is INCOMPLETE, never PASS.

    The one rule behind result.json's `verdict`, every report's banner and the attestation's
    `result` (PASSED/WARNED/FAILED), so no two of them can disagree about a run.
    """
    seen = {str(o) for o in outcomes}
    if "FAIL" in seen:
        return "FAIL"
    if not seen or "ERROR" in seen or not seen <= set(OUTCOMES):
        # An outcome nobody knows (a newer or edited result) is not proof of anything.
        return "INCOMPLETE"
    if seen & set(WARNED_OUTCOMES):
        return "WARNED"
    if seen <= set(NOT_TESTED_OUTCOMES):
        return "INCOMPLETE"   # nothing was tested at all: not a pass
    return "PASS"


def result_verdict(result: Mapping[str, Any]) -> str:
    """The verdict of a result dict, recomputed from its controls (a result.json written before
    WARNED existed says PASS for a waived run; the banner must say what the attestation says)."""
    return verdict_of(c.get("outcome") for c in result.get("controls") or [] if isinstance(c, Mapping))


def text(value: Any) -> str:
    """A display string for an optional field (None → '')."""
    return "" if value is None else str(value)


def waiver_text(waiver: Mapping[str, Any] | None) -> str:
    if not waiver:
        return ""
    owner = text(waiver.get("owner")) or "an unnamed owner"
    expires = text(waiver.get("expires")) or "no expiry"
    justification = text(waiver.get("justification"))
    line = f"waived by {owner} until {expires}"
    return f"{line}: {justification}" if justification else line


def control_reason(control: Mapping[str, Any]) -> str:
    """One line saying why a control has its outcome: the first telling finding, or the waiver."""
    outcome = control.get("outcome")
    if outcome == "WAIVED":
        reason = waiver_text(control.get("waiver"))
        if reason:
            return reason
    findings = [f for f in control.get("findings") or [] if isinstance(f, Mapping)]
    telling = [f for f in findings if f.get("outcome") == outcome] or findings
    if telling:
        first = telling[0]
        message = text(first.get("message")) or text(first.get("resource"))
        more = len(telling) - 1
        return f"{message} (and {more} more)" if more > 0 else message
    if outcome == "NOT_APPLICABLE":
        return "the policy says this control does not apply"
    if outcome == "SKIPPED":
        return "not run by choice: nothing was proven"
    return text(outcome).lower().replace("_", " ")


def findings(control: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in control.get("findings") or [] if isinstance(f, Mapping)]


# The per-VM view of the confidential pillar: CC-02 judges each VM's configuration, CC-04 its launch
# attestation report; both name the VM by the same resource, so a row is one VM.
VM_CONFIGURATION, VM_ATTESTATION = "CC-02", "CC-04"


def vm_attestation_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per VM with its configuration finding (CC-02) beside its launch attestation finding (CC-04),
    read from result.json alone so a re-rendered report shows the same table. Findings that are not
    about one VM (a project-level ERROR, a change to a VM) stay in their control's card."""
    by_control = {c.get("id"): findings(c) for c in result.get("controls") or [] if isinstance(c, Mapping)}
    rows: dict[str, dict[str, Any]] = {}
    for control_id, column in ((VM_CONFIGURATION, "configuration"), (VM_ATTESTATION, "attestation")):
        for finding in by_control.get(control_id, []):
            resource = text(finding.get("resource"))
            if "/instances/" not in resource:
                continue
            row = rows.setdefault(resource, {"resource": resource, "configuration": None, "attestation": None})
            if row[column] is None:   # the VM's own finding comes first; later ones are changes to it
                row[column] = finding
    return [rows[k] for k in sorted(rows)]


def summary(result: Mapping[str, Any]) -> dict[str, int]:
    """Counts per outcome, computed from the controls (never trusted from the summary field)."""
    counts = {outcome: 0 for outcome in OUTCOMES}
    for control in result.get("controls") or []:
        outcome = control.get("outcome")
        if outcome in counts:
            counts[outcome] += 1
    return counts


def framework_matrix(result: Mapping[str, Any]) -> dict[str, dict[str, list[Mapping[str, Any]]]]:
    """framework → reference → the controls citing it, in a stable order."""
    matrix: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for control in result.get("controls") or []:
        for framework, references in (control.get("frameworks") or {}).items():
            for reference in references or []:
                matrix.setdefault(str(framework), {}).setdefault(str(reference), []).append(control)
    ordered = {name: matrix[name] for name in FRAMEWORKS if name in matrix}
    ordered.update({name: refs for name, refs in sorted(matrix.items()) if name not in ordered})
    return {name: dict(sorted(refs.items())) for name, refs in ordered.items()}


def strip_control_chars(value: str) -> str:
    """Drop the characters XML 1.0 cannot carry at all (a hostile resource name could hold them)."""
    return "".join(
        ch
        for ch in value
        if ch in "\t\n\r" or (0x20 <= ord(ch) <= 0xD7FF) or (0xE000 <= ord(ch) <= 0xFFFD) or ord(ch) > 0xFFFF
    )


# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts colour, cursor and
# hyperlink sequences; CR and cursor-up can overwrite a "BAD" line already printed) and the bidi
# overrides that reorder what a reader sees. Cloud values and bundle file names are shown escaped.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(value: object) -> str:
    """`value` as one printable line: every control or bidi character shown as a \\xNN / \\uNNNN escape."""
    return _TERMINAL_UNSAFE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text(value))
