"""Warnings about waivers that load fine but deserve a second look: expired, expiring, blanket.

`policy validate` prints them (one line each naming file, line and field) and `--strict` turns them
into errors. They are warnings, not load errors, because a verify must still run with such a pack:
an expired waiver already covers nothing (audit/waivers.py), and refusing the pack outright would
stop the audit on the very day a waiver lapses.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sovaudit.audit.waivers import UNWAIVABLE
from sovaudit.policies.pack import PolicyError, PolicyPack, field_lines

EXPIRY_NOTICE = timedelta(days=30)

# Segments of a Google resource name that name a collection or a placeholder, never one resource:
# a glob made only of these and wildcards covers every resource the control judges.
_COLLECTIONS = frozenset({
    "projects", "organizations", "folders", "locations", "regions", "zones", "global", "instances",
    "buckets", "objects", "datasets", "tables", "jobs", "taskGroups", "tasks", "keyRings", "cryptoKeys",
    "cryptoKeyVersions", "networks", "subnetworks", "firewalls", "routers", "serviceAccounts", "sinks",
    "exclusions", "accessPolicies", "servicePerimeters", "policies", "_", "-",
})


def _wildcard_only(segment: str) -> bool:
    return bool(segment) and set(segment) <= {"*", "?"}


def is_blanket(resource: str, project: str = "") -> bool:
    """True when the glob names no particular resource: `*`, `**`, `projects/*/**`, `projects/_/buckets/*`.

    With fnmatch a `*` also crosses `/`, so any glob whose segments are all wildcards, collection
    words, service hosts or the node's own project (every resource judged lives there) matches
    everything a control looks at. One literal segment such as a bucket or VM name makes it specific.
    """
    segments = resource.split("/")
    if not any(_wildcard_only(seg) for seg in segments):
        return False
    for segment in segments:
        if segment == "" or _wildcard_only(segment) or segment in _COLLECTIONS:
            continue
        if segment.endswith(".googleapis.com") or (project and segment == project):
            continue
        return False
    return True


def waiver_warnings(pack: PolicyPack, today: date) -> list[PolicyError]:
    """One warning per expired waiver, waiver expiring within 30 days, and blanket waiver, by line."""
    lines = field_lines(Path(pack.path))
    warnings: list[PolicyError] = []
    for index, waiver in enumerate(pack.waivers):
        base = f"waivers[{index}]"

        def at(field: str, base: str = base) -> int:
            return lines.get(f"{base}.{field}", lines.get(base, 1))

        if waiver.expires < today:
            warnings.append(PolicyError(
                pack.path, at("expires"), f"{base}.expires",
                f"waiver for {waiver.control} expired on {waiver.expires.isoformat()}: it covers nothing",
                "renew it with a new date or remove it"))
        elif waiver.expires - today <= EXPIRY_NOTICE:
            days = (waiver.expires - today).days
            warnings.append(PolicyError(
                pack.path, at("expires"), f"{base}.expires",
                f"waiver for {waiver.control} expires on {waiver.expires.isoformat()} (in {days} days)",
                "renew it or fix the finding before then"))
        if waiver.control in UNWAIVABLE:
            warnings.append(PolicyError(
                pack.path, at("control"), f"{base}.control",
                f"{waiver.control} cannot be waived: {UNWAIVABLE[waiver.control]}; this waiver covers nothing",
                "remove it"))
        if is_blanket(waiver.resource, pack.project):
            warnings.append(PolicyError(
                pack.path, at("resource"), f"{base}.resource",
                f"blanket waiver: {waiver.resource!r} matches every resource {waiver.control} judges",
                "name the resource, e.g. projects/_/buckets/<bucket>"))
    return warnings
