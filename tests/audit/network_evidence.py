"""The clean node network's compute.v1 listings, as SEC-09's evidence (used by NodeEvidence and the SEC-09 tests).

Shapes follow what the simulator serves and compute.v1's discovery document: routers by aggregatedList,
routes and firewalls by list, the project's VMs by aggregatedList.
"""

from __future__ import annotations

from typing import Any

BASE = "https://www.googleapis.com/compute/v1/projects"


def network_url(project: str, name: str) -> str:
    return f"{BASE}/{project}/global/networks/{name}"


def firewall(project: str, network: str, name: str, *, direction: str = "EGRESS", priority: int = 1000,
             allowed: list[dict[str, Any]] | None = None, denied: list[dict[str, Any]] | None = None,
             destinations: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"kind": "compute#firewall", "id": str(abs(hash(name)) % 10**18), "name": name,
                            "network": network_url(project, network), "direction": direction, "priority": priority,
                            "disabled": False, "selfLink": f"{BASE}/{project}/global/firewalls/{name}", **extra}
    if allowed is not None:
        rule["allowed"] = allowed
    if denied is not None:
        rule["denied"] = denied
    if destinations is not None:
        rule["destinationRanges"] = destinations
    return rule


def route(project: str, network: str, name: str, dest: str, *, priority: int = 1000, **hop: Any) -> dict[str, Any]:
    return {"kind": "compute#route", "id": str(abs(hash(name)) % 10**18), "name": name,
            "network": network_url(project, network), "destRange": dest, "priority": priority,
            "selfLink": f"{BASE}/{project}/global/routes/{name}", **hop}


def router(project: str, network: str, region: str, name: str, nats: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "compute#router", "id": str(abs(hash(name)) % 10**18), "name": name,
                            "region": f"{BASE}/{project}/regions/{region}", "network": network_url(project, network),
                            "selfLink": f"{BASE}/{project}/regions/{region}/routers/{name}"}
    if nats:
        body["nats"] = nats
    return body


def vm(project: str, zone: str, name: str, networks: list[str], *, external: dict[str, Any] | None = None,
       ipv6: dict[str, Any] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    nics = []
    for index, network in enumerate(networks):
        nic: dict[str, Any] = {"kind": "compute#networkInterface", "name": f"nic{index}",
                               "network": network_url(project, network), "networkIP": f"10.20.0.{10 + index}"}
        if index == 0 and external:
            nic["accessConfigs"] = [external]
        if index == 0 and ipv6:
            nic["ipv6AccessConfigs"] = [ipv6]
        nics.append(nic)
    return {"kind": "compute#instance", "name": name, "zone": f"{BASE}/{project}/zones/{zone}",
            "networkInterfaces": nics, "labels": labels or {},
            "selfLink": f"{BASE}/{project}/zones/{zone}/instances/{name}"}


def clean(project: str, network: str, region: str) -> dict[str, Any]:
    """purpose -> body of the clean node: a router without NAT, the default and VIP routes, deny-all egress."""
    gateway = f"{BASE}/{project}/global/gateways/default-internet-gateway"
    return {
        "compute.routers": {"kind": "compute#routerAggregatedList", "items": {
            f"regions/{region}": {"routers": [router(project, network, region, f"{project}-router")]},
            "regions/us-east1": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}}}},
        "compute.routes": {"kind": "compute#routeList", "items": [
            route(project, network, "default-route-internet", "0.0.0.0/0", nextHopGateway=gateway),
            route(project, network, "restricted-googleapis", "199.36.153.4/30", priority=100, nextHopGateway=gateway),
            route(project, network, "subnet-route", "10.20.0.0/20", priority=0,
                  nextHopNetwork=network_url(project, network), routeType="SUBNET")]},
        "compute.firewalls": {"kind": "compute#firewallList", "items": [
            firewall(project, network, "deny-all-egress", priority=65000, denied=[{"IPProtocol": "all"}],
                     destinations=["0.0.0.0/0"]),
            firewall(project, network, "allow-restricted-apis-egress", allowed=[{"IPProtocol": "tcp", "ports": ["443"]}],
                     destinations=["199.36.153.4/30"]),
            firewall(project, network, "allow-iap-ssh-ingress", direction="INGRESS",
                     allowed=[{"IPProtocol": "tcp", "ports": ["22"]}], sourceRanges=["35.235.240.0/20"]),
            firewall(project, f"{project}-ops-vpc", "ops-allow-all-egress", allowed=[{"IPProtocol": "all"}],
                     destinations=["0.0.0.0/0"])]},
        "compute.project_instances": {"kind": "compute#instanceAggregatedList", "items": {
            f"zones/{region}-b": {"instances": [
                vm(project, f"{region}-b", "ops-bastion", [f"{project}-ops-vpc"],
                   external={"type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": "34.120.0.9"})]}}},
        "compute.network": {"kind": "compute#network", "name": network, "selfLink": network_url(project, network),
                            "autoCreateSubnetworks": False,
                            "subnetworks": [f"{BASE}/{project}/regions/{region}/subnetworks/{project}-compute-subnet"]},
        "logging.network_changes": {},
    }
