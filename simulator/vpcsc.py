"""VPC Service Controls, judged as Google judges a request (reference gcp-escape-routes §1).

A request is described by who calls (principal), from where (the project whose VPC network the call
comes from, None for a caller outside every network Google knows of, e.g. a laptop), its service and
method (and IAM permission), and the project that owns the resource it touches. The access policy's
perimeters decide:

* members of one regular perimeter talk freely among themselves;
* a call leaving a regular perimeter that restricts the service needs an egress policy of that
  perimeter matching identity, target resource and operation;
* a call entering a regular perimeter that restricts the service needs, from another perimeter, an
  ingress policy of the target perimeter (access levels do not help perimeter-to-perimeter traffic),
  and from outside every perimeter an access level of the perimeter or a matching ingress policy;
* a bridge holding both projects lets the call through (both ways: the ACM reference describes a
  bridge as a symmetric set of projects; whether Google grants it both ways is [U], reference §11.1);
  a bridge opens nothing to a caller outside every perimeter ([U], same note);
* a service a perimeter does not restrict is not protected by it.

Each perimeter is judged twice: on its enforced `status`, and on its dry-run configuration (`spec`
when `useExplicitDryRunSpec`, else the implicit spec equal to `status`). A violation of the enforced
configuration refuses the call; one of the dry-run configuration only is logged with `dryRun: true`
and the call goes through.

The module is pure (state in, decision out) so that enforcement.py can keep one entry point per
API shape, and tests can ask it questions directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sovaudit.simulator import projects
from sovaudit.simulator.state import SimState

REGULAR = "PERIMETER_TYPE_REGULAR"
BRIDGE = "PERIMETER_TYPE_BRIDGE"

# violationReason values documented on the troubleshooting page (the full enum is not published, [U]).
NETWORK_REASON = "NETWORK_NOT_IN_SAME_SERVICE_PERIMETER"
RESOURCES_REASON = "RESOURCES_NOT_IN_SAME_SERVICE_PERIMETER"
ACCESS_LEVEL_REASON = "NO_MATCHING_ACCESS_LEVEL"


@dataclass(frozen=True)
class Request:
    """One call as VPC-SC sees it. `caller_project` is "projects/NUMBER" of the caller's network (or of
    the resource making the call, e.g. a BigQuery job's project), None when the caller is outside
    every Google network; `target_project` is "projects/NUMBER" of the resource touched."""

    principal: str
    caller_project: str | None
    service: str
    method: str
    target_project: str
    permission: str | None = None
    caller_ip: str | None = None
    # True when the caller is a resource (a job, a sink), not a VPC client: sets the violation reason.
    resource_caller: bool = False


@dataclass(frozen=True)
class Violation:
    """Why one perimeter refused a request: direction, the perimeter, and the documented reason."""

    perimeter: str
    direction: str               # "egress" | "ingress"
    reason: str
    source: str                  # the caller's project, or the principal when it has none
    target: str


@dataclass(frozen=True)
class Decision:
    """The enforced violations (the call is refused) and the dry-run ones (logged, allowed)."""

    enforced: tuple[Violation, ...] = ()
    dry_run: tuple[Violation, ...] = ()
    involved: tuple[str, ...] = field(default=())   # in-perimeter projects that get the Policy Denied entry

    @property
    def refused(self) -> bool:
        return bool(self.enforced)


@dataclass(frozen=True)
class _Perimeter:
    name: str
    kind: str
    config: Mapping[str, Any]

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(str(r) for r in self.config.get("resources") or ())

    def restricts(self, service: str) -> bool:
        return service in (self.config.get("restrictedServices") or ())


def _configs(state: SimState, *, dry_run: bool) -> list[_Perimeter]:
    """Every perimeter of the simulated access policies, with the configuration one mode enforces."""
    found = []
    with state.lock:
        perimeters = [dict(p) for p in state.perimeters.values()]
    for perimeter in perimeters:
        kind = str(perimeter.get("perimeterType") or REGULAR)
        if dry_run and perimeter.get("useExplicitDryRunSpec"):
            config = perimeter.get("spec")
        else:
            config = perimeter.get("status")
        if config:
            found.append(_Perimeter(str(perimeter.get("name", "")), kind, config))
    return found


def _holds(perimeter: _Perimeter, project: str | None, state: SimState) -> bool:
    """Whether a project (or the VPC network of the node it stands for) is a member."""
    if project is None:
        return False
    if project in perimeter.resources:
        return True
    # A VPC network resource puts the calls from that network inside the perimeter.
    owner = projects.project_for_number(state, project.removeprefix("projects/"))
    prefix = f"//compute.googleapis.com/projects/{owner.project_id}/global/networks/"
    return any(r.startswith(prefix) for r in perimeter.resources)


def identity_matches(rule_from: Mapping[str, Any], principal: str, groups: Mapping[str, Sequence[str]]) -> bool:
    """identityType / identities of an ingressFrom or egressFrom. Empty identityType means "only
    `identities`" (ACM reference); neither set matches nobody."""
    kind = str(rule_from.get("identityType") or "IDENTITY_TYPE_UNSPECIFIED")
    is_service_account = principal.endswith(".gserviceaccount.com")
    if kind == "ANY_IDENTITY":
        return True
    if kind == "ANY_USER_ACCOUNT" and principal and not is_service_account:
        return True
    if kind == "ANY_SERVICE_ACCOUNT" and is_service_account:
        return True
    for identity in rule_from.get("identities") or ():
        prefix, _, email = str(identity).partition(":")
        if prefix == "user" and email == principal and not is_service_account:
            return True
        if prefix == "serviceAccount" and email == principal and is_service_account:
            return True
        if prefix == "group" and principal in (groups.get(email) or ()):
            return True
    return False


