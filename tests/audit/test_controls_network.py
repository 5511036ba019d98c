"""SEC-09: nothing in the node's network gives a worker a path to the internet (NAT, proxy VM, route, firewall)."""

from __future__ import annotations

import dataclasses
from typing import Any

import network_evidence as ne
import pytest
from test_controls_evidence import UID, NodeEvidence

from sovaudit.audit.models import Outcome
from sovaudit.policies.pack import NetworkEgress, resolve_policy

PROJECT, NET, REGION = "fed-node-us", "fed-node-us-multiomics-vpc", "us-central1"
ACTIVITY = "projects/fed-node-us/logs/cloudaudit.googleapis.com%2Factivity"


@pytest.fixture
def node() -> NodeEvidence:
    return NodeEvidence(resolve_policy("us"))


def failures(result: Any) -> list[str]:
    return [f.message for f in result.findings if f.outcome == Outcome.FAIL]


def errors(result: Any) -> list[str]:
    return [f.message for f in result.findings if f.outcome == Outcome.ERROR]


def add_router(node: NodeEvidence, nats: list[dict[str, Any]], region: str = REGION, network: str = NET) -> None:
    items = node.body("compute.routers")["items"]
    items.setdefault(f"regions/{region}", {}).setdefault("routers", []).append(
        ne.router(PROJECT, network, region, "egress-router", nats))
    items[f"regions/{region}"].pop("warning", None)


def add_vm(node: NodeEvidence, body: dict[str, Any]) -> None:
    node.body("compute.project_instances")["items"].setdefault("zones/us-central1-a", {}).setdefault(
        "instances", []).append(body)


def firewalls(node: NodeEvidence) -> list[dict[str, Any]]:
    return node.body("compute.firewalls")["items"]


def test_sec09_passes_on_the_clean_network_and_names_what_it_read(node: NodeEvidence) -> None:
    result = node.run("SEC-09")
    assert result.outcome == Outcome.PASS
    text = " ".join(f.message for f in result.findings)
    assert "has no NAT" in text and "deny-all-egress" in text and "not read" in text


# ---- NAT ------------------------------------------------------------------------------------------

def test_sec09_fails_for_a_public_nat_on_every_subnet(node: NodeEvidence) -> None:
    add_router(node, [{"name": "nat-1", "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES"}])
    result = node.run("SEC-09")
    assert result.outcome == Outcome.FAIL
    assert "nat-1" in failures(result)[0] and "covers the workers' subnet" in failures(result)[0]


def test_sec09_nat_type_defaults_to_public(node: NodeEvidence) -> None:
    add_router(node, [{"name": "untyped", "sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS",
                       "subnetworks": [{"name": f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/regions/"
                                                f"{REGION}/subnetworks/fed-node-us-compute-subnet"}]}])
    assert node.run("SEC-09").outcome == Outcome.FAIL


def test_sec09_nat_on_another_subnet_fails_and_says_it_does_not_cover_the_workers(node: NodeEvidence) -> None:
    add_router(node, [{"name": "tools-nat", "type": "PUBLIC", "sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS",
                       "subnetworks": [{"name": f"projects/{PROJECT}/regions/{REGION}/subnetworks/tools"}]}])
    message = failures(node.run("SEC-09"))[0]
    assert "does not cover the workers' subnet" in message and "relay" in message


def test_sec09_private_nat_and_nat_in_another_network_pass(node: NodeEvidence) -> None:
    add_router(node, [{"name": "hybrid", "type": "PRIVATE", "sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS"}])
    node.body("compute.routers")["items"]["regions/us-east1"] = {"routers": [ne.router(
        PROJECT, "fed-node-us-ops-vpc", "us-east1", "ops-router", [{"name": "ops-nat", "type": "PUBLIC"}])]}
    result = node.run("SEC-09")
    assert result.outcome == Outcome.PASS, failures(result)


def test_sec09_lookalike_network_name_is_another_network(node: NodeEvidence) -> None:
    add_router(node, [{"name": "nat", "type": "PUBLIC"}], network=NET + "-2")
    assert node.run("SEC-09").outcome == Outcome.PASS


# ---- other VMs -----------------------------------------------------------------------------------

def test_sec09_fails_for_another_vm_with_an_external_ipv4(node: NodeEvidence) -> None:
    add_vm(node, ne.vm(PROJECT, "us-central1-a", "squid", [NET], external={"type": "ONE_TO_ONE_NAT",
                                                                          "natIP": "34.1.2.3"}))
    message = failures(node.run("SEC-09"))[0]
    assert "squid" in message and "34.1.2.3" in message and "proxy" in message


