"""Cloud Logging routing configuration: the project's sinks, exclusions and log buckets.

Three list calls (each usually one page) answer SEC-08's question: are the audit entries the absence
proofs read stored, in the node, in the jurisdiction? Buckets are listed across every location at
once (`locations/-`), so a bucket created in a new region costs no extra request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext, utc_text

PAGE_SIZE = "100"


def _list_all(ctx: CollectContext, session: Any, base: str, purpose: str, method: str, path: str) -> None:
    def list_pages() -> None:
        token = ""
        while True:
            params = {"pageSize": PAGE_SIZE}
            if token:
                params["pageToken"] = token
            response = session.get(f"{base}/v2/{path}", params=params, timeout=REQUEST_TIMEOUT_SECONDS)
            if response.status_code >= 400:
                from google.api_core import exceptions

                raise exceptions.from_http_response(response)
            token = response.json().get("nextPageToken", "")
            if not token:
                return

    ctx.recorder.call(purpose, "logging", method, list_pages)


# purpose -> (method label, path under v2/ with {project})
LISTINGS = {
    "logging.sinks": ("sinks.list", "projects/{project}/sinks"),
    "logging.exclusions": ("exclusions.list", "projects/{project}/exclusions"),
    "logging.buckets": ("buckets.list", "projects/{project}/locations/-/buckets"),
}


def collect(ctx: CollectContext) -> None:
    """All three listings; each is its own purpose, so one failing leaves the others as evidence."""
    from sovaudit.audit.recorder import CollectionError

    session, base = cloud.logging_config(ctx.target)
    ctx.recorder.hook_session(session)
    failed: list[CollectionError] = []
    for purpose, (method, path) in LISTINGS.items():
        try:
            _list_all(ctx, session, base, purpose, method, path.format(project=ctx.project))
        except CollectionError as error:
            failed.append(error)
    if failed:
        raise failed[0]


CHANGES_PURPOSE = "logging.config_changes"


def changes_filter(project: str, start: datetime) -> str:
    """Admin Activity entries of Logging config mutations from the run's start until now: a routing
    changed during the run and reverted before verify leaves these behind (they are in `_Required`,
    which no exclusion reaches). The explicit timestamp keeps the client's 24-hour clause away."""
    return (f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Factivity" AND '
            'protoPayload.serviceName="logging.googleapis.com" AND protoPayload.methodName:"ConfigServiceV2" '
            f'AND timestamp>="{utc_text(start)}"')


def changes(ctx: CollectContext, start: datetime) -> None:
    from sovaudit.audit.collectors import logs

    logs.collect(ctx, CHANGES_PURPOSE, changes_filter(ctx.project, start))
