"""CC-05's one extra read: the Confidential Computing token signing keys (a JWKS), archived as evidence.

Fetched once per verify, and only when the pack turns in-guest attestation on, so the bundle holds
the exact keys the tokens were checked against and `verify --evidence` re-checks them offline. The
tokens themselves ride in the task manifests' custom metadata, read by the listing INT-01 already makes.
"""

from __future__ import annotations

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext

PURPOSE = "confidentialcomputing.jwks"


def signing_keys(ctx: CollectContext) -> None:
    session, url = cloud.attestation_keys(ctx.target, ctx.pack.confidential.in_guest_attestation.jwks_uri)
    ctx.recorder.hook_session(session)

    def fetch() -> None:
        response = session.get(url, timeout=REQUEST_TIMEOUT_SECONDS)
        if response.status_code >= 400:
            from google.api_core import exceptions

            raise exceptions.from_http_response(response)

    ctx.recorder.call(PURPOSE, "confidentialcomputing", "jwks.get", fetch)
