"""What was attested, shown and bound: the signed statement's facts, and the bundle held to them.

Digests alone prove that the files are the signed ones, not that the bundle is the run a reader was
promised: an old PASS handed over as new verifies just as well. So `report verify` prints the facts
the signature covers (run id, project, node, jobs, window, target, verdict, signer, time, SIMULATED)
and FAILs when the directory name, manifest.json or result.json say something else, or when what the
regulator states they were promised (--expect-project/--expect-job/--not-before) differs.
Only the signed payload is the source of truth; the files are compared with it, never the reverse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sovaudit.reports.attestation import EXTENSION_KEY, is_simulated_target
from sovaudit.reports.verify import Check

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class StatementFacts:
    """The facts of one signed statement, as a verifier shows them."""

    run_id: str
    project: str
    node: str
    jobs: tuple[str, ...]
    window_start: str
    window_end: str
    target: str
    simulated: bool
    verdict: str
    counts: Mapping[str, int]
    signer_key_ids: tuple[str, ...]
    signed_at: str
    started_at: str
    finished_at: str
    policy_sha256: str
    #: controls the run did not execute by the auditor's choice (--no-probes, --posture-only): not proven
    not_proven: tuple[str, ...] = ()
    #: the test-result predicate's own result (PASSED/WARNED/FAILED); an older statement's `verdict`
    #: said PASS for a waived run while this said WARNED
    attested_result: str = ""

    def lines(self) -> list[str]:
        """Human-readable lines, one fact each (the order a regulator reads them in)."""
        counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.counts.items())) or "none"
        lines = [
            f"run id:       {self.run_id}",
            f"project:      {self.project}",
            f"node:         {self.node} (policy sha256 {self.policy_sha256 or 'unknown'})",
            f"job(s):       {', '.join(self.jobs) or '(none: posture only)'}",
            f"audit window: {self.window_start or 'unbounded'} .. {self.window_end or 'unbounded'}",
            f"target:       {self.target}{'  (SIMULATED)' if self.simulated else ''}",
            f"verdict:      {self.verdict} ({counts})"
            + (f"; attested result {self.attested_result}"
               if self.verdict == "PASS" and self.attested_result not in ("", "PASSED") else ""),
            f"signer key:   {', '.join(self.signer_key_ids) or '(none)'}",
            f"signed at:    {self.signed_at or '(not recorded)'}",
        ]
        if self.not_proven:
            lines.insert(7, f"NOT proven:   {', '.join(self.not_proven)} (not run by the auditor's choice)")
        if self.simulated:
            lines.append("SIMULATED: this run was against the local simulator — not evidence about a real node")
        return lines


def _map(value: Any) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else an empty one (a hostile statement may put anything there)."""
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def statement_facts(statement: Mapping[str, Any], signer_key_ids: Sequence[str] = ()) -> StatementFacts:
    """The facts of a statement; fields absent from an older statement are shown as unknown, and a
    statement that does not say whether it was simulated is judged by its target (fail closed)."""
    predicate = _map(statement.get("predicate"))
    ext = _map(predicate.get(EXTENSION_KEY))
    policy = _map(ext.get("policy"))
    scope = _map(ext.get("scope"))
    window = _map(scope.get("window"))
    counts_raw = _map(ext.get("counts"))
    counts = {str(k): int(v) for k, v in counts_raw.items() if isinstance(v, int)}
    if not counts:
        counts = {"PASS": len(predicate.get("passedTests") or []), "WARNED": len(predicate.get("warnedTests") or []),
                  "FAIL/ERROR": len(predicate.get("failedTests") or [])}
    simulated = ext.get("simulated")
    return StatementFacts(
        run_id=_text(ext.get("runId") or predicate.get("url")),
        project=_text(ext.get("project")),
        node=_text(policy.get("name")),
        jobs=tuple(str(j) for j in scope.get("jobs") or []),
        window_start=_text(window.get("start")),
        window_end=_text(window.get("end")),
        target=_text(ext.get("target")),
        simulated=simulated if isinstance(simulated, bool) else is_simulated_target(ext.get("target")),
        verdict=_text(ext.get("verdict")),
        counts=counts,
        signer_key_ids=tuple(signer_key_ids),
        signed_at=_text(ext.get("signedAt")),
        started_at=_text(ext.get("startedAt")),
        finished_at=_text(ext.get("finishedAt")),
        policy_sha256=_text(policy.get("sha256")),
        not_proven=tuple(str(c) for c in ext.get("skippedControls") or [] if isinstance(c, str)),
        attested_result=_text(predicate.get("result")),
    )


def _read(path: Path) -> tuple[Any, str]:
    try:
        return json.loads(path.read_bytes()), ""
    except FileNotFoundError:
        return None, f"{path.name} is missing from the bundle"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name} is not JSON: {exc}"


def _compare(what: str, pairs: Sequence[tuple[str, Any, Any]]) -> Check:
    differences = [f"{name} is {_text(found)!r}, the signed statement says {_text(signed)!r}"
                   for name, found, signed in pairs if _text(found) != _text(signed)]
    if differences:
        return Check(what, False, "; ".join(differences))
    return Check(what, True, "agrees with the signed statement (" + ", ".join(name for name, _, _ in pairs) + ")")


