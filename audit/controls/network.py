"""SEC-09: nothing in the node's network gives a worker a path to the internet.

SEC-02 proves the job's own VMs have no external address; that alone does not keep a worker off the
internet (gcp-escape-routes.md §5.3). The other ways out, each judged here by name:

1. a PUBLIC Cloud NAT on a router in the node network (it translates the subnets it covers; a NAT
   on another subnet still turns every VM there into a relay the workers reach over the VPC);
2. another VM in the node network with an external IPv4 or IPv6 address (a proxy);
3. a route sending a non-Google range to an instance, IP, internal load balancer, VPN tunnel,
   interconnect, peering or hub (a proxy, an appliance or a hybrid path), a BGP session on a router
   of the node network (its learned routes are not in routes.list), or a VPC peering the pack does
   not list (the peer's VMs are reachable and not listed here);
4. an egress firewall posture weaker than the pack requires (`network.egress`);
5. any of the above set up and taken down again during the run (the window's Admin Activity log).

Not read (said in the PASS message, so nobody mistakes silence for proof): hierarchical and
network firewall policies, which Google evaluates before these rules [U: order not researched], and
Shared VPC host projects (the node network is taken to live in the node's project).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from sovaudit.audit.models import ControlContext, Finding, Pillar, Severity
from sovaudit.audit.registry import control
from sovaudit.audit.views import (
    EvidenceIncomplete,
    complete_items,
    is_instance_insert_with_body,
    log_entries,
    run_vms,
)
from sovaudit.audit.views_network import (
    FirewallRule,
    NetworkChange,
    Router,
    firewall_rules,
    network_changes,
    network_ref,
    parse_range,
    peerings,
    project_vms,
    routers,
    routes,
    subnetwork_ref,
    within,
)

# Google's API VIPs: restricted.googleapis.com (VPC-SC) and private.googleapis.com, IPv4 and IPv6
# (gcp-escape-routes.md §5.3; private.googleapis.com's range is [U], from memory). A route to them
# through a next hop other than the default gateway still reaches only Google.
GOOGLE_API_RANGES = ("199.36.153.4/30", "199.36.153.8/30", "2600:2d00:0002:1000::/64", "2600:2d00:0002:2000::/64")
NETWORK_PURPOSES = ["compute.routers", "compute.routes", "compute.firewalls", "compute.project_instances",
                    "compute.network"]
_CHANGE_KINDS = {"routers", "routes", "firewalls", "instances", "networks"}


@control(
    id="SEC-09", pillar=Pillar.CONTROLS, severity=Severity.CRITICAL,
    title="Nothing in the node's network gives a worker a path to the internet",
    rationale="Workers without external IPs still reach the internet through a Cloud NAT on their network, a "
              "proxy VM with an external address beside them, a route to such a proxy or to a VPN/interconnect, "
              "or an egress firewall that lets them out; genomes can then leave without any Google API (and so "
              "without any data-access log or VPC-SC check). The node network must offer none of these, now "
              "and during the run's window.",
    remediation="Delete the NAT (gcloud compute routers nats delete NAT --router=ROUTER --region=R), remove the "
                "other VM's access config (gcloud compute instances delete-access-config VM --access-config-name="
                "'External NAT') or move it out of the network, delete the route (gcloud compute routes delete R), "
                "and keep an egress deny: gcloud compute firewall-rules create deny-all-egress --network=NET "
                "--direction=EGRESS --action=DENY --rules=all --destination-ranges=0.0.0.0/0 --priority=65000 "
                "| terraform: google_compute_firewall with deny { protocol = \"all\" }; enforce with "
                "constraints/compute.vmExternalIpAccess",
    frameworks={"GDPR": ["Art. 32", "Art. 44"], "HIPAA": ["164.312(e)(1)"], "NIST-800-53": ["SC-7", "AC-4"],
                "ISO27001-2022": ["A.8.20", "A.8.22"]},
    reads=[*NETWORK_PURPOSES, "logging.network_changes", "logging.instance_inserts"],
)
def no_internet_path(ctx: ControlContext) -> Iterator[Finding]:
    yield from _nats(ctx)
    yield from _other_vms(ctx)
    yield from _routes(ctx)
    yield from _peerings(ctx)
    yield from _firewall(ctx)
    yield from _history(ctx)


def _node_network(ctx: ControlContext) -> tuple[str, str]:
    return str(ctx.policy.project), ctx.policy.network.network


def _net_name(ctx: ControlContext) -> str:
    return f"projects/{ctx.policy.project}/global/networks/{ctx.policy.network.network}"


def _purpose_ids(ctx: ControlContext, purpose: str) -> list[str]:
    return ctx.evidence.by_purpose(purpose).ids


# ------------------------------------------------------------------------------------------------ NAT


def nat_coverage(router: Router, nat_subnets: tuple[tuple[str, str], ...], source: str, region: str,
                 subnetwork: str) -> tuple[bool, str]:
    """(covers the workers' subnet, what it covers in words). ALL_SUBNETWORKS_* covers every subnet of
    the network in the router's region; LIST_OF_SUBNETWORKS only those listed (matched by name in any
    region, so a same-named subnet elsewhere is not waved through)."""
    if source.startswith("ALL_SUBNETWORKS"):
        covers = router.region == region
        return covers, f"every subnet of the network in {router.region} ({source})"
    listed = ", ".join(f"{r}/{n}" for r, n in nat_subnets) or "no subnet"
    covers = any(name == subnetwork for _, name in nat_subnets)
    return covers, f"{listed} ({source or 'no sourceSubnetworkIpRangesToNat'})"


def _nats(ctx: ControlContext) -> Iterator[Finding]:
    project, node_net = _node_network(ctx)
    found = [r for r in routers(ctx.evidence, project) if r.network == (project, node_net)]
    ids = _purpose_ids(ctx, "compute.routers")
    if not found:
        yield Finding.ok(_net_name(ctx), f"no Cloud Router in the node network {node_net}, so no Cloud NAT", ids)
    workers = f"{ctx.policy.region}/{ctx.policy.network.subnetwork}"
    for router in found:
        if router.bgp_peers:
            # Dynamic routes learned over BGP are not in routes.list (routers.getRouterStatus shows them), and an
            # on-premises peer can advertise 0.0.0.0/0: a hybrid path this audit cannot rule out.
            yield Finding.fail(router.resource, f"Cloud Router {router.name} ({router.region}) in the node network "
                               f"has BGP session(s) {', '.join(router.bgp_peers)}: routes learned from them (possibly a "
                               "default route to another network or on premises) give the workers a path around the "
                               "perimeter", router.evidence)
        if not router.nats and not router.bgp_peers:
            yield Finding.ok(router.resource, f"Cloud Router {router.name} ({router.region}) has no NAT and no BGP "
                             "session", router.evidence)
        for nat in router.nats:
            resource = f"{router.resource}/nats/{nat.name}"
            if not nat.public:
                yield Finding.ok(resource, f"NAT {nat.name} on router {router.name} is a {nat.type} NAT (translation "
                                 "between private networks, not to the internet)", router.evidence)
                continue
            covers, what = nat_coverage(router, nat.subnetworks, nat.source_ranges, ctx.policy.region,
                                        ctx.policy.network.subnetwork)
            if nat.nat64:
                what += f"; NAT64 for {nat.nat64}"
            if covers:
                why = f"it covers the workers' subnet {workers}: every worker reaches the internet through it"
            else:
                why = (f"it does not cover the workers' subnet {workers}, but every VM in what it covers gets "
                       "internet egress and is reachable from the workers over the VPC (a relay)")
            yield Finding.fail(resource, f"PUBLIC Cloud NAT {nat.name} on router {router.name} ({router.region}) in "
                               f"the node network translates {what}: {why}", router.evidence)


# ------------------------------------------------------------------------------------------------ other VMs


def _other_vms(ctx: ControlContext) -> Iterator[Finding]:
    project, node_net = _node_network(ctx)
    job_uids = set(ctx.scope.job_uids)   # every judged job's workers are the run's
    vms = project_vms(ctx.evidence, project)
    ids = _purpose_ids(ctx, "compute.project_instances")
    in_network = [vm for vm in vms if (project, node_net) in vm.networks
                  or ctx.policy.network.subnetwork in vm.subnetworks]
    others = [vm for vm in in_network if vm.labels.get("batch-job-uid") not in job_uids]
    clean = 0
    for vm in others:
        if vm.external:
            bridge = " (one of its NICs is in another network: it bridges the two)" if len(set(vm.networks)) > 1 \
                else ""
            yield Finding.fail(vm.resource, f"VM {vm.name} ({vm.zone}) is in the node network {node_net} and has an "
                               f"external address ({', '.join(vm.external)}){bridge}: the workers can reach it over "
                               "the VPC and use it as a proxy to the internet", vm.evidence)
        else:
            clean += 1
    run_note = f" besides the run's {len(in_network) - len(others)} workers" if job_uids else ""
    yield Finding.ok(_net_name(ctx), f"{clean} other VM(s) in the node network{run_note} have no external address "
                     f"({len(vms)} VMs listed in the project)", ids)


# ------------------------------------------------------------------------------------------------ routes


def _route_problem(next_hop_kind: str, next_hop: str, dest: str, tags: tuple[str, ...],
                   allowed: tuple[str, ...], node_net: tuple[str, str]) -> str:
    """Why a route is a way out ('' when it is not)."""
    if next_hop_kind == "nextHopGateway":
        return ""   # default-internet-gateway: an exit only for a VM with an external IP or a NAT (judged above)
    if next_hop_kind == "nextHopNetwork" and network_ref(next_hop, node_net[0]) == node_net:
        return ""   # the network's own subnet route
    if within(dest, GOOGLE_API_RANGES + allowed):
        return ""
    scope = f" for VMs tagged {', '.join(tags)}" if tags else ""
    return f"sends {dest} to {next_hop_kind} {next_hop}{scope}: a path around the perimeter (a proxy, appliance, " \
           "peered or on-premises network)"


def _routes(ctx: ControlContext) -> Iterator[Finding]:
    project, node_net = _node_network(ctx)
    allowed = ctx.policy.network.egress.allowed_destinations
    mine = [r for r in routes(ctx.evidence, project) if r.network == (project, node_net)]
    if not mine:
        yield Finding.error(_net_name(ctx), f"the route listing holds no route of the node network {node_net} (not "
                            "even its subnet routes): the network does not exist in this project or the listing is "
                            "incomplete", _purpose_ids(ctx, "compute.routes"))
        return
    clean = 0
    for route in mine:
        if not route.next_hop_kind or parse_range(route.dest_range) is None:
            yield Finding.error(route.resource, f"route {route.name} has no readable next hop or destination "
                                f"({route.dest_range!r})", route.evidence)
            continue
        problem = _route_problem(route.next_hop_kind, route.next_hop, route.dest_range, route.tags, allowed,
                                 (project, node_net))
        if problem:
            yield Finding.fail(route.resource, f"route {route.name} (priority {route.priority}) {problem}",
                               route.evidence)
        else:
            clean += 1
    yield Finding.ok(_net_name(ctx), f"{clean} route(s) of {node_net} lead only to the default internet gateway, "
                     "the network's own subnets or Google's API ranges", _purpose_ids(ctx, "compute.routes"))


# ------------------------------------------------------------------------------------------------ peerings


def _peerings(ctx: ControlContext) -> Iterator[Finding]:
    """A peered network's VMs are reachable from the workers, and the audit lists none of them (a proxy
    there is invisible), so every peering is a FAIL unless the pack names the peer network exactly."""
    allowed = set(ctx.policy.network.egress.allowed_peerings)
    found = peerings(ctx.evidence)
    ids = _purpose_ids(ctx, "compute.network")
    for peering in found:
        project, name = network_ref(peering.network)
        peer = f"projects/{project}/global/networks/{name}" if name else peering.network
        resource = f"{_net_name(ctx)}/peerings/{peering.name}"
        if peer in allowed:
            yield Finding.ok(resource, f"peering {peering.name} to {peer} is listed in the pack "
                             "(network.egress.allowed_peerings)", peering.evidence)
        else:
            routes_note = " and imports its custom routes" if peering.import_custom_routes else ""
            state = peering.state or "state unknown"
            yield Finding.fail(resource, f"the node network peers with {peer} ({peering.name}, {state}){routes_note}: "
                               "the workers reach every VM there, and this audit lists none of them", peering.evidence)
    if not found:
        yield Finding.ok(_net_name(ctx), "the node network has no VPC peering", ids)


# ------------------------------------------------------------------------------------------------ firewall


def _may_apply(rule: FirewallRule, service_account: str) -> bool:
    """Whether an allow may reach the workers: rules limited by target tags are taken to apply (whoever
    creates a VM sets its tags); rules limited to other service accounts do not."""
    return not rule.target_service_accounts or service_account in rule.target_service_accounts


def _covers_all(rule: FirewallRule, version: int) -> bool:
    """Whether the rule's destinations add up to the whole address space (0.0.0.0/0, or 0.0.0.0/1 + 128.0.0.0/1)."""
    ranges = [r for r in (parse_range(text) for text in rule.destination_ranges) if r is not None and r.version == version]
    collapsed = list(ipaddress.collapse_addresses(ranges))  # type: ignore[type-var]
    return len(collapsed) == 1 and collapsed[0].prefixlen == 0


