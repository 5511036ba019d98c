"""Access Context Manager v1 through googleapiclient's bundled discovery document."""

from __future__ import annotations

import pytest
from googleapiclient.errors import HttpError
from sim_clients import acm, session

PERIMETER = "accessPolicies/555000111/servicePerimeters/fed_node_us"
RESTRICTED = ["storage.googleapis.com", "bigquery.googleapis.com", "batch.googleapis.com",
              "compute.googleapis.com", "logging.googleapis.com"]


def test_access_policies_are_listed_by_organization(sim_shared) -> None:
    listed = acm(sim_shared.url).accessPolicies().list(parent="organizations/161803398874").execute()
    assert [p["name"] for p in listed["accessPolicies"]] == ["accessPolicies/555000111"]
    other = acm(sim_shared.url).accessPolicies().list(parent="organizations/1").execute()
    assert "accessPolicies" not in other


def test_enforced_perimeter_holds_the_project_number_and_restricts_five_services(sim_shared) -> None:
    perimeters = acm(sim_shared.url).accessPolicies().servicePerimeters()
    listed = perimeters.list(parent="accessPolicies/555000111").execute()["servicePerimeters"]
    assert [p["name"] for p in listed] == [PERIMETER]
    got = perimeters.get(name=PERIMETER).execute()
    assert got == listed[0]
    assert got["status"]["resources"] == ["projects/314159265358"]
    assert got["status"]["restrictedServices"] == RESTRICTED
    assert "spec" not in got and "useExplicitDryRunSpec" not in got


def test_dry_run_scenario_keeps_the_perimeter_only_in_spec(sim_factory) -> None:
    sim = sim_factory(scenarios=["perimeter-dry-run"])
    got = acm(sim.url).accessPolicies().servicePerimeters().get(name=PERIMETER).execute()
    assert "status" not in got
    assert got["useExplicitDryRunSpec"] is True
    assert got["spec"]["restrictedServices"] == RESTRICTED


def test_unknown_perimeter_is_not_found(sim_shared) -> None:
    with pytest.raises(HttpError) as caught:
        acm(sim_shared.url).accessPolicies().servicePerimeters().get(
            name="accessPolicies/555000111/servicePerimeters/nope").execute()
    assert caught.value.resp.status == 404


def test_raw_rest_with_an_authorized_session_sees_the_same_perimeter(sim_shared) -> None:
    response = session().get(f"{sim_shared.url}/v1/{PERIMETER}")
    assert response.status_code == 200
    assert response.json()["title"] == "fed_node_us"
