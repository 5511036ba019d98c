"""The first screen of every report: what node, which jobs, when, by whom, against what, and why.

A reader (a regulator with the HTML, an engineer at a terminal) must learn from the top of the page
whether the run passed and why not, without scrolling to a provenance table. Everything here is
read from the result dict alone, so `report render` reproduces it from a stored result.json, and
the verdict is recomputed from the controls with the attestation's own rule (`view.verdict_of`), so
the banner never says PASS where the signed statement says WARNED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.reports.view import control_reason, result_verdict, text

#: the longest one-control reason shown in the verdict line (the full text is in the control's card)
_REASON_LIMIT = 80
_CHOICE = re.compile(r"not run by choice: (--[a-z][a-z-]*)")


@dataclass(frozen=True)
class Headline:
    """The facts of the first screen, each a display string ('' when the result does not say)."""

    verdict: str
    reason: str
    node: str
    jobs: str
    window: str
    generated_at: str
    principal: str
    target: str
    simulated: bool
    policy: str
    run_id: str

    @property
    def verdict_line(self) -> str:
        """`VERDICT: why`, the one line a gate log or a banner shows."""
        return f"{self.verdict}: {self.reason}" if self.reason else self.verdict


def _short(value: str) -> str:
    line = " ".join(value.split())
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 1].rstrip() + "…"


def _controls(result: Mapping[str, Any], outcome: str) -> list[Mapping[str, Any]]:
    return [c for c in result.get("controls") or [] if isinstance(c, Mapping) and c.get("outcome") == outcome]


#: controls named with their reason in the verdict line; the rest are named by id only, so a run with
#: many failures still has a banner one can read (every control keeps its card below)
_NAMED_LIMIT = 5


def _named(controls: list[Mapping[str, Any]]) -> str:
    named = "; ".join(f"{text(c.get('id'))} {_short(control_reason(c))}".rstrip() for c in controls[:_NAMED_LIMIT])
    rest = controls[_NAMED_LIMIT:]
    return f"{named}; and {_ids(rest)}" if rest else named


def _ids(controls: list[Mapping[str, Any]]) -> str:
    return ", ".join(text(c.get("id")) for c in controls)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def skipped_by_option(result: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The SKIPPED controls grouped by the option that left them unrun (from their finding message)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for control in _controls(result, "SKIPPED"):
        messages = " ".join(text(f.get("message")) for f in control.get("findings") or [] if isinstance(f, Mapping))
        match = _CHOICE.search(messages)
        groups.setdefault(match.group(1) if match else "by choice", []).append(control)
    return groups


def not_proven(result: Mapping[str, Any]) -> str:
    """What a WARNED run left unproven or accepted, in one line; '' when nothing."""
    parts: list[str] = []
    for option, controls in skipped_by_option(result).items():
        parts.append(f"{_plural(len(controls), 'control')} not run ({option}): {_ids(controls)} "
                     f"{'was' if len(controls) == 1 else 'were'} not proven")
    waived = _controls(result, "WAIVED")
    if waived:
        parts.append(f"{_plural(len(waived), 'failure')} accepted by waiver: "
                     + "; ".join(f"{text(c.get('id'))} ({_short(control_reason(c))})" for c in waived))
    not_applicable = _controls(result, "NOT_APPLICABLE")
    if not_applicable:
        parts.append(f"{_plural(len(not_applicable), 'control')} not applicable by policy: {_ids(not_applicable)}")
    return "; ".join(parts)


def verdict_reason(result: Mapping[str, Any]) -> str:
    """Why the run has its verdict, naming the controls: the failing ones first, then the rest."""
    verdict = result_verdict(result)
    failed, errored = _controls(result, "FAIL"), _controls(result, "ERROR")
    unproven = not_proven(result)
    if verdict == "FAIL":
        reason = _named(failed)
        if errored:
            reason += f"; also incomplete: {_ids(errored)}"
        return reason + (f"; also {unproven}" if unproven else "")
    if verdict == "INCOMPLETE":
        if not errored:
            return "no control produced a result: nothing was proven"
        reason = f"evidence missing or incomplete for {_named(errored)}"
        return reason + (f"; also {unproven}" if unproven else "")
    if verdict == "WARNED":
        return f"passed with {unproven}"
    passed = len(_controls(result, "PASS"))
    # Only NOT_APPLICABLE can be left here: named, so a reader sees what the pack chose not to check.
    return f"all {_plural(passed, 'control')} passed" + (f"; {unproven}" if unproven else "")


def target_text(target: Any) -> tuple[str, bool]:
    """(what the run talked to, in words; whether it was a simulator). Only `gcp` is Google itself."""
    value = text(target)
    if value == "gcp":
        return "Google Cloud (real APIs, Application Default Credentials)", False
    return f"simulator at {value} (not evidence about a real node)" if value else "unknown (treated as simulated)", True


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def node_text(result: Mapping[str, Any]) -> str:
    node = _map(result.get("node"))
    project = text(node.get("project") or result.get("project")) or "(unknown project)"
    regions = ", ".join(text(r) for r in node.get("regions") or [])
    jurisdiction = text(node.get("jurisdiction"))
    where = f" in {regions}" if regions else ""
    return f"project {project}{where} (jurisdiction: {jurisdiction})" if jurisdiction else f"project {project}{where}"


def jobs_text(scope: Mapping[str, Any]) -> str:
    jobs = [text(ref.get("job")) for ref in scope.get("jobs") or [] if isinstance(ref, Mapping) and ref.get("job")]
    if not jobs and scope.get("job"):
        jobs = [text(scope.get("job"))]
    if scope.get("posture_only"):
        return "none: posture-only run (--posture-only), the node's settings without a job"
    return ", ".join(jobs) if jobs else "none found"


def headline(result: Mapping[str, Any]) -> Headline:
    scope = _map(result.get("scope"))
    window = _map(scope.get("window"))
    policy = _map(result.get("policy"))
    target, simulated = target_text(result.get("target"))
    digest = text(policy.get("sha256"))
    hostname = text(result.get("hostname"))
    principal = text(result.get("principal")) or "(unknown)"
    return Headline(
        verdict=result_verdict(result),
        reason=verdict_reason(result),
        node=node_text(result),
        jobs=jobs_text(scope),
        window=(f"{text(window.get('start')) or 'unbounded'} .. {text(window.get('end')) or 'now'}"
                if window.get("start") or window.get("end") else "none (no job window)"),
        generated_at=text(result.get("finished_at")),
        principal=f"{principal} on {hostname}" if hostname else principal,
        target=target,
        simulated=simulated,
        policy=f"{text(policy.get('name')) or '(unnamed)'} sha256:{digest}" if digest else text(policy.get("name")),
        run_id=text(result.get("run_id")),
    )
