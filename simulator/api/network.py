"""Compute Engine v1 networking, as `google.cloud.compute_v1` calls it over REST.

Served: networks get/list; subnetworks get/list (regional) and aggregatedList; routers
get/list/insert/patch/update/delete (regional) and aggregatedList; routes get/list/insert/delete
(global); firewalls get/list/insert/patch/update/delete (global); regionOperations get/wait.

Why it matters: a worker without an external IP still reaches the internet through a Cloud NAT on its
subnet, a proxy VM with an external address in the same network, a route whose next hop is such a
proxy (or a VPN tunnel), or an egress firewall that allows it. SEC-09 reads these listings, so the
shapes follow compute.v1's discovery document: `Router.nats[]` (RouterNat), `Route.nextHop*`,
`Firewall.allowed[].IPProtocol`, camelCase, unset fields omitted, ids as strings.

State lives in `state.extras["network"]` (this module owns it): `networks`, `subnetworks` keyed by
(region, name), `routers` keyed by (region, name), `routes` and `firewalls` keyed by name. It is
built from the node file's `network:` block (`seed_network`); other VMs the node file names
(`network.other_instances`) go into `state.instances` beside the job's, as compute.py stores them.

Mutations finish before they answer (see compute.py's docstring for why an Operation is DONE at
once) and write the Admin Activity pair Google writes for a long-running Compute call: a `first`
entry with the request body and a `last` entry, methodName `v1.compute.<collection>.<verb>`
(gcp-escape-routes.md §5.1 gives these as the pattern Google follows [U per method]).

Knowingly simplified: no hierarchical or network firewall policies, no VPN tunnels, interconnects or
peerings as resources (a route may still name them as next hops), no dynamic (BGP) routes, and
subnet routes are synthesised from the subnetworks rather than stored.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sovaudit.simulator import clock, integrity_log
from sovaudit.simulator.api import compute
from sovaudit.simulator.api.compute import (
    _check_project,
    _compile,
    _decode_token,
    _encode_token,
    _invalid,
    _max_results,
    _not_found,
    _numeric_id,
    _paged_list,
    caller_principal,
    project_url,
    record_operation,
    timestamp,
)
from sovaudit.simulator.http import Router, SimRequest, classic_error
from sovaudit.simulator.state import SimState

API = "compute"
_V1 = "/compute/v1/projects/<project>"
DEFAULT_GATEWAY = "default-internet-gateway"
NODE_CREATED = "2026-01-15T01:30:00.000-08:00"
_NAME = compute._NAME


def register(router: Router) -> None:
    add = router.add
    add("GET", f"{_V1}/global/networks", list_networks, api=API)
    add("GET", f"{_V1}/global/networks/<network>", get_network, api=API)
    add("GET", f"{_V1}/aggregated/subnetworks", aggregated_list_subnetworks, api=API)
    add("GET", f"{_V1}/regions/<region>/subnetworks", list_subnetworks, api=API)
    add("GET", f"{_V1}/regions/<region>/subnetworks/<subnetwork>", get_subnetwork, api=API)
    add("GET", f"{_V1}/aggregated/routers", aggregated_list_routers, api=API)
    add("GET", f"{_V1}/regions/<region>/routers", list_routers, api=API)
    add("POST", f"{_V1}/regions/<region>/routers", insert_router, api=API)
    add("GET", f"{_V1}/regions/<region>/routers/<router>", get_router, api=API)
    add("PATCH", f"{_V1}/regions/<region>/routers/<router>", patch_router, api=API)
    add("PUT", f"{_V1}/regions/<region>/routers/<router>", update_router, api=API)
    add("DELETE", f"{_V1}/regions/<region>/routers/<router>", delete_router, api=API)
    add("GET", f"{_V1}/global/routes", list_routes, api=API)
    add("POST", f"{_V1}/global/routes", insert_route, api=API)
    add("GET", f"{_V1}/global/routes/<route>", get_route, api=API)
    add("DELETE", f"{_V1}/global/routes/<route>", delete_route, api=API)
    add("GET", f"{_V1}/global/firewalls", list_firewalls, api=API)
    add("POST", f"{_V1}/global/firewalls", insert_firewall, api=API)
    add("GET", f"{_V1}/global/firewalls/<firewall>", get_firewall, api=API)
    add("PATCH", f"{_V1}/global/firewalls/<firewall>", patch_firewall, api=API)
    add("PUT", f"{_V1}/global/firewalls/<firewall>", update_firewall, api=API)
    add("DELETE", f"{_V1}/global/firewalls/<firewall>", delete_firewall, api=API)
    add("GET", f"{_V1}/regions/<region>/operations/<operation>", get_region_operation, api=API)
    add("POST", f"{_V1}/regions/<region>/operations/<operation>/wait", get_region_operation, api=API)


# ---------------------------------------------------------------------------------------------
# state


def _net(state: SimState) -> dict[str, Any]:
    with state.lock:
        return state.extras.setdefault("network", {"networks": {}, "subnetworks": {}, "routers": {},
                                                    "routes": {}, "firewalls": {}})


def network_url(state: SimState, name: str) -> str:
    return f"{project_url(state)}/global/networks/{name}"


def _region_url(state: SimState, region: str) -> str:
    return f"{project_url(state)}/regions/{region}"


def _expand_network(state: SimState, value: Any) -> str:
    text = str(value or "")
    if not text:
        return network_url(state, "default")
    return compute.expand_url(state, text, kind="networks")


def _subnetwork_json(state: SimState, network: str, region: str, name: str,
                     given: Mapping[str, Any]) -> dict[str, Any]:
    cidr = str(given.get("ipCidrRange") or "10.200.0.0/24")
    gateway = str(ipaddress.IPv4Network(cidr, strict=False).network_address + 1)
    link = f"{_region_url(state, region)}/subnetworks/{name}"
    body: dict[str, Any] = {
        "kind": "compute#subnetwork", "id": _stable_id(link), "creationTimestamp": NODE_CREATED,
        "name": name, "network": network_url(state, network), "ipCidrRange": cidr, "gatewayAddress": gateway,
        "region": _region_url(state, region), "selfLink": link,
        "privateIpGoogleAccess": bool(given.get("privateIpGoogleAccess", True)),
        "fingerprint": compute._fingerprint(), "stackType": str(given.get("stackType") or "IPV4_ONLY"),
        "purpose": "PRIVATE",
    }
    for key in ("ipv6AccessType", "secondaryIpRanges", "logConfig", "description"):
        if key in given:
            body[key] = copy.deepcopy(given[key])
    return body


def _network_json(state: SimState, name: str) -> dict[str, Any]:
    link = network_url(state, name)
    with state.lock:
        subnets = sorted(s["selfLink"] for s in _net(state)["subnetworks"].values() if s["network"] == link)
    body: dict[str, Any] = {"kind": "compute#network", "id": _stable_id(link), "creationTimestamp": NODE_CREATED,
                            "name": name, "selfLink": link, "selfLinkWithId": f"{project_url(state)}/global/networks/"
                            f"{_stable_id(link)}", "autoCreateSubnetworks": False,
                            "routingConfig": {"routingMode": "REGIONAL"},
                            "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL", "mtu": 1460}
    if subnets:
        body["subnetworks"] = subnets
    spec = state.node.get("network") if isinstance(state.node, dict) else None
    if isinstance(spec, dict) and name == spec.get("name") and spec.get("peerings"):
        peerings = []
        for peer_name, given in sorted(spec["peerings"].items()):
            if given is None:
                continue
            peering = {"name": peer_name, "network": compute.expand_url(state, str(given.get("network", "")),
                                                                        kind="networks"),
                       "state": "ACTIVE", "stateDetails": "[2026-01-15T01:30:00.000-08:00]: Connected.",
                       "autoCreateRoutes": True, "exchangeSubnetRoutes": True, "exportCustomRoutes": False,
                       "importCustomRoutes": False, "exportSubnetRoutesWithPublicIp": False,
                       "importSubnetRoutesWithPublicIp": False, "stackType": "IPV4_ONLY"}
            peering.update({k: copy.deepcopy(v) for k, v in given.items() if k != "network"})
            peerings.append(peering)
        if peerings:
            body["peerings"] = peerings
    return body


def _stable_id(*parts: str) -> str:
    from sovaudit.simulator.node import numeric_id

    return numeric_id("compute", *parts)


def seed_network(state: SimState) -> None:
    """Networks, subnetworks, routes, firewalls, routers and other VMs from the node file's `network:`."""
    spec = state.node.get("network") if isinstance(state.node, dict) else None
    if not isinstance(spec, dict):
        return
    net = _net(state)
    node_net = str(spec["name"])
    net["networks"][node_net] = True
    subnets: dict[tuple[str, str], dict[str, Any]] = {
        (state.region, str(spec["subnetwork"])): {
            "ipCidrRange": spec.get("ip_cidr_range", "10.128.0.0/20"),
            "privateIpGoogleAccess": spec.get("private_ip_google_access", True)}}
    for name, given in (spec.get("subnetworks") or {}).items():
        subnets[(str(given.get("region") or state.region), str(name))] = dict(given)
    for key, given in subnets.items():
        net["subnetworks"][key] = _subnetwork_json(state, node_net, key[0], key[1], given)
    for other, other_spec in (spec.get("other_networks") or {}).items():
        net["networks"][str(other)] = True
        for name, given in ((other_spec or {}).get("subnetworks") or {}).items():
            region = str(given.get("region") or state.region)
            net["subnetworks"][(region, str(name))] = _subnetwork_json(state, str(other), region, str(name), given)
    for name, given in (spec.get("routes") or {}).items():
        if given is not None:
            net["routes"][str(name)] = build_route(state, {"name": name, **given}, created=NODE_CREATED)
    for name, given in (spec.get("firewalls") or {}).items():
        if given is not None:
            net["firewalls"][str(name)] = build_firewall(state, {"name": name, **given}, created=NODE_CREATED)
    for name, given in (spec.get("routers") or {}).items():
        if given is not None:
            body = {k: v for k, v in given.items() if k != "region"}
            region = str(given.get("region") or state.region)
            net["routers"][(region, str(name))] = build_router(state, region, {"name": name, **body},
                                                               created=NODE_CREATED)
    for name, given in (spec.get("other_instances") or {}).items():
        if given is None:
            continue
        body = {k: v for k, v in given.items() if k != "zone"}
        zone = str(given.get("zone") or state.zones[0])
        instance = compute.build_instance(state, zone, {"name": name, **body})
        instance["creationTimestamp"] = NODE_CREATED
        instance["lastStartTimestamp"] = NODE_CREATED
        state.instances[(zone, str(name))] = instance


