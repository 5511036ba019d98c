"""Waivers: a failure accepted on the record, by a named owner, until a date.

A waiver covers a FAIL finding when its control id matches and its resource glob matches the
finding's resource. An expired waiver covers nothing and says so; a waiver never turns ERROR into
a pass (missing evidence is not a risk anyone can accept on the node's behalf).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase

from sovaudit.policies.pack import Waiver


@dataclass(frozen=True)
class WaiverMatch:
    """The waiver that speaks for one finding, and whether it is still in force."""

    waiver: Waiver
    active: bool


def matches(waiver: Waiver, control_id: str, resource: str) -> bool:
    return waiver.control == control_id and fnmatchcase(resource, waiver.resource)


def find(waivers: Iterable[Waiver], control_id: str, resource: str, today: date) -> WaiverMatch | None:
    """The in-force waiver for this finding, else an expired one that would have matched, else None."""
    expired: WaiverMatch | None = None
    for waiver in waivers:
        if not matches(waiver, control_id, resource):
            continue
        # The expiry date is the last day the waiver holds.
        if today <= waiver.expires:
            return WaiverMatch(waiver, True)
        expired = expired or WaiverMatch(waiver, False)
    return expired