def test_sec09_fails_for_another_vm_with_only_an_external_ipv6(node: NodeEvidence) -> None:
    add_vm(node, ne.vm(PROJECT, "us-central1-a", "metrics", [NET],
                       ipv6={"type": "DIRECT_IPV6", "externalIpv6": "2600:1900::1"}))
    assert "2600:1900::1" in failures(node.run("SEC-09"))[0]


def test_sec09_fails_for_a_vm_bridging_another_network_into_the_node_network(node: NodeEvidence) -> None:
    add_vm(node, ne.vm(PROJECT, "us-central1-a", "bridge", ["fed-node-us-ops-vpc", NET],
                       external={"type": "ONE_TO_ONE_NAT", "natIP": "34.9.9.9"}))
    assert "bridges" in failures(node.run("SEC-09"))[0]


def test_sec09_leaves_the_runs_own_workers_to_sec02(node: NodeEvidence) -> None:
    add_vm(node, ne.vm(PROJECT, "us-central1-a", "worker", [NET], labels={"batch-job-uid": UID},
                       external={"type": "ONE_TO_ONE_NAT", "natIP": "34.1.1.1"}))
    assert node.run("SEC-09").outcome == Outcome.PASS


def test_sec09_another_jobs_worker_with_an_external_ip_fails(node: NodeEvidence) -> None:
    add_vm(node, ne.vm(PROJECT, "us-central1-a", "other-worker", [NET], labels={"batch-job-uid": "other-uid"},
                       external={"type": "ONE_TO_ONE_NAT", "natIP": "34.1.1.2"}))
    assert node.run("SEC-09").outcome == Outcome.FAIL


# ---- routes --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dest", "hop"), [
    ("0.0.0.0/0", {"nextHopInstance": f"{ne.BASE}/{PROJECT}/zones/us-central1-a/instances/nva"}),
    ("0.0.0.0/0", {"nextHopIp": "10.20.0.50"}),
    ("151.101.0.0/16", {"nextHopIlb": "10.20.15.250"}),
    ("172.16.0.0/12", {"nextHopVpnTunnel": f"{ne.BASE}/{PROJECT}/regions/us-central1/vpnTunnels/t1"}),
    ("0.0.0.0/0", {"nextHopPeering": "peering-to-hub"}),
])
def test_sec09_fails_for_a_route_to_a_non_google_range_through_a_proxy_or_hybrid_hop(
        node: NodeEvidence, dest: str, hop: dict[str, str]) -> None:
    node.body("compute.routes")["items"].append(ne.route(PROJECT, NET, "out", dest, priority=900, **hop))
    message = failures(node.run("SEC-09"))[0]
    assert "route out" in message and dest in message


def test_sec09_route_to_the_restricted_vip_through_an_appliance_passes(node: NodeEvidence) -> None:
    node.body("compute.routes")["items"].append(ne.route(PROJECT, NET, "vip", "199.36.153.4/30",
                                                         nextHopIp="10.20.0.9"))
    assert node.run("SEC-09").outcome == Outcome.PASS


def test_sec09_is_error_when_the_node_network_has_no_route_at_all(node: NodeEvidence) -> None:
    node.body("compute.routes")["items"] = []
    result = node.run("SEC-09")
    assert result.outcome == Outcome.ERROR and "no route" in errors(result)[0]


# ---- firewall -------------------------------------------------------------------------------------

def test_sec09_fails_when_an_allow_beats_the_deny_all(node: NodeEvidence) -> None:
    firewalls(node).append(ne.firewall(PROJECT, NET, "https-out", priority=900,
                                       allowed=[{"IPProtocol": "tcp", "ports": ["443"]}], destinations=["0.0.0.0/0"]))
    message = failures(node.run("SEC-09"))[0]
    assert "https-out" in message and "tcp:443" in message and "0.0.0.0/0" in message


def test_sec09_allow_at_the_deny_priority_loses_to_the_deny(node: NodeEvidence) -> None:
    firewalls(node).append(ne.firewall(PROJECT, NET, "same-priority", priority=65000,
                                       allowed=[{"IPProtocol": "all"}], destinations=["0.0.0.0/0"]))
    assert node.run("SEC-09").outcome == Outcome.PASS


