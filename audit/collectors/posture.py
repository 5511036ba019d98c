"""Node posture: org policy, project, IAM audit config, perimeter, buckets, dataset, KMS keys.

These questions do not depend on a job; the engine runs them concurrently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sovaudit import cloud
from sovaudit.audit.collectors import hierarchy
from sovaudit.audit.collectors.context import REQUEST_TIMEOUT_SECONDS, CollectContext
from sovaudit.audit.collectors.paging import list_pages
from sovaudit.audit.recorder import CollectionError

LOCATION_CONSTRAINT = "gcp.resourceLocations"


def effective_location_policy(ctx: CollectContext) -> None:
    client = ctx.client(cloud.orgpolicy)
    name = f"projects/{ctx.project}/policies/{LOCATION_CONSTRAINT}"
    ctx.recorder.call("orgpolicy.effective", "orgpolicy", "policies.getEffectivePolicy",
                      lambda: client.get_effective_policy(name=name, retry=None,
                                                          timeout=REQUEST_TIMEOUT_SECONDS))


def project_and_audit_config(ctx: CollectContext) -> None:
    client = ctx.client(cloud.projects)
    resource = f"projects/{ctx.project}"
    try:
        _project_chain(ctx, client, resource)
    finally:
        ctx.ancestry_read.set()   # known or not: the change history must not wait for it any longer


def _project_chain(ctx: CollectContext, client: Any, resource: str) -> None:
    project = ctx.recorder.call("resourcemanager.project", "resourcemanager", "projects.get",
                                lambda: client.get_project(name=resource, retry=None,
                                                           timeout=REQUEST_TIMEOUT_SECONDS))
    failure: CollectionError | None = None
    try:
        ctx.recorder.call("resourcemanager.iam_policy", "resourcemanager", "projects.getIamPolicy",
                          lambda: client.get_iam_policy(
                              request={"resource": resource, "options": {"requested_policy_version": 3}},
                              retry=None, timeout=REQUEST_TIMEOUT_SECONDS))
    except CollectionError as error:
        failure = error   # the ancestors are still read: SOV-01 needs them whatever the project's IAM answered
    # The folders and organization above: their audit configs and location policies (SEC-05, SOV-01).
    hierarchy.collect(ctx, str(project.parent or ""))
    if failure is not None:
        raise failure


def perimeters(ctx: CollectContext) -> None:
    session, base = cloud.access_context_manager(ctx.target)
    ctx.recorder.hook_session(session)
    policy = ctx.pack.perimeter.access_policy

    ctx.recorder.call("acm.perimeters", "accesscontextmanager", "servicePerimeters.list",
                      lambda: list_pages(session, f"{base}/v1/{policy}/servicePerimeters", {"pageSize": "100"}))
    if _names_access_levels(ctx.recorder.log(), "acm.perimeters"):
        # Only then: SEC-01 must judge what those levels admit. A node without any costs no request.
        ctx.recorder.call("acm.access_levels", "accesscontextmanager", "accessLevels.list",
                          lambda: list_pages(session, f"{base}/v1/{policy}/accessLevels", {"pageSize": "100"}))


def _names_access_levels(items: Iterable[Any], purpose: str) -> bool:
    """Whether any perimeter listed so far relies on an access level (its own, or an ingress source)."""
    for item in items:
        if item.purpose != purpose or item.status != 200:
            continue
        try:
            perimeters = json.loads(item.body or b"{}").get("servicePerimeters") or []
        except ValueError:
            continue
        for perimeter in perimeters:
            for config in (perimeter.get("status") or {}, perimeter.get("spec") or {}):
                if config.get("accessLevels"):
                    return True
                for rule in config.get("ingressPolicies") or ():
                    if any(s.get("accessLevel") not in (None, "*")
                           for s in (rule.get("ingressFrom") or {}).get("sources") or ()):
                        return True
    return False


def buckets(ctx: CollectContext) -> list[str]:
    """Fetch each bucket of the pack; returns the KMS key names they name (for `kms_keys`).

    One bucket's failure must not hide the others: each is its own purpose, and a failed one is
    left to the controls as incomplete evidence.
    """
    client = ctx.client(cloud.storage, ctx.project)
    keys: list[str] = []
    names = list(dict.fromkeys([ctx.pack.buckets.input, ctx.pack.buckets.output, *ctx.pack.buckets.allowed]))
    for name in names:
        try:
            bucket = ctx.recorder.call(
                f"storage.bucket:{name}", "storage", "buckets.get",
                lambda name=name: client.get_bucket(name, timeout=REQUEST_TIMEOUT_SECONDS, retry=None))
        except CollectionError:
            continue
        if bucket.default_kms_key_name:
            keys.append(bucket.default_kms_key_name)
    return keys


def dataset(ctx: CollectContext) -> list[str]:
    client = ctx.client(cloud.bigquery, ctx.project)
    ref = f"{ctx.project}.{ctx.pack.dataset}"
    found: Any = ctx.recorder.call("bigquery.dataset", "bigquery", "datasets.get",
                                   lambda: client.get_dataset(ref, timeout=REQUEST_TIMEOUT_SECONDS, retry=None))
    config = found.default_encryption_configuration
    return [config.kms_key_name] if config is not None and config.kms_key_name else []


def kms_keys(ctx: CollectContext, key_names: list[str]) -> None:
    client = ctx.client(cloud.kms)
    for key in dict.fromkeys(key_names):
        # A key version suffix is not part of the key's location; ask for the key itself.
        key_name = key.split("/cryptoKeyVersions/")[0]
        ctx.recorder.call(f"kms.key:{key_name}", "kms", "cryptoKeys.get",
                          lambda key_name=key_name: client.get_crypto_key(
                              name=key_name, retry=None, timeout=REQUEST_TIMEOUT_SECONDS))
