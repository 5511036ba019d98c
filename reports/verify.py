"""Verify a signed report: every signature, then every subject's digest, inside the bundle only.

Order matters: the statement is read only after its signatures verify, and the payload is checked
exactly as it was signed (decoded from base64, never re-serialised). An envelope passes only when
every signature is by a known key and valid, and every subject exists inside the bundle with the
attested sha256. Nothing passes vacuously: no signature or no subject is a failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Signature, SSlibKey

from sovaudit.reports.attestation import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE
from sovaudit.reports.paths import bundle_file

ENVELOPE_FILE = "attestation.intoto.jsonl"
_NOT_SUBJECTS = {ENVELOPE_FILE, "attestation.tsr"}  # the RFC 3161 token is over the signature, made after it


class EnvelopeError(Exception):
    """The envelope file cannot be read as DSSE at all (unusable input, not a failed check)."""


@dataclass(frozen=True)
class Check:
    """One thing verified: a signature or a subject, with the reason a person can act on."""

    what: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class ParsedEnvelope:
    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, raw signature bytes)


@dataclass(frozen=True)
class VerificationResult:
    checks: tuple[Check, ...]
    statements: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{what} is not standard base64: {exc}") from exc


def parse_envelope(text: str | bytes, source: str = "envelope") -> ParsedEnvelope:
    """Parse one DSSE envelope (JSON) strictly; raise EnvelopeError naming the field at fault."""
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EnvelopeError(f"{source} must be a JSON object with payload, payloadType and signatures")
    for key in ("payload", "payloadType", "signatures"):
        if key not in document:
            raise EnvelopeError(f"{source} has no {key!r} field; it is not a DSSE envelope")
    if not isinstance(document["payloadType"], str):
        raise EnvelopeError(f"{source} field 'payloadType' must be a string")
    if not isinstance(document["signatures"], list):
        raise EnvelopeError(f"{source} field 'signatures' must be a list")
    signatures = []
    for index, entry in enumerate(document["signatures"], start=1):
        if not isinstance(entry, dict) or "sig" not in entry:
            raise EnvelopeError(f"{source} signature {index} has no 'sig' field")
        keyid = entry.get("keyid", "")
        if not isinstance(keyid, str):
            raise EnvelopeError(f"{source} signature {index} field 'keyid' must be a string")
        signatures.append((keyid, _b64(entry["sig"], f"{source} signature {index} 'sig'")))
    payload = _b64(document["payload"], f"{source} field 'payload'")
    return ParsedEnvelope(payload, document["payloadType"], tuple(signatures))


def pae(envelope: ParsedEnvelope) -> bytes:
    """DSSE pre-authentication encoding, computed by securesystemslib over the received bytes."""
    return Envelope(envelope.payload, envelope.payload_type, {}).pae()


def _signature_valid(key: SSlibKey, keyid: str, signature: bytes, message: bytes) -> bool:
    try:
        key.verify_signature(Signature(keyid, signature.hex()), message)
    except UnverifiedSignatureError:  # also the parent of VerificationError (malformed signatures)
        return False
    return True


def verify_signatures(envelope: ParsedEnvelope, keys: Sequence[SSlibKey], label: str = "") -> list[Check]:
    """One check per signature; every signature must be by one of `keys` and valid."""
    prefix = f"{label} " if label else ""
    if not envelope.signatures:
        return [Check(f"{prefix}signatures", False, "the envelope carries no signature")]
    message = pae(envelope)
    known = {key.keyid: key for key in keys}
    checks = []
    for index, (keyid, signature) in enumerate(envelope.signatures, start=1):
        what = f"{prefix}signature {index}"
        key = known.get(keyid)
        if key is None:
            # Not ours by name; say whether it is ours in fact (a relabelled keyid) or a stranger's.
            matching = [k for k in keys if _signature_valid(k, k.keyid, signature, message)]
            if matching:
                reason = (
                    f"keyid mismatch: the signature is valid for key {matching[0].keyid} "
                    f"but the envelope names keyid {keyid or '(empty)'}"
                )
            else:
                given = ", ".join(sorted(known)) or "none"
                reason = f"signed by an unknown key {keyid or '(no keyid)'}; the keys given are {given}"
            checks.append(Check(what, False, reason))
            continue
        if _signature_valid(key, keyid, signature, message):
            checks.append(Check(what, True, f"valid, by key {keyid}"))
        else:
            checks.append(
                Check(what, False, f"does not verify with key {keyid}: the payload, payloadType or signature was altered")
            )
    return checks


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_subjects(statement: Mapping[str, Any], bundle: Path) -> list[Check]:
    """One check per subject: a safe name, present in the bundle, with the attested sha256."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        return [Check("subjects", False, "the statement lists no subject; nothing would be proven")]
    checks = []
    for subject in subjects:
        name = subject.get("name") if isinstance(subject, Mapping) else None
        what = f"subject {name!r}" if isinstance(name, str) else "subject (unnamed)"
        path, refusal = bundle_file(bundle, name)
        if path is None:
            checks.append(Check(what, False, f"refused: {refusal}"))
            continue
        digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject, Mapping) else None
        if not isinstance(digest, str) or len(digest) != 64:
            checks.append(Check(what, False, "the subject carries no sha256 digest"))
            continue
        if not path.is_file():
            checks.append(Check(what, False, f"missing from the bundle ({path})"))
            continue
        actual = _sha256_file(path)
        if actual != digest.lower():
            checks.append(Check(what, False, f"altered: its sha256 is {actual}, the attestation says {digest}"))
        else:
            checks.append(Check(what, True, f"sha256 {actual} matches"))
    return checks