def test_sec09_egress_allow_without_destination_ranges_means_everywhere(node: NodeEvidence) -> None:
    firewalls(node).append(ne.firewall(PROJECT, NET, "no-ranges", priority=10, allowed=[{"IPProtocol": "udp"}]))
    assert "0.0.0.0/0" in failures(node.run("SEC-09"))[0]


@pytest.mark.parametrize("change", [{"disabled": True}, {"denied": [{"IPProtocol": "tcp"}]},
                                    {"targetTags": ["worker"]}, {"destinationRanges": ["8.8.8.8/32"]}])
def test_sec09_fails_when_the_deny_all_is_not_effective_for_every_worker(
        node: NodeEvidence, change: dict[str, Any]) -> None:
    firewalls(node)[0].update(change)
    message = failures(node.run("SEC-09"))[0]
    assert "no enabled egress deny" in message and "deny-all-egress" in message


def test_sec09_allow_for_other_service_accounts_does_not_reach_the_workers(node: NodeEvidence) -> None:
    firewalls(node).append(ne.firewall(PROJECT, NET, "etl-out", priority=10, allowed=[{"IPProtocol": "all"}],
                                       destinations=["0.0.0.0/0"], targetServiceAccounts=["etl@x.iam.gserviceaccount.com"]))
    assert node.run("SEC-09").outcome == Outcome.PASS


def test_sec09_skips_the_firewall_when_the_pack_does_not_require_it(node: NodeEvidence) -> None:
    pack = resolve_policy("us")
    relaxed = dataclasses.replace(pack, network=dataclasses.replace(pack.network,
                                                                     egress=NetworkEgress("not-required")))
    firewalls(node).clear()
    result = node.run("SEC-09", pack=relaxed)
    assert result.outcome == Outcome.PASS
    assert any("not-required" in f.message for f in result.findings)


def test_sec09_pack_allowed_destinations_are_exact_ranges(node: NodeEvidence) -> None:
    firewalls(node).append(ne.firewall(PROJECT, NET, "mirror", priority=900, allowed=[{"IPProtocol": "tcp"}],
                                       destinations=["203.0.113.0/24"]))
    pack = resolve_policy("us")
    wider = dataclasses.replace(pack, network=dataclasses.replace(pack.network, egress=NetworkEgress(
        "deny-all", ("199.36.153.4/30", "203.0.113.0/25"))))
    assert node.run("SEC-09", pack=wider).outcome == Outcome.FAIL   # /24 is not inside the allowed /25


# ---- fail closed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("purpose", ["compute.routers", "compute.routes", "compute.firewalls",
                                     "compute.project_instances", "compute.network"])
def test_sec09_is_error_when_a_listing_failed_or_is_missing(node: NodeEvidence, purpose: str) -> None:
    node.set(purpose, {"error": {"code": 503, "message": "backend error"}}, status=503)
    assert node.run("SEC-09").outcome == Outcome.ERROR
    node.drop(purpose)
    assert node.run("SEC-09").outcome == Outcome.ERROR


def test_sec09_is_error_when_the_listing_stopped_before_its_last_page(node: NodeEvidence) -> None:
    node.body("compute.firewalls")["nextPageToken"] = "more"
    assert node.run("SEC-09").outcome == Outcome.ERROR


# ---- the window's history -------------------------------------------------------------------------

def change(method: str, resource: str, request: dict[str, Any], *, last: bool = False) -> dict[str, Any]:
    return {"logName": ACTIVITY, "timestamp": "2026-11-26T15:20:00Z", "insertId": method[-8:],
            "resource": {"type": "gce_router", "labels": {}},
            "operation": {"id": "op", "last": True} if last else {"id": "op", "first": True},
            "protoPayload": {"methodName": method, "serviceName": "compute.googleapis.com",
                             "resourceName": resource, "authenticationInfo": {"principalEmail": "x@example.org"},
                             "request": {"@type": "type.googleapis.com/x", **request}}}


def test_sec09_fails_for_a_nat_added_and_removed_during_the_run(node: NodeEvidence) -> None:
    router = f"projects/{PROJECT}/regions/{REGION}/routers/{PROJECT}-router"
    node.set("logging.network_changes", {"entries": [
        change("v1.compute.routers.patch", router, {"nats": [{"name": "tmp", "type": "PUBLIC"}]}),
        change("v1.compute.routers.patch", router, {}, last=True),
        change("v1.compute.routers.patch", router, {"nats": []})]})
    message = failures(node.run("SEC-09"))[0]
    assert "tmp" in message and "x@example.org" in message and "during the run" in message