def effective_denies(rules: list[FirewallRule], service_account: str, version: int = 4) -> list[FirewallRule]:
    """Egress denies that hold for every worker: enabled, every protocol, the whole address space, and not
    limited to tagged VMs or to other service accounts."""
    return [r for r in rules if r.direction == "EGRESS" and r.action == "deny" and not r.disabled
            and r.all_protocols and _covers_all(r, version) and not r.target_tags
            and (not r.target_service_accounts or service_account in r.target_service_accounts)]


def _firewall(ctx: ControlContext) -> Iterator[Finding]:
    egress = ctx.policy.network.egress
    project, node_net = _node_network(ctx)
    ids = _purpose_ids(ctx, "compute.firewalls")
    if egress.firewall == "not-required":
        complete_items(ctx.evidence, "compute.firewalls")   # still ERROR when the listing failed
        yield Finding.ok(_net_name(ctx), "the pack does not require an egress firewall posture (network.egress."
                         "firewall: not-required): the firewall part of SEC-09 is not judged", ids)
        return
    sa = ctx.policy.service_account
    rules = [r for r in firewall_rules(ctx.evidence, project) if r.network == (project, node_net)]
    egress_rules = [r for r in rules if r.direction == "EGRESS"]
    denies = {version: effective_denies(egress_rules, sa, version) for version in (4, 6)}
    if not denies[4]:
        near = [r.name + (" (disabled)" if r.disabled else " (limited to tags " + ", ".join(r.target_tags) + ")"
                          if r.target_tags else " (not every protocol)" if not r.all_protocols else
                          " (not the whole IPv4 space)" if not _covers_all(r, 4) else " (other service accounts)")
                for r in egress_rules if r.action == "deny"]
        extra = f"; deny rules that do not qualify: {', '.join(near)}" if near else ""
        yield Finding.fail(_net_name(ctx), f"no enabled egress deny of 0.0.0.0/0 for every protocol applies to every "
                           f"worker in {node_net}, so Google's implied allow-egress rule (priority 65535) lets them "
                           f"out{extra}", ids)
        return
    strongest = {version: min((d.priority for d in found), default=65536) for version, found in denies.items()}
    deny_names = ", ".join(f"{d.name} (priority {d.priority})" for d in denies[4])
    opened = 0
    for rule in egress_rules:
        if rule.action != "allow" or rule.disabled or not _may_apply(rule, sa):
            continue
        bad = []
        for text in rule.destination_ranges:
            parsed = parse_range(text)
            version = parsed.version if parsed is not None else 4
            # At equal priority a deny wins (compute.v1: "DENY rules take precedence over ALLOW rules").
            if rule.priority < strongest[version] and not within(text, egress.allowed_destinations):
                bad.append(text)
        if bad:
            ports = "; ".join(f"{p}:{','.join(ports)}" if ports else p for p, ports in rule.protocols) or "everything"
            targets = f", for VMs tagged {', '.join(rule.target_tags)}" if rule.target_tags else ""
            yield Finding.fail(rule.resource, f"egress allow {rule.name} (priority {rule.priority}) opens {ports} to "
                               f"{', '.join(bad)}{targets}, ahead of the deny-all {deny_names}; the pack allows only "
                               f"{', '.join(egress.allowed_destinations)}", rule.evidence)
        elif rule.priority < strongest[4]:
            opened += 1
    yield Finding.ok(_net_name(ctx), f"egress deny-all {deny_names} applies to every worker; {opened} allow rule(s) "
                     f"ahead of it open only {', '.join(egress.allowed_destinations)} (hierarchical and network "
                     "firewall policies are not read)", ids)


