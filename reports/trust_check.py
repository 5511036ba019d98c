"""`report verify`'s second half: the trusted time and the trust policy, after the bundle verified.

Kept apart from verify.py so that "is the bundle intact?" and "do I accept it?" stay separate
questions: the first needs only keys; the second is the regulator's policy (reports/trust.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from securesystemslib.signer import SSlibKey

from sovaudit.reports.trust import TrustPolicy, TrustPolicyError, apply_trust, load_trust_policy
from sovaudit.reports.verify import Check, EnvelopeError, VerificationResult, parse_envelope


class TrustInputError(Exception):
    """The trust policy or a TSA root cannot be used (exit 2)."""


@dataclass(frozen=True)
class TimeTrustOutcome:
    lines: tuple[str, ...]
    failures: tuple[Check, ...]


def load_trust_inputs(trust_path: Path | None, tsa_roots: Sequence[Path]
                      ) -> tuple[TrustPolicy | None, list[x509.Certificate], list[SSlibKey]]:
    """(policy or None, trusted TSA roots, signer public keys from the policy)."""
    from sovaudit.reports.keys import load_public_key
    from sovaudit.reports.timestamp import TimestampError, load_roots

    try:
        roots = load_roots([str(path) for path in tsa_roots])
    except TimestampError as exc:
        raise TrustInputError(str(exc)) from exc
    if trust_path is None:
        return None, roots, []
    try:
        policy = load_trust_policy(trust_path)
    except TrustPolicyError as exc:
        raise TrustInputError("trust policy is invalid:\n  " + "\n  ".join(exc.problems)) from exc
    keys = [load_public_key(s.public_key_path) for s in policy.signers if s.public_key_path is not None]
    for tsa in policy.tsas:
        roots.extend(tsa.roots)
    return policy, roots, keys


def _keyids(envelope: Path) -> list[str]:
    keyids: list[str] = []
    try:
        lines = [line for line in envelope.read_bytes().splitlines() if line.strip()]
        for line in lines:
            keyids.extend(keyid for keyid, _ in parse_envelope(line).signatures)
    except (OSError, EnvelopeError):
        return []
    return keyids


def time_and_trust(envelope: Path, bundle: Path, outcome: VerificationResult, policy: TrustPolicy | None,
                   roots: list[x509.Certificate], time_demanded: bool) -> TimeTrustOutcome:
    """Check attestation.tsr and apply `policy`; only once the signatures and subjects verified,
    since a statement that is not proven intact has no facts to judge."""
    from sovaudit.reports.timestamp import TIMESTAMP_FILE, check_bundle_timestamp

    lines: list[str] = []
    failures: list[Check] = []
    if not outcome.ok:
        if policy is not None or time_demanded:
            lines.append("NOTE trusted time and trust policy not applied: the bundle itself did not verify")
        return TimeTrustOutcome(tuple(lines), ())
    trusted_time = None
    oids = tuple(t.policy_oid for t in policy.tsas if t.policy_oid) if policy else ()
    if roots or (bundle / TIMESTAMP_FILE).exists():
        stamp = check_bundle_timestamp(envelope, bundle, roots, oids)
        if stamp is None:
            if time_demanded or (policy is not None and policy.tsas):
                failures.append(Check("timestamp", False, f"the bundle has no {TIMESTAMP_FILE}: no trusted time"))
                lines.append(f"BAD timestamp: the bundle has no {TIMESTAMP_FILE}: no trusted time")
            else:
                lines.append("NOTE the bundle has no trusted time (no RFC 3161 timestamp)")
        elif stamp.ok:
            trusted_time = stamp.gen_time
            lines.append(f"OK  timestamp: {stamp.reason}")
            lines.append(f"TRUSTED TIME: {stamp.gen_time.isoformat() if stamp.gen_time else ''}")
        else:
            failures.append(Check("timestamp", False, stamp.reason))
            lines.append(f"BAD timestamp: {stamp.reason}")
    if policy is None:
        return TimeTrustOutcome(tuple(lines), tuple(failures))
    keyids = _keyids(envelope)
    for statement in outcome.statements:
        for rule in apply_trust(policy, statement, keyids, trusted_time):
            lines.append(f"{'PASS' if rule.ok else 'FAIL'} trust {rule.rule}: {rule.reason}")
            if not rule.ok:
                failures.append(Check(f"trust {rule.rule}", False, rule.reason))
    if not failures:
        lines.append(f"TRUSTED: every rule of {policy.path} holds")
    return TimeTrustOutcome(tuple(lines), tuple(failures))