def test_sec09_fails_for_a_firewall_opened_during_the_run_and_ignores_other_networks(node: NodeEvidence) -> None:
    node.set("logging.network_changes", {"entries": [
        change("v1.compute.firewalls.insert", f"projects/{PROJECT}/global/firewalls/ops",
               {"network": ne.network_url(PROJECT, "fed-node-us-ops-vpc"), "direction": "EGRESS",
                "allowed": [{"IPProtocol": "all"}]}),
    ]})
    assert node.run("SEC-09").outcome == Outcome.PASS
    node.body("logging.network_changes")["entries"].append(
        change("v1.compute.firewalls.insert", f"projects/{PROJECT}/global/firewalls/tmp",
               {"network": ne.network_url(PROJECT, NET), "direction": "EGRESS", "priority": 10,
                "allowed": [{"IPProtocol": "all"}], "destinationRanges": ["0.0.0.0/0"]}))
    assert "tmp" in failures(node.run("SEC-09"))[0]


def test_sec09_fails_for_an_access_config_added_to_a_vm_during_the_run(node: NodeEvidence) -> None:
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.instances.addAccessConfig", f"projects/{PROJECT}/zones/us-central1-a/instances/gone",
        {"type": "ONE_TO_ONE_NAT"})]})
    assert "external address" in failures(node.run("SEC-09"))[0]


def test_sec09_is_error_when_the_change_log_could_not_be_read(node: NodeEvidence) -> None:
    node.set("logging.network_changes", {"error": {"code": 503, "message": "unavailable"}}, status=503)
    assert node.run("SEC-09").outcome == Outcome.ERROR