def _read_statement(envelope: ParsedEnvelope, label: str) -> tuple[Mapping[str, Any] | None, list[Check]]:
    what = f"{label} statement".strip()
    if envelope.payload_type != PAYLOAD_TYPE:
        return None, [Check(what, False, f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}")]
    try:
        statement = json.loads(envelope.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [Check(what, False, f"the signed payload is not JSON: {exc}")]
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        return None, [Check(what, False, f"the payload is not an in-toto Statement ({STATEMENT_TYPE})")]
    if statement.get("predicateType") != PREDICATE_TYPE:
        return None, [
            Check(what, False, f"predicateType is {statement.get('predicateType')!r}, expected {PREDICATE_TYPE!r}")
        ]
    return statement, [Check(what, True, f"in-toto Statement v1, predicate {PREDICATE_TYPE}")]


def _uncovered_files(bundle: Path, covered: set[str]) -> list[str]:
    extra = []
    for path in sorted(bundle.rglob("*")):
        if path.is_file():
            name = path.relative_to(bundle).as_posix()
            if name not in covered and name not in _NOT_SUBJECTS and not name.endswith(".pub.pem"):
                extra.append(name)
    return extra


def _refuse_other_json_document(path: Path, raw: bytes, lines: list[bytes]) -> None:
    """Given result.json (or any indented JSON) by mistake, "line 1 is not JSON" would be false and
    unhelpful: name the file for what it is and the one to pass."""
    if len(lines) < 2:
        return
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return
    if not (isinstance(document, dict) and "payload" in document):
        raise EnvelopeError(f"{path} is a JSON document, not an envelope file (one DSSE envelope per line); "
                            "pass the bundle's attestation.intoto.jsonl")


def verify_envelope_file(path: Path, keys: Sequence[SSlibKey], bundle: Path | None = None) -> VerificationResult:
    """Verify every envelope (one per line) in `path` against `keys` and the bundle's files.

    `bundle` defaults to the envelope's directory. Raises EnvelopeError when the file is unusable.
    """
    if not keys:
        raise EnvelopeError("no public key given; pass --key PUB.pem (or --trust FILE listing public_key signers)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise EnvelopeError(f"envelope file {path} does not exist") from exc
    except OSError as exc:
        raise EnvelopeError(f"cannot read envelope file {path}: {exc.strerror}") from exc
    bundle = bundle if bundle is not None else path.parent
    if not bundle.is_dir():
        raise EnvelopeError(f"bundle directory {bundle} does not exist")
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        raise EnvelopeError(f"envelope file {path} is empty")
    _refuse_other_json_document(path, raw, lines)
    checks: list[Check] = []
    statements: list[Mapping[str, Any]] = []
    covered: set[str] = set()
    # Coverage is only known when every statement was read: with a bad signature, saying that each
    # file "is not covered" would be false and would bury the one line that matters.
    coverage_known = True
    for number, line in enumerate(lines, start=1):
        label = f"envelope {number}" if len(lines) > 1 else ""
        envelope = parse_envelope(line, f"{path.name} line {number}")
        signature_checks = verify_signatures(envelope, keys, label)
        checks.extend(signature_checks)
        if not all(check.ok for check in signature_checks):
            checks.append(Check(f"{label} subjects".strip(), False, "not checked: the signatures did not verify"))
            coverage_known = False
            continue
        statement, statement_checks = _read_statement(envelope, label)
        checks.extend(statement_checks)
        if statement is None:
            coverage_known = False
            continue
        statements.append(statement)
        checks.extend(verify_subjects(statement, bundle))
        covered.update(str(s.get("name")) for s in statement.get("subject") or [] if isinstance(s, Mapping))
    uncovered = _uncovered_files(bundle, covered) if coverage_known else []
    notes = tuple(f"{name} is in the bundle but not covered by the attestation" for name in uncovered)
    return VerificationResult(tuple(checks), tuple(statements), notes)