def operations_match(operations: Iterable[Mapping[str, Any]], request: Request) -> bool:
    """ingressTo/egressTo operations: serviceName "*" is every service; a method selector "*" every
    method and permission of the service; no operation listed matches nothing."""
    for operation in operations:
        name = str(operation.get("serviceName") or "")
        if name == "*":
            return True
        if name != request.service:
            continue
        for selector in operation.get("methodSelectors") or ():
            method = selector.get("method")
            if method == "*" or (method and method == request.method):
                return True
            if selector.get("permission") and selector.get("permission") == request.permission:
                return True
    return False


def _resources_match(resources: Iterable[Any], project: str) -> bool:
    return any(str(r) in {"*", project} for r in resources)


def access_level_matches(state: SimState, level_name: str, request: Request) -> bool:
    """A basic access level: conditions on ipSubnetworks and members, combined by AND (default) or OR.
    Custom (CEL) levels are not modelled: they never match here."""
    level = (state.extras.get("access_levels") or {}).get(level_name)
    if not level:
        return False
    basic = level.get("basic") or {}
    results = []
    for condition in basic.get("conditions") or ():
        checks = []
        subnets = condition.get("ipSubnetworks") or ()
        if subnets:
            checks.append(_ip_in(request.caller_ip, subnets))
        members = condition.get("members") or ()
        if members:
            checks.append(identity_matches({"identities": members}, request.principal, _groups(state)))
        if condition.get("requiredAccessLevels"):
            checks.append(all(access_level_matches(state, str(n), request) for n in condition["requiredAccessLevels"]))
        matched = bool(checks) and all(checks)
        results.append(not matched if condition.get("negate") else matched)
    if not results:
        return False
    return any(results) if basic.get("combiningFunction") == "OR" else all(results)