# ---------------------------------------------------------------------------------------------
# building resources as Google stores them


def build_route(state: SimState, body: Mapping[str, Any], *, created: str | None = None) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _invalid("resource.name", name if name is not None else "", "Must be a match of regex "
                       f"'{compute._NAME_RULE}'")
    dest = str(body.get("destRange") or "")
    try:
        ipaddress.ip_network(dest, strict=False)
    except ValueError as exc:
        raise _invalid("resource.destRange", dest, "Must be a valid CIDR range.") from exc
    hops = [key for key in ("nextHopGateway", "nextHopInstance", "nextHopIp", "nextHopIlb", "nextHopVpnTunnel",
                            "nextHopNetwork", "nextHopPeering", "nextHopInterconnectAttachment", "nextHopHub")
            if body.get(key)]
    if len(hops) != 1:
        raise classic_error(400, "Invalid value for field 'resource': exactly one next hop must be specified "
                                 f"(got {', '.join(hops) or 'none'}).", "invalid")
    route = copy.deepcopy(dict(body))
    link = f"{project_url(state)}/global/routes/{name}"
    route.update({"kind": "compute#route", "id": _numeric_id(state, "route"),
                  "creationTimestamp": created or timestamp(), "name": name,
                  "network": _expand_network(state, body.get("network")), "destRange": dest,
                  "priority": int(body.get("priority", 1000)), "selfLink": link})
    hop = hops[0]
    if hop == "nextHopGateway":
        route[hop] = compute.expand_url(state, str(body[hop])) if "/" in str(body[hop]) else \
            f"{project_url(state)}/global/gateways/{body[hop]}"
    elif hop == "nextHopInstance":
        route[hop] = compute.expand_url(state, str(body[hop]))
    route.setdefault("routeType", "STATIC")
    return route


