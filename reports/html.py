"""report.html: the page a person reads — verdict first, then the evidence behind it.

Rendered with jinja2 and autoescaping forced on (whatever the template's file name), so a hostile
resource name or label such as `<script>` is shown as text. The page is one self-contained file:
inline CSS, no script, no external asset, and a Content-Security-Policy that forbids scripts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup, escape

from sovaudit.reports.attestation import is_simulated_target
from sovaudit.reports.headline import headline
from sovaudit.reports.interface import FormatError, ResultFormat, check_result
from sovaudit.reports.view import (
    FRAMEWORK_TITLES,
    OUTCOMES,
    PILLAR_TITLES,
    PILLARS,
    findings,
    framework_matrix,
    summary,
    vm_attestation_rows,
)

TEMPLATE = "report.html.j2"
_SAFE_EVIDENCE_PATH = re.compile(r"^evidence/[A-Za-z0-9._-]+$")
_EXCERPT_LIMIT = 4000
MAIN_PILLARS = ("sovereignty", "confidential", "controls")


@dataclass(frozen=True)
class EvidenceRef:
    """What the page shows of one evidence file: where it is, and for probes the exchange itself."""

    id: str
    path: str
    service: str = ""
    method: str = ""
    http_method: str = ""
    url: str = ""
    status: int | str = ""
    request_body: str = ""
    response_excerpt: str = ""
    sha256: str = ""  # the manifest's digest, shown in the page's evidence index


def _pretty(body: Any) -> str:
    if body in (None, "", b""):
        return ""
    if isinstance(body, bytes):
        try:
            body = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return body[:_EXCERPT_LIMIT].decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            return body[:_EXCERPT_LIMIT]
    text = json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _EXCERPT_LIMIT else text[:_EXCERPT_LIMIT] + "\n… (truncated; see the evidence file)"


def evidence_ref(entry: Mapping[str, Any], body: bytes | None = None) -> EvidenceRef:
    """An EvidenceRef from a manifest entry (EvidenceItem.manifest_entry()) and, if known, the raw body."""
    request = entry.get("request") or {}
    return EvidenceRef(
        id=str(entry.get("id", "")),
        path=str(entry.get("path", "")),
        service=str(entry.get("service", "")),
        method=str(entry.get("method", "")),
        http_method=str(request.get("httpMethod", "")),
        url=str(request.get("url", "")),
        status=entry.get("status", ""),
        request_body=_pretty(request.get("body")),
        response_excerpt=_pretty(body) if body is not None else "",
        sha256=str(entry.get("sha256", "")),
    )


def evidence_refs(entries: Iterable[tuple[Mapping[str, Any], bytes | None]]) -> dict[str, EvidenceRef]:
    refs = [evidence_ref(entry, body) for entry, body in entries]
    return {ref.id: ref for ref in refs}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sovaudit.reports", "templates"),
        autoescape=True,  # on for every template, not only *.html: ours ends in .j2
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class HtmlFormat(ResultFormat):
    name = "html"
    file_name = "report.html"
    media_type = "text/html"

    def __init__(self, evidence: Mapping[str, EvidenceRef] | None = None, signing_key_id: str | None = None) -> None:
        self.evidence = dict(evidence or {})
        self.signing_key_id = signing_key_id

    def _evidence_link(self, evidence_id: Any) -> Markup:
        ref = self.evidence.get(str(evidence_id))
        if ref is not None and _SAFE_EVIDENCE_PATH.match(ref.path):
            return Markup('<a href="{}">{}</a>').format(ref.path, str(evidence_id))
        return escape(str(evidence_id))

    def render(self, result: Mapping[str, Any]) -> bytes:
        check_result(result)
        controls = result["controls"]
        by_pillar: dict[str, list[Mapping[str, Any]]] = {}
        for control in controls:
            by_pillar.setdefault(str(control.get("pillar") or "controls"), []).append(control)
        # The three promises always show, so a pillar with no control reads as "not evaluated", not as absent.
        names = [p for p in PILLARS if p in by_pillar or p in MAIN_PILLARS] + sorted(p for p in by_pillar if p not in PILLARS)
        pillars = [{"name": p, "title": PILLAR_TITLES.get(p, p), "controls": by_pillar.get(p, [])} for p in names]
        waivers = [
            {**c["waiver"], "control": c["waiver"].get("control") or c["id"]}
            for c in controls
            if isinstance(c.get("waiver"), Mapping)
        ]
        try:
            page = _environment().get_template(TEMPLATE).render(
                result=result,
                policy=result.get("policy") or {},
                tool=result.get("tool") or {},
                scope=result.get("scope") or {},
                outcomes=OUTCOMES,
                head=headline(result),
                counts=summary(result),
                pillars=pillars,
                probes=[p for p in result.get("probes") or [] if isinstance(p, Mapping)],
                waivers=waivers,
                matrix=framework_matrix(result),
                framework_titles=FRAMEWORK_TITLES,
                findings=findings,
                vm_rows=vm_attestation_rows(result),
                evidence=self.evidence,
                evidence_link=self._evidence_link,
                signing_key_id=self.signing_key_id,
                simulated=is_simulated_target(result.get("target")),
                # Only plain evidence/ names: a hostile manifest's path is never shown as if it were a file.
                evidence_index=sorted((ref for ref in self.evidence.values() if _SAFE_EVIDENCE_PATH.match(ref.path)),
                                      key=lambda ref: ref.path),
            )
        except jinja2.TemplateError as exc:
            raise FormatError(f"cannot render {TEMPLATE}: {exc}") from exc
        return page.encode("utf-8")
