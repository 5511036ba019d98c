"""Instance mutations in the simulator, through the official `google.cloud.compute_v1` REST clients.

Each mutation must change the stored instance as Google does (fingerprints renewed), answer a zonal
Operation and leave the Admin Activity pair `v1.compute.instances.<method>` whose `first` entry
carries the request body: the auditor judges a VM's history on exactly those entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from sovaudit.simulator.server import SimServer

PROJECT = "fed-node-us"
ZONE = "us-central1-a"


def _client(sim: SimServer) -> compute_v1.InstancesClient:
    return compute_v1.InstancesClient(transport="rest", client_options={"api_endpoint": sim.url},
                                      credentials=AnonymousCredentials())


@pytest.fixture
def vm(sim_shared: SimServer, request: pytest.FixtureRequest) -> Iterator[tuple[compute_v1.InstancesClient, str]]:
    """A fresh confidential n2d VM per test, deleted afterwards."""
    client = _client(sim_shared)
    name = "mut-" + request.node.name.split("[")[0].removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    nic = compute_v1.NetworkInterface(network=f"projects/{PROJECT}/global/networks/fed-node-us-multiomics-vpc")
    body = compute_v1.Instance(
        name=name, machine_type=f"zones/{ZONE}/machineTypes/n2d-standard-4", network_interfaces=[nic],
        labels={"batch-job-uid": "job-uid-1"},
        confidential_instance_config=compute_v1.ConfidentialInstanceConfig(enable_confidential_compute=True),
        service_accounts=[compute_v1.ServiceAccount(email="batch-runner@fed-node-us.iam.gserviceaccount.com")])
    client.insert(project=PROJECT, zone=ZONE, instance_resource=body).result()
    yield client, name
    try:
        client.delete(project=PROJECT, zone=ZONE, instance=name).result()
    except exceptions.NotFound:
        pass


def _pair(sim: SimServer, method: str, name: str) -> list[dict[str, Any]]:
    with sim.state.lock:
        return [e for e in sim.state.log_entries if e.get("protoPayload", {}).get("methodName") == method
                and e["protoPayload"].get("resourceName", "").endswith(f"/zones/{ZONE}/instances/{name}")]


def _assert_logged(sim: SimServer, verb: str, vm_name: str, operation: Any, **request: Any) -> None:
    entries = _pair(sim, f"v1.compute.instances.{verb}", vm_name)
    assert [bool(e["operation"].get("first")) for e in entries] == [True, False]
    first, last = entries
    assert first["logName"] == f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity"
    assert first["resource"]["type"] == "gce_instance"
    assert first["protoPayload"]["request"]["@type"] == f"type.googleapis.com/compute.instances.{verb}"
    for key, value in request.items():
        assert first["protoPayload"]["request"][key] == value
    assert first["protoPayload"]["authorizationInfo"][0]["permission"] == f"compute.instances.{verb}"
    assert last["operation"] == {"id": first["operation"]["id"], "producer": "compute.googleapis.com", "last": True}
    assert last["protoPayload"]["request"] == {"@type": f"type.googleapis.com/compute.instances.{verb}"}
    assert first["operation"]["id"] == operation.name
    assert operation.operation_type == verb and operation.zone.endswith(f"/zones/{ZONE}")


def test_add_and_delete_access_config_change_the_instance_and_are_logged(
        sim_shared: SimServer, vm: tuple[compute_v1.InstancesClient, str]) -> None:
    client, name = vm
    before = client.get(project=PROJECT, zone=ZONE, instance=name)
    op = client.add_access_config(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                  access_config_resource=compute_v1.AccessConfig(type_="ONE_TO_ONE_NAT",
                                                                                 name="External NAT"))
    op.result()
    after = client.get(project=PROJECT, zone=ZONE, instance=name)
    config = after.network_interfaces[0].access_configs[0]
    assert config.nat_i_p and config.name == "External NAT"
    assert after.network_interfaces[0].fingerprint != before.network_interfaces[0].fingerprint
    assert after.fingerprint != before.fingerprint
    _assert_logged(sim_shared, "addAccessConfig", name, op, type="ONE_TO_ONE_NAT", name="External NAT")
    with pytest.raises(exceptions.BadRequest):   # a NIC holds one IPv4 access config
        client.add_access_config(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                 access_config_resource=compute_v1.AccessConfig(name="second"))
    op = client.delete_access_config(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                     access_config="External NAT")
    op.result()
    assert not client.get(project=PROJECT, zone=ZONE, instance=name).network_interfaces[0].access_configs
    _assert_logged(sim_shared, "deleteAccessConfig", name, op)


def test_update_access_config_and_network_interface_need_the_current_fingerprint(
        sim_shared: SimServer, vm: tuple[compute_v1.InstancesClient, str]) -> None:
    client, name = vm
    nic = client.get(project=PROJECT, zone=ZONE, instance=name).network_interfaces[0]
    stale = compute_v1.NetworkInterface(fingerprint="c3RhbGU=", stack_type="IPV4_IPV6")
    with pytest.raises(exceptions.PreconditionFailed):
        client.update_network_interface(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                        network_interface_resource=stale)
    patch = compute_v1.NetworkInterface(fingerprint=nic.fingerprint, stack_type="IPV4_IPV6", ipv6_access_configs=[
        compute_v1.AccessConfig(type_="DIRECT_IPV6", name="external-ipv6")])
    op = client.update_network_interface(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                         network_interface_resource=patch)
    now = client.get(project=PROJECT, zone=ZONE, instance=name).network_interfaces[0]
    assert now.ipv6_access_configs[0].external_ipv6 and now.stack_type == "IPV4_IPV6"
    _assert_logged(sim_shared, "updateNetworkInterface", name, op, stackType="IPV4_IPV6",
                   ipv6AccessConfigs=[{"type": "DIRECT_IPV6", "name": "external-ipv6"}])
    with pytest.raises(exceptions.BadRequest):   # nothing to update on nic0's IPv4 side
        client.update_access_config(project=PROJECT, zone=ZONE, instance=name, network_interface="nic0",
                                    access_config_resource=compute_v1.AccessConfig(network_tier="STANDARD"))


def test_service_account_and_machine_type_change_only_on_a_stopped_vm(
        sim_shared: SimServer, vm: tuple[compute_v1.InstancesClient, str]) -> None:
    client, name = vm
    request = compute_v1.InstancesSetServiceAccountRequest(email="other@fed-node-us.iam.gserviceaccount.com")
    with pytest.raises(exceptions.BadRequest):
        client.set_service_account(project=PROJECT, zone=ZONE, instance=name,
                                   instances_set_service_account_request_resource=request)
    assert not _pair(sim_shared, "v1.compute.instances.setServiceAccount", name)   # refused: nothing logged
    stop = client.stop(project=PROJECT, zone=ZONE, instance=name)
    assert client.get(project=PROJECT, zone=ZONE, instance=name).status == "TERMINATED"
    _assert_logged(sim_shared, "stop", name, stop)
    op = client.set_service_account(project=PROJECT, zone=ZONE, instance=name,
                                    instances_set_service_account_request_resource=request)
    _assert_logged(sim_shared, "setServiceAccount", name, op, email="other@fed-node-us.iam.gserviceaccount.com")
    op = client.set_machine_type(project=PROJECT, zone=ZONE, instance=name,
                                 instances_set_machine_type_request_resource=compute_v1.InstancesSetMachineTypeRequest(
                                     machine_type=f"zones/{ZONE}/machineTypes/n2-standard-4"))
    _assert_logged(sim_shared, "setMachineType", name, op, machineType=f"zones/{ZONE}/machineTypes/n2-standard-4")
    start = client.start(project=PROJECT, zone=ZONE, instance=name)
    _assert_logged(sim_shared, "start", name, start)
    after = client.get(project=PROJECT, zone=ZONE, instance=name)
    assert after.status == "RUNNING"
    assert [sa.email for sa in after.service_accounts] == ["other@fed-node-us.iam.gserviceaccount.com"]
    assert after.machine_type.endswith(f"/zones/{ZONE}/machineTypes/n2-standard-4")


def test_set_labels_checks_the_label_fingerprint_and_replaces_every_label(
        sim_shared: SimServer, vm: tuple[compute_v1.InstancesClient, str]) -> None:
    client, name = vm
    stale = compute_v1.InstancesSetLabelsRequest(labels={"env": "x"}, label_fingerprint="c3RhbGU=")
    with pytest.raises(exceptions.PreconditionFailed):
        client.set_labels(project=PROJECT, zone=ZONE, instance=name, instances_set_labels_request_resource=stale)
    current = client.get(project=PROJECT, zone=ZONE, instance=name)
    op = client.set_labels(project=PROJECT, zone=ZONE, instance=name,
                           instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                               labels={"env": "scratch"}, label_fingerprint=current.label_fingerprint))
    after = client.get(project=PROJECT, zone=ZONE, instance=name)
    assert dict(after.labels) == {"env": "scratch"}
    assert after.label_fingerprint != current.label_fingerprint
    _assert_logged(sim_shared, "setLabels", name, op, labels={"env": "scratch"})
    # Out of the job's label scope: a label-filtered listing no longer finds it.
    found = {vm.name for _, scoped in client.aggregated_list(request={
        "project": PROJECT, "filter": 'labels.batch-job-uid = "job-uid-1"'}) for vm in scoped.instances}
    assert name not in found


def test_update_switches_confidential_compute_off_only_when_stopped(
        sim_shared: SimServer, vm: tuple[compute_v1.InstancesClient, str]) -> None:
    client, name = vm
    current = client.get(project=PROJECT, zone=ZONE, instance=name)
    body = compute_v1.Instance(name=name, fingerprint=current.fingerprint,
                               confidential_instance_config=compute_v1.ConfidentialInstanceConfig(
                                   enable_confidential_compute=False))
    with pytest.raises(exceptions.BadRequest):
        client.update(project=PROJECT, zone=ZONE, instance=name, instance_resource=body)
    client.stop(project=PROJECT, zone=ZONE, instance=name)
    body.fingerprint = client.get(project=PROJECT, zone=ZONE, instance=name).fingerprint
    op = client.update(project=PROJECT, zone=ZONE, instance=name, instance_resource=body)
    after = client.get(project=PROJECT, zone=ZONE, instance=name)
    assert not after.confidential_instance_config.enable_confidential_compute
    _assert_logged(sim_shared, "update", name, op)


def test_a_mutation_of_a_missing_vm_is_google_s_404(sim_shared: SimServer) -> None:
    with pytest.raises(exceptions.NotFound):
        _client(sim_shared).stop(project=PROJECT, zone=ZONE, instance="no-such-vm")
