"""Small helpers the control-plane API modules share: project resolution and page tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from sovaudit.simulator.http import SimRequest, rpc_error
from sovaudit.simulator.state import SimState


def project_matches(state: SimState, project: str) -> bool:
    """Google accepts a project id or its number in most resource names."""
    return project in {state.project_id, state.project_number}


def require_project(state: SimState, project: str, *, what: str = "Project") -> None:
    if not project_matches(state, project):
        # Google answers 403 for projects the caller cannot see (it does not reveal existence).
        raise rpc_error(403, f"Permission denied on resource project {project}.", status="PERMISSION_DENIED",
                        details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_INVALID",
                                  "domain": "googleapis.com", "metadata": {"consumer": f"projects/{project}"}}])


def page(request: SimRequest, items: Sequence[Any], *, default_size: int = 50,
         max_size: int = 1000) -> tuple[list[Any], str | None]:
    """Slice `items` by pageSize/pageToken; the token is opaque (offset + a guard on the query)."""
    size_text = request.arg("pageSize") or (request.json().get("pageSize") if request.http.method == "POST" else None)
    try:
        size = int(size_text) if size_text not in (None, "") else default_size
    except (TypeError, ValueError) as exc:
        raise rpc_error(400, f"Invalid value for pageSize: {size_text!r}") from exc
    if size <= 0:
        size = default_size
    size = min(size, max_size, int(request.state.options.get("max_page_size") or max_size))
    token = request.arg("pageToken") or (request.json().get("pageToken") if request.http.method == "POST" else None)
    offset = decode_token(token) if token else 0
    chunk = list(items[offset:offset + size])
    next_token = encode_token(offset + size) if offset + size < len(items) else None
    return chunk, next_token


def paged_body(request: SimRequest, field: str, items: Sequence[Any], *, default_size: int = 50,
               **extra: Any) -> dict[str, Any]:
    """One page of a list response as Google shapes it: the items under `field` and
    `nextPageToken`, each omitted when empty (REST omits unset fields), plus any `extra` fields."""
    chunk, token = page(request, items, default_size=default_size)
    body: dict[str, Any] = dict(extra)
    if chunk:
        body[field] = chunk
    if token:
        body["nextPageToken"] = token
    return body


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise rpc_error(400, f"Invalid page token: {token!r}", status="INVALID_ARGUMENT") from exc
