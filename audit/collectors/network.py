"""The node network's egress posture: Cloud Routers (and their NATs), routes, firewall rules, and every VM.

Five questions, one request each on a clean node (a page holds 500): routers by `aggregatedList`
(every region at once), routes and firewall rules by `list` (global resources), the node network by
`get` (its peerings), and the project's VMs by `aggregatedList` without a filter. No server-side network filter is used on purpose: Compute's
list filter cannot select on a repeated nested field (`networkInterfaces[].network`) [U], and a
label filter such as `labels.batch-job-uid != "UID"` might drop VMs without the label [U], which
would hide exactly the proxy SEC-09 looks for. The view selects the node network's resources
client-side instead, from complete listings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext, utc_text

PAGE_SIZE = 500

ROUTERS = "compute.routers"
ROUTES = "compute.routes"
FIREWALLS = "compute.firewalls"
PROJECT_INSTANCES = "compute.project_instances"
NETWORK = "compute.network"
CHANGES = "logging.network_changes"


def _list_all(ctx: CollectContext, purpose: str, method: str, factory: Any, call: str) -> None:
    """Page through one Compute listing of the whole project (`call` is `list` or `aggregated_list`)."""
    client = ctx.client(factory)
    request = {"project": ctx.project, "max_results": PAGE_SIZE}
    ctx.recorder.call(purpose, "compute", method,
                      lambda: sum(1 for _ in getattr(client, call)(request=request, retry=None,
                                                                   timeout=REQUEST_TIMEOUT_SECONDS)))


def routers(ctx: CollectContext) -> None:
    _list_all(ctx, ROUTERS, "routers.aggregatedList", cloud.compute_routers, "aggregated_list")


def routes(ctx: CollectContext) -> None:
    _list_all(ctx, ROUTES, "routes.list", cloud.compute_routes, "list")


def node_network(ctx: CollectContext) -> None:
    """The node network itself: its `peerings[]` are paths to networks whose VMs this audit does not list.
    A 404 (the network does not exist in the project) stays an error: there is nothing to judge."""
    client = ctx.client(cloud.compute_networks)
    ctx.recorder.call(NETWORK, "compute", "networks.get",
                      lambda: client.get(project=ctx.project, network=ctx.pack.network.network, retry=None,
                                         timeout=REQUEST_TIMEOUT_SECONDS))


def firewalls(ctx: CollectContext) -> None:
    _list_all(ctx, FIREWALLS, "firewalls.list", cloud.compute_firewalls, "list")


def project_instances(ctx: CollectContext) -> None:
    _list_all(ctx, PROJECT_INSTANCES, "instances.aggregatedList", cloud.compute_instances, "aggregated_list")


def collect(ctx: CollectContext) -> None:
    """All five questions, concurrently; each is its own purpose, so one failing leaves the others as evidence."""
    from concurrent.futures import ThreadPoolExecutor

    from sovaudit.audit.recorder import CollectionError

    failures: list[CollectionError] = []

    def run(listing: Callable[[CollectContext], None]) -> None:
        try:
            listing(ctx)
        except CollectionError as error:
            failures.append(error)

    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(run, (project_instances, routers, routes, firewalls, node_network)))
    if failures:
        raise failures[0]


# Admin Activity methodNames that change what the node network lets out (gcp-escape-routes.md §5.1).
# Matched with `:` (substring on the server) so the beta/alpha spellings are found too; the view
# compares the collection and verb exactly.
CHANGE_METHODS = ("compute.routers.", "compute.routes.", "compute.firewalls.", "compute.instances.addAccessConfig",
                  "compute.instances.updateAccessConfig", "compute.instances.updateNetworkInterface",
                  "compute.subnetworks.", "compute.networks.")


# The run's VMs over time (audit/vm_history.py: SEC-02, SEC-03, CC-02, CC-03) ride on the same query:
# every other Compute instance method, except the insert (`logging.instance_inserts` holds it) and
# the delete (Batch deletes every VM it made: a 1000-VM run would add 1000+ entries that say nothing
# about what a VM was). Excluded by exact name, so `deleteAccessConfig` still comes back.
INSTANCE_LIFECYCLE = tuple(f"{version}.compute.instances.{verb}" for version in ("v1", "beta", "alpha")
                           for verb in ("insert", "delete"))


def change_filter(project: str, start: datetime, end: datetime) -> str:
    lifecycle = " AND ".join(f'NOT protoPayload.methodName="{m}"' for m in INSTANCE_LIFECYCLE)
    methods = " OR ".join([*(f'protoPayload.methodName:"{m}"' for m in CHANGE_METHODS),
                           f'(protoPayload.methodName:"compute.instances." AND {lifecycle})'])
    return (f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Factivity" '
            f'AND protoPayload.serviceName="compute.googleapis.com" AND ({methods}) '
            f'AND timestamp>="{utc_text(start)}" AND timestamp<="{utc_text(end)}"')


def changes(ctx: CollectContext, start: datetime, end: datetime) -> None:
    """The window's network changes and every change to a VM (one entries.list): the posture the run lived
    under, and what each of its VMs was at any moment, not only today's."""
    from sovaudit.audit.collectors import logs

    logs.collect(ctx, CHANGES, change_filter(ctx.project, start, end))
