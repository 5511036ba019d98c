"""Typed views of the node network's egress evidence: routers and NATs, routes, firewall rules, VMs, changes.

Parsed from the raw compute.v1 JSON the network collector recorded (audit/collectors/network.py), so
SEC-09 re-runs offline on a bundle. Resources are matched to the node network by the
`projects/P/global/networks/N` part of their URL, compared exactly (never a substring: a network
called `fed-node-us-multiomics-vpc-2` is another network).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovaudit.audit.evidence import EvidenceLog
from sovaudit.audit.views import PURPOSE_API, LogEntry, complete_items, last_segment, log_entries

# Error messages name the API call behind each purpose (views.api_of); registered here so the shared
# table in views.py does not have to change with this family.
PURPOSE_API.update({
    "compute.routers": "compute routers.aggregatedList",
    "compute.routes": "compute routes.list",
    "compute.firewalls": "compute firewalls.list",
    "compute.project_instances": "compute instances.aggregatedList",
    "compute.network": "compute networks.get",
    "logging.network_changes": "logging entries.list",
})

_NETWORK = re.compile(r"projects/([^/]+)/global/networks/([^/?#]+)$")
_SUBNETWORK = re.compile(r"projects/([^/]+)/regions/([^/]+)/subnetworks/([^/?#]+)$")
_REGION = re.compile(r"regions/([^/?#]+)$")

NEXT_HOPS = ("nextHopGateway", "nextHopInstance", "nextHopIp", "nextHopIlb", "nextHopVpnTunnel", "nextHopNetwork",
             "nextHopPeering", "nextHopInterconnectAttachment", "nextHopHub")


def network_ref(url: str, default_project: str = "") -> tuple[str, str]:
    """(project, network) of a network URL or partial name; ('', '') when it names none."""
    text = str(url or "").strip()
    match = _NETWORK.search(text)
    if match:
        return match.group(1), match.group(2)
    if text and "/" not in text:
        return default_project, text   # a bare name, as a request body may carry
    if text.startswith("global/networks/"):
        return default_project, text.rsplit("/", 1)[-1]
    return "", ""


def subnetwork_ref(url: str, default_project: str = "", default_region: str = "") -> tuple[str, str, str]:
    """(project, region, subnetwork) of a subnetwork URL or partial name."""
    text = str(url or "").strip()
    match = _SUBNETWORK.search(text)
    if match:
        return match.group(1), match.group(2), match.group(3)
    if text.startswith("regions/"):
        parts = text.split("/")
        if len(parts) >= 4:
            return default_project, parts[1], parts[3]
    return default_project, default_region, last_segment(text) if text else ""


def region_of(url: str) -> str:
    match = _REGION.search(str(url or ""))
    return match.group(1) if match else ""


def short_resource(url: str) -> str:
    text = str(url or "")
    return "projects/" + text.split("/projects/", 1)[1] if "/projects/" in text else text


@dataclass(frozen=True)
class Nat:
    name: str
    type: str                                   # PUBLIC (default) | PRIVATE
    source_ranges: str                          # sourceSubnetworkIpRangesToNat
    subnetworks: tuple[tuple[str, str], ...]    # (region, name) of LIST_OF_SUBNETWORKS entries
    nat64: str                                  # sourceSubnetworkIpRangesToNat64 ('' when unset)

    @property
    def public(self) -> bool:
        # RouterNat.type defaults to PUBLIC when unset (compute.v1 discovery text).
        return (self.type or "PUBLIC") == "PUBLIC"

    @classmethod
    def parse(cls, data: Mapping[str, Any], region: str) -> Nat:
        subnets = tuple((subnetwork_ref(str(s.get("name", "")), "", region)[1:])
                        for s in data.get("subnetworks") or () if isinstance(s, Mapping))
        return cls(name=str(data.get("name", "")), type=str(data.get("type") or "PUBLIC"),
                   source_ranges=str(data.get("sourceSubnetworkIpRangesToNat") or ""),
                   subnetworks=subnets, nat64=str(data.get("sourceSubnetworkIpRangesToNat64") or ""))


@dataclass(frozen=True)
class Router:
    name: str
    region: str
    network: tuple[str, str]
    nats: tuple[Nat, ...]
    resource: str
    evidence: tuple[str, ...]
    bgp_peers: tuple[str, ...] = ()     # "name (peerIpAddress)" of each BGP session not switched off

    @classmethod
    def parse(cls, data: Mapping[str, Any], item_id: str, scope: str = "", project: str = "") -> Router:
        region = region_of(str(data.get("region") or "")) or region_of(scope)
        name = str(data.get("name", ""))
        return cls(name=name, region=region, network=network_ref(str(data.get("network", "")), project),
                   nats=tuple(Nat.parse(n, region) for n in data.get("nats") or () if isinstance(n, Mapping)),
                   resource=short_resource(str(data.get("selfLink") or "")) or f"regions/{region}/routers/{name}",
                   evidence=(item_id,),
                   bgp_peers=tuple(f"{p.get('name', '')} ({p.get('peerIpAddress', 'no peer IP')})"
                                   for p in data.get("bgpPeers") or ()
                                   if isinstance(p, Mapping) and str(p.get("enable", "TRUE")) != "FALSE"))


@dataclass(frozen=True)
class Route:
    name: str
    network: tuple[str, str]
    dest_range: str
    priority: int
    next_hop_kind: str      # one of NEXT_HOPS ('' when none is set)
    next_hop: str
    tags: tuple[str, ...]
    route_type: str
    resource: str
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], item_id: str, project: str = "") -> Route:
        kind = next((k for k in NEXT_HOPS if data.get(k)), "")
        name = str(data.get("name", ""))
        try:
            priority = int(data.get("priority", 1000))
        except (TypeError, ValueError):
            priority = 1000
        return cls(name=name, network=network_ref(str(data.get("network", "")), project),
                   dest_range=str(data.get("destRange", "")), priority=priority, next_hop_kind=kind,
                   next_hop=str(data.get(kind, "")) if kind else "", tags=tuple(map(str, data.get("tags") or ())),
                   route_type=str(data.get("routeType", "")),
                   resource=short_resource(str(data.get("selfLink") or "")) or f"global/routes/{name}",
                   evidence=(item_id,))


@dataclass(frozen=True)
class FirewallRule:
    name: str
    network: tuple[str, str]
    direction: str          # INGRESS (default) | EGRESS
    priority: int           # lower number = higher precedence; default 1000
    action: str             # "allow" | "deny"
    protocols: tuple[tuple[str, tuple[str, ...]], ...]   # (IPProtocol, ports)
    destination_ranges: tuple[str, ...]
    target_tags: tuple[str, ...]
    target_service_accounts: tuple[str, ...]
    disabled: bool
    resource: str
    evidence: tuple[str, ...]

    @property
    def all_protocols(self) -> bool:
        """Whether the rule covers every protocol and port ('all', or tcp+udp+icmp... is not enough)."""
        return any(proto.lower() == "all" for proto, _ in self.protocols)

    @classmethod
    def parse(cls, data: Mapping[str, Any], item_id: str, project: str = "") -> FirewallRule:
        action = "deny" if data.get("denied") else "allow"
        entries = data.get("denied") if action == "deny" else data.get("allowed")
        protocols = tuple((str(e.get("IPProtocol", "")), tuple(map(str, e.get("ports") or ())))
                          for e in entries or () if isinstance(e, Mapping))
        direction = str(data.get("direction") or "INGRESS")
        destinations = tuple(map(str, data.get("destinationRanges") or ()))
        if direction == "EGRESS" and not destinations:
            destinations = ("0.0.0.0/0",)   # Google's default for an egress rule without destinationRanges
        try:
            priority = int(data.get("priority", 1000))
        except (TypeError, ValueError):
            priority = 1000
        name = str(data.get("name", ""))
        return cls(name=name, network=network_ref(str(data.get("network", "")), project), direction=direction,
                   priority=priority, action=action, protocols=protocols, destination_ranges=destinations,
                   target_tags=tuple(map(str, data.get("targetTags") or ())),
                   target_service_accounts=tuple(map(str, data.get("targetServiceAccounts") or ())),
                   disabled=bool(data.get("disabled", False)),
                   resource=short_resource(str(data.get("selfLink") or "")) or f"global/firewalls/{name}",
                   evidence=(item_id,))


@dataclass(frozen=True)
class NetworkVm:
    """A VM as SEC-09 sees it: which networks its NICs join and whether any NIC has an external address."""

    name: str
    zone: str
    labels: Mapping[str, str]
    networks: tuple[tuple[str, str], ...]
    subnetworks: tuple[str, ...]    # subnetwork names, for a NIC whose network is not spelled out
    external: tuple[str, ...]       # natIP / externalIpv6 / the access config's name, per external config
    resource: str
    evidence: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], item_id: str, scope: str = "", project: str = "") -> NetworkVm:
        nics = [n for n in data.get("networkInterfaces") or () if isinstance(n, Mapping)]
        networks = []
        for nic in nics:
            ref = network_ref(str(nic.get("network", "")), project)
            if not ref[1] and nic.get("subnetwork"):
                ref = ("", "")   # a NIC that names only a subnetwork: its network is unknown here
            networks.append(ref)
        external = []
        for nic in nics:
            for config in (*(nic.get("accessConfigs") or ()), *(nic.get("ipv6AccessConfigs") or ())):
                if isinstance(config, Mapping):
                    external.append(str(config.get("natIP") or config.get("externalIpv6") or config.get("name")
                                        or config.get("type") or "access config"))
        zone = last_segment(str(data.get("zone") or scope))
        name = str(data.get("name", ""))
        subnets = tuple(subnetwork_ref(str(nic.get("subnetwork", "")), project)[2] for nic in nics
                        if nic.get("subnetwork"))
        return cls(name=name, zone=zone, labels=dict(data.get("labels") or {}), networks=tuple(networks),
                   subnetworks=subnets, external=tuple(external),
                   resource=short_resource(str(data.get("selfLink") or "")) or f"zones/{zone}/instances/{name}",
                   evidence=(item_id,))


@dataclass(frozen=True)
class Peering:
    name: str
    network: str            # the peer network's URL
    state: str
    import_custom_routes: bool
    export_custom_routes: bool
    evidence: tuple[str, ...]


def peerings(log: EvidenceLog) -> tuple[Peering, ...]:
    """The node network's VPC peerings (networks.get); EvidenceIncomplete when the network could not be read."""
    items = complete_items(log, "compute.network")
    body, item_id = items[-1].parsed, items[-1].id
    return tuple(Peering(name=str(p.get("name", "")), network=str(p.get("network", "")), state=str(p.get("state", "")),
                         import_custom_routes=bool(p.get("importCustomRoutes")),
                         export_custom_routes=bool(p.get("exportCustomRoutes")), evidence=(item_id,))
                 for p in body.get("peerings") or () if isinstance(p, Mapping))


