"""OSCAL 1.1.2 Assessment Results and Plan of Action and Milestones (POA&M) from result.json.

Governance tools (FedRAMP 20x pipelines, BSI Grundschutz++ tooling, GRC suites, compliance-trestle,
Lula) read OSCAL, not our JSON; these two documents carry the same verdict in their vocabulary.

Choices, each because OSCAL or its tools leave no other honest reading:

* `import-ap` is `{"href": "#"}`: OSCAL requires a link to the assessment plan, and sovaudit has no
  separate plan document; the plan is the policy pack, named (with its sha256) in the result's props.
* UUIDs are uuid5 (from the run id and the item), never random, so the same result.json renders
  byte-identically and the documents can be signed subjects and re-rendered years later. OSCAL
  accepts only v4 or v5 UUIDs.
* One observation per control (what was collected, when, and every evidence file with its sha256)
  and one finding per control whose target is the objective id = the control id (OSCAL tokens
  allow no ":", so `SEC-04` itself) with the framework references as props.
* PASS → satisfied. FAIL → not-satisfied (reason fail) with an `open` risk. ERROR → not-satisfied
  (reason other, "incomplete") with an `investigating` risk: the evidence could not be collected, so
  nobody knows yet whether it is a violation, and it is never satisfied. WAIVED → not-satisfied
  (reason fail) with a `deviation-approved` risk whose deadline is the end of the waiver's last day.
  NOT_APPLICABLE → an observation only, no finding: OSCAL's finding states are satisfied or
  not-satisfied, and calling an unjudged control satisfied would overstate the run.
  SKIPPED (not run by the user's choice: --no-probes, --posture-only) → a finding on the objective,
  not-satisfied with reason `other` and remarks "not assessed": the assessment chose not to test
  the objective, so OSCAL's only honest state is "not shown to be satisfied". No risk and no POA&M
  item: nothing was found wrong, and the AR names the option that left it unassessed.
* Arrays OSCAL requires to be non-empty are omitted when empty; a POA&M needs at least one item, so
  a run with nothing open and nothing waived has no POA&M (`NothingToPlan`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sovaudit.reports.interface import FormatError, ResultFormat, check_result
from sovaudit.reports.view import control_reason, findings, text

OSCAL_VERSION = "1.1.2"
#: the namespace of our own props (OSCAL wants a URI for props it does not define itself)
PROP_NS = "urn:sovaudit:oscal"
#: the uuid5 namespace of every UUID in these documents; changing it changes every document's bytes
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sovaudit:oscal")
AR_FILE = "oscal-ar.json"
POAM_FILE = "oscal-poam.json"
# OSCAL's token and prop-value patterns (trestle enforces them): a value may not start or end with
# whitespace, and `.` in the pattern matches no newline, so values are collapsed to one line.
_TOKEN = re.compile(r"^[_A-Za-z][_A-Za-z.0-9-]*$")
_SPACE = re.compile(r"\s+")
_RISK_STATUS = {"FAIL": "open", "ERROR": "investigating", "WAIVED": "deviation-approved"}


class NothingToPlan(FormatError):
    """No control is open or waived: OSCAL requires at least one poam-item, so there is no POA&M."""


def _uuid(run_id: str, *parts: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, "/".join((run_id, *parts))))


def _one_line(value: Any) -> str:
    return _SPACE.sub(" ", text(value)).strip()


def _prop(name: str, value: Any, cls: str | None = None) -> dict[str, Any] | None:
    line = _one_line(value)
    if not line:
        return None  # OSCAL refuses an empty prop value; an absent fact is an absent prop
    prop: dict[str, Any] = {"name": name, "ns": PROP_NS, "value": line}
    if cls:
        prop["class"] = cls
    return prop


def _props(*props: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [p for p in props if p is not None]


def _time(value: Any, field: str) -> str:
    """An RFC 3339 time with its zone, as OSCAL demands (a naive time fails validation)."""
    try:
        parsed = datetime.fromisoformat(text(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise FormatError(f"result field {field!r} is {value!r}; expected an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise FormatError(f"result field {field!r} is {value!r}, which has no time zone")
    return parsed.isoformat()


def _token(value: str) -> str:
    """An OSCAL token from a control id: unchanged when it already is one, else made one, visibly."""
    if _TOKEN.match(value):
        return value
    cleaned = re.sub(r"[^_A-Za-z.0-9-]", "_", value)
    return cleaned if _TOKEN.match(cleaned) else f"_{cleaned}"


def simulated(result: Mapping[str, Any]) -> bool:
    """True unless the run talked to Google itself. Exact allow-list: only target "gcp" is real,
    and a result that says `simulated: true` (the attested predicate's flag) is simulated whatever
    its target says."""
    return result.get("simulated") is True or result.get("target") != "gcp"


def _waiver_deadline(waiver: Mapping[str, Any] | None) -> str | None:
    # A waiver is in force through its `expires` day (audit/waivers.py: today <= expires), so the
    # deadline is the last second of that day in UTC.
    try:
        day = date.fromisoformat(text((waiver or {}).get("expires")))
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC).isoformat()


class _Run:
    """What both documents read from one result (and its manifest, when the result sits in a bundle)."""

    def __init__(self, result: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> None:
        check_result(result)
        self.result = result
        self.run_id = text(result["run_id"])
        self.project = text(result.get("project"))
        self.started = _time(result.get("started_at"), "started_at")
        self.finished = _time(result.get("finished_at") or result.get("started_at"), "finished_at")
        self.version = text((result.get("tool") or {}).get("version")) or "0"
        self.simulated = simulated(result)
        self.evidence: dict[str, Mapping[str, Any]] = {}
        for entry in (manifest or {}).get("evidence") or []:
            if isinstance(entry, Mapping) and entry.get("id") is not None:
                self.evidence[text(entry["id"])] = entry

    def metadata(self, title: str) -> dict[str, Any]:
        where = "SIMULATED run against " + text(self.result.get("target")) if self.simulated else "Google Cloud"
        return {
            "title": f"{title}: run {self.run_id}, project {self.project or '(unknown)'} ({where})",
            # The run's own finishing time, not the render time, so a re-render is byte-identical.
            "last-modified": self.finished,
            "version": self.version,
            "oscal-version": OSCAL_VERSION,
            "props": self.run_props(),
        }

    def run_props(self) -> list[dict[str, Any]]:
        policy = self.result.get("policy") or {}
        scope = self.result.get("scope") or {}
        return _props(
            _prop("run-id", self.run_id),
            _prop("project", self.project),
            _prop("target", self.result.get("target")),
            _prop("simulated", "true" if self.simulated else "false"),
            _prop("verdict", self.result.get("verdict")),
            _prop("policy-name", policy.get("name")),
            _prop("policy-sha256", policy.get("sha256")),
            _prop("job", scope.get("job")),
            _prop("principal", self.result.get("principal")),
        )

    def risk_uuid(self, control_id: str) -> str:
        return _uuid(self.run_id, "risk", control_id)

    def risk(self, control: Mapping[str, Any]) -> dict[str, Any] | None:
        """The risk an open (FAIL/ERROR) or waived control leaves; None for the others."""
        outcome = text(control.get("outcome"))
        status = _RISK_STATUS.get(outcome)
        if status is None:
            return None
        cid = _one_line(control["id"]) or "(no id)"
        reason = _one_line(control_reason(control)) or outcome.lower()
        statement = {
            "FAIL": f"The evidence shows the control does not hold: {reason}",
            "ERROR": f"Incomplete: the evidence for this control could not be collected, so it is unproven: {reason}",
            "WAIVED": f"The control fails and the failure is accepted by a waiver: {reason}",
        }[outcome]
        risk: dict[str, Any] = {
            "uuid": self.risk_uuid(cid),
            "title": f"{cid}: {_one_line(control.get('title')) or cid}",
            "description": _one_line(control.get("rationale")) or reason,
            "statement": statement,
            "props": _props(
                _prop("control-id", cid),
                _prop("outcome", outcome),
                _prop("severity", control.get("severity")),
                _prop("simulated", "true" if self.simulated else "false"),
            ),
            "status": status,
        }
        waiver = control.get("waiver") if outcome == "WAIVED" else None
        if isinstance(waiver, Mapping):
            risk["props"] += _props(
                _prop("waiver-owner", waiver.get("owner")),
                _prop("waiver-justification", waiver.get("justification")),
                _prop("waiver-resource", waiver.get("resource")),
                _prop("waiver-expires", waiver.get("expires")),
            )
            deadline = _waiver_deadline(waiver)
            if deadline:
                risk["deadline"] = deadline
        remediation = _one_line(control.get("remediation"))
        if remediation and outcome == "FAIL":
            risk["remediations"] = [{
                "uuid": _uuid(self.run_id, "remediation", cid),
                "lifecycle": "recommendation",
                "title": f"Remediate {cid}",
                "description": remediation,
            }]
        return risk


def _dump(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def _frameworks(control: Mapping[str, Any]) -> list[dict[str, Any]]:
    props: list[dict[str, Any]] = []
    for framework, references in sorted((control.get("frameworks") or {}).items()):
        name = text(framework)
        for reference in references or []:
            if _TOKEN.match(name):
                props += _props(_prop("framework-reference", reference, cls=name))
            else:
                props += _props(_prop("framework-reference", f"{name} {text(reference)}"))
    return props


def assessment_results(result: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OSCAL Assessment Results document (with its `assessment-results` wrapper) of one run."""
    run = _Run(result, manifest)
    observations: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    risks: list[dict[str, Any]] = []
    for control in result["controls"]:
        cid = _one_line(control["id"]) or "(no id)"
        outcome = text(control["outcome"])
        reason = _one_line(control_reason(control)) or outcome.lower()
        observation_uuid = _uuid(run.run_id, "observation", cid)
        evidence_ids = sorted({text(e) for e in control.get("evidence") or []}
                              | {text(e) for f in findings(control) for e in f.get("evidence") or []})
        relevant: list[dict[str, Any]] = []
        collected: list[str] = []
        for eid in evidence_ids:
            entry = run.evidence.get(eid)
            if entry is None:
                relevant.append({"description": f"evidence {eid} (no manifest beside the result: file and sha256 unknown)"})
                continue
            item: dict[str, Any] = {
                "href": text(entry.get("path")) or f"#evidence-{eid}",
                "description": (f"evidence {eid}: {text(entry.get('service'))} {text(entry.get('method'))}, "
                                f"sha256 {text(entry.get('sha256'))}"),
                "props": _props(_prop("sha256", entry.get("sha256")), _prop("evidence-id", eid)),
            }
            relevant.append(item)
            if entry.get("collected_at"):
                try:
                    collected.append(_time(entry["collected_at"], f"manifest evidence {eid} collected_at"))
                except FormatError:
                    pass  # a bad time on one evidence entry falls back to the run's own time below
        observation: dict[str, Any] = {
            "uuid": observation_uuid,
            "title": f"{cid} evidence",
            "description": f"{cid} {outcome}: {reason}",
            "props": _props(_prop("control-id", cid), _prop("outcome", outcome),
                            _prop("simulated", "true" if run.simulated else "false"),
                            _prop("target", result.get("target"))),
            "methods": ["TEST"],
            # The latest evidence this control read; the run's end when it read none (or no manifest).
            "collected": max(collected) if collected else run.finished,
        }
        if relevant:
            observation["relevant-evidence"] = relevant
        observations.append(observation)
        if outcome == "NOT_APPLICABLE":
            continue
        status: dict[str, Any] = {"state": "satisfied" if outcome == "PASS" else "not-satisfied",
                                  "reason": {"PASS": "pass", "ERROR": "other", "SKIPPED": "other"}.get(outcome, "fail")}
        if outcome == "SKIPPED":
            status["remarks"] = f"Not assessed: not run by the user's choice, so not proven. {reason}"
        elif outcome == "ERROR":
            status["remarks"] = f"Incomplete: the evidence could not be collected; never a pass. {reason}"
        elif outcome == "WAIVED":
            status["remarks"] = f"Fails; accepted by a waiver. {reason}"
        finding: dict[str, Any] = {
            "uuid": _uuid(run.run_id, "finding", cid),
            "title": f"{cid}: {_one_line(control.get('title')) or cid}",
            "description": f"{outcome}: {reason}",
            "props": _props(_prop("control-id", cid), _prop("outcome", outcome),
                            _prop("pillar", control.get("pillar")), _prop("severity", control.get("severity")),
                            *_frameworks(control)),
            "target": {"type": "objective-id", "target-id": _token(cid), "status": status},
            "related-observations": [{"observation-uuid": observation_uuid}],
        }
        risk = run.risk(control)
        if risk is not None:
            risks.append(risk)
            finding["related-risks"] = [{"risk-uuid": risk["uuid"]}]
        found.append(finding)
    assessment: dict[str, Any] = {
        "uuid": _uuid(run.run_id, "result"),
        "title": f"sovaudit run {run.run_id}",
        "description": (f"Automated checks by sovaudit {run.version} of project {run.project or '(unknown)'} "
                        f"against policy {text((result.get('policy') or {}).get('name'))}; verdict "
                        f"{text(result.get('verdict'))}. "
                        + ("SIMULATED: the run talked to a local simulator, not to Google Cloud."
                           if run.simulated else "The run talked to Google Cloud.")),
        "props": run.run_props(),
        "start": run.started,
        "end": run.finished,
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
    }
    if observations:
        assessment["observations"] = observations
    if risks:
        assessment["risks"] = risks
    if found:
        assessment["findings"] = found
    document = {
        "uuid": _uuid(run.run_id, "assessment-results"),
        "metadata": run.metadata("sovaudit assessment results"),
        "import-ap": {"href": "#"},
        "results": [assessment],
    }
    return {"assessment-results": document}


def poam(result: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The POA&M of one run: a risk and a poam-item per FAIL, ERROR and WAIVED control.

    Raises NothingToPlan when there is none (OSCAL requires at least one poam-item)."""
    run = _Run(result, manifest)
    risks: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for control in result["controls"]:
        risk = run.risk(control)
        if risk is None:
            continue
        risks.append(risk)
        cid = _one_line(control["id"]) or "(no id)"
        outcome = text(control["outcome"])
        if outcome == "WAIVED":
            description = f"Approved deviation until {text((control.get('waiver') or {}).get('expires'))}: {risk['statement']}"
        elif outcome == "ERROR":
            description = f"Collect the missing evidence and re-run: {risk['statement']}"
        else:
            description = f"{_one_line(control.get('remediation')) or 'Remediate'}. {risk['statement']}"
        items.append({
            "uuid": _uuid(run.run_id, "poam-item", cid),
            "title": risk["title"],
            "description": description,
            "props": _props(_prop("control-id", cid), _prop("outcome", outcome)),
            "related-risks": [{"risk-uuid": risk["uuid"]}],
        })
    if not items:
        raise NothingToPlan(f"run {run.run_id} has no FAIL, ERROR or WAIVED control: there is nothing to plan "
                            "(an OSCAL POA&M needs at least one poam-item)")
    document = {
        "uuid": _uuid(run.run_id, "poam"),
        "metadata": run.metadata("sovaudit plan of action and milestones"),
        # The audited project is the system; its id is a uuid5 of the project, stable across runs.
        "system-id": {"identifier-type": "https://ietf.org/rfc/rfc4122",
                      "id": str(uuid.uuid5(UUID_NAMESPACE, f"project/{run.project}"))},
        "risks": risks,
        "poam-items": items,
    }
    return {"plan-of-action-and-milestones": document}


class OscalFormat(ResultFormat):
    """`--format oscal`: the OSCAL Assessment Results document (oscal-ar.json in a bundle)."""

    name = "oscal"
    file_name = AR_FILE
    media_type = "application/oscal.ar+json"

    def __init__(self, manifest: Mapping[str, Any] | None = None) -> None:
        self.manifest = manifest

    def render(self, result: Mapping[str, Any]) -> bytes:
        return _dump(assessment_results(result, self.manifest))


class PoamFormat(ResultFormat):
    """`--format poam`: the OSCAL POA&M (oscal-poam.json in a bundle, only when something is open or waived)."""

    name = "poam"
    file_name = POAM_FILE
    media_type = "application/oscal.poam+json"

    def __init__(self, manifest: Mapping[str, Any] | None = None) -> None:
        self.manifest = manifest

    def render(self, result: Mapping[str, Any]) -> bytes:
        return _dump(poam(result, self.manifest))