def test_sec09_fails_for_a_proxy_vm_inserted_during_the_run(node: NodeEvidence) -> None:
    entries = node.body("logging.instance_inserts")["entries"]
    proxy = dict(entries[0])
    proxy["protoPayload"] = {**proxy["protoPayload"], "resourceName": f"projects/{PROJECT}/zones/us-central1-a/"
                             "instances/tmp-proxy", "request": {
                                 "@type": "type.googleapis.com/compute.instances.insert", "name": "tmp-proxy",
                                 "networkInterfaces": [{"network": f"projects/{PROJECT}/global/networks/{NET}",
                                                        "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}]}}
    entries.append(proxy)
    assert "tmp-proxy" in failures(node.run("SEC-09"))[0]


def test_sec09_a_deleted_rule_is_error_unless_its_insert_is_in_the_window(node: NodeEvidence) -> None:
    rule = f"projects/{PROJECT}/global/firewalls/gone"
    delete = change("v1.compute.firewalls.delete", rule, {})
    node.set("logging.network_changes", {"entries": [delete]})
    result = node.run("SEC-09")
    assert result.outcome == Outcome.ERROR and "deleted firewall rule gone" in errors(result)[0]
    insert = change("v1.compute.firewalls.insert", rule, {"network": ne.network_url(PROJECT, NET),
                                                         "direction": "INGRESS", "allowed": [{"IPProtocol": "tcp"}]})
    node.set("logging.network_changes", {"entries": [insert, delete]})
    assert node.run("SEC-09").outcome == Outcome.PASS


def test_sec09_a_deny_split_into_two_halves_still_covers_everything(node: NodeEvidence) -> None:
    firewalls(node)[0]["destinationRanges"] = ["0.0.0.0/1", "128.0.0.0/1"]
    assert node.run("SEC-09").outcome == Outcome.PASS
    firewalls(node)[0]["destinationRanges"] = ["0.0.0.0/1"]
    assert node.run("SEC-09").outcome == Outcome.FAIL


def test_sec09_an_allow_moved_ahead_of_the_deny_during_the_run_fails(node: NodeEvidence) -> None:
    firewalls(node).append(ne.firewall(PROJECT, NET, "late-allow", priority=65534, allowed=[{"IPProtocol": "all"}],
                                       destinations=["0.0.0.0/0"]))
    assert node.run("SEC-09").outcome == Outcome.PASS   # shadowed by the deny-all today
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.firewalls.patch", f"projects/{PROJECT}/global/firewalls/late-allow", {"priority": 10})]})
    message = failures(node.run("SEC-09"))[0]
    assert "late-allow" in message and "priority 10" in message


def test_sec09_a_vm_whose_nic_names_only_the_node_subnet_is_judged(node: NodeEvidence) -> None:
    proxy = ne.vm(PROJECT, "us-central1-a", "subnet-only", [NET], external={"type": "ONE_TO_ONE_NAT"})
    nic = proxy["networkInterfaces"][0]
    del nic["network"]
    nic["subnetwork"] = f"{ne.BASE}/{PROJECT}/regions/{REGION}/subnetworks/fed-node-us-compute-subnet"
    add_vm(node, proxy)
    assert "subnet-only" in failures(node.run("SEC-09"))[0]


def test_sec09_all_subnetworks_nat_in_another_region_does_not_cover_the_workers_but_still_fails(
        node: NodeEvidence) -> None:
    add_router(node, [{"name": "east-nat", "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES"}],
               region="us-east1")
    message = failures(node.run("SEC-09"))[0]
    assert "east-nat" in message and "us-east1" in message and "does not cover the workers' subnet" in message


def test_sec09_an_allow_inserted_disabled_during_the_run_opened_nothing(node: NodeEvidence) -> None:
    body = {"network": ne.network_url(PROJECT, NET), "direction": "EGRESS", "priority": 10, "disabled": True,
            "allowed": [{"IPProtocol": "all"}], "destinationRanges": ["0.0.0.0/0"]}
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.firewalls.insert", f"projects/{PROJECT}/global/firewalls/parked", body)]})
    assert node.run("SEC-09").outcome == Outcome.PASS
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.firewalls.insert", f"projects/{PROJECT}/global/firewalls/parked", {**body, "disabled": False})]})
    assert node.run("SEC-09").outcome == Outcome.FAIL



# ---- hybrid paths: BGP sessions and VPC peerings ----------------------------------------------------

def test_sec09_fails_for_a_bgp_session_on_a_router_of_the_node_network(node: NodeEvidence) -> None:
    router = node.body("compute.routers")["items"][f"regions/{REGION}"]["routers"][0]
    router["bgpPeers"] = [{"name": "onprem", "peerIpAddress": "169.254.10.2", "peerAsn": 65010}]
    message = failures(node.run("SEC-09"))[0]
    assert "onprem (169.254.10.2)" in message and "BGP" in message
    router["bgpPeers"][0]["enable"] = "FALSE"
    assert node.run("SEC-09").outcome == Outcome.PASS


def test_sec09_fails_for_a_vpc_peering_unless_the_pack_lists_the_peer(node: NodeEvidence) -> None:
    peer = "projects/partner/global/networks/shared"
    node.body("compute.network")["peerings"] = [{"name": "to-partner", "state": "ACTIVE",
                                                 "network": f"https://www.googleapis.com/compute/v1/{peer}"}]
    message = failures(node.run("SEC-09"))[0]
    assert "to-partner" in message and peer in message
    pack = resolve_policy("us")
    listed = dataclasses.replace(pack, network=dataclasses.replace(pack.network, egress=dataclasses.replace(
        pack.network.egress, allowed_peerings=(peer,))))
    assert node.run("SEC-09", pack=listed).outcome == Outcome.PASS
    lookalike = dataclasses.replace(pack, network=dataclasses.replace(pack.network, egress=dataclasses.replace(
        pack.network.egress, allowed_peerings=(peer + "-2",))))
    assert node.run("SEC-09", pack=lookalike).outcome == Outcome.FAIL



def test_sec09_history_catches_a_deleted_and_recreated_deny_a_bgp_session_and_a_peering(node: NodeEvidence) -> None:
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.firewalls.delete", f"projects/{PROJECT}/global/firewalls/deny-all-egress", {})]})
    assert "deleted the egress deny rule deny-all-egress" in failures(node.run("SEC-09"))[0]
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.routers.patch", f"projects/{PROJECT}/regions/{REGION}/routers/{PROJECT}-router",
        {"bgpPeers": [{"name": "onprem", "peerIpAddress": "169.254.1.2"}]})]})
    assert "BGP session(s) onprem" in failures(node.run("SEC-09"))[0]
    peer = "projects/partner/global/networks/shared"
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.networks.addPeering", f"projects/{PROJECT}/global/networks/{NET}",
        {"networkPeering": {"name": "p", "network": f"https://www.googleapis.com/compute/v1/{peer}"}})]})
    assert peer in failures(node.run("SEC-09"))[0]
    node.set("logging.network_changes", {"entries": [change(
        "v1.compute.networks.addPeering", f"projects/{PROJECT}/global/networks/fed-node-us-ops-vpc",
        {"networkPeering": {"name": "p", "network": f"https://www.googleapis.com/compute/v1/{peer}"}})]})
    assert node.run("SEC-09").outcome == Outcome.PASS   # another network's peering
