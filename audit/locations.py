"""Google Cloud locations and the org-policy value groups of `constraints/gcp.resourceLocations`.

One table for the whole project: the policy-pack validator, the controls and the simulator's
enforcement all read it, so that "is europe-west4-a inside in:eu-locations?" has one answer.

Google's rules (Restricting Resource Locations, reference §1):
* every location is allowed or denied only when listed explicitly; allowing the region `us-east1`
  does NOT allow its zone `us-east1-a`;
* `in:<group>` brings in every member of a value group (`in:us-east1-locations` = the region and
  its zones);
* a denied value beats an allowed one;
* services check the location string they use (Compute: `ZONE:us-east1-b` or `zones/...`; Cloud
  Storage: the bucket location in any case, `US-CENTRAL1`), and `global` resources are not restricted.

How sure each group's membership is, is recorded per group (`ValueGroup.certainty`): the
`<region>-locations` groups are certain; the broad groups are our best understanding of Google's
value-group table, which we could not retrieve, and are flagged so that reports can say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CERTAIN = "certain"
BEST_UNDERSTANDING = "best-understanding"

#: Region -> zone suffixes. Google adds regions over time; an unknown region fails closed
#: (UnknownLocationGroup / a policy-pack error), it is never assumed to be inside a jurisdiction.
REGION_ZONES: dict[str, tuple[str, ...]] = {
    "us-central1": ("a", "b", "c", "f"),
    "us-east1": ("b", "c", "d"),
    "us-east4": ("a", "b", "c"),
    "us-east5": ("a", "b", "c"),
    "us-south1": ("a", "b", "c"),
    "us-west1": ("a", "b", "c"),
    "us-west2": ("a", "b", "c"),
    "us-west3": ("a", "b", "c"),
    "us-west4": ("a", "b", "c"),
    "northamerica-northeast1": ("a", "b", "c"),
    "northamerica-northeast2": ("a", "b", "c"),
    "northamerica-south1": ("a", "b", "c"),
    "southamerica-east1": ("a", "b", "c"),
    "southamerica-west1": ("a", "b", "c"),
    "europe-central2": ("a", "b", "c"),
    "europe-north1": ("a", "b", "c"),
    "europe-north2": ("a", "b", "c"),
    "europe-southwest1": ("a", "b", "c"),
    "europe-west1": ("b", "c", "d"),
    "europe-west2": ("a", "b", "c"),
    "europe-west3": ("a", "b", "c"),
    "europe-west4": ("a", "b", "c"),
    "europe-west6": ("a", "b", "c"),
    "europe-west8": ("a", "b", "c"),
    "europe-west9": ("a", "b", "c"),
    "europe-west10": ("a", "b", "c"),
    "europe-west12": ("a", "b", "c"),
    "asia-east1": ("a", "b", "c"),
    "asia-east2": ("a", "b", "c"),
    "asia-northeast1": ("a", "b", "c"),
    "asia-northeast2": ("a", "b", "c"),
    "asia-northeast3": ("a", "b", "c"),
    "asia-south1": ("a", "b", "c"),
    "asia-south2": ("a", "b", "c"),
    "asia-southeast1": ("a", "b", "c"),
    "asia-southeast2": ("a", "b", "c"),
    "australia-southeast1": ("a", "b", "c"),
    "australia-southeast2": ("a", "b", "c"),
    "me-central1": ("a", "b", "c"),
    "me-central2": ("a", "b", "c"),
    "me-west1": ("a", "b", "c"),
    "africa-south1": ("a", "b", "c"),
}

#: Multi-regions and predefined dual-regions (Cloud Storage, BigQuery, KMS spell them differently;
#: all are compared lower-cased).
MULTI_REGIONS: dict[str, tuple[str, ...]] = {
    "us": tuple(r for r in REGION_ZONES if r.startswith("us-")),
    "eu": ("europe-central2", "europe-north1", "europe-west1", "europe-west3", "europe-west4"),
    "europe": tuple(r for r in REGION_ZONES if r.startswith("europe-")),
    "asia": tuple(r for r in REGION_ZONES if r.startswith("asia-")),
    "nam4": ("us-central1", "us-east1"),
    "eur4": ("europe-north1", "europe-west4"),
    "eur5": ("europe-west1", "europe-west2"),
    "eur8": ("europe-west3", "europe-west6"),
    "asia1": ("asia-northeast1", "asia-northeast2"),
}

REGION_PATTERN = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
ZONE_PATTERN = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")
_GROUP_PATTERN = re.compile(r"^in:([a-z0-9-]+)$")


class UnknownLocationGroup(ValueError):
    """An `in:` value names a group this table does not know; expanding it would be a guess."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"unknown org-policy value group {value!r}; add it to sovaudit.audit.locations.VALUE_GROUPS "
            "(with its members from Google's value-group table) or list the locations explicitly"
        )
        self.value = value


@dataclass(frozen=True)
class ValueGroup:
    """One `in:<name>` value group: the locations it brings into a policy, and how sure we are."""

    name: str
    members: frozenset[str]
    certainty: str
    note: str

    @property
    def value(self) -> str:
        return f"in:{self.name}"


def zones_of(region: str) -> tuple[str, ...]:
    return tuple(f"{region}-{suffix}" for suffix in REGION_ZONES.get(region, ()))