# ------------------------------------------------------------------------------------------------ history


def _history(ctx: ControlContext) -> Iterator[Finding]:
    """What changed during the run: a NAT, route, rule or address added and removed again is still found."""
    changes = network_changes(ctx.evidence)
    window = ctx.scope.window_text
    if changes is not None:
        # The run's own VMs are SEC-02's (audit/vm_history.py), as in _other_vms and _inserted_vms; the
        # query also brings every other instance method (for the run's VMs' history): only the ones
        # that give a VM an address are network changes here.
        mine = _run_vm_keys(ctx)
        judged = [c for c in changes if c.collection in _CHANGE_KINDS and not (
            c.collection == "instances" and (c.verb not in _INSTANCE_NET_VERBS or
                                             (_zone_of(c), c.name) in mine))]
        bad = 0
        created: set[tuple[str, str, str]] = set()
        for change in judged:
            key = (change.collection, change.region, change.name)
            if change.verb == "delete" and key in created:
                continue   # made inside the window: its insert body was judged above
            if change.verb == "insert":
                created.add(key)
            for finding in _judge_change(ctx, change):
                bad += 1
                yield finding
        if not bad:
            yield Finding.ok(_net_name(ctx), f"{len(judged)} network change(s) in the window {window}, none opening a "
                             "way out", _purpose_ids(ctx, "logging.network_changes"))
    yield from _inserted_vms(ctx)