def binding_checks(statement: Mapping[str, Any], bundle: Path, received_as: Path | None = None) -> list[Check]:
    """Checks that the bundle's directory name, manifest.json and result.json are the signed run's."""
    facts = statement_facts(statement)
    checks: list[Check] = []
    subjects = {str(s.get("name")) for s in statement.get("subject") or [] if isinstance(s, Mapping)}
    missing = [name for name in ("result.json", "manifest.json") if name not in subjects]
    checks.append(Check("bound files", not missing,
                        f"not signed: {', '.join(missing)}" if missing else "result.json and manifest.json are subjects"))
    policy_subject = [s for s in statement.get("subject") or []
                      if isinstance(s, Mapping) and s.get("name") == "policy.yaml"]
    if policy_subject:
        digest = _text(_map(policy_subject[0].get("digest")).get("sha256"))
        ok = bool(facts.policy_sha256) and digest == facts.policy_sha256
        checks.append(Check("policy.yaml", ok, "is the pack the verdict was judged against" if ok
                            else f"its sha256 is {digest}, the signed policy sha256 is {facts.policy_sha256!r}"))
    if not facts.run_id:
        checks.append(Check("run id", False, "the signed statement names no run id"))
        return checks
    expected_dir = f"run-{facts.run_id}"
    checks.append(Check("directory name", bundle.name == expected_dir,
                        f"{bundle.name!r} matches the signed run" if bundle.name == expected_dir
                        else f"the bundle directory is {bundle.name!r}, the signed run is {expected_dir!r}"))
    if received_as is not None and received_as.name.endswith(_ARCHIVE_SUFFIXES):
        stem = re.sub(r"\.(tar\.gz|tgz)$", "", received_as.name)
        checks.append(Check("archive name", stem == expected_dir,
                            f"{received_as.name!r} matches the signed run" if stem == expected_dir
                            else f"the archive is named {received_as.name!r}, the signed run is {expected_dir!r}"))
    manifest, problem = _read(bundle / "manifest.json")
    if not isinstance(manifest, Mapping):
        checks.append(Check("manifest.json", False, problem or "manifest.json is not a JSON object"))
    else:
        policy = _map(manifest.get("policy"))
        checks.append(_compare("manifest.json", [
            ("run_id", manifest.get("run_id"), facts.run_id), ("project", manifest.get("project"), facts.project),
            ("target", manifest.get("target"), facts.target),
            ("policy.sha256", policy.get("sha256"), facts.policy_sha256),
            ("started_at", manifest.get("started_at"), facts.started_at),
            ("finished_at", manifest.get("finished_at"), facts.finished_at)]))
    result, problem = _read(bundle / "result.json")
    if not isinstance(result, Mapping):
        checks.append(Check("result.json", False, problem or "result.json is not a JSON object"))
    else:
        predicate = _map(statement.get("predicate"))
        signed_outcomes = {"passed": sorted(predicate.get("passedTests") or []),
                           "failed": sorted(predicate.get("failedTests") or [])}
        outcomes = {"passed": sorted(str(c.get("id")) for c in result.get("controls") or []
                                     if isinstance(c, Mapping) and c.get("outcome") == "PASS"),
                    "failed": sorted(str(c.get("id")) for c in result.get("controls") or []
                                     if isinstance(c, Mapping) and c.get("outcome") in ("FAIL", "ERROR"))}
        checks.append(_compare("result.json", [
            ("run_id", result.get("run_id"), facts.run_id), ("project", result.get("project"), facts.project),
            ("verdict", result.get("verdict"), facts.verdict), ("target", result.get("target"), facts.target),
            ("passed controls", outcomes["passed"], signed_outcomes["passed"]),
            ("failed controls", outcomes["failed"], signed_outcomes["failed"])]))
    return checks


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time with an explicit offset (a naive time is refused: ambiguous by hours)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write e.g. 2026-12-01T00:00:00Z")
    return value


def expectation_checks(facts: StatementFacts, *, project: str | None = None, jobs: Sequence[str] = (),
                       not_before: datetime | None = None) -> list[Check]:
    """What the regulator was promised, held against the signed facts; each names what differs."""
    checks: list[Check] = []
    if project is not None:
        ok = facts.project == project
        checks.append(Check("expected project", ok, f"the signed project is {facts.project!r}"
                            + ("" if ok else f", not the expected {project!r}")))
    for job in jobs:
        ok = job in facts.jobs
        checks.append(Check(f"expected job {job!r}", ok,
                            "judged in the signed run" if ok
                            else f"not among the signed run's jobs ({', '.join(facts.jobs) or 'none'})"))
    if not_before is not None:
        when = facts.finished_at
        try:
            finished = parse_rfc3339(when) if when else None
        except ValueError:
            finished = None
        ok = finished is not None and finished >= not_before
        checks.append(Check("not before", ok,
                            f"the signed run finished at {when or '(unknown)'}"
                            + ("" if ok else f", before {not_before.isoformat()}: an older run")))
    return checks
