"""Records every HTTP exchange the official clients make, byte for byte, as evidence.

The clients parse responses into objects that drop unknown fields and add defaults; a regulator needs
what Google actually answered. A `requests` response hook on each client's session sees the raw
bytes. Collectors label their calls with a *purpose* (a thread-local context), so concurrent
collectors never mix their evidence.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from sovaudit.audit.evidence import EvidenceItem, EvidenceLog

T = TypeVar("T")

TRANSIENT_HTTP = {429, 500, 502, 503, 504}


class CollectionError(Exception):
    """A call that did not succeed within its deadline; its evidence items say why."""

    def __init__(self, purpose: str, message: str):
        super().__init__(f"{purpose}: {message}")
        self.purpose = purpose
        self.message = message


@dataclass(frozen=True)
class _Label:
    purpose: str
    service: str
    method: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Query parameters that carry a credential (an API key, an OAuth token, a signed-URL signature). Google's
# clients send credentials in headers, which are never recorded; these are kept out of the evidence too,
# in case a caller or a future client puts one in the URL.
_SECRET_PARAMS = {"access_token", "key", "token", "id_token", "oauth_token", "x-goog-signature",
                  "x-goog-credential", "signature", "sig", "upload_id"}


def _safe_params(query: str) -> dict[str, str]:
    params = dict(parse_qsl(query, keep_blank_values=True))
    return {name: ("<redacted>" if name.lower() in _SECRET_PARAMS else value) for name, value in params.items()}


def _request_record(prepared: Any) -> dict[str, Any]:
    """What was asked: method, URL without user info or query, the query and the JSON body. Never the
    headers: they carry the bearer token (`Authorization`) and, for API keys, `x-goog-api-key`."""
    parts = urlsplit(prepared.url)
    body: Any = None
    raw = prepared.body
    if raw:
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raw = f"<{len(prepared.body)} binary bytes>"
        import json

        try:
            body = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            # Multipart uploads and media: keep the request small and free of payload data.
            body = f"<{len(raw)} bytes, non-JSON>"
    return {
        "httpMethod": prepared.method,
        "url": f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}",  # never user:password@
        "params": _safe_params(parts.query),
        "body": body,
    }


class Recorder:
    """Collects `EvidenceItem`s from hooked client sessions; safe across threads."""

    def __init__(self, *, deadline_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._items: list[EvidenceItem] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self.deadline_seconds = deadline_seconds
        self._clock = clock

    # -- wiring ---------------------------------------------------------------------------------
    def hook(self, client: Any) -> Any:
        """Attach the response hook to the client's HTTP session; returns the client."""
        from sovaudit.cloud import http_session_of

        return self.hook_session(http_session_of(client)) and client

    def hook_session(self, session: Any) -> Any:
        # Checked on the session itself, not by id(): a collected session's id is reused by the next one.
        with self._lock:
            hooks = session.hooks.setdefault("response", [])
            if self._on_response not in hooks:
                hooks.append(self._on_response)
        return session

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        label: _Label | None = getattr(self._local, "label", None)
        if label is None:
            return response
        self._local.retry_after = response.headers.get("Retry-After")
        self._append(label, _request_record(response.request), response.status_code, response.content)
        return response

    def _append(self, label: _Label, request: dict[str, Any], status: int, body: bytes) -> EvidenceItem:
        with self._lock:
            item = EvidenceItem(
                id=f"{len(self._items) + 1:04d}", purpose=label.purpose, service=label.service,
                method=label.method, request=request, status=status, body=body, collected_at=_now(),
            )
            self._items.append(item)
            return item

    # -- labelling --------------------------------------------------------------------------------
    @contextmanager
    def labelled(self, purpose: str, service: str, method: str) -> Iterator[None]:
        previous = getattr(self._local, "label", None)
        self._local.label = _Label(purpose, service, method)
        try:
            yield
        finally:
            self._local.label = previous

    def call(self, purpose: str, service: str, method: str, fn: Callable[[], T],
             *, retry: bool = True) -> T:
        """Run `fn` (which makes one or more HTTP calls) under a purpose, retrying transient faults.

        A failed attempt's items are kept but renamed `<purpose>#attempt-N`, so the purpose itself
        always holds exactly the pages of the last attempt: views never double count a retried list.
        """
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            mark = len(self._items)
            try:
                with self.labelled(purpose, service, method):
                    return fn()
            except Exception as exc:  # noqa: BLE001 - any failure becomes evidence, then a decision
                status, retry_after = self._last_status(purpose, mark)
                if status is None:
                    # No HTTP answer at all (connection refused, reset, DNS): evidence of that too.
                    self._append(_Label(purpose, service, method),
                                 {"httpMethod": "", "url": "", "params": {}, "body": None}, 0,
                                 f"{type(exc).__name__}: {exc}".encode())
                transient = status is None or status in TRANSIENT_HTTP
                elapsed = self._clock() - started
                delay = retry_after if retry_after is not None else min(8.0, 0.25 * 2 ** (attempt - 1))
                delay *= 0.5 + random.random()  # jitter: concurrent collectors must not retry in step
                if not retry or not transient or elapsed + delay > self.deadline_seconds:
                    raise CollectionError(purpose, self._describe(purpose, exc, attempt)) from exc
                self._supersede(purpose, mark, attempt)
                time.sleep(delay)

    def _last_status(self, purpose: str, mark: int) -> tuple[int | None, float | None]:
        with self._lock:
            mine = [i for i in self._items[mark:] if i.purpose == purpose]
        if not mine:
            return None, None
        last = mine[-1]
        retry_after: float | None = None
        header = getattr(self._local, "retry_after", None)
        if last.status in TRANSIENT_HTTP and header:
            try:
                retry_after = min(float(header), 30.0)  # Retry-After in seconds; dates are not used by Google
            except ValueError:
                retry_after = None
        return (last.status if last.status else None), retry_after

    def _supersede(self, purpose: str, mark: int, attempt: int) -> None:
        with self._lock:
            for index in range(mark, len(self._items)):
                item = self._items[index]
                if item.purpose == purpose:
                    self._items[index] = replace(item, purpose=f"{purpose}#attempt-{attempt}")

    def _describe(self, purpose: str, exc: Exception, attempts: int) -> str:
        message = getattr(exc, "message", None) or str(exc)
        return f"{type(exc).__name__} after {attempts} attempt(s): {message}"

    def record_synthetic(self, purpose: str, service: str, method: str, request: dict[str, Any],
                         status: int, body: bytes) -> EvidenceItem:
        """For exchanges made outside a hooked session (kept for completeness; rarely needed)."""
        return self._append(_Label(purpose, service, method), request, status, body)

    # -- results ----------------------------------------------------------------------------------
    def log(self) -> EvidenceLog:
        with self._lock:
            return EvidenceLog(tuple(self._items))

    def request_count(self) -> int:
        with self._lock:
            return len(self._items)
