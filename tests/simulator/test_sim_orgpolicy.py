"""Org Policy v2 through the official client: the effective location policy, as Google returns it."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import orgpolicy_v2
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


def _policy(rules: list[dict]) -> orgpolicy_v2.Policy:
    return orgpolicy_v2.Policy(name=POLICY, spec={"rules": rules})


def test_update_stores_regions_as_value_groups_and_changes_enforcement(sim) -> None:
    from sovaudit.simulator.enforcement import location_allowed

    client = orgpolicy(sim.url)
    assert not location_allowed(sim.state, "europe-west4-a")
    updated = client.update_policy(policy=_policy([{"values": {"allowed_values": [
        "us-central1", "europe-west4", "eu-locations", "us-east1-b", "US"]}}]))
    assert list(updated.spec.rules[0].values.allowed_values) == [
        "in:us-central1-locations", "in:europe-west4-locations", "in:eu-locations", "us-east1-b", "us"]
    effective = client.get_effective_policy(name=POLICY)
    assert "in:europe-west4-locations" in effective.spec.rules[0].values.allowed_values
    assert location_allowed(sim.state, "europe-west4-a")
    logged = [e for e in sim.state.log_entries
              if e.get("protoPayload", {}).get("methodName") == "google.cloud.orgpolicy.v2.OrgPolicy.UpdatePolicy"]
    assert len(logged) == 1


def test_a_value_naming_an_unknown_group_fails_the_write(sim) -> None:
    client = orgpolicy(sim.url)
    with pytest.raises(exceptions.BadRequest, match="in:atlantis-locations"):
        client.update_policy(policy=_policy([{"values": {"allowed_values": ["in:atlantis-locations"]}}]))
    assert list(client.get_policy(name=POLICY).spec.rules[0].values.allowed_values) == ["in:us-central1-locations"]


def test_delete_then_create_round_trip(sim) -> None:
    client = orgpolicy(sim.url)
    client.delete_policy(name=POLICY)
    with pytest.raises(exceptions.NotFound):
        client.get_policy(name=POLICY)
    assert client.get_effective_policy(name=POLICY).spec.rules[0].allow_all is True
    created = client.create_policy(parent="projects/fed-node-us", policy=_policy([{"deny_all": True}]))
    assert created.name == "projects/314159265358/policies/gcp.resourceLocations"
    with pytest.raises(exceptions.Conflict):
        client.create_policy(parent="projects/fed-node-us", policy=_policy([{"allow_all": True}]))
    assert [p.name for p in client.list_policies(parent="projects/fed-node-us")] == [created.name]