def routers(log: EvidenceLog, project: str) -> tuple[Router, ...]:
    found = []
    for item in complete_items(log, "compute.routers"):
        items = item.parsed.get("items")
        if isinstance(items, Mapping):
            for scope, scoped in items.items():
                for data in (scoped or {}).get("routers") or ():
                    found.append(Router.parse(data, item.id, scope, project))
        elif isinstance(items, list):
            found += [Router.parse(data, item.id, "", project) for data in items]
    return tuple(found)


def _listed(log: EvidenceLog, purpose: str) -> list[tuple[Mapping[str, Any], str]]:
    return [(data, item.id) for item in complete_items(log, purpose)
            for data in item.parsed.get("items") or () if isinstance(data, Mapping)]


def routes(log: EvidenceLog, project: str) -> tuple[Route, ...]:
    return tuple(Route.parse(data, item_id, project) for data, item_id in _listed(log, "compute.routes"))


def firewall_rules(log: EvidenceLog, project: str) -> tuple[FirewallRule, ...]:
    return tuple(FirewallRule.parse(data, item_id, project) for data, item_id in _listed(log, "compute.firewalls"))


def project_vms(log: EvidenceLog, project: str) -> tuple[NetworkVm, ...]:
    found = []
    for item in complete_items(log, "compute.project_instances"):
        items = item.parsed.get("items")
        if isinstance(items, Mapping):
            for scope, scoped in items.items():
                for data in (scoped or {}).get("instances") or ():
                    found.append(NetworkVm.parse(data, item.id, scope, project))
        elif isinstance(items, list):
            found += [NetworkVm.parse(data, item.id, "", project) for data in items]
    return tuple(found)


