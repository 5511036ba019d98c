"""Which line of the policy pack states the requirement a control checks: SARIF's `region.startLine`.

GitHub code scanning shows an alert at its file and line; with every result at line 1 of policy.yaml,
every alert pointed at `apiVersion`. Each control checks a field of the pack (SOV-01 the
allowed policy values, SEC-03 the service account...), so its results point at that field's line, and a
waived result at the waiver that covers it. The lines come from the pack's own bytes (the bundle's
policy.yaml), through the loader's line bookkeeping (`field_lines_in`), so a bundle written now and
re-rendered from the bundle years later land on the same lines, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The pack fields each control holds the node to, most specific first; the first one the pack spells
# is the result's line. A control not listed here (a newer one) falls back to its pillar's section.
CONTROL_FIELDS: dict[str, tuple[str, ...]] = {
    "SOV-01": ("jurisdiction.allowed_policy_values", "jurisdiction.allowed_regions"),
    "SOV-02": ("jurisdiction.probe_regions",),
    "SOV-03": ("jurisdiction.probe_regions",),
    "SOV-04": ("buckets.allowed", "buckets", "access.allowed_domains"),
    "SOV-05": ("dataset", "kms.location", "access.allowed_domains"),
    "SOV-06": ("jurisdiction.allowed_regions",),
    "SOV-07": ("access_transparency.allowed_countries", "access_transparency"),
    "SOV-08": ("key_access_justifications.allowed_reasons", "key_access_justifications", "kms"),
    "SOV-09": ("assured_workload",),
    "CC-01": ("pipeline.instance_template", "confidential.required_type"),
    "CC-02": ("confidential.required_type", "confidential.machine_series"),
    "CC-03": ("confidential.required_type",),
    "CC-04": ("confidential.required_type",),
    "CC-05": ("confidential.in_guest_attestation", "confidential.required_type"),
    "SEC-01": ("perimeter.name", "perimeter"),
    "SEC-02": ("network.subnetwork", "network"),
    "SEC-03": ("service_account",),
    "SEC-04": ("buckets.allowed", "dataset"),
    "SEC-05": ("logging", "project"),
    "SEC-06": ("perimeter.name", "perimeter"),
    "SEC-07": ("readers", "access.allowed_principals", "access"),
    "SEC-08": ("logging.allowed_locations", "logging.required_bucket_location", "logging"),
    "SEC-09": ("network.egress", "network"),
    "INT-01": ("pipeline", "dataset"),
    "INT-02": ("jurisdiction", "perimeter"),
}
PILLAR_FIELDS: dict[str, tuple[str, ...]] = {
    "sovereignty": ("jurisdiction",),
    "confidential": ("confidential",),
    "controls": ("perimeter", "network"),
    "integrity": ("pipeline",),
}
FIRST_LINE = 1  # SARIF lines are 1-based; GitHub refuses a region without one


@dataclass(frozen=True)
class PolicyLines:
    """Field path -> line of one pack's text, and each waiver's (control, resource) by position."""

    fields: Mapping[str, int] = field(default_factory=dict)
    waivers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, policy_bytes: bytes | None) -> PolicyLines:
        """The lines of a pack as stored (None or unreadable bytes: no lines, every result at line 1)."""
        if policy_bytes is None:
            return cls()
        import yaml

        from sovaudit.policies.pack import field_lines_in

        try:
            text = policy_bytes.decode("utf-8")
            document = yaml.safe_load(text)
        except (UnicodeDecodeError, yaml.YAMLError):
            return cls()
        waivers = document.get("waivers") if isinstance(document, dict) else None
        listed = tuple((str(w.get("control", "")), str(w.get("resource", "*"))) if isinstance(w, dict) else ("", "")
                       for w in (waivers if isinstance(waivers, list) else ()))
        return cls(field_lines_in(text), listed)

    def line_for(self, control: Mapping[str, Any]) -> int:
        """The line stating what `control` (a result.json control) checks; a waived control's waiver."""
        waiver = control.get("waiver")
        if control.get("outcome") == "WAIVED" and isinstance(waiver, Mapping):
            wanted = (str(waiver.get("control", "")), str(waiver.get("resource", "*")))
            for index, listed in enumerate(self.waivers):
                if listed == wanted and f"waivers[{index}]" in self.fields:
                    return self.fields[f"waivers[{index}]"]
        candidates = CONTROL_FIELDS.get(str(control.get("id")), ()) + \
            PILLAR_FIELDS.get(str(control.get("pillar")), ())
        for path in candidates:
            if path in self.fields and self.fields[path] >= FIRST_LINE:
                return self.fields[path]
        return FIRST_LINE