_INSTANCE_NET_VERBS = frozenset({"addAccessConfig", "updateAccessConfig", "updateNetworkInterface"})


def _zone_of(change: NetworkChange) -> str:
    match = re.search(r"/zones/([^/]+)/", change.entry.resource_name)
    return match.group(1) if match else ""


def _run_vm_keys(ctx: ControlContext) -> set[tuple[str, str]]:
    """(zone, name) of the run's VMs, live or from their inserts ({} when they cannot be read: every
    VM's change is then judged here, which fails closed)."""
    if not ctx.scope.job_uid:
        return set()
    try:
        return {(vm.zone, vm.name) for vm in run_vms(ctx.evidence, ctx.scope.job_uid).vms}
    except EvidenceIncomplete:
        return set()


def _find_rule(ctx: ControlContext, name: str) -> FirewallRule | None:
    project, _ = _node_network(ctx)
    return next((r for r in firewall_rules(ctx.evidence, project) if r.name == name), None)


def _change_network(ctx: ControlContext, change: NetworkChange) -> tuple[str, str] | None:
    """The network a change touched: from its request, else from today's listing by name (None: unknown)."""
    project, _ = _node_network(ctx)
    given = change.request.get("network")
    if given:
        return network_ref(str(given), project)
    if change.collection == "routers":
        found = next((r for r in routers(ctx.evidence, project)
                      if r.name == change.name and r.region == change.region), None)
        return found.network if found else None
    if change.collection == "firewalls":
        rule = _find_rule(ctx, change.name)
        return rule.network if rule else None
    if change.collection == "networks":
        return (project, change.name)
    if change.collection == "instances":
        vm = next((v for v in project_vms(ctx.evidence, project) if v.name == change.name), None)
        return (project, ctx.policy.network.network) if vm is None or \
            (project, ctx.policy.network.network) in vm.networks else vm.networks[0]
    return None