def _subnet_routes(state: SimState) -> list[dict[str, Any]]:
    """The system-generated subnet routes Google lists beside the static ones (one per subnet range)."""
    routes = []
    with state.lock:
        subnets = list(_net(state)["subnetworks"].values())
    for subnet in subnets:
        net_name = subnet["network"].rsplit("/", 1)[-1]
        name = f"{net_name}-{_stable_id(subnet['selfLink'])[-16:]}"[:63]
        routes.append({"kind": "compute#route", "id": _stable_id("route", subnet["selfLink"]),
                       "creationTimestamp": NODE_CREATED, "name": name,
                       "description": f"Default local route to the subnetwork {subnet['ipCidrRange']}.",
                       "network": subnet["network"], "destRange": subnet["ipCidrRange"], "priority": 0,
                       "nextHopNetwork": subnet["network"], "routeType": "SUBNET",
                       "selfLink": f"{project_url(state)}/global/routes/{name}"})
    return routes


def build_firewall(state: SimState, body: Mapping[str, Any], *, created: str | None = None) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _invalid("resource.name", name if name is not None else "", "Must be a match of regex "
                       f"'{compute._NAME_RULE}'")
    if bool(body.get("allowed")) == bool(body.get("denied")):
        raise classic_error(400, "Invalid value for field 'resource': exactly one of 'allowed' or 'denied' must be "
                                 "specified.", "invalid")
    rule = copy.deepcopy(dict(body))
    direction = str(body.get("direction") or "INGRESS")
    rule.update({"kind": "compute#firewall", "id": _numeric_id(state, "firewall"),
                 "creationTimestamp": created or timestamp(), "name": name,
                 "network": _expand_network(state, body.get("network")), "direction": direction,
                 "priority": int(body.get("priority", 1000)), "disabled": bool(body.get("disabled", False)),
                 "selfLink": f"{project_url(state)}/global/firewalls/{name}"})
    if direction == "EGRESS":
        rule.setdefault("destinationRanges", ["0.0.0.0/0"])
    elif not body.get("sourceTags") and not body.get("sourceServiceAccounts"):
        rule.setdefault("sourceRanges", ["0.0.0.0/0"])
    rule.setdefault("logConfig", {"enable": False})
    return rule


