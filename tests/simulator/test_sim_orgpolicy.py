"""Org Policy v2 through the official client: the effective location policy, as Google returns it."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from sim_clients import orgpolicy

POLICY = "projects/fed-node-us/policies/gcp.resourceLocations"


def test_effective_policy_lists_the_unexpanded_value_group_under_the_project_number(sim_shared) -> None:
    policy = orgpolicy(sim_shared.url).get_effective_policy(name=POLICY)
    assert policy.name == "projects/314159265358/policies/gcp.resourceLocations"
    assert list(policy.spec.rules[0].values.allowed_values) == ["in:us-central1-locations"]
    assert not policy.spec.etag   # the effective policy carries no etag


def test_project_number_and_id_name_the_same_policy(sim_shared) -> None:
    client = orgpolicy(sim_shared.url)
    by_number = client.get_policy(name="projects/314159265358/policies/gcp.resourceLocations")
    by_id = client.get_policy(name=POLICY)
    assert by_number == by_id
    assert by_id.spec.etag


def test_get_policy_of_a_constraint_not_set_on_the_project_is_not_found(sim_shared) -> None:
    with pytest.raises(exceptions.NotFound):
        orgpolicy(sim_shared.url).get_policy(name="projects/fed-node-us/policies/compute.vmExternalIpAccess")


def test_effective_policy_of_an_unset_list_constraint_allows_all(sim_shared) -> None:
    policy = orgpolicy(sim_shared.url).get_effective_policy(
        name="projects/fed-node-us/policies/compute.vmExternalIpAccess")
    assert policy.spec.rules[0].allow_all is True


def test_list_policies_and_constraints(sim_shared) -> None:
    client = orgpolicy(sim_shared.url)
    assert [p.name for p in client.list_policies(parent="projects/fed-node-us")] == [
        "projects/314159265358/policies/gcp.resourceLocations"]
    constraints = {c.name: c for c in client.list_constraints(parent="projects/fed-node-us")}
    location = constraints["projects/314159265358/constraints/gcp.resourceLocations"]
    assert location.list_constraint.supports_in is True


def test_another_project_is_permission_denied(sim_shared) -> None:
    with pytest.raises(exceptions.Forbidden):
        orgpolicy(sim_shared.url).get_effective_policy(name="projects/someone-else/policies/gcp.resourceLocations")


def test_relaxed_scenario_allows_all(sim_factory) -> None:
    sim = sim_factory(scenarios=["org-policy-relaxed"])
    policy = orgpolicy(sim.url).get_effective_policy(name=POLICY)
    assert [r.allow_all for r in policy.spec.rules] == [True]
    assert not policy.spec.rules[0].values.allowed_values


def test_eu_node_allows_europe_west4(sim_factory) -> None:
    sim = sim_factory(node="eu")
    policy = orgpolicy(sim.url).get_effective_policy(name="projects/fed-node-eu/policies/gcp.resourceLocations")
    assert policy.name == "projects/271828182845/policies/gcp.resourceLocations"
    assert list(policy.spec.rules[0].values.allowed_values) == ["in:europe-west4-locations"]
