"""The registry of report formats: one place that knows every format by its command-line name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sovaudit.reports.html import EvidenceRef, HtmlFormat
from sovaudit.reports.interface import ResultFormat
from sovaudit.reports.json_format import JsonFormat
from sovaudit.reports.junit import JunitFormat
from sovaudit.reports.oscal import OscalFormat, PoamFormat
from sovaudit.reports.policy_lines import PolicyLines
from sovaudit.reports.sarif import SarifFormat

FORMAT_NAMES = ("json", "html", "junit", "sarif", "oscal", "poam")


def all_formats(
    evidence: Mapping[str, EvidenceRef] | None = None,
    signing_key_id: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    policy_lines: PolicyLines | None = None,
) -> list[ResultFormat]:
    """Every format, in the order a bundle writes them, sharing what they know of the evidence.

    The OSCAL documents read the manifest itself (evidence digests and collection times); SARIF reads
    the lines of the bundle's policy.yaml (`PolicyLines.of(its bytes)`)."""
    paths = {eid: ref.path for eid, ref in (evidence or {}).items()}
    return [JsonFormat(), HtmlFormat(evidence, signing_key_id), JunitFormat(), SarifFormat(paths, False, policy_lines),
            OscalFormat(manifest), PoamFormat(manifest)]


def get_format(
    name: str,
    evidence: Mapping[str, EvidenceRef] | None = None,
    signing_key_id: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    policy_lines: PolicyLines | None = None,
) -> ResultFormat:
    for fmt in all_formats(evidence, signing_key_id, manifest, policy_lines):
        if fmt.name == name:
            return fmt
    raise KeyError(f"unknown format {name!r}; choose one of {', '.join(FORMAT_NAMES)}")