def _judge_change(ctx: ControlContext, change: NetworkChange) -> Iterator[Finding]:
    project, node_net = _node_network(ctx)
    network = _change_network(ctx, change)
    if network is not None and network != (project, node_net):
        return
    where = "the node network" if network else "a network this entry does not name (taken to be the node's)"
    who = f"{change.who} at {change.when}"
    resource = change.entry.resource_name or change.name
    evidence = change.entry.evidence
    request = change.request
    if change.collection == "routers":
        if change.verb == "delete":
            yield Finding.error(resource, f"{who} deleted Cloud Router {change.name} ({change.region}) during the run; "
                                "the entry does not say whether it carried a NAT the workers used", evidence)
            return
        for nat in request.get("nats") or ():
            if isinstance(nat, Mapping) and str(nat.get("type") or "PUBLIC") == "PUBLIC":
                yield Finding.fail(resource, f"{who} configured PUBLIC Cloud NAT {nat.get('name', '')} on router "
                                   f"{change.name} ({change.region}) in {where} during the run "
                                   f"({change.entry.method_name})", evidence)
        peers = [p for p in request.get("bgpPeers") or () if isinstance(p, Mapping)
                 and str(p.get("enable", "TRUE")) != "FALSE"]
        if peers:
            names = ", ".join(f"{p.get('name', '')} ({p.get('peerIpAddress', 'no peer IP')})" for p in peers)
            yield Finding.fail(resource, f"{who} gave router {change.name} ({change.region}) in {where} BGP session(s) "
                               f"{names} during the run ({change.entry.method_name})", evidence)
    elif change.collection == "networks":
        if change.verb in {"addPeering", "updatePeering"}:
            peer = network_ref(str((request.get("networkPeering") or {}).get("network") or request.get("peerNetwork")
                                   or ""))
            peer_name = f"projects/{peer[0]}/global/networks/{peer[1]}" if peer[1] else "an unnamed network"
            if peer_name not in ctx.policy.network.egress.allowed_peerings:
                yield Finding.fail(resource, f"{who} peered the node network with {peer_name} during the run "
                                   f"({change.entry.method_name})", evidence)
    elif change.collection == "routes" and change.verb == "insert":
        kind = next((k for k in ("nextHopInstance", "nextHopIp", "nextHopIlb", "nextHopVpnTunnel", "nextHopPeering",
                                 "nextHopInterconnectAttachment", "nextHopHub", "nextHopNetwork", "nextHopGateway")
                     if request.get(k)), "")
        problem = _route_problem(kind, str(request.get(kind, "")), str(request.get("destRange", "")),
                                 tuple(map(str, request.get("tags") or ())),
                                 ctx.policy.network.egress.allowed_destinations, (project, node_net)) if kind else \
            "names no next hop"
        if problem:
            yield Finding.fail(resource, f"{who} created route {change.name} in {where} during the run: it {problem}",
                               evidence)
    elif change.collection == "firewalls":
        yield from _judge_firewall_change(ctx, change, who, where, resource)
    elif change.collection == "instances" and change.verb in {"addAccessConfig", "updateAccessConfig",
                                                              "updateNetworkInterface"}:
        if change.verb == "updateNetworkInterface" and not (request.get("accessConfigs")
                                                           or request.get("ipv6AccessConfigs")):
            return
        yield Finding.fail(resource, f"{who} gave VM {change.name} in {where} an external address during the run "
                           f"({change.entry.method_name})", evidence)


