"""Evidence: the raw REST exchanges a run saw, exactly as received.

Controls read evidence only through this module's types, online and offline alike, so that
`sovaudit verify --evidence DIR` re-evaluates a bundle with the very same code that judged the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class EvidenceItem:
    """One HTTP exchange with a Google API (or the simulator), kept byte for byte."""

    id: str
    purpose: str
    service: str
    method: str
    request: Mapping[str, Any]
    status: int
    body: bytes
    collected_at: str

    @property
    def path(self) -> str:
        return f"evidence/{self.id}-{self.service}-{self.method}.json"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @cached_property
    def parsed(self) -> Any:
        """The body as JSON; None when it is not JSON (an empty body, a proxy's HTML page)."""
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def json(self) -> Any:
        return self.parsed

    def error_message(self) -> str:
        """A one-line reason for a failed exchange, for findings and reports."""
        if self.status == 0:
            text = self.body.decode("utf-8", "replace")
            return f"no response from {self.service} {self.method}: {text}"
        body = self.parsed
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = body["error"].get("message", "")
        else:
            message = self.body[:200].decode("utf-8", "replace")
        return f"{self.service} {self.method} answered HTTP {self.status}: {message}"

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "sha256": self.sha256,
            "purpose": self.purpose,
            "service": self.service,
            "method": self.method,
            "request": dict(self.request),
            "status": self.status,
            "collected_at": self.collected_at,
        }

    @classmethod
    def from_manifest_entry(cls, entry: Mapping[str, Any], body: bytes) -> EvidenceItem:
        return cls(
            id=str(entry["id"]),
            purpose=str(entry["purpose"]),
            service=str(entry["service"]),
            method=str(entry["method"]),
            request=dict(entry.get("request") or {}),
            status=int(entry["status"]),
            body=body,
            collected_at=str(entry["collected_at"]),
        )


@dataclass(frozen=True)
class PurposeStatus:
    """Whether a logical call (all pages of one question) came back whole."""

    purpose: str
    items: tuple[EvidenceItem, ...]

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    @property
    def collected(self) -> bool:
        return bool(self.items)

    @property
    def complete(self) -> bool:
        if not self.items:
            return False
        last = self.items[-1]
        if not last.ok:
            return False
        body = last.parsed
        return not (isinstance(body, dict) and body.get("nextPageToken"))

    @property
    def problem(self) -> str:
        """Why the call is not complete ('' when it is)."""
        if not self.items:
            return f"no evidence was collected for {self.purpose}"
        last = self.items[-1]
        if not last.ok:
            return last.error_message()
        if not self.complete:
            return f"{self.purpose}: listing stopped before its last page"
        return ""


@dataclass(frozen=True)
class EvidenceLog:
    """An ordered collection of evidence items; the raw material of one run."""

    items: tuple[EvidenceItem, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[EvidenceItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def by_purpose(self, purpose: str) -> PurposeStatus:
        return PurposeStatus(purpose, tuple(i for i in self.items if i.purpose == purpose))

    def purposes(self, prefix: str = "") -> list[str]:
        seen: dict[str, None] = {}
        for item in self.items:
            if item.purpose.startswith(prefix):
                seen.setdefault(item.purpose, None)
        return list(seen)

    def bodies(self, purpose: str) -> Iterable[Any]:
        """Parsed bodies of the successful pages of one purpose, in order."""
        for item in self.items:
            if item.purpose == purpose and item.ok:
                yield item.parsed
