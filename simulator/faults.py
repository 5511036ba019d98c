"""Fault injection: make one API (or one of its methods) misbehave the way Google's APIs do.

A scenario lists faults under `options.faults`; each request that reaches a routed API is checked
against them in order, before its handler runs:

```yaml
options:
  faults:
    - api: logging              # required: the route's API name (compute, storage, ...), or "*" for any
      method: POST              # optional: HTTP method(s) (`methods: [GET, POST]` is the older spelling)
      path: "^/v2/entries:list" # optional: a regular expression searched in the request path
      status: 429               # the HTTP error to answer, in the API's own error shape
      retry_after: 1            # optional: a Retry-After header (seconds), as Google sends with 429/503
      times: 2                  # optional: fire on the first N matching requests, then stay quiet
      latency_ms: 300           # optional: delay matching requests (alone: a slow but correct API)
      drop_connection: true     # close the socket without any HTTP answer (instead of a status)
      expire_page_token: true   # only requests carrying a page token: 400 "page token expired"
      permission: orgpolicy.policy.get   # optional, with status 403: the IAM permission named in the error
      message: "..."            # optional: the error message
```

Why these: they are the ways a real run against Google fails part-way: rate limits (429 with
Retry-After), backend bursts (500/503 that clear), slowness, connections reset by a proxy or load
balancer, page tokens that expire between pages of a long listing, and a role missing one permission.
The collectors must answer each with retry-then-ERROR or success, never a silent pass.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from werkzeug.wrappers import Request

from sovaudit.simulator import schema as s
from sovaudit.simulator.http import CLASSIC_ERROR_APIS, ApiError, classic_error, rpc_error

_CLASSIC_REASON = {400: "badRequest", 403: "forbidden", 404: "notFound", 409: "conflict",
                   429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}

# The API's own host, for the ErrorInfo `domain` of a gRPC-style permission error.
_SERVICE_DOMAIN = {"orgpolicy": "orgpolicy.googleapis.com", "resourcemanager": "cloudresourcemanager.googleapis.com",
                   "kms": "cloudkms.googleapis.com", "acm": "accesscontextmanager.googleapis.com",
                   "logging": "logging.googleapis.com", "batch": "batch.googleapis.com",
                   "assuredworkloads": "assuredworkloads.googleapis.com"}


def _fault_rule(fault: Mapping[str, Any]) -> str | None:
    effects = [key for key in ("status", "drop_connection", "expire_page_token") if fault.get(key)]
    if not effects and not fault.get("latency_ms"):
        return "a fault needs status, drop_connection, expire_page_token or latency_ms (else it does nothing)"
    if fault.get("drop_connection") and len(effects) > 1:
        return "drop_connection sends no answer at all: do not combine it with status or expire_page_token"
    if fault.get("retry_after") is not None and not fault.get("status"):
        return "retry_after is a header of an error answer: give a status (429 or 503) with it"
    if fault.get("permission") and fault.get("status") != 403:
        return "permission names the denied IAM permission of a 403: set status: 403"
    if fault.get("path"):
        try:
            re.compile(str(fault["path"]))
        except re.error as exc:
            return f"path {fault['path']!r} is not a regular expression ({exc}); escape literal dots and brackets"
    return None


# The `api=` names routes register under (simulator/api/*.py); a fault naming another would never fire,
# and a scenario meant to prove a recovery would pass without having injected anything.
KNOWN_APIS = ("*", "acm", "assuredworkloads", "batch", "bigquery", "compute", "confidentialcomputing", "kms", "logging",
              "orgpolicy", "resourcemanager", "storage")

FAULT_SPEC = s.Check(
    s.Struct(required={"api": s.OneOf(KNOWN_APIS)},
             optional={"status": s.Integer(minimum=400), "message": s.Text(),
                       "method": s.Text(r"[A-Za-z]+", "an HTTP method such as GET"),
                       "methods": s.ListOf(s.Text(r"[A-Za-z]+", "an HTTP method such as GET")),
                       "path": s.Text(), "times": s.Integer(minimum=1), "retry_after": s.Integer(minimum=0),
                       "latency_ms": s.Integer(minimum=0), "drop_connection": s.Boolean(),
                       "expire_page_token": s.Boolean(), "permission": s.Text()}),
    _fault_rule,
)
FAULTS_SPEC = s.ListOf(FAULT_SPEC)


class DropConnection(Exception):
    """Raised by `FaultInjector.apply`: the server must close the socket without answering."""


def _page_token(request: Request) -> str | None:
    """The page token a request carries: a query parameter, or a JSON body field (Logging's entries.list)."""
    token = request.args.get("pageToken")
    if token:
        return token
    if request.method == "POST" and request.mimetype == "application/json":
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        if isinstance(body, dict) and isinstance(body.get("pageToken"), str):
            return body["pageToken"] or None
    return None


def _methods(fault: Mapping[str, Any]) -> set[str]:
    named = [fault["method"]] if fault.get("method") else []
    return {m.upper() for m in [*named, *(fault.get("methods") or ())]}


def _matches(fault: Mapping[str, Any], api: str, request: Request) -> bool:
    if fault.get("api") not in (api, "*"):
        return False
    methods = _methods(fault)
    if methods and request.method.upper() not in methods:
        return False
    if fault.get("path") and not re.search(str(fault["path"]), request.path):
        return False
    return not (fault.get("expire_page_token") and not _page_token(request))


def _error(fault: Mapping[str, Any], api: str, request: Request) -> ApiError:
    """The fault's answer in the API's own shape: classic `errors[].reason` or gRPC `status` + details."""
    classic = api in CLASSIC_ERROR_APIS
    if fault.get("expire_page_token"):
        code = int(fault.get("status") or 400)
        message = fault.get("message") or "The page token has expired or is invalid; restart the listing."
        if classic:
            error = classic_error(code, f"Invalid value for field 'pageToken': '{_page_token(request)}'. {message}",
                                  "invalid", location="pageToken")
        else:
            error = rpc_error(code, message)
    else:
        code = int(fault["status"])
        permission = fault.get("permission")
        message = fault.get("message") or _default_message(code, api, request, permission)
        if classic:
            error = classic_error(code, message, _CLASSIC_REASON.get(code, "backendError"))
        elif code == 403:
            info: dict[str, Any] = {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                    "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com",
                                    "metadata": {"service": _SERVICE_DOMAIN.get(api, f"{api}.googleapis.com")}}
            if permission:
                info["metadata"]["permission"] = permission
            error = rpc_error(code, message, details=[info])
        else:
            error = rpc_error(code, message)
    if fault.get("retry_after") is not None:
        error.headers["Retry-After"] = str(int(fault["retry_after"]))
    return error


def _resource(path: str) -> str:
    """The resource a REST path addresses, as IAM names it: no API prefix, version or `:method`."""
    trimmed = re.sub(r"^/(?:[a-z]+/)?v\d+[a-z0-9]*/", "", path)
    return re.sub(r":[A-Za-z]+$", "", trimmed)


def _default_message(code: int, api: str, request: Request, permission: str | None) -> str:
    if code == 403:
        if permission:
            return f"Permission '{permission}' denied on resource '{_resource(request.path)}' (or it may not exist)."
        return "The caller does not have permission"
    if code == 429:
        return f"Quota exceeded for {api}: too many requests; retry later."
    if code == 503:
        return "The service is currently unavailable."
    return f"Injected fault {code} for {api}."


class FaultInjector:
    """Applies `options.faults` to each request; counts hits so `times: N` faults stop after N."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(fault) -> (the fault itself, hits). Keeping the fault alive keeps its id from being reused.
        self._hits: dict[int, tuple[Mapping[str, Any], int]] = {}

    def _take(self, fault: Mapping[str, Any]) -> bool:
        """Count one hit; False when the fault has already fired its `times`."""
        with self._lock:
            _, hits = self._hits.get(id(fault), (fault, 0))
            limit = fault.get("times")
            if limit is not None and hits >= int(limit):
                return False
            self._hits[id(fault)] = (fault, hits + 1)
            return True

    def apply(self, faults: Sequence[Mapping[str, Any]], api: str, request: Request) -> None:
        """Sleep, raise the fault's ApiError, or raise DropConnection; return when no fault fires."""
        for fault in faults:
            if not _matches(fault, api, request) or not self._take(fault):
                continue
            if fault.get("latency_ms"):
                time.sleep(int(fault["latency_ms"]) / 1000.0)
            if fault.get("drop_connection"):
                raise DropConnection(f"fault injection: {api} {request.method} {request.path} dropped")
            if fault.get("status") or fault.get("expire_page_token"):
                raise _error(fault, api, request)

    def injected(self) -> list[dict[str, Any]]:
        """How often each fault fired (for `/_sim/stats` and tests)."""
        with self._lock:
            return [{"api": fault.get("api"), "path": fault.get("path"), "hits": hits}
                    for fault, hits in self._hits.values()]