def _judge_firewall_change(ctx: ControlContext, change: NetworkChange, who: str, where: str,
                           resource: str) -> Iterator[Finding]:
    egress = ctx.policy.network.egress
    if egress.firewall == "not-required":
        return
    evidence = change.entry.evidence
    request: Mapping[str, Any] = change.request
    current = _find_rule(ctx, change.name)
    if change.verb == "delete":
        if current is None:
            yield Finding.error(resource, f"{who} deleted firewall rule {change.name} during the run; the entry does "
                                "not say what it held, so the egress posture the run lived under is unknown", evidence)
        elif current.action == "deny" and current.direction == "EGRESS":
            yield Finding.fail(resource, f"{who} deleted the egress deny rule {change.name} in {where} during the run "
                               "(it exists again now): the workers ran without it for a while", evidence)
        return
    direction = str(request.get("direction") or (current.direction if current else "INGRESS"))
    if direction != "EGRESS":
        return
    changed = sorted(set(request) & {"priority", "destinationRanges", "denied", "allowed", "disabled", "targetTags",
                                     "targetServiceAccounts", "direction"})
    if current is not None and current.action == "deny" and change.verb in {"patch", "update"} and changed:
        yield Finding.fail(resource, f"{who} changed the egress deny rule {change.name} in {where} during the run "
                           f"({', '.join(changed)}): the posture the run lived under is not the one listed now",
                           evidence)
        return
    # The rule as it stood after this change: the request's fields over today's rule (PATCH semantics).
    allows = bool(request.get("allowed")) or (not request.get("denied") and current is not None
                                               and current.action == "allow")
    disabled = bool(request.get("disabled", current.disabled if current else False))
    if not allows or disabled:
        return
    ranges = [str(r) for r in request.get("destinationRanges") or
              (current.destination_ranges if current else ("0.0.0.0/0",))]
    priority = int(request.get("priority") or (current.priority if current else 1000))
    project, node_net = _node_network(ctx)
    denies = effective_denies([r for r in firewall_rules(ctx.evidence, project) if r.network == (project, node_net)],
                              ctx.policy.service_account)
    strongest = min((d.priority for d in denies), default=65536)
    bad = [r for r in ranges if not within(r, egress.allowed_destinations)]
    if bad and priority < strongest:
        yield Finding.fail(resource, f"{who} set firewall rule {change.name} in {where} to allow egress to "
                           f"{', '.join(bad)} at priority {priority} during the run ({change.entry.method_name}); the "
                           f"pack allows only {', '.join(egress.allowed_destinations)}", evidence)