def _ip_in(ip: str | None, subnets: Iterable[str]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
        return any(address in ipaddress.ip_network(str(s), strict=False) for s in subnets)
    except ValueError:
        return False


def _groups(state: SimState) -> Mapping[str, Sequence[str]]:
    return state.extras.get("groups") or {}


def _source_matches(state: SimState, sources: Sequence[Mapping[str, Any]], request: Request,
                    *, caller_perimeter: _Perimeter | None) -> bool:
    for source in sources:
        level = source.get("accessLevel")
        if level == "*":
            return True
        # An access level does not let a call in from another perimeter (troubleshooting doc).
        if level and caller_perimeter is None and access_level_matches(state, str(level), request):
            return True
        resource = source.get("resource")
        if resource and request.caller_project and str(resource) == request.caller_project:
            return True
    return False


def _ingress_allows(state: SimState, perimeter: _Perimeter, request: Request,
                    caller_perimeter: _Perimeter | None) -> bool:
    for policy in perimeter.config.get("ingressPolicies") or ():
        ingress_from = policy.get("ingressFrom") or {}
        ingress_to = policy.get("ingressTo") or {}
        if not identity_matches(ingress_from, request.principal, _groups(state)):
            continue
        if not _source_matches(state, ingress_from.get("sources") or (), request, caller_perimeter=caller_perimeter):
            continue
        if _resources_match(ingress_to.get("resources") or (), request.target_project) and \
                operations_match(ingress_to.get("operations") or (), request):
            return True
    return False


def _egress_allows(state: SimState, perimeter: _Perimeter, request: Request) -> bool:
    for policy in perimeter.config.get("egressPolicies") or ():
        egress_from = policy.get("egressFrom") or {}
        egress_to = policy.get("egressTo") or {}
        if not identity_matches(egress_from, request.principal, _groups(state)):
            continue
        sources = egress_from.get("sources") or ()
        if egress_from.get("sourceRestriction") == "SOURCE_RESTRICTION_ENABLED" and not any(
                str(s.get("resource") or "") == request.caller_project for s in sources):
            continue
        if _resources_match(egress_to.get("resources") or (), request.target_project) and \
                operations_match(egress_to.get("operations") or (), request):
            return True
    return False


def _judge(state: SimState, perimeters: list[_Perimeter], request: Request) -> tuple[list[Violation], list[str]]:
    regular = [p for p in perimeters if p.kind != BRIDGE]
    source = next((p for p in regular if _holds(p, request.caller_project, state)), None)
    target = next((p for p in regular if _holds(p, request.target_project, state)), None)
    involved = [p for p in (request.caller_project if source else None,
                            request.target_project if target else None) if p]
    if source is not None and source is target:
        return [], involved
    bridged = source is not None and target is not None and any(
        p.kind == BRIDGE and request.caller_project in p.resources and request.target_project in p.resources
        for p in perimeters)
    if bridged:
        return [], involved
    violations = []
    origin = request.caller_project or request.principal
    if source is not None and source.restricts(request.service) and not _egress_allows(state, source, request):
        reason = RESOURCES_REASON if request.resource_caller or target is not None else NETWORK_REASON
        violations.append(Violation(source.name, "egress", reason, origin, request.target_project))
    if target is not None and target.restricts(request.service):
        if source is None:
            levels = target.config.get("accessLevels") or ()
            allowed = any(access_level_matches(state, str(level), request) for level in levels) or \
                _ingress_allows(state, target, request, None)
            reason = ACCESS_LEVEL_REASON if request.caller_project is None else NETWORK_REASON
        else:
            allowed = _ingress_allows(state, target, request, source)
            reason = RESOURCES_REASON
        if not allowed:
            violations.append(Violation(target.name, "ingress", reason, origin, request.target_project))
    return violations, involved


def judge(state: SimState, request: Request) -> Decision:
    """The enforced and the dry-run verdict on one request."""
    enforced, involved = _judge(state, _configs(state, dry_run=False), request)
    dry_run, involved_dry = _judge(state, _configs(state, dry_run=True), request)
    if enforced:
        dry_run = []   # the call never happens; Google logs the enforced denial only
    projects_involved = tuple(dict.fromkeys([*involved, *(involved_dry if dry_run else [])]))
    return Decision(tuple(enforced), tuple(dry_run), projects_involved)


# Where the call in progress comes from when the caller says so (header X-Sim-Caller-Network, scenario
# action `network:`): a user's credentials used on a VM in the node's network call from inside it.
CALLER_NETWORK: ContextVar[str | None] = ContextVar("sovaudit_sim_caller_network", default=None)


def caller_project(state: SimState, principal: str) -> str | None:
    """Where a principal's calls come from, for the simulator: the network the caller named (the node's
    with "node", or "projects/NUMBER"); else the node's own identities (its service accounts, Google's
    agents for it) from the node's network; another declared project's service accounts from that
    project's network; anyone else (a user on a laptop) from no Google network."""
    named = CALLER_NETWORK.get()
    if named:
        return f"projects/{state.project_number}" if named == "node" else named
    node = state.node or {}
    node_identities = {str(node.get("service_account") or ""), str(node.get("default_service_account") or ""),
                       f"{state.project_number}@cloudservices.gserviceaccount.com"}
    number = state.project_number
    # Google's service agents for the node's project (service-NUMBER@gcp-sa-..., NUMBER@cloudbuild...).
    agent = principal.startswith((f"service-{number}@", f"{number}@", f"{number}-")) and \
        principal.endswith(".gserviceaccount.com")
    if not principal or principal in node_identities or agent or principal.endswith(
            f"@{state.project_id}.iam.gserviceaccount.com"):
        return f"projects/{number}"
    for project_id, project in projects.foreign_projects(state).items():
        if principal.endswith(f"@{project_id}.iam.gserviceaccount.com"):
            return f"projects/{project.get('number')}"
    return None
