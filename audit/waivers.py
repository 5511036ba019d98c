"""Waivers: a failure accepted on the record, by a named owner, until a date.

A waiver covers a FAIL finding when its control id matches and its resource glob matches the
finding's resource. An expired waiver covers nothing and says so; a waiver never turns ERROR into
a pass (missing evidence is not a risk anyone can accept on the node's behalf).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase

from sovaudit.policies.pack import Waiver

# Controls whose findings no waiver may cover, and why. SOV-09 reports Google's own verdict (Assured
# Workloads violations): accepting it is not the pack's to decide, so a matching waiver is refused and
# the finding says so instead of silently ignoring the waiver.
UNWAIVABLE: Mapping[str, str] = {
    "SOV-09": "an Assured Workloads violation is Google's own verdict and no sovaudit waiver can hide it; "
              "resolve it in Assured Workloads",
}


@dataclass(frozen=True)
class WaiverMatch:
    """The waiver that speaks for one finding, and whether it is still in force.

    `refused` is set (with the reason) when the control cannot be waived at all: the match is then
    never active, whatever its expiry."""

    waiver: Waiver
    active: bool
    refused: str = ""


def matches(waiver: Waiver, control_id: str, resource: str) -> bool:
    return waiver.control == control_id and fnmatchcase(resource, waiver.resource)


def find(waivers: Iterable[Waiver], control_id: str, resource: str, today: date) -> WaiverMatch | None:
    """The in-force waiver for this finding, else an expired one that would have matched, else None."""
    expired: WaiverMatch | None = None
    for waiver in waivers:
        if not matches(waiver, control_id, resource):
            continue
        if control_id in UNWAIVABLE:
            return WaiverMatch(waiver, False, UNWAIVABLE[control_id])
        # The expiry date is the last day the waiver holds.
        if today <= waiver.expires:
            return WaiverMatch(waiver, True)
        expired = expired or WaiverMatch(waiver, False)
    return expired