def _inserted_vms(ctx: ControlContext) -> Iterator[Finding]:
    """Other VMs created in the window in the node network with an external address (even if deleted since)."""
    if not ctx.evidence.by_purpose("logging.instance_inserts").items:
        return
    project, node_net = _node_network(ctx)
    job_uids = set(ctx.scope.job_uids)
    for entry in log_entries(ctx.evidence, "logging.instance_inserts"):
        if not is_instance_insert_with_body(entry):
            continue
        request = entry.request
        labels = request.get("labels") or {}
        if isinstance(labels, Mapping) and labels.get("batch-job-uid") in job_uids:
            continue   # the run's own VMs: SEC-02 judges their addresses
        for nic in request.get("networkInterfaces") or ():
            if not isinstance(nic, Mapping):
                continue
            net = network_ref(str(nic.get("network", "")), project) if nic.get("network") else None
            subnet = subnetwork_ref(str(nic.get("subnetwork", "")), project)[2] if nic.get("subnetwork") else ""
            in_node = net == (project, node_net) or (net is None and subnet == ctx.policy.network.subnetwork)
            if in_node and (nic.get("accessConfigs") or nic.get("ipv6AccessConfigs")):
                name = str(request.get("name") or entry.resource_name.rsplit("/", 1)[-1])
                yield Finding.fail(entry.resource_name or name, f"{entry.principal or 'someone'} created VM {name} in "
                                   f"the node network with an external address at {entry.timestamp}, during the run "
                                   "(from its compute.instances.insert audit entry)", entry.evidence)
                break
