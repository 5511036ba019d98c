"""Org-policy value groups and Google's location rules, from the one table in sovaudit.audit.locations."""

from __future__ import annotations

import pytest

from sovaudit.audit import locations
from sovaudit.audit.locations import UnknownLocationGroup, expand, is_allowed, region_of


def test_region_group_is_the_region_and_its_zones() -> None:
    assert expand(["in:us-central1-locations"]) == {"us-central1", "us-central1-a", "us-central1-b",
                                                   "us-central1-c", "us-central1-f"}
    assert locations.group("in:us-central1-locations").certainty == locations.CERTAIN


def test_broad_groups_are_flagged_as_best_understanding() -> None:
    us = locations.group("in:us-locations")
    assert us.certainty == locations.BEST_UNDERSTANDING and "not checked" in us.note
    assert {"us", "us-east1", "us-west4-c", "nam4"} <= us.members and "europe-west4" not in us.members


def test_eu_group_excludes_london_and_zurich_but_europe_includes_them() -> None:
    eu, europe = expand(["in:eu-locations"]), expand(["in:europe-locations"])
    assert "europe-west4-a" in eu and "europe-west2" not in eu and "europe-west6" not in eu
    assert {"europe-west2", "europe-west6", "europe"} <= europe and eu <= europe


def test_northamerica_contains_us_and_canada() -> None:
    assert {"us-central1", "northamerica-northeast1-a"} <= expand(["in:northamerica-locations"])


def test_every_region_has_its_own_group() -> None:
    for region in locations.REGION_ZONES:
        assert region in expand([f"in:{region}-locations"])


def test_unknown_group_raises_rather_than_expanding_to_nothing() -> None:
    with pytest.raises(UnknownLocationGroup, match="in:mars-locations"):
        expand(["in:mars-locations"])


@pytest.mark.parametrize(("location", "region"), [
    ("us-central1-a", "us-central1"), ("zones/europe-west4-b", "europe-west4"), ("regions/us-east1", "us-east1"),
    ("ZONE:asia-south1-b", "asia-south1"), ("US-CENTRAL1", "us-central1"), ("us", "us"),
    ("https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-f", "us-central1"),
    ("projects/p/locations/europe-west4", "europe-west4"),
])
def test_region_of_every_spelling(location: str, region: str) -> None:
    assert region_of(location) == region


def test_a_listed_region_does_not_imply_its_zones() -> None:
    assert is_allowed("us-east1", ["us-east1"])
    assert not is_allowed("us-east1-b", ["us-east1"])
    assert is_allowed("zones/us-east1-b", ["in:us-east1-locations"])
    assert not is_allowed("us-east1-a", ["in:us-east1-locations"])  # us-east1 has no zone a


def test_deny_beats_allow() -> None:
    assert not is_allowed("us-central1-f", ["in:us-central1-locations"], ["us-central1-f"])
    assert not is_allowed("us-east1-b", ["in:us-locations"], ["in:us-east1-locations"])
    assert is_allowed("us-central1-a", ["in:us-central1-locations"], ["us-central1-f"])


def test_gcs_upper_case_and_compute_prefixes_are_understood() -> None:
    assert is_allowed("US-CENTRAL1", ["in:us-central1-locations"])
    assert is_allowed("ZONE:us-central1-b", ["in:us-central1-locations"])
    assert not is_allowed("EUROPE-WEST4", ["in:us-central1-locations"])


def test_allow_all_deny_all_and_the_default() -> None:
    assert is_allowed("asia-east1", [], allow_all=True)
    assert not is_allowed("us-central1", ["in:us-central1-locations"], deny_all=True)
    assert is_allowed("asia-east1", [])  # no values: the constraint default (ALLOW)
    assert is_allowed("global", ["in:us-central1-locations"])  # global resources are not restricted
