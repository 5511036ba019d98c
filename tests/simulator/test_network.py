"""Compute v1 networking in the simulator, through the official `google.cloud.compute_v1` REST clients:
routers with Cloud NAT, routes, firewalls, networks and subnetworks, and the audit pair of each mutation."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from sovaudit.simulator.server import SimServer

PROJECT, REGION = "fed-node-us", "us-central1"
NET = "fed-node-us-multiomics-vpc"
NET_URL = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/{NET}"


def client(cls: Any, sim: SimServer) -> Any:
    return cls(transport="rest", client_options={"api_endpoint": sim.url}, credentials=AnonymousCredentials())


def audit(sim: SimServer, method: str, suffix: str) -> list[dict[str, Any]]:
    with sim.state.lock:
        return [e for e in sim.state.log_entries if e.get("protoPayload", {}).get("methodName") == method
                and e["protoPayload"].get("resourceName", "").endswith(suffix)]


def test_clean_node_network_subnet_has_private_google_access_and_lists_its_subnets(sim_shared: SimServer) -> None:
    networks = client(compute_v1.NetworksClient, sim_shared)
    network = networks.get(project=PROJECT, network=NET)
    assert network.self_link == NET_URL and network.auto_create_subnetworks is False
    subnets = client(compute_v1.SubnetworksClient, sim_shared)
    subnet = subnets.get(project=PROJECT, region=REGION, subnetwork="fed-node-us-compute-subnet")
    assert subnet.private_ip_google_access is True and subnet.ip_cidr_range == "10.20.0.0/20"
    assert subnet.self_link in network.subnetworks
    assert {n.name for n in networks.list(project=PROJECT)} == {NET, "fed-node-us-ops-vpc"}
    with pytest.raises(exceptions.NotFound):
        subnets.get(project=PROJECT, region=REGION, subnetwork="nope")


def test_clean_node_routes_and_firewalls_are_the_shipped_posture(sim_shared: SimServer) -> None:
    routes = {r.name: r for r in client(compute_v1.RoutesClient, sim_shared).list(project=PROJECT)}
    default = routes["default-route-internet"]
    assert default.dest_range == "0.0.0.0/0" and default.next_hop_gateway.endswith("/default-internet-gateway")
    assert routes["restricted-googleapis"].dest_range == "199.36.153.4/30"
    assert any(r.route_type == "SUBNET" and r.next_hop_network == NET_URL for r in routes.values())
    rules = {f.name: f for f in client(compute_v1.FirewallsClient, sim_shared).list(project=PROJECT)}
    deny = rules["deny-all-egress"]
    assert deny.direction == "EGRESS" and deny.priority == 65000 and deny.denied[0].I_p_protocol == "all"
    allow = rules["allow-restricted-apis-egress"]
    assert allow.priority < deny.priority and list(allow.destination_ranges) == ["199.36.153.4/30"]


def test_router_with_nat_insert_get_patch_aggregated_list_delete(sim: SimServer) -> None:
    routers = client(compute_v1.RoutersClient, sim)
    nat = compute_v1.RouterNat(name="egress-nat", nat_ip_allocate_option="AUTO_ONLY",
                               source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES")
    body = compute_v1.Router(name="egress-router", network=f"global/networks/{NET}", nats=[nat])
    operation = routers.insert(project=PROJECT, region=REGION, router_resource=body)
    operation.result()
    assert operation.name and "/regions/us-central1/operations/" in operation.self_link
    polled = client(compute_v1.RegionOperationsClient, sim).get(project=PROJECT, region=REGION,
                                                                 operation=operation.name)
    assert polled.status == compute_v1.Operation.Status.DONE and polled.target_link.endswith("/routers/egress-router")
    with pytest.raises(exceptions.NotFound):
        client(compute_v1.RegionOperationsClient, sim).get(project=PROJECT, region="europe-west4",
                                                           operation=operation.name)
    stored = routers.get(project=PROJECT, region=REGION, router="egress-router")
    assert stored.network == NET_URL and stored.nats[0].type_ == "PUBLIC"   # Google's default type
    listed = {name: [r.name for r in scoped.routers] for name, scoped in routers.aggregated_list(project=PROJECT)}
    assert "egress-router" in listed["regions/us-central1"] and not listed.get("regions/europe-west4")

    patch = compute_v1.Router(nats=[compute_v1.RouterNat(
        name="one-subnet", source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
        subnetworks=[compute_v1.RouterNatSubnetworkToNat(name="fed-node-us-compute-subnet",
                                                         source_ip_ranges_to_nat=["ALL_IP_RANGES"])])])
    routers.patch(project=PROJECT, region=REGION, router="egress-router", router_resource=patch).result()
    patched = routers.get(project=PROJECT, region=REGION, router="egress-router")
    assert [n.name for n in patched.nats] == ["one-subnet"]
    assert patched.nats[0].subnetworks[0].name.endswith("/regions/us-central1/subnetworks/fed-node-us-compute-subnet")

    routers.delete(project=PROJECT, region=REGION, router="egress-router").result()
    with pytest.raises(exceptions.NotFound):
        routers.get(project=PROJECT, region=REGION, router="egress-router")
    for verb in ("insert", "patch", "delete"):
        entries = audit(sim, f"v1.compute.routers.{verb}", "/routers/egress-router")
        assert [bool(e["operation"].get("first")) for e in entries] == [True, False], verb
        assert entries[0]["resource"]["type"] == "gce_router"
    inserted = audit(sim, "v1.compute.routers.insert", "/routers/egress-router")[0]["protoPayload"]["request"]
    assert inserted["nats"][0]["name"] == "egress-nat"


def test_route_insert_list_delete_and_one_next_hop_only(sim: SimServer) -> None:
    routes = client(compute_v1.RoutesClient, sim)
    body = compute_v1.Route(name="via-proxy", network=f"global/networks/{NET}", dest_range="0.0.0.0/0",
                            priority=900, next_hop_instance=f"zones/{REGION}-a/instances/proxy")
    routes.insert(project=PROJECT, route_resource=body).result()
    stored = routes.get(project=PROJECT, route="via-proxy")
    assert stored.next_hop_instance.endswith(f"/projects/{PROJECT}/zones/{REGION}-a/instances/proxy")
    assert stored.network == NET_URL and stored.priority == 900
    two_hops = compute_v1.Route(name="bad", network=NET, dest_range="0.0.0.0/0", next_hop_ip="10.0.0.1",
                                next_hop_gateway="default-internet-gateway")
    with pytest.raises(exceptions.BadRequest):
        routes.insert(project=PROJECT, route_resource=two_hops)
    with pytest.raises(exceptions.Conflict):
        routes.insert(project=PROJECT, route_resource=body)
    routes.delete(project=PROJECT, route="via-proxy").result()
    assert "via-proxy" not in {r.name for r in routes.list(project=PROJECT)}
    assert len(audit(sim, "v1.compute.routes.insert", "/routes/via-proxy")) == 2


def test_firewall_insert_patch_delete_and_egress_defaults(sim: SimServer) -> None:
    rules = client(compute_v1.FirewallsClient, sim)
    body = compute_v1.Firewall(name="https-out", network=f"global/networks/{NET}", direction="EGRESS",
                               priority=900, allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["443"])])
    rules.insert(project=PROJECT, firewall_resource=body).result()
    stored = rules.get(project=PROJECT, firewall="https-out")
    assert list(stored.destination_ranges) == ["0.0.0.0/0"] and stored.disabled is False
    rules.patch(project=PROJECT, firewall="https-out", firewall_resource=compute_v1.Firewall(disabled=True)).result()
    assert rules.get(project=PROJECT, firewall="https-out").disabled is True
    rules.delete(project=PROJECT, firewall="https-out").result()
    with pytest.raises(exceptions.NotFound):
        rules.get(project=PROJECT, firewall="https-out")
    patched = audit(sim, "v1.compute.firewalls.patch", "/firewalls/https-out")
    assert patched[0]["protoPayload"]["request"]["disabled"] is True
    assert patched[0]["resource"]["type"] == "gce_firewall_rule"


def test_other_vms_sit_beside_the_job_in_the_instance_listing(sim_factory: Any) -> None:
    sim = sim_factory(scenarios=["net-proxy-vm-external-ip"])
    instances = client(compute_v1.InstancesClient, sim)
    found = {vm.name: vm for _, scoped in instances.aggregated_list(project=PROJECT) for vm in scoped.instances}
    proxy = found["squid-proxy"]
    assert proxy.network_interfaces[0].network == NET_URL and proxy.network_interfaces[0].access_configs[0].nat_i_p
    assert found["ops-bastion"].network_interfaces[0].network.endswith("/networks/fed-node-us-ops-vpc")
    assert "batch-job-uid" not in proxy.labels


def test_a_scenario_giving_network_resources_as_a_list_names_the_field(tmp_path: Any) -> None:
    from sovaudit.simulator.node import NodeFileError, load_state

    bad = tmp_path / "bad-firewalls.yaml"
    bad.write_text("name: bad-firewalls\ndescription: x\nfails: [SEC-09]\n"
                   "node: {network: {firewalls: [{name: a, direction: EGRESS}]}}\n")
    with pytest.raises(NodeFileError) as caught:
        load_state("us", [bad])
    assert "node.network.firewalls" in str(caught.value) and "expected a mapping" in str(caught.value)


def test_changes_made_during_the_run_are_admin_activity_pairs_in_the_window(sim_factory: Any) -> None:
    from google.cloud import logging as cloud_logging

    sim = sim_factory(scenarios=["net-nat-during-run"])
    logs = cloud_logging.Client(project=PROJECT, _use_grpc=False, client_options={"api_endpoint": sim.url},
                                credentials=AnonymousCredentials())
    seed = sim.state.extras["seed"]
    query = (f'logName="projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity" AND '
             f'protoPayload.methodName="v1.compute.routers.patch" AND timestamp>="{seed.window_start}" AND '
             f'timestamp<="{seed.window_end}"')
    entries = [e.to_api_repr() for e in logs.list_entries(filter_=query, order_by=cloud_logging.ASCENDING)]
    assert len(entries) == 4
    first = [e for e in entries if e.get("operation", {}).get("first")]
    assert [e["protoPayload"]["request"].get("nats") for e in first][0][0]["type"] == "PUBLIC"
    assert all(e["resource"]["type"] == "gce_router" and e["resource"]["labels"]["region"] == REGION for e in entries)
    assert first[0]["protoPayload"]["resourceName"] == f"projects/{PROJECT}/regions/{REGION}/routers/node-router"
    # The router as listed after the run carries no NAT: only the log remembers it.
    assert not client(compute_v1.RoutersClient, sim).get(project=PROJECT, region=REGION, router="node-router").nats
