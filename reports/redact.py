"""--redact: replace people's email addresses with stable pseudonyms in what a run reports.

Pseudonyms are `principal-<8 hex of sha256(email)>` (lower-cased email, optionally salted), so the
same person maps to the same name across a report and across runs, without showing the address.
This is pseudonymisation, not anonymisation: anyone who guesses an address can confirm the guess
unless a secret salt is used.

Service-account addresses (`…@….gserviceaccount.com`) are not people and are exactly what SEC-03
talks about, so they stay. The raw evidence files are never redacted: they are the bytes Google sent,
bound by sha256 to the manifest and the attestation, and re-verification must judge those bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
KEPT_DOMAINS = ("gserviceaccount.com",)


def pseudonym(email: str, salt: bytes = b"") -> str:
    return "principal-" + hashlib.sha256(salt + email.strip().lower().encode("utf-8")).hexdigest()[:8]


def _replace(match: re.Match[str], salt: bytes) -> str:
    email = match.group(0)
    domain = email.rsplit("@", 1)[1].lower()
    if any(domain == kept or domain.endswith("." + kept) for kept in KEPT_DOMAINS):
        return email
    return pseudonym(email, salt)


def redact_text(text: str, salt: bytes = b"") -> str:
    return EMAIL.sub(lambda m: _replace(m, salt), text)


def redact(document: Any, salt: bytes = b"") -> Any:
    """A copy of a JSON document with personal email addresses replaced, in keys and values alike."""
    if isinstance(document, str):
        return redact_text(document, salt)
    if isinstance(document, dict):
        return {redact_text(str(k), salt): redact(v, salt) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [redact(v, salt) for v in document]
    return document
