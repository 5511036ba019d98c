"""Is this bundle the one that was signed? Asked before `verify --evidence` re-evaluates anything.

Re-evaluation alone launders a tampered bundle: edit the evidence, the manifest and the result
together and the controls reproduce the edited outcome. So with `--key` the attestation is checked
first, by the same code as `report verify` (signatures, every subject's digest, the bundle bound to
the signed statement), and a bundle that fails is refused with the first reason, in one of three
kinds a reader can act on: unsigned, signed by an untrusted key, or tampered (naming the file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sovaudit.reports.verify import ENVELOPE_FILE


class AuthenticityError(Exception):
    """The check itself cannot run (a key file that cannot be read, an envelope that is not DSSE)."""


def check_authenticity(run_dir: Path, key_paths: Sequence[Path], received_as: Path | None = None) -> str:
    """'' when the bundle's attestation verifies with one of `key_paths` and binds the bundle;
    otherwise why not, starting with `unsigned:`, `untrusted key:` or `tampered:`."""
    from sovaudit.reports.bound import binding_checks
    from sovaudit.reports.keys import KeyFileError, load_public_key
    from sovaudit.reports.verify import EnvelopeError, verify_envelope_file

    try:
        keys = [load_public_key(Path(path)) for path in key_paths]
    except KeyFileError as error:
        raise AuthenticityError(str(error)) from error
    envelope = run_dir / ENVELOPE_FILE
    if not envelope.is_file():
        return f"unsigned: {run_dir.name} carries no {ENVELOPE_FILE}; nothing vouches for its evidence"
    try:
        outcome = verify_envelope_file(envelope, keys, run_dir)
    except EnvelopeError as error:
        return f"tampered: {ENVELOPE_FILE} is unusable: {error}"
    for check in outcome.failures:
        if "signature" in check.what and ("unknown key" in check.reason or "keyid mismatch" in check.reason):
            return f"untrusted key: {check.what} {check.reason}"
        return f"tampered: {check.what}: {check.reason}"
    if not outcome.statements:
        return f"tampered: {ENVELOPE_FILE} holds no readable signed statement"
    for statement in outcome.statements:
        for check in binding_checks(statement, run_dir, received_as):
            if not check.ok:
                return f"tampered: {check.what}: {check.reason}"
    for note in outcome.notes:
        # A file the attestation does not cover could be an evidence file slipped in after signing.
        if note.startswith("evidence/"):
            return f"tampered: {note}"
    return ""