def build_router(state: SimState, region: str, body: Mapping[str, Any], *,
                 created: str | None = None) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _invalid("resource.name", name if name is not None else "", "Must be a match of regex "
                       f"'{compute._NAME_RULE}'")
    if not body.get("network"):
        raise classic_error(400, "Invalid value for field 'resource.network': ''. The network must be specified.",
                            "invalid")
    router = copy.deepcopy(dict(body))
    router.update({"kind": "compute#router", "id": _numeric_id(state, "router"),
                   "creationTimestamp": created or timestamp(), "name": name, "region": _region_url(state, region),
                   "network": _expand_network(state, body.get("network")),
                   "selfLink": f"{_region_url(state, region)}/routers/{name}"})
    nats = []
    for nat in body.get("nats") or ():
        nat = copy.deepcopy(dict(nat))
        nat.setdefault("type", "PUBLIC")
        nat.setdefault("natIpAllocateOption", "AUTO_ONLY")
        nat.setdefault("sourceSubnetworkIpRangesToNat", "ALL_SUBNETWORKS_ALL_IP_RANGES")
        nat.setdefault("endpointTypes", ["ENDPOINT_TYPE_VM"])
        if nat.get("subnetworks"):
            nat["subnetworks"] = [{**s, "name": compute.expand_url(
                state, s["name"] if "/" in str(s.get("name", "")) else f"regions/{region}/subnetworks/{s.get('name')}")}
                for s in nat["subnetworks"]]
        nats.append(nat)
    if nats:
        router["nats"] = nats
    else:
        router.pop("nats", None)
    return router


# ---------------------------------------------------------------------------------------------
# operations and audit entries


def _regional_operation(state: SimState, *, kind: str, target_link: str, target_id: str, user: str,
                        region: str) -> dict[str, Any]:
    operation = record_operation(state, kind=kind, target_link=target_link, target_id=target_id, user=user,
                                 zone=None)
    name = operation["name"]
    operation["selfLink"] = f"{_region_url(state, region)}/operations/{name}"
    operation["region"] = _region_url(state, region)
    with state.lock:
        state.operations[name] = copy.deepcopy(operation)
    return operation


