"""Compute Engine v1 in the simulator, through the official `google.cloud.compute_v1` REST clients.

Tests share one node per module (`sim_shared`) and keep apart by resource names and labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from sovaudit.simulator.api import compute as sim_compute
from sovaudit.simulator.server import SimServer

PROJECT = "fed-node-us"
ZONE = "us-central1-a"


def _client(cls: Any, sim: SimServer) -> Any:
    return cls(transport="rest", client_options={"api_endpoint": sim.url}, credentials=AnonymousCredentials())


def _instance(name: str, *, labels: dict[str, str] | None = None, external_ip: bool = False,
              confidential: bool = False) -> compute_v1.Instance:
    nic = compute_v1.NetworkInterface(
        network=f"projects/{PROJECT}/global/networks/fed-node-us-multiomics-vpc",
        subnetwork=f"projects/{PROJECT}/regions/us-central1/subnetworks/fed-node-us-compute-subnet")
    if external_ip:
        nic.access_configs = [compute_v1.AccessConfig(type_="ONE_TO_ONE_NAT", name="External NAT")]
    instance = compute_v1.Instance(
        name=name, machine_type=f"zones/{ZONE}/machineTypes/n2d-standard-4", network_interfaces=[nic],
        labels=labels or {},
        service_accounts=[compute_v1.ServiceAccount(email="batch-runner@fed-node-us.iam.gserviceaccount.com",
                                                    scopes=["https://www.googleapis.com/auth/cloud-platform"])])
    if confidential:
        instance.confidential_instance_config = compute_v1.ConfidentialInstanceConfig(
            enable_confidential_compute=True, confidential_instance_type="SEV")
    return instance


def _names(instances: compute_v1.InstancesClient, filter_: str) -> set[str]:
    found = set()
    for _scope, scoped in instances.aggregated_list(request={"project": PROJECT, "filter": filter_}):
        found.update(vm.name for vm in scoped.instances)
    return found


def _audit_entries(sim: SimServer, method: str, resource_suffix: str) -> list[dict[str, Any]]:
    with sim.state.lock:
        return [e for e in sim.state.log_entries
                if e.get("protoPayload", {}).get("methodName") == method
                and e["protoPayload"].get("resourceName", "").endswith(resource_suffix)]


def test_instance_round_trip_insert_get_aggregated_list_delete(sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    operation = instances.insert(project=PROJECT, zone=ZONE,
                                 instance_resource=_instance("vm-round-trip", labels={"owner": "tests"},
                                                             confidential=True))
    assert operation.result(timeout=5) is None
    assert operation.status == compute_v1.Operation.Status.DONE

    vm = instances.get(project=PROJECT, zone=ZONE, instance="vm-round-trip")
    assert vm.status == "RUNNING"
    assert vm.zone == f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}"
    assert vm.machine_type.endswith(f"/zones/{ZONE}/machineTypes/n2d-standard-4")
    assert vm.self_link.endswith(f"/zones/{ZONE}/instances/vm-round-trip")
    assert vm.id > 0 and vm.creation_timestamp.endswith("-08:00")
    assert vm.network_interfaces[0].network_i_p.startswith("10.20.")
    assert vm.network_interfaces[0].network.startswith("https://www.googleapis.com/compute/v1/projects/")
    assert not vm.network_interfaces[0].access_configs
    assert vm.confidential_instance_config.enable_confidential_compute is True
    assert vm.cpu_platform == "AMD Milan"

    assert _names(instances, 'labels.owner = "tests"') == {"vm-round-trip"}

    instances.delete(project=PROJECT, zone=ZONE, instance="vm-round-trip").result(timeout=5)
    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone=ZONE, instance="vm-round-trip")
    assert _names(instances, 'labels.owner = "tests"') == set()


def test_instance_insert_and_delete_leave_admin_activity_entries_with_request_body(sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    instances.insert(project=PROJECT, zone=ZONE,
                     instance_resource=_instance("vm-audited", confidential=True)).result(timeout=5)
    instances.delete(project=PROJECT, zone=ZONE, instance="vm-audited").result(timeout=5)

    inserts = _audit_entries(sim, "v1.compute.instances.insert", f"/zones/{ZONE}/instances/vm-audited")
    first = [e for e in inserts if e.get("operation", {}).get("first")]
    assert len(first) == 1
    request = first[0]["protoPayload"]["request"]
    assert request["@type"] == "type.googleapis.com/compute.instances.insert"
    assert request["confidentialInstanceConfig"] == {"enableConfidentialCompute": True,
                                                     "confidentialInstanceType": "SEV"}
    assert first[0]["logName"].endswith("/logs/cloudaudit.googleapis.com%2Factivity")
    assert _audit_entries(sim, "v1.compute.instances.delete", f"/zones/{ZONE}/instances/vm-audited")


def test_insert_outside_the_location_policy_raises_precondition_failed_naming_the_constraint(
        sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    with pytest.raises(exceptions.PreconditionFailed) as refused:
        instances.insert(project=PROJECT, zone="europe-west1-b", instance_resource=_instance("vm-abroad"))
    assert refused.value.code == 412
    assert ("Location ZONE:europe-west1-b violates constraint constraints/gcp.resourceLocations on the "
            f"resource projects/{PROJECT}/zones/europe-west1-b/instances/vm-abroad.") in refused.value.message
    assert refused.value.errors[0]["reason"] == "conditionNotMet"
    assert _names(instances, "name = vm-abroad") == set()


def test_duplicate_insert_conflicts_and_bad_names_are_refused(sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    instances.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("vm-twice")).result(timeout=5)
    with pytest.raises(exceptions.Conflict, match="already exists"):
        instances.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("vm-twice"))
    with pytest.raises(exceptions.BadRequest, match="resource.name"):
        instances.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("Bad_Name"))
    with pytest.raises(exceptions.NotFound):
        instances.delete(project=PROJECT, zone=ZONE, instance="vm-never")


def test_access_config_gets_an_external_nat_ip(sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    instances.insert(project=PROJECT, zone=ZONE,
                     instance_resource=_instance("vm-public", external_ip=True)).result(timeout=5)
    vm = instances.get(project=PROJECT, zone=ZONE, instance="vm-public")
    config = vm.network_interfaces[0].access_configs[0]
    assert config.type_ == "ONE_TO_ONE_NAT" and config.nat_i_p


def test_zone_operations_get_and_wait_answer_the_insert_operation(sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    operation = instances.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("vm-op"))
    operations = _client(compute_v1.ZoneOperationsClient, sim)
    fetched = operations.get(project=PROJECT, zone=ZONE, operation=operation.name)
    waited = operations.wait(project=PROJECT, zone=ZONE, operation=operation.name)
    assert fetched.status == waited.status == compute_v1.Operation.Status.DONE
    assert fetched.operation_type == "insert" and fetched.target_link.endswith("/instances/vm-op")
    with pytest.raises(exceptions.NotFound):
        operations.get(project=PROJECT, zone="us-central1-b", operation=operation.name)


def test_insert_from_source_instance_template_copies_confidential_config(sim_shared: SimServer) -> None:
    sim = sim_shared
    instances = _client(compute_v1.InstancesClient, sim)
    request = compute_v1.InsertInstanceRequest(
        project=PROJECT, zone=ZONE, instance_resource=compute_v1.Instance(name="vm-from-template"),
        source_instance_template=f"projects/{PROJECT}/global/instanceTemplates/sev-n2d-batch")
    instances.insert(request=request).result(timeout=5)
    vm = instances.get(project=PROJECT, zone=ZONE, instance="vm-from-template")
    assert vm.confidential_instance_config.confidential_instance_type == "SEV"
    assert vm.machine_type.endswith("/machineTypes/n2d-standard-4")


def test_instance_template_round_trip(sim_shared: SimServer) -> None:
    sim = sim_shared
    templates = _client(compute_v1.InstanceTemplatesClient, sim)
    template = compute_v1.InstanceTemplate(name="tmpl-test", properties=compute_v1.InstanceProperties(
        machine_type="n2d-standard-2",
        confidential_instance_config=compute_v1.ConfidentialInstanceConfig(enable_confidential_compute=True)))
    templates.insert(project=PROJECT, instance_template_resource=template).result(timeout=5)
    got = templates.get(project=PROJECT, instance_template="tmpl-test")
    assert got.properties.confidential_instance_config.enable_confidential_compute is True
    assert got.self_link.endswith(f"/projects/{PROJECT}/global/instanceTemplates/tmpl-test")
    assert {"tmpl-test", "sev-n2d-batch"} <= {t.name for t in templates.list(project=PROJECT)}
    with pytest.raises(exceptions.Conflict):
        templates.insert(project=PROJECT, instance_template_resource=template)
    templates.delete(project=PROJECT, instance_template="tmpl-test").result(timeout=5)
    with pytest.raises(exceptions.NotFound):
        templates.get(project=PROJECT, instance_template="tmpl-test")


def test_regions_and_zones_describe_the_node_region(sim_shared: SimServer) -> None:
    sim = sim_shared
    region = _client(compute_v1.RegionsClient, sim).get(project=PROJECT, region="us-central1")
    assert [z.rsplit("/", 1)[-1] for z in region.zones] == ["us-central1-a", "us-central1-b", "us-central1-c",
                                                            "us-central1-f"]
    zones = _client(compute_v1.ZonesClient, sim)
    assert zones.get(project=PROJECT, zone="us-central1-f").region.endswith("/regions/us-central1")
    assert "europe-west4-a" in {z.name for z in zones.list(project=PROJECT)}
    with pytest.raises(exceptions.NotFound):
        zones.get(project=PROJECT, zone="mars-north1-a")


# ------------------------------------------------------------------------------------------ filters

_FLEET = {
    # name: (zone, labels, external ip, automaticRestart)
    "alpha-group0-0-abcd": (ZONE, {"batch-job-uid": "uid-1", "batch-node": "", "team": "gen"}, False, True),
    "alpha-group0-1-efgh": ("us-central1-b", {"batch-job-uid": "uid-1", "batch-node": ""}, True, True),
    "beta-group0-0-ijkl": ("us-central1-c", {"batch-job-uid": "uid-2", "team": "ops"}, False, False),
    "bastion": ("us-central1-f", {"team": "ops"}, True, True),
}


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[SimServer, compute_v1.InstancesClient]]:
    from sovaudit.simulator import start

    sim = start(node="us")
    try:
        instances = _client(compute_v1.InstancesClient, sim)
        for name, (zone, labels, external, restart) in _FLEET.items():
            body = _instance(name, labels=labels, external_ip=external)
            body.scheduling = compute_v1.Scheduling(automatic_restart=restart)
            instances.insert(project=PROJECT, zone=zone, instance_resource=body).result(timeout=5)
        yield sim, instances
    finally:
        sim.stop()


@pytest.mark.parametrize(("filter_", "expected"), [
    ('labels.batch-job-uid = "uid-1"', {"alpha-group0-0-abcd", "alpha-group0-1-efgh"}),
    ("labels.batch-job-uid = uid-2", {"beta-group0-0-ijkl"}),
    ('labels.batch-job-uid != "uid-1" AND labels.team:*', {"beta-group0-0-ijkl", "bastion"}),
    ("labels.batch-node:*", {"alpha-group0-0-abcd", "alpha-group0-1-efgh"}),
    ("-labels.batch-job-uid:* AND labels.team = ops", {"bastion"}),
    ("NOT labels.batch-job-uid:* labels.team = ops", {"bastion"}),
    ("scheduling.automaticRestart = false AND labels.team:*", {"beta-group0-0-ijkl"}),
    ('(labels.team = "gen") OR (labels.team = "ops") AND name:group0', {"alpha-group0-0-abcd", "beta-group0-0-ijkl"}),
    ("(labels.batch-job-uid = uid-1) (status = RUNNING) (name != alpha-group0-0-abcd)", {"alpha-group0-1-efgh"}),
    ("networkInterfaces.accessConfigs.natIP:* AND labels.team:* OR labels.batch-job-uid:*",
     {"alpha-group0-1-efgh", "bastion"}),
    ('name = "alpha-*"', {"alpha-group0-0-abcd", "alpha-group0-1-efgh"}),
    ('zone:us-central1-c AND labels.team = ops', {"beta-group0-0-ijkl"}),
    ("name eq '.*-group0-.*'", {"alpha-group0-0-abcd", "alpha-group0-1-efgh", "beta-group0-0-ijkl"}),
    ("name eq alpha", set()),  # RE2 must match the whole field
    ("(name eq 'alpha-.*') (zone eq '.*/zones/us-central1-b')", {"alpha-group0-1-efgh"}),
    ('labels.batch-job-uid eq "uid-[12]" ', {"alpha-group0-0-abcd", "alpha-group0-1-efgh", "beta-group0-0-ijkl"}),
])
def test_aggregated_list_filter_keeps_what_google_keeps(
        fleet: tuple[SimServer, compute_v1.InstancesClient], filter_: str, expected: set[str]) -> None:
    _, instances = fleet
    assert _names(instances, filter_) & set(_FLEET) == expected


def test_regex_form_ne_excludes_whole_field_matches(fleet: tuple[SimServer, compute_v1.InstancesClient]) -> None:
    _, instances = fleet
    assert _names(instances, "name ne '.*-group0-.*'") & set(_FLEET) == {"bastion"}


@pytest.mark.parametrize("bad", ["name eq a AND status = RUNNING", "labels.x =", "(name = a", "name eq '['"])
def test_malformed_or_mixed_filters_are_bad_requests(fleet: tuple[SimServer, compute_v1.InstancesClient],
                                                     bad: str) -> None:
    _, instances = fleet
    with pytest.raises(exceptions.BadRequest, match="filter"):
        list(instances.aggregated_list(request={"project": PROJECT, "filter": bad}))


def test_zonal_list_filters_and_pages(fleet: tuple[SimServer, compute_v1.InstancesClient]) -> None:
    _, instances = fleet
    pager = instances.list(request={"project": PROJECT, "zone": ZONE, "filter": "labels.team = gen",
                                    "max_results": 1})
    assert [vm.name for vm in pager] == ["alpha-group0-0-abcd"]


def test_aggregated_list_pages_a_thousand_vms_with_warnings_for_empty_zones(sim: SimServer) -> None:
    for n in range(1000):
        zone = sim_compute.zones_of_region(sim.state, "us-central1")[n % 4]
        sim_compute.create_instance(sim.state, zone, {
            "name": f"bulk-{n:04d}", "machineType": "n2d-standard-2", "labels": {"bulk": "yes"}},
            principal="tests@example.org")
    instances = _client(compute_v1.InstancesClient, sim)
    pager = instances.aggregated_list(request={"project": PROJECT, "filter": "labels.bulk = yes"})
    pages = list(pager.pages)
    assert len(pages) == 2 and pages[0].next_page_token and not pages[1].next_page_token
    names = [vm.name for page in pages for scoped in page.items.values() for vm in scoped.instances]
    assert len(names) == len(set(names)) == 1000
    assert pages[0].items["zones/europe-west4-a"].warning.code == "NO_RESULTS_ON_PAGE"

    small = instances.aggregated_list(request={"project": PROJECT, "filter": "labels.bulk = yes",
                                               "max_results": 300})
    assert len(list(small.pages)) == 4


def test_a_scenario_page_cap_forces_small_pages(sim_factory: Any) -> None:
    sim = sim_factory(scenarios=["api-slow"])  # sets options.max_page_size = 5
    instances = _client(compute_v1.InstancesClient, sim)
    pages = list(instances.aggregated_list(request={"project": PROJECT, "max_results": 500}).pages)
    counts = [sum(len(scoped.instances) for scoped in page.items.values()) for page in pages]
    assert len(pages) > 1 and max(counts) == 5 and sum(counts) == len(sim.state.instances)
