"""Records every HTTP exchange the official clients make, byte for byte, as evidence.

The clients parse responses into objects that drop unknown fields and add defaults; a regulator needs
what Google actually answered. A `requests` response hook on each client's session sees the raw
bytes. Collectors label their calls with a *purpose* (a thread-local context), so concurrent
collectors never mix their evidence.

Retry policy (`Recorder.call`), because a flaky API must end in a clear answer, not a false pass or
a hung gate:

- transient answers (429, 500, 502, 503, 504) and no answer at all (a dropped connection, a reset, a
  timeout; recorded as a status-0 item) are retried with exponential backoff (0.1 s doubling, at most
  8 s) and jitter, so concurrent collectors do not retry in step;
- a `Retry-After` header is honoured as a floor (seconds or an HTTP date); when it reaches past the
  call's deadline the call gives up at once instead of retrying early;
- a 400 on a continuation page (the request carried a page token) means the token expired: the whole
  listing restarts from page 1, within the same deadline;
- anything else (403 permission denied, 404, other 4xx) is final at the first answer;
- each call retries for at most `deadline_seconds` (`--api-deadline`) from its first attempt; an API
  that has exhausted a deadline once is not retried again in the same run, so a dead API costs the
  run one deadline rather than one per call.

A call that gives up raises `CollectionError`; its evidence (the failed answers) stays, and the
controls that needed it report ERROR naming the API and method.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from sovaudit import progress
from sovaudit.audit.evidence import EvidenceItem, EvidenceLog

T = TypeVar("T")

TRANSIENT_HTTP = {429, 500, 502, 503, 504}
BACKOFF_INITIAL_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 8.0


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


@dataclass(frozen=True)
class _Answer:
    """The last HTTP answer seen on this thread under a label: what the retry decision reads."""

    status: int
    retry_after: str | None
    paged: bool   # the request carried a page token (a continuation page of a listing)
    reason: str = ""  # "503 UNAVAILABLE": the status and Google's error status, for the progress line


def _reason(status: int, body: bytes) -> str:
    """`503 UNAVAILABLE` from an error answer: the HTTP status and the `error.status` of Google's error
    body when it has one (Storage's JSON API has none; the HTTP reason stands in then)."""
    import json

    word = ""
    try:
        error = json.loads(body).get("error")
        word = str(error.get("status") or "") if isinstance(error, dict) else ""
    except (ValueError, AttributeError):
        pass
    if not word:
        word = http.client.responses.get(status, "").upper().replace(" ", "_")
    return f"{status} {word}".strip()


def _carries_page_token(request: Mapping[str, Any]) -> bool:
    body = request.get("body")
    return bool((request.get("params") or {}).get("pageToken")
                or (isinstance(body, dict) and body.get("pageToken")))


def _no_answer(exc: BaseException) -> bool:
    """Whether the failure is a connection that gave no HTTP answer (reset, dropped, refused, timed out)."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                                ConnectionError, TimeoutError, http.client.HTTPException)):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_after_seconds(header: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Retry-After as seconds to wait (RFC 9110: delay-seconds or an HTTP date); None when absent or junk."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now()).total_seconds())


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
        # Services whose calls ran out of deadline on transient errors: later calls are not retried.
        self._exhausted: set[str] = set()

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
        request = _request_record(response.request)
        reason = _reason(response.status_code, response.content) if response.status_code >= 400 else ""
        self._local.answer = _Answer(response.status_code, response.headers.get("Retry-After"),
                                     _carries_page_token(request), reason)
        self._append(label, request, response.status_code, response.content)
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
             *, retry: bool = True, cleanup: bool = False) -> T:
        """Run `fn` (which makes one or more HTTP calls) under a purpose, retrying as the module says.

        A failed attempt's items are kept but renamed `<purpose>#attempt-N`, so the purpose itself
        always holds exactly the pages of the last attempt: views never double count a retried list.
        `retry=False` is for calls that must not repeat (a probe's create).

        Once the run is interrupted (`interrupts.STOP`), a call starts no new attempt and a retry wait
        ends at once, so no retry loop outlives Ctrl-C/SIGTERM; `cleanup=True` (deleting a probe
        resource) keeps retrying, within the bound the interrupt announced.
        """
        from sovaudit import interrupts

        label = _Label(purpose, service, method)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            if interrupts.interrupted() and not cleanup:
                raise CollectionError(purpose, f"{service} {method}: not called: the run was interrupted")
            mark = len(self._items)
            self._local.answer = None
            try:
                with self.labelled(purpose, service, method):
                    return fn()
            except Exception as exc:  # noqa: BLE001 - any failure becomes evidence, then a decision
                answer: _Answer | None = getattr(self._local, "answer", None)
                if _no_answer(exc) or answer is None:
                    # No HTTP answer to the failing request: that is evidence too (status 0).
                    self._append(label, {"httpMethod": "", "url": "", "params": {}, "body": None}, 0,
                                 f"{type(exc).__name__}: {exc}".encode())
                    answer = _Answer(0, None, False) if _no_answer(exc) else None
                with self._lock:
                    already_down = service in self._exhausted
                decision = None if already_down else self._decide(answer, attempt, started, retry)
                if decision is None:
                    message = self._describe(label, exc, attempt, started, already_down)
                    if answer is not None and answer.status != 400 and self._retryable(answer) and retry:
                        with self._lock:
                            self._exhausted.add(service)
                    raise CollectionError(purpose, message) from exc
                self._supersede(purpose, mark, attempt)
                progress.retrying(f"{service}.{method}", answer.reason if answer and answer.status
                                  else f"no answer ({type(exc).__name__})", attempt, decision,
                                  self.deadline_seconds, self._clock() - started)
                if cleanup:
                    time.sleep(decision)
                elif interrupts.sleep(decision):
                    raise CollectionError(purpose, f"{service} {method}: retry abandoned: the run was "
                                                   "interrupted") from exc

    @staticmethod
    def _retryable(answer: _Answer) -> bool:
        return answer.status == 0 or answer.status in TRANSIENT_HTTP or (answer.status == 400 and answer.paged)

    def _decide(self, answer: _Answer | None, attempt: int, started: float, retry: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not retry or answer is None or not self._retryable(answer):
            return None
        floor = retry_after_seconds(answer.retry_after) if answer.status in TRANSIENT_HTTP else None
        if floor is not None:
            # Never earlier than the server asked; a little later, so rate-limited callers spread out.
            delay = floor * random.uniform(1.0, 1.1) + random.uniform(0.0, 0.02)
        else:
            backoff = min(BACKOFF_MAX_SECONDS, BACKOFF_INITIAL_SECONDS * 2 ** (attempt - 1))
            delay = backoff * random.uniform(0.5, 1.5)
        if self._clock() - started + delay > self.deadline_seconds:
            return None
        return delay

    def _supersede(self, purpose: str, mark: int, attempt: int) -> None:
        with self._lock:
            for index in range(mark, len(self._items)):
                item = self._items[index]
                if item.purpose == purpose:
                    self._items[index] = replace(item, purpose=f"{purpose}#attempt-{attempt}")

    def _describe(self, label: _Label, exc: Exception, attempts: int, started: float, already_down: bool) -> str:
        message = getattr(exc, "message", None) or str(exc)
        spent = self._clock() - started
        gave_up = " (not retried: this API already ran out of its deadline in this run)" if already_down else ""
        return (f"{label.service} {label.method}: {type(exc).__name__} after {attempts} attempt(s) in {spent:.1f}s "
                f"(deadline {self.deadline_seconds:g}s){gave_up}: {message}")

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
