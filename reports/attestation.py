"""The signed attestation: an in-toto Statement v1 (test-result predicate) in a DSSE envelope.

The statement binds the verdict to every file of the bundle by sha256 (its subjects). The envelope
signs the exact payload bytes through DSSE's pre-authentication encoding (PAE), so verification
decodes the payload from base64 and checks those bytes — nothing is ever re-serialised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signer

from sovaudit.reports.json_format import canonical_json
from sovaudit.reports.view import FAILED_OUTCOMES, NOT_TESTED_OUTCOMES, WARNED_OUTCOMES

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
EXTENSION_KEY = "sovaudit"

_PASSED = ("PASS",)
_WARNED = WARNED_OUTCOMES  # the gate passes, but a reader must see them (SKIPPED: not proven by choice)
_FAILED = FAILED_OUTCOMES  # ERROR is incomplete evidence: never a pass


def summarise_tests(result: Mapping[str, Any]) -> tuple[str, list[str], list[str], list[str]]:
    """(PASSED|WARNED|FAILED, passed ids, warned ids, failed ids) of a result dict."""
    passed: list[str] = []
    warned: list[str] = []
    failed: list[str] = []
    for control in result.get("controls") or []:
        outcome = control.get("outcome")
        if outcome in NOT_TESTED_OUTCOMES:   # the signed pack says it does not apply: not a test
            continue
        # Anything unknown is failed: an outcome this verifier cannot read proves nothing.
        target = passed if outcome in _PASSED else warned if outcome in _WARNED else failed
        target.append(str(control.get("id")))
    # Nothing tested at all (every control not applicable) is never PASSED.
    verdict = "FAILED" if failed or not (passed or warned) else "WARNED" if warned else "PASSED"
    return verdict, passed, warned, failed


def is_simulated_target(target: Any) -> bool:
    """True unless the target is Google itself: `--target` is `gcp` or a loopback simulator URL
    (cloud.Target.parse refuses anything else), so anything but the exact string "gcp" is a rehearsal.
    Fail closed: an unknown or missing target counts as simulated, never as real."""
    return target != "gcp"


def _signed_scope(scope: Any) -> dict[str, Any]:
    scope = scope if isinstance(scope, Mapping) else {}
    window = scope.get("window") if isinstance(scope.get("window"), Mapping) else {}
    jobs = [str(ref.get("job")) for ref in scope.get("jobs") or [] if isinstance(ref, Mapping) and ref.get("job")]
    if not jobs and scope.get("job"):
        jobs = [str(scope["job"])]
    return {"jobs": jobs, "postureOnly": bool(scope.get("posture_only")),
            "window": {"start": window.get("start"), "end": window.get("end")}}


def _counts(result: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for control in result.get("controls") or []:
        outcome = str(control.get("outcome"))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _now_rfc3339() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_statement(
    result: Mapping[str, Any],
    subjects: Iterable[tuple[str, str]],
    signing_key_id: str | None = None,
) -> dict[str, Any]:
    """The in-toto Statement for a run; `subjects` are (bundle-relative name, sha256 hex) pairs."""
    verdict, passed, warned, failed = summarise_tests(result)
    tool = result.get("tool") or {}
    policy = result.get("policy") or {}
    version = str(tool.get("version", ""))
    configuration: list[dict[str, Any]] = [
        {
            "name": str(tool.get("name") or "sovaudit"),
            "uri": f"pkg:pypi/sovaudit@{version}" if version else "pkg:pypi/sovaudit",
            "annotations": {"version": version},
        },
        {
            "name": str(policy.get("path") or policy.get("name") or "policy"),
            "digest": {"sha256": str(policy.get("sha256", ""))},
            "annotations": {"policyName": str(policy.get("name", ""))},
        },
    ]
    extension = {
        "schema": "sovaudit/attestation-extension/v1",
        "verdict": result.get("verdict"),
        "target": result.get("target"),
        "project": result.get("project"),
        "startedAt": result.get("started_at"),
        "finishedAt": result.get("finished_at"),
        "verifier": {"name": str(tool.get("name") or "sovaudit"), "version": version, "principal": result.get("principal")},
        "policy": {"name": policy.get("name"), "sha256": policy.get("sha256")},
        "incompleteControls": [str(c.get("id")) for c in result.get("controls") or [] if c.get("outcome") == "ERROR"],
        # Not run by the user's choice (--no-probes, --posture-only): signed, so nobody can present
        # the run as having proven them.
        "skippedControls": [str(c.get("id")) for c in result.get("controls") or [] if c.get("outcome") == "SKIPPED"],
        "signingKeyId": signing_key_id,
        # Issue 12 (R1): what a verifier must see bound to the signature, not only read from files.
        "runId": result.get("run_id"),
        "simulated": is_simulated_target(result.get("target")),
        "scope": _signed_scope(result.get("scope")),
        "counts": _counts(result),
        "signedAt": _now_rfc3339(),
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": verdict,
            "configuration": configuration,
            "url": str(result.get("run_id", "")),
            "passedTests": passed,
            "warnedTests": warned,
            "failedTests": failed,
            EXTENSION_KEY: extension,
        },
    }


def sign_payload(payload: bytes, signers: Sequence[Signer], payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """A DSSE envelope (as a JSON-ready dict, standard base64) over exactly `payload`."""
    if not signers:
        raise ValueError("sign_payload needs at least one signer")
    envelope = Envelope(payload=payload, payload_type=payload_type, signatures={})
    for signer in signers:
        envelope.sign(signer)
    return envelope.to_dict()


def sign_statement(statement: Mapping[str, Any], signers: Sequence[Signer]) -> tuple[bytes, dict[str, Any]]:
    """(payload bytes, envelope dict) for a statement; the payload is canonical JSON."""
    payload = canonical_json(dict(statement))
    return payload, sign_payload(payload, signers)


def envelope_line(envelope: Mapping[str, Any]) -> bytes:
    """One line of attestation.intoto.jsonl (JSON Lines: one compact envelope per line)."""
    return json.dumps(dict(envelope), separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