def _region_set(regions: Iterable[str]) -> frozenset[str]:
    members: set[str] = set()
    for region in regions:
        members.add(region)
        members.update(zones_of(region))
    return frozenset(members)


def _build_groups() -> dict[str, ValueGroup]:
    groups: dict[str, ValueGroup] = {}
    for region in REGION_ZONES:
        groups[f"{region}-locations"] = ValueGroup(
            f"{region}-locations", _region_set([region]), CERTAIN,
            "the region and its zones (Google docs: in:<region>-locations)",
        )

    def prefixed(*prefixes: str) -> list[str]:
        return [r for r in REGION_ZONES if r.startswith(prefixes)]

    us = _region_set(prefixed("us-")) | {"us", "nam4"}
    eu = _region_set(MULTI_REGIONS["eu"] + (
        "europe-north2", "europe-southwest1", "europe-west8", "europe-west9", "europe-west10", "europe-west12",
    )) | {"eu", "eur4"}
    europe = _region_set(prefixed("europe-")) | eu | {"europe", "eur5", "eur8"}
    broad = {
        "us-locations": (us, "multi-region us, dual-region nam4, every us-* region and its zones"),
        "eu-locations": (eu, "multi-region eu, dual-region eur4 and the regions in EU member states; "
                             "excludes London (europe-west2) and Zurich (europe-west6)"),
        "europe-locations": (europe, "eu-locations plus London, Zurich, the europe multi-region, eur5, eur8"),
        "northamerica-locations": (us | _region_set(prefixed("northamerica-")),
                                   "us-locations plus the northamerica-* regions (Canada, Mexico)"),
        "southamerica-locations": (_region_set(prefixed("southamerica-")), "the southamerica-* regions"),
        "asia-locations": (_region_set(prefixed("asia-")) | {"asia", "asia1"},
                           "the asia-* regions, multi-region asia, dual-region asia1"),
        "australia-locations": (_region_set(prefixed("australia-")), "the australia-* regions"),
        "middleeast-locations": (_region_set(prefixed("me-")), "the me-* regions"),
        "africa-locations": (_region_set(prefixed("africa-")), "the africa-* regions"),
    }
    for name, (members, note) in broad.items():
        groups[name] = ValueGroup(name, frozenset(members), BEST_UNDERSTANDING,
                                  note + " — not checked against Google's live value-group table")
    return groups


#: `<name>` (without `in:`) -> ValueGroup.
VALUE_GROUPS: dict[str, ValueGroup] = _build_groups()


def normalize(location: str) -> str:
    """Reduce every spelling Google uses to a bare lower-case location.

    `ZONE:us-east1-b`, `zones/us-east1-b`, a compute zone URL, `regions/us-central1`,
    `projects/p/locations/us-central1`, `US-CENTRAL1` -> `us-east1-b` / `us-central1`.
    """
    text = location.strip()
    for marker in ("/zones/", "/regions/", "/locations/"):
        if marker in text:
            text = text.rsplit(marker, 1)[1].split("/", 1)[0]
            break
    lowered = text.lower()
    for prefix in ("zone:", "region:", "zones/", "regions/", "locations/", "is:"):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix):]
            break
    return lowered


def is_region(location: str) -> bool:
    return normalize(location) in REGION_ZONES


def looks_like_region(name: str) -> bool:
    """Syntax only: `us-central1`, `europe-west10`, `northamerica-northeast2`."""
    return bool(REGION_PATTERN.match(name))


def region_of(zone_or_region: str) -> str:
    """`us-central1-a` -> `us-central1`; a region or multi-region is returned as itself."""
    location = normalize(zone_or_region)
    match = ZONE_PATTERN.match(location)
    return match.group(1) if match else location


def group(value: str) -> ValueGroup:
    """The group an `in:` value names; UnknownLocationGroup when it is not in the table."""
    match = _GROUP_PATTERN.match(value.strip().lower())
    if not match or match.group(1) not in VALUE_GROUPS:
        raise UnknownLocationGroup(value)
    return VALUE_GROUPS[match.group(1)]


def expand(values: Iterable[str]) -> set[str]:
    """The explicit locations a list of policy values names (no implied sub-locations).

    `in:` groups expand to their members; any other value is a single location. Raises
    UnknownLocationGroup for an `in:` value the table does not know, so a caller cannot mistake
    an unknown group for an empty one.
    """
    locations: set[str] = set()
    for value in values:
        text = value.strip()
        if text.lower().startswith("in:"):
            locations.update(group(text).members)
        else:
            locations.add(normalize(text))
    return locations


def is_allowed(
    location: str,
    allowed_values: Iterable[str],
    denied_values: Iterable[str] = (),
    *,
    allow_all: bool = False,
    deny_all: bool = False,
) -> bool:
    """Whether `gcp.resourceLocations` with these values lets a resource be created at `location`.

    Deny beats allow; only explicitly listed locations (after `in:` expansion) are allowed; an
    empty allow list without allowAll/denyAll falls back to the constraint default, ALLOW.
    `global` resources are not restricted by this constraint.
    """
    where = normalize(location)
    if where == "global":
        return True
    if deny_all or where in expand(denied_values):
        return False
    allowed = list(allowed_values)
    if allow_all or not allowed:
        return True
    return where in expand(allowed)
