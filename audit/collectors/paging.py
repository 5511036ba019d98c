"""Page through a REST list where no client library method fits (Access Context Manager, Assured
Workloads violations): each page is recorded by the session hook, so this only follows tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS


def list_pages(session: Any, url: str, params: Mapping[str, Any]) -> None:
    """GET `url` with `params` and every `nextPageToken` after it; an HTTP error raises as the
    client libraries raise it, so the recorder sees the same exception types either way."""
    token = ""
    while True:
        query = dict(params)
        if token:
            query["pageToken"] = token
        response = session.get(url, params=query, timeout=REQUEST_TIMEOUT_SECONDS)
        if response.status_code >= 400:
            from google.api_core import exceptions

            raise exceptions.from_http_response(response)
        token = response.json().get("nextPageToken", "")
        if not token:
            return
