"""Trusted time: an RFC 3161 timestamp over the DSSE signature, fetched at signing, checked offline.

A signature says *who* signed, never *when*: the signing time inside the statement is the signer's
own claim. A timestamp authority (TSA) countersigns the hash of the signature bytes (as Sigstore
does: "the hashed message in the message imprint" is the signature), so a verifier can prove the
signature existed at the TSA's `genTime`. That is what lets a bundle outlive its signing key: a key
retired today still vouches for a bundle it signed while valid, if a trusted time proves when.

The token is stored as the raw DER TimeStampResp in `attestation.tsr` beside the envelope; it covers
signature 1 of envelope 1 (the only one sovaudit writes). `openssl ts -verify -digest` checks it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

TIMESTAMP_FILE = "attestation.tsr"
_CONTENT_TYPE_QUERY = "application/timestamp-query"  # RFC 3161 §3.4 [U: quoted from memory in the reference]
_CONTENT_TYPE_REPLY = "application/timestamp-reply"  # [U] same source; not enforced on the reply, only logged
_MAX_REPLY = 1 << 20


class TimestampError(Exception):
    """No usable timestamp: a bad TSA URL, a TSA that refused or could not be reached, a corrupt token."""


@dataclass(frozen=True)
class TimestampCheck:
    """The outcome of checking one token: `gen_time` is set only when the token verified."""

    ok: bool
    reason: str
    gen_time: datetime | None = None
    tsa: str = ""


def check_tsa_url(url: str) -> str:
    """Refuse anything but http(s)://host...: a typo must fail before the audit runs, not after."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TimestampError(f"--tsa {url!r} is not an http(s) URL; give the TSA's RFC 3161 endpoint, "
                             "e.g. https://timestamp.example/tsr")
    return url


def request_timestamp(url: str, signature: bytes, *, timeout: float = 15.0) -> bytes:
    """POST an RFC 3161 query for sha256(`signature`) to `url`; return the DER TimeStampResp.

    The reply is checked before it is kept (status granted, our imprint, our nonce) so a TSA that
    answers for other bytes is an error now, not a bundle that fails later. Its chain is checked
    by the verifier, against roots it trusts; the signer cannot decide that.
    """
    import requests
    from rfc3161_client import HashAlgorithm, PKIStatus, TimestampRequestBuilder, decode_timestamp_response

    check_tsa_url(url)
    query = TimestampRequestBuilder().data(signature).hash_algorithm(HashAlgorithm.SHA256).build()
    try:
        reply = requests.post(url, data=query.as_bytes(), headers={"Content-Type": _CONTENT_TYPE_QUERY},
                              timeout=timeout)
    except requests.RequestException as exc:
        raise TimestampError(f"the TSA at {url} could not be reached: {exc}") from exc
    if reply.status_code != 200:
        raise TimestampError(f"the TSA at {url} answered HTTP {reply.status_code}; no timestamp was issued")
    der = reply.content[:_MAX_REPLY + 1]
    if len(der) > _MAX_REPLY:
        raise TimestampError(f"the TSA at {url} sent more than {_MAX_REPLY} bytes; not a timestamp reply")
    try:
        response = decode_timestamp_response(der)
    except ValueError as exc:
        raise TimestampError(f"the TSA at {url} sent something that is not an RFC 3161 reply: {exc}") from exc
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TimestampError(f"the TSA at {url} refused the request (PKIStatus {int(response.status)})")
    info = response.tst_info
    if info.message_imprint.message != hashlib.sha256(signature).digest():
        raise TimestampError(f"the TSA at {url} timestamped other bytes than the signature")
    if info.nonce != query.nonce:
        raise TimestampError(f"the TSA at {url} answered with another nonce (a replayed reply?)")
    return der


def verify_timestamp(der: bytes, signature: bytes, roots: Sequence[x509.Certificate],
                     policy_oids: Sequence[str] = ()) -> TimestampCheck:
    """Check a DER TimeStampResp over `signature` against trusted TSA `roots`, offline.

    Passes only when: it parses, status granted, the CMS signature is by a certificate with the
    critical timeStamping EKU chaining to one of `roots` (valid at genTime), the imprint equals
    sha256(signature) and, when `policy_oids` is given, the TSA's policy is one of them.
    """
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    if not roots:
        return TimestampCheck(False, "no trusted TSA root is given (--tsa-root PEM or tsas: in the trust policy)")
    try:
        response = decode_timestamp_response(der)
    except ValueError as exc:
        return TimestampCheck(False, f"the timestamp is not a DER RFC 3161 reply: {exc}")
    info = response.tst_info
    name = _tsa_name(response)
    if info.message_imprint.message != hashlib.sha256(signature).digest():
        return TimestampCheck(False, "the timestamp covers other bytes than this envelope's signature", tsa=name)
    if policy_oids and info.policy.dotted_string not in policy_oids:
        return TimestampCheck(False, f"the TSA policy {info.policy.dotted_string} is not one of the accepted "
                                     f"{', '.join(policy_oids)}", tsa=name)
    failures = []
    for root in roots:
        try:
            verifier = VerifierBuilder().add_root_certificate(root).build()
            verifier.verify_message(response, signature)
        except (VerificationError, ValueError) as exc:
            failures.append(str(exc))
            continue
        return TimestampCheck(True, f"trusted time {info.gen_time.isoformat()} from {name}",
                              info.gen_time, name)
    return TimestampCheck(False, f"the timestamp does not verify under any trusted TSA root ({failures[-1]})",
                          tsa=name)


def _tsa_name(response: object) -> str:
    try:
        certs = list(response.signed_data.certificates)  # type: ignore[attr-defined]
        if certs:
            cert = x509.load_der_x509_certificate(certs[0])
            return cert.subject.rfc4514_string()
    except (ValueError, TypeError, AttributeError):
        pass
    return "an unnamed TSA"


def load_roots(paths: Sequence[str]) -> list[x509.Certificate]:
    """PEM certificates (one or several per file); a bad file is TimestampError naming it."""
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            data = open(path, "rb").read()  # noqa: SIM115 - tiny files
        except OSError as exc:
            raise TimestampError(f"cannot read TSA root {path}: {exc.strerror or exc}") from exc
        try:
            roots.extend(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            from sovaudit.reports.keys import pem_reason

            raise TimestampError(f"TSA root {path} is not a PEM certificate: {pem_reason(exc)}") from exc
    return roots


def check_bundle_timestamp(envelope_path: Path, bundle: Path, roots: Sequence[x509.Certificate],
                           policy_oids: Sequence[str] = ()) -> TimestampCheck | None:
    """The timestamp beside an envelope, checked over signature 1 of envelope 1; None when absent.

    A corrupt or unreadable token is a failed check (never "no timestamp"): someone put it there.
    """
    from sovaudit.reports.verify import EnvelopeError, parse_envelope

    token = bundle / TIMESTAMP_FILE
    if not token.exists():
        return None
    try:
        der = token.read_bytes()
        first = next(line for line in envelope_path.read_bytes().splitlines() if line.strip())
        envelope = parse_envelope(first, envelope_path.name)
    except (OSError, StopIteration, EnvelopeError) as exc:
        return TimestampCheck(False, f"cannot read the timestamp or the signature it covers: {exc}")
    if not envelope.signatures:
        return TimestampCheck(False, "the envelope has no signature for the timestamp to cover")
    return verify_timestamp(der, envelope.signatures[0][1], roots, policy_oids)