@dataclass(frozen=True)
class NetworkChange:
    """One successful network mutation in the window: its Admin Activity `first` entry (request body)."""

    collection: str     # routers | routes | firewalls | instances | subnetworks | networks
    verb: str           # insert | patch | update | delete | addAccessConfig | ...
    name: str
    region: str
    request: Mapping[str, Any]
    entry: LogEntry

    @property
    def when(self) -> str:
        return self.entry.timestamp

    @property
    def who(self) -> str:
        return self.entry.principal or "someone"


_METHOD = re.compile(r"^(?:v1|beta|alpha)\.compute\.([A-Za-z]+)\.([A-Za-z]+)$")


def network_changes(log: EvidenceLog) -> tuple[NetworkChange, ...] | None:
    """The window's network mutations (None when the question was not asked, e.g. a posture-only run).

    Only the entry that carries the request counts (an LRO also logs a `last` entry with just its
    type); an entry whose status carries an error code changed nothing.
    """
    if not log.by_purpose("logging.network_changes").items:
        return None
    changes = []
    for entry in log_entries(log, "logging.network_changes"):
        match = _METHOD.match(entry.method_name)
        if not match or entry.status.get("code") or entry.operation.get("last") and not entry.operation.get("first"):
            continue
        collection, verb = match.groups()
        name = last_segment(entry.resource_name)
        region_match = re.search(r"/regions/([^/]+)/", entry.resource_name)
        changes.append(NetworkChange(collection=collection, verb=verb, name=name,
                                     region=region_match.group(1) if region_match else "",
                                     request={k: v for k, v in entry.request.items() if k != "@type"},
                                     entry=entry))
    return tuple(changes)


# ------------------------------------------------------------------------------------------------
# address ranges


def parse_range(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        return None


def within(text: str, allowed: tuple[str, ...]) -> bool:
    """Whether the range `text` lies entirely inside one of the `allowed` ranges (same IP version)."""
    candidate = parse_range(text)
    if candidate is None:
        return False
    for allowed_text in allowed:
        container = parse_range(allowed_text)
        if container is not None and container.version == candidate.version and \
                candidate.subnet_of(container):  # type: ignore[arg-type]
            return True
    return False
