"""The project's ancestors: each folder up to the organization, their IAM policies (auditConfigs) and
the gcp.resourceLocations policy set at every level (reference gcp-escape-routes §6).

The project's own policy shows only part of what is in force: Data Access logging enabled on a
folder or the organization is on for the project, an exemption set there hides a principal, and an
org policy set above the project (or a `reset`, `allowAll`, condition or dry run at any level)
decides what getEffectivePolicy answers. SEC-05 and SOV-01 therefore read the whole chain.

Requests: one folders.get and one folders.getIamPolicy per folder, one organizations.getIamPolicy,
and one policies.get per level (the project included); a 404 there means "no policy at this level"
and is kept as evidence of exactly that. A project directly under its organization costs 3.
"""

from __future__ import annotations

from sovaudit import cloud
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.recorder import CollectionError

FOLDER = "resourcemanager.folder"
ANCESTOR_IAM = "resourcemanager.ancestor_iam"
LEVEL_POLICY = "orgpolicy.level"
PROJECT_LEVEL = "project"
LOCATION_CONSTRAINT = "gcp.resourceLocations"
# Google allows folders 10 deep; a longer walk means a loop in the answers, not a real hierarchy.
MAX_DEPTH = 12


def ancestors(ctx: CollectContext, parent: str) -> list[str]:
    """Walk `parent` up to the organization, nearest first. A folder that cannot be read ends the
    walk: the views then find its evidence failed and the controls that need the chain are ERROR."""
    client = ctx.client(cloud.folders)
    chain: list[str] = []
    while parent.startswith("folders/") and len(chain) < MAX_DEPTH:
        chain.append(parent)
        try:
            folder = ctx.recorder.call(f"{FOLDER}:{parent}", "resourcemanager", "folders.get",
                                       lambda name=parent: client.get_folder(
                                           name=name, retry=None, timeout=REQUEST_TIMEOUT_SECONDS))
        except CollectionError:
            return chain
        parent = str(folder.parent or "")
    if parent.startswith("organizations/"):
        chain.append(parent)
    return chain


def collect(ctx: CollectContext, parent: str) -> None:
    """IAM policy of every ancestor, then the location policy set at each level."""
    chain: list[str] = []
    try:
        chain = ancestors(ctx, parent)
        ctx.folders[:] = [level for level in chain if level.startswith("folders/")]
    finally:
        ctx.ancestry_read.set()
    clients = {"folders": ctx.client(cloud.folders), "organizations": ctx.client(cloud.organizations)}
    for level in chain:
        kind = level.split("/", 1)[0]
        try:
            ctx.recorder.call(f"{ANCESTOR_IAM}:{level}", "resourcemanager", f"{kind}.getIamPolicy",
                              lambda level=level, kind=kind: clients[kind].get_iam_policy(
                                  request={"resource": level, "options": {"requested_policy_version": 3}},
                                  retry=None, timeout=REQUEST_TIMEOUT_SECONDS))
        except CollectionError:
            continue
    orgpolicy = ctx.client(cloud.orgpolicy)
    for label, resource in [(PROJECT_LEVEL, f"projects/{ctx.project}"), *((level, level) for level in chain)]:
        name = f"{resource}/policies/{LOCATION_CONSTRAINT}"
        try:
            ctx.recorder.call(f"{LEVEL_POLICY}:{label}", "orgpolicy", "policies.get",
                              lambda name=name: orgpolicy.get_policy(name=name, retry=None,
                                                                     timeout=REQUEST_TIMEOUT_SECONDS))
        except CollectionError:
            continue   # a 404 is "no policy here"; anything else leaves failed evidence for SOV-01