def get_region_operation(request: SimRequest) -> dict[str, Any]:
    state, region, name = request.state, request.path_args["region"], request.path_args["operation"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        operation = state.operations.get(name)
        if operation is not None and operation.get("region", "").endswith(f"/regions/{region}"):
            return copy.deepcopy(operation)
    raise _not_found(f"projects/{state.project_id}/regions/{region}/operations/{name}")


_RESOURCE_TYPES = {"routers": "gce_router", "routes": "gce_route", "firewalls": "gce_firewall_rule"}
_ID_LABELS = {"routers": "router_id", "routes": "route_id", "firewalls": "firewall_rule_id"}


def audit_change(state: SimState, collection: str, verb: str, resource: Mapping[str, Any], *, principal: str,
                 request_body: Mapping[str, Any], operation: Mapping[str, Any], region: str | None = None,
                 when: Any = None) -> None:
    """The Admin Activity `first`/`last` pair of a network mutation (`v1.compute.routers.insert` ...)."""
    from sovaudit.simulator import audit_log

    name = str(resource["name"])
    where = f"regions/{region}" if region else "global"
    resource_name = f"projects/{state.project_id}/{where}/{collection}/{name}"
    labels = {_ID_LABELS[collection]: str(resource.get("id", "")), "project_id": state.project_id}
    if region:
        labels["region"] = region
    permission_verb = {"insert": "create", "patch": "update"}.get(verb, verb)
    moment = when or clock.now()
    op = {"id": operation.get("name", ""), "producer": "compute.googleapis.com"}
    request = {"@type": f"type.googleapis.com/compute.{collection}.{verb}", **copy.deepcopy(dict(request_body))}
    response = {"@type": "type.googleapis.com/operation", **{k: v for k, v in operation.items() if k != "kind"}}
    common = {"log_id": audit_log.ACTIVITY, "service": "compute.googleapis.com",
              "method": f"v1.compute.{collection}.{verb}", "resource_name": resource_name,
              "resource_type": _RESOURCE_TYPES[collection], "resource_labels": labels, "principal": principal,
              "locations": [region or "global"]}
    audit_log.record(state, audit_log.audit_entry(
        state, **common, timestamp=moment, permission=f"compute.{collection}.{permission_verb}",
        permission_type="ADMIN_WRITE", request=request, response=response, operation={**op, "first": True}))
    audit_log.record(state, audit_log.audit_entry(
        state, **common, timestamp=moment + timedelta(milliseconds=50),
        request={"@type": f"type.googleapis.com/compute.{collection}.{verb}"}, operation={**op, "last": True}))


def _body(request: SimRequest, what: str) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise classic_error(400, f"Invalid value for field 'resource': the body must be a {what}.", "invalid")
    return body


def _exists(resource: str) -> Exception:
    return classic_error(409, f"The resource '{resource}' already exists", "alreadyExists")


# ---------------------------------------------------------------------------------------------
# networks and subnetworks


def list_networks(request: SimRequest) -> dict[str, Any]:
    state = request.state
    _check_project(state, request.path_args["project"])
    with state.lock:
        names = sorted(_net(state)["networks"])
    return _paged_list(request, [_network_json(state, n) for n in names], kind="compute#networkList",
                       list_id=f"projects/{state.project_id}/global/networks",
                       self_link=f"{project_url(state)}/global/networks")


def get_network(request: SimRequest) -> dict[str, Any]:
    state, name = request.state, request.path_args["network"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        known = name in _net(state)["networks"]
    if not known:
        raise _not_found(f"projects/{state.project_id}/global/networks/{name}")
    return _network_json(state, name)


def list_subnetworks(request: SimRequest) -> dict[str, Any]:
    state, region = request.state, request.path_args["region"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        items = [copy.deepcopy(s) for (r, _), s in _net(state)["subnetworks"].items() if r == region]
    return _paged_list(request, items, kind="compute#subnetworkList",
                       list_id=f"projects/{state.project_id}/regions/{region}/subnetworks",
                       self_link=f"{_region_url(state, region)}/subnetworks")


def get_subnetwork(request: SimRequest) -> dict[str, Any]:
    state, region, name = request.state, request.path_args["region"], request.path_args["subnetwork"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        subnet = _net(state)["subnetworks"].get((region, name))
        if subnet is not None:
            return copy.deepcopy(subnet)
    raise _not_found(f"projects/{state.project_id}/regions/{region}/subnetworks/{name}")


def _aggregated(request: SimRequest, pairs: list[tuple[str, dict[str, Any]]], *, field: str, kind: str,
                collection: str) -> dict[str, Any]:
    """An aggregatedList page: every region appears; regions without results on the page carry a warning."""
    state = request.state
    compiled = _compile(request)
    kept = sorted(((region, item) for region, item in pairs if compiled.matches(item)),
                  key=lambda pair: (pair[0], pair[1].get("name", "")))
    limit = _max_results(request)
    offset = _decode_token(request.arg("pageToken"), compiled.text)
    by_region: dict[str, list[dict[str, Any]]] = {}
    for region, item in kept[offset:offset + limit]:
        by_region.setdefault(region, []).append(copy.deepcopy(item))
    items: dict[str, Any] = {}
    for region in sorted(set(compute._known_regions(state)) | set(by_region)):
        scope = f"regions/{region}"
        if region in by_region:
            items[scope] = {field: by_region[region]}
        else:
            items[scope] = {"warning": {"code": "NO_RESULTS_ON_PAGE",
                                        "message": f"There are no results for scope '{scope}' on this page.",
                                        "data": [{"key": "scope", "value": scope}]}}
    body: dict[str, Any] = {"kind": kind, "id": f"projects/{state.project_id}/aggregated/{collection}",
                            "items": items}
    if offset + limit < len(kept):
        body["nextPageToken"] = _encode_token(offset + limit, compiled.text)
    body["selfLink"] = f"{project_url(state)}/aggregated/{collection}"
    return body


def aggregated_list_subnetworks(request: SimRequest) -> dict[str, Any]:
    _check_project(request.state, request.path_args["project"])
    with request.state.lock:
        pairs = [(region, s) for (region, _), s in _net(request.state)["subnetworks"].items()]
    return _aggregated(request, pairs, field="subnetworks", kind="compute#subnetworkAggregatedList",
                       collection="subnetworks")


# ---------------------------------------------------------------------------------------------
# routers


def aggregated_list_routers(request: SimRequest) -> dict[str, Any]:
    _check_project(request.state, request.path_args["project"])
    with request.state.lock:
        pairs = [(region, r) for (region, _), r in _net(request.state)["routers"].items()]
    return _aggregated(request, pairs, field="routers", kind="compute#routerAggregatedList", collection="routers")


def list_routers(request: SimRequest) -> dict[str, Any]:
    state, region = request.state, request.path_args["region"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        items = [copy.deepcopy(r) for (reg, _), r in _net(state)["routers"].items() if reg == region]
    return _paged_list(request, items, kind="compute#routerList",
                       list_id=f"projects/{state.project_id}/regions/{region}/routers",
                       self_link=f"{_region_url(state, region)}/routers")


def _router_name(state: SimState, region: str, name: str) -> str:
    return f"projects/{state.project_id}/regions/{region}/routers/{name}"


def get_router(request: SimRequest) -> dict[str, Any]:
    state, region, name = request.state, request.path_args["region"], request.path_args["router"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        router = _net(state)["routers"].get((region, name))
        if router is not None:
            return copy.deepcopy(router)
    raise _not_found(_router_name(state, region, name))


def insert_router(request: SimRequest) -> dict[str, Any]:
    state, region = request.state, request.path_args["region"]
    _check_project(state, request.path_args["project"])
    body = _body(request, "Router")
    router = build_router(state, region, body)
    with state.lock:
        routers = _net(state)["routers"]
        if (region, router["name"]) in routers:
            raise _exists(_router_name(state, region, router["name"]))
        routers[(region, router["name"])] = router
    principal = caller_principal(request)
    operation = _regional_operation(state, kind="insert", target_link=router["selfLink"], target_id=router["id"],
                                    user=principal, region=region)
    audit_change(state, "routers", "insert", router, principal=principal, request_body=body, operation=operation,
                 region=region)
    return operation


def _replace_router(request: SimRequest, verb: str) -> dict[str, Any]:
    state, region, name = request.state, request.path_args["region"], request.path_args["router"]
    _check_project(state, request.path_args["project"])
    body = _body(request, "Router")
    with state.lock:
        routers = _net(state)["routers"]
        current = routers.get((region, name))
        if current is None:
            raise _not_found(_router_name(state, region, name))
        # PATCH merges the given top-level fields (a list such as nats[] replaces the old one); PUT replaces.
        merged = {**current, **body} if verb == "patch" else {**body, "network": body.get("network",
                                                                                          current["network"])}
        merged["name"] = name
        router = build_router(state, region, merged, created=current["creationTimestamp"])
        router["id"] = current["id"]
        routers[(region, name)] = router
    principal = caller_principal(request)
    operation = _regional_operation(state, kind=verb, target_link=router["selfLink"], target_id=router["id"],
                                    user=principal, region=region)
    audit_change(state, "routers", verb, router, principal=principal, request_body=body, operation=operation,
                 region=region)
    return operation


def patch_router(request: SimRequest) -> dict[str, Any]:
    return _replace_router(request, "patch")


def update_router(request: SimRequest) -> dict[str, Any]:
    return _replace_router(request, "update")


def delete_router(request: SimRequest) -> dict[str, Any]:
    state, region, name = request.state, request.path_args["region"], request.path_args["router"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        router = _net(state)["routers"].pop((region, name), None)
    if router is None:
        raise _not_found(_router_name(state, region, name))
    principal = caller_principal(request)
    operation = _regional_operation(state, kind="delete", target_link=router["selfLink"], target_id=router["id"],
                                    user=principal, region=region)
    audit_change(state, "routers", "delete", router, principal=principal, request_body={}, operation=operation,
                 region=region)
    return operation


# ---------------------------------------------------------------------------------------------
# routes


def _all_routes(state: SimState) -> list[dict[str, Any]]:
    with state.lock:
        static = [copy.deepcopy(r) for r in _net(state)["routes"].values()]
    return _subnet_routes(state) + static


def list_routes(request: SimRequest) -> dict[str, Any]:
    state = request.state
    _check_project(state, request.path_args["project"])
    return _paged_list(request, _all_routes(state), kind="compute#routeList",
                       list_id=f"projects/{state.project_id}/global/routes",
                       self_link=f"{project_url(state)}/global/routes")


def get_route(request: SimRequest) -> dict[str, Any]:
    state, name = request.state, request.path_args["route"]
    _check_project(state, request.path_args["project"])
    found = next((r for r in _all_routes(state) if r["name"] == name), None)
    if found is None:
        raise _not_found(f"projects/{state.project_id}/global/routes/{name}")
    return found


def _global_done(request: SimRequest, collection: str, verb: str, resource: Mapping[str, Any],
                 body: Mapping[str, Any]) -> dict[str, Any]:
    """The global operation and Admin Activity entry of a change to a route or firewall rule."""
    principal = caller_principal(request)
    operation = record_operation(request.state, kind=verb, target_link=resource["selfLink"],
                                 target_id=resource["id"], user=principal, zone=None)
    audit_change(request.state, collection, verb, resource, principal=principal, request_body=body,
                 operation=operation)
    return operation


def _insert_global(request: SimRequest, collection: str, what: str,
                   build: Callable[[SimState, Mapping[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    state = request.state
    _check_project(state, request.path_args["project"])
    body = _body(request, what)
    resource = build(state, body)
    with state.lock:
        stored = _net(state)[collection]
        if resource["name"] in stored:
            raise _exists(f"projects/{state.project_id}/global/{collection}/{resource['name']}")
        stored[resource["name"]] = resource
    return _global_done(request, collection, "insert", resource, body)


def _delete_global(request: SimRequest, collection: str, name_arg: str) -> dict[str, Any]:
    state, name = request.state, request.path_args[name_arg]
    _check_project(state, request.path_args["project"])
    with state.lock:
        resource = _net(state)[collection].pop(name, None)
    if resource is None:
        raise _not_found(f"projects/{state.project_id}/global/{collection}/{name}")
    return _global_done(request, collection, "delete", resource, {})


def insert_route(request: SimRequest) -> dict[str, Any]:
    return _insert_global(request, "routes", "Route", build_route)


def delete_route(request: SimRequest) -> dict[str, Any]:
    return _delete_global(request, "routes", "route")


# ---------------------------------------------------------------------------------------------
# firewalls


def list_firewalls(request: SimRequest) -> dict[str, Any]:
    state = request.state
    _check_project(state, request.path_args["project"])
    with state.lock:
        items = [copy.deepcopy(f) for f in _net(state)["firewalls"].values()]
    return _paged_list(request, items, kind="compute#firewallList",
                       list_id=f"projects/{state.project_id}/global/firewalls",
                       self_link=f"{project_url(state)}/global/firewalls")


def get_firewall(request: SimRequest) -> dict[str, Any]:
    state, name = request.state, request.path_args["firewall"]
    _check_project(state, request.path_args["project"])
    with state.lock:
        rule = _net(state)["firewalls"].get(name)
        if rule is not None:
            return copy.deepcopy(rule)
    raise _not_found(f"projects/{state.project_id}/global/firewalls/{name}")


def insert_firewall(request: SimRequest) -> dict[str, Any]:
    return _insert_global(request, "firewalls", "Firewall", build_firewall)


def _replace_firewall(request: SimRequest, verb: str) -> dict[str, Any]:
    state, name = request.state, request.path_args["firewall"]
    _check_project(state, request.path_args["project"])
    body = _body(request, "Firewall")
    with state.lock:
        rules = _net(state)["firewalls"]
        current = rules.get(name)
        if current is None:
            raise _not_found(f"projects/{state.project_id}/global/firewalls/{name}")
        merged = {**current, **body} if verb == "patch" else {**body, "network": body.get("network",
                                                                                          current["network"])}
        if verb == "patch" and "allowed" in body:
            merged.pop("denied", None)
        if verb == "patch" and "denied" in body:
            merged.pop("allowed", None)
        merged["name"] = name
        rule = build_firewall(state, merged, created=current["creationTimestamp"])
        rule["id"] = current["id"]
        rules[name] = rule
    return _global_done(request, "firewalls", verb, rule, body)


def patch_firewall(request: SimRequest) -> dict[str, Any]:
    return _replace_firewall(request, "patch")


def update_firewall(request: SimRequest) -> dict[str, Any]:
    return _replace_firewall(request, "update")


def delete_firewall(request: SimRequest) -> dict[str, Any]:
    return _delete_global(request, "firewalls", "firewall")



def seed_changes(state: SimState, changes: Any, start: Any) -> None:
    """Admin Activity entries of network changes made during a recorded run (seed.py `network_changes`).

    Only the log is written: the node file already holds what the verifier finds afterwards, and the
    point of these scenarios is a change made and undone inside the run's window.
    """
    from sovaudit.simulator import audit_log

    for index, change in enumerate(changes):
        when = start + timedelta(minutes=int(change.get("at_minutes", 5)), seconds=index)
        collection, verb, name = str(change["collection"]), str(change["verb"]), str(change["name"])
        principal = str(change.get("principal") or "net-admin@example.org")
        request = copy.deepcopy(dict(change.get("request") or {}))
        region = str(change.get("region") or state.region)
        zone = str(change.get("zone") or state.zones[0])
        if collection == "instances":
            target = f"{compute.zone_url(state, zone)}/instances/{name}"
        elif collection == "routers":
            target = f"{_region_url(state, region)}/routers/{name}"
        else:
            target = f"{project_url(state)}/global/{collection}/{name}"
        operation = {"kind": "compute#operation", "id": _numeric_id(state, "operation"),
                     "name": f"operation-{int(when.timestamp() * 1000)}-{index:04d}", "operationType": verb,
                     "targetLink": target, "targetId": _stable_id(target), "status": "DONE", "user": principal,
                     "progress": 100, "insertTime": compute.timestamp(when), "startTime": compute.timestamp(when),
                     "endTime": compute.timestamp(when)}
        if collection == "instances" and verb == "insert":
            instance = compute.build_instance(state, zone, {"name": name, **request})
            audit_log.instance_insert(state, instance=instance, request_body={"name": name, **request},
                                      operation=operation, principal=principal, timestamp=when,
                                      done_after=timedelta(seconds=20))
            integrity_log.record_boot(state, instance, when + timedelta(seconds=19))
            continue
        if collection == "instances":
            resource_name = f"projects/{state.project_id}/zones/{zone}/instances/{name}"
            op = {"id": operation["name"], "producer": "compute.googleapis.com"}
            body = {"@type": f"type.googleapis.com/compute.instances.{verb}", **request}
            for position, moment in (("first", when), ("last", when + timedelta(seconds=3))):
                audit_log.record(state, audit_log.audit_entry(
                    state, log_id=audit_log.ACTIVITY, service="compute.googleapis.com",
                    method=f"v1.compute.instances.{verb}", resource_name=resource_name, resource_type="gce_instance",
                    resource_labels={"instance_id": _stable_id(target), "project_id": state.project_id, "zone": zone},
                    principal=principal, timestamp=moment,
                    permission=f"compute.instances.{verb}" if position == "first" else None,
                    permission_type="ADMIN_WRITE" if position == "first" else None,
                    request=body if position == "first" else {"@type": body["@type"]},
                    locations=[zone], operation={**op, position: True}))
            continue
        resource = {"name": name, "id": _stable_id(target)}
        audit_change(state, collection, verb, resource, principal=principal, request_body=request,
                     operation=operation, region=region if collection == "routers" else None, when=when)
