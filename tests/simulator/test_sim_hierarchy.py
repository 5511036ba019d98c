"""Folders and the organization above the node's project, through the official clients: Resource
Manager v3 (FoldersClient, OrganizationsClient, ProjectsClient) and Org Policy v2 over REST; the
effective policy, location enforcement and data-access logging follow the merged chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import orgpolicy_v2, resourcemanager_v3
from google.iam.v1 import policy_pb2
from sim_clients import options, orgpolicy, projects

from sovaudit import cloud
from sovaudit.simulator import audit_log
from sovaudit.simulator.node import NodeFileError, load_state

FOLDER = "folders/876543210987"
ORG = "organizations/161803398874"
LOCATIONS = "gcp.resourceLocations"


def folders(url: str) -> Any:
    return resourcemanager_v3.FoldersClient(transport="rest", client_options=options(url),
                                            credentials=AnonymousCredentials())


def organizations(url: str) -> Any:
    return resourcemanager_v3.OrganizationsClient(transport="rest", client_options=options(url),
                                                  credentials=AnonymousCredentials())


def scenario(tmp_path: Path, name: str, node: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": "test", "fails": [], "node": node}))
    return str(path)


def allowed(policy: orgpolicy_v2.Policy) -> tuple[list[str], bool]:
    rules = list(policy.spec.rules)
    return [v for r in rules for v in r.values.allowed_values], any(r.allow_all for r in rules)


def test_project_parent_folder_and_organization_are_served(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-folder-exempts-reader"])
    assert projects(sim.url).get_project(name="projects/fed-node-us").parent == FOLDER
    folder = folders(sim.url).get_folder(name=FOLDER)
    assert (folder.name, folder.parent, folder.display_name) == (FOLDER, ORG, "genomics")
    assert folder.state == resourcemanager_v3.Folder.State.ACTIVE
    assert organizations(sim.url).get_organization(name=ORG).name == ORG


def test_folder_iam_policy_carries_its_audit_configs_and_exemptions(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-folder-exempts-reader"])
    policy = folders(sim.url).get_iam_policy(request={"resource": FOLDER, "options": {"requested_policy_version": 3}})
    [config] = policy.audit_configs
    assert config.service == "storage.googleapis.com"
    assert [(c.log_type, list(c.exempted_members)) for c in config.audit_log_configs] == [
        (policy_pb2.AuditLogConfig.DATA_READ, ["user:insider@example.org"])]
    assert policy.bindings   # a folder always has its administrators


def test_organization_iam_policy_is_served_and_unknown_folders_are_permission_denied(sim_shared) -> None:
    assert organizations(sim_shared.url).get_iam_policy(request={"resource": ORG}).bindings
    with pytest.raises(exceptions.Forbidden):
        folders(sim_shared.url).get_folder(name="folders/111111111111")


def test_a_level_without_a_policy_answers_404_and_one_with_a_policy_returns_it(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-folder-policy-wider"])
    client = orgpolicy(sim.url)
    with pytest.raises(exceptions.NotFound):
        client.get_policy(name=f"{ORG}/policies/{LOCATIONS}")
    folder_policy = client.get_policy(name=f"{FOLDER}/policies/{LOCATIONS}")
    assert folder_policy.name == f"{FOLDER}/policies/{LOCATIONS}" and not folder_policy.spec.inherit_from_parent
    assert [p.name for p in client.list_policies(parent=FOLDER)] == [f"{FOLDER}/policies/{LOCATIONS}"]


@pytest.mark.parametrize(("name", "values", "allow_all"), [
    ("hierarchy-folder-policy-wider", ["in:us-central1-locations", "in:asia-east1-locations"], False),
    ("hierarchy-folder-allow-all", [], True),
    ("hierarchy-project-reset", [], True),
    ("hierarchy-dry-run-only", [], True),
    ("hierarchy-conditional-allow", ["in:us-central1-locations", "in:asia-east1-locations"], False),
])
def test_effective_policy_merges_the_chain(sim_factory, name: str, values: list[str], allow_all: bool) -> None:
    sim = sim_factory(scenarios=[name])
    policy = orgpolicy(sim.url).get_effective_policy(name=f"projects/fed-node-us/policies/{LOCATIONS}")
    assert allowed(policy) == (values, allow_all)
    assert not any(rule.condition.expression for rule in policy.spec.rules)   # conditions are dropped


def test_dry_run_spec_is_returned_but_not_enforced(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-dry-run-only"])
    policy = orgpolicy(sim.url).get_policy(name=f"projects/fed-node-us/policies/{LOCATIONS}")
    assert [list(r.values.allowed_values) for r in policy.dry_run_spec.rules] == [["in:us-central1-locations"]]
    assert not policy.spec.rules
    bucket = cloud.storage(cloud.Target.parse(sim.url), "fed-node-us").create_bucket(
        "fed-node-us-dry-run-escape", location="EUROPE-WEST4")
    assert bucket.location == "EUROPE-WEST4"


def test_a_new_root_at_the_project_ignores_a_wider_folder(tmp_path: Path, sim_factory) -> None:
    sim = sim_factory(scenarios=[scenario(tmp_path, "own-root", {
        "project": {"parent": FOLDER},
        "hierarchy": {"folders": [{"id": "876543210987", "parent": ORG,
                                   "org_policies": {LOCATIONS: {"rules": [{"allowAll": True}]}}}]}})])
    policy = orgpolicy(sim.url).get_effective_policy(name=f"projects/fed-node-us/policies/{LOCATIONS}")
    assert allowed(policy) == (["in:us-central1-locations"], False)


def test_enforcement_follows_the_merged_policy(sim_factory) -> None:
    wider = cloud.storage(cloud.Target.parse(sim_factory(scenarios=["hierarchy-folder-policy-wider"]).url), "fed-node-us")
    assert wider.create_bucket("fed-node-us-asia-copy", location="ASIA-EAST1").location == "ASIA-EAST1"
    clean = cloud.storage(cloud.Target.parse(sim_factory().url), "fed-node-us")
    with pytest.raises(exceptions.PreconditionFailed):
        clean.create_bucket("fed-node-us-asia-copy", location="ASIA-EAST1")


def test_folder_effective_policy_is_the_chain_up_to_the_folder(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-folder-policy-wider"])
    policy = orgpolicy(sim.url).get_effective_policy(name=f"{FOLDER}/policies/{LOCATIONS}")
    assert allowed(policy) == (["in:us-central1-locations", "in:asia-east1-locations"], False)


def test_data_access_logging_enabled_only_at_the_organization_is_on_for_the_project(tmp_path: Path) -> None:
    state, _ = load_state("us", [scenario(tmp_path, "org-enables", {
        "iam_policy": {"auditConfigs": None},
        "hierarchy": {"organization": {"iam_policy": {"auditConfigs": [
            {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_WRITE"}]}]}}}})])
    assert "auditConfigs" not in state.iam_policy
    assert audit_log.data_access_enabled(state, "storage.googleapis.com", "DATA_WRITE")
    assert not audit_log.data_access_enabled(state, "storage.googleapis.com", "DATA_READ")


@pytest.mark.parametrize(("node", "field"), [
    ({"project": {"parent": "folders/999999999"}}, "node.project.parent"),
    ({"hierarchy": {"folders": [{"id": "111111111", "parent": "folders/222222222"},
                                {"id": "222222222", "parent": "folders/111111111"}]}}, "node.hierarchy.folders[0].parent"),
])
def test_node_file_rejects_parents_outside_the_declared_hierarchy(tmp_path: Path, node: dict[str, Any],
                                                                  field: str) -> None:
    with pytest.raises(NodeFileError) as raised:
        load_state("us", [scenario(tmp_path, "bad-parent", node)])
    assert raised.value.field == field


def test_a_principal_exempted_at_a_folder_leaves_no_data_read_entry(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-folder-exempts-reader"])   # the insider reads a raw VCF at minute 40
    payloads = [e.get("protoPayload") or {} for e in sim.state.log_entries]
    reads = [p["authenticationInfo"]["principalEmail"] for p in payloads if p.get("methodName") == "storage.objects.get"]
    assert "insider@example.org" not in reads
    assert "batch-runner@fed-node-us.iam.gserviceaccount.com" in reads   # everyone else is still logged


def test_folder_policy_writes_change_the_effective_policy_and_land_in_the_folder_log(sim_factory) -> None:
    sim = sim_factory(scenarios=["hierarchy-folder-exempts-reader"])   # the project sits under FOLDER
    client = orgpolicy(sim.url)
    name = f"{FOLDER}/policies/{LOCATIONS}"
    created = client.create_policy(parent=FOLDER, policy=orgpolicy_v2.Policy(
        name=name, spec=orgpolicy_v2.PolicySpec(rules=[orgpolicy_v2.PolicySpec.PolicyRule(allow_all=True)])))
    assert created.name == name and created.spec.rules[0].allow_all
    # The project's own list is a new root: the folder's allowAll does not reach it.
    effective = client.get_effective_policy(name=f"projects/fed-node-us/policies/{LOCATIONS}")
    assert allowed(effective) == (["in:us-central1-locations"], False)
    client.update_policy(policy=orgpolicy_v2.Policy(name=name, spec=orgpolicy_v2.PolicySpec(reset=True)))
    assert client.get_policy(name=name).spec.reset
    client.delete_policy(name=name)
    with pytest.raises(exceptions.NotFound):
        client.get_policy(name=name)
    entries = [e for e in sim.state.log_entries if e.get("logName") == f"{FOLDER}/logs/cloudaudit.googleapis.com%2Factivity"]
    assert [e["protoPayload"]["methodName"].rsplit(".", 1)[-1] for e in entries] == [
        "CreatePolicy", "UpdatePolicy", "DeletePolicy"]
    assert entries[0]["resource"] == {"type": "folder", "labels": {"folder_id": "876543210987"}}


def test_organization_set_iam_policy_changes_data_access_logging_for_the_project(sim_factory) -> None:
    sim = sim_factory(scenarios=["data-access-logs-off"])
    assert not audit_log.data_access_enabled(sim.state, "storage.googleapis.com", "DATA_WRITE")
    client = organizations(sim.url)
    current = client.get_iam_policy(request={"resource": ORG})
    current.audit_configs.append(policy_pb2.AuditConfig(service="allServices", audit_log_configs=[
        policy_pb2.AuditLogConfig(log_type=policy_pb2.AuditLogConfig.DATA_WRITE)]))
    client.set_iam_policy(request={"resource": ORG, "policy": current,
                                   "update_mask": {"paths": ["bindings", "etag", "audit_configs"]}})
    assert audit_log.data_access_enabled(sim.state, "storage.googleapis.com", "DATA_WRITE")
    [entry] = [e for e in sim.state.log_entries if e.get("logName", "").startswith(f"{ORG}/logs/")]
    assert entry["protoPayload"]["methodName"] == "SetIamPolicy"


def test_entries_list_reads_an_ancestors_admin_activity_log_only_when_asked(sim_factory) -> None:
    from sim_clients import logging

    sim = sim_factory(scenarios=["hierarchy-folder-exempts-reader"])
    orgpolicy(sim.url).create_policy(parent=FOLDER, policy=orgpolicy_v2.Policy(
        name=f"{FOLDER}/policies/{LOCATIONS}",
        spec=orgpolicy_v2.PolicySpec(rules=[orgpolicy_v2.PolicySpec.PolicyRule(allow_all=True)])))
    client = logging(sim.url)
    wanted = 'protoPayload.methodName="google.cloud.orgpolicy.v2.OrgPolicy.CreatePolicy"'
    assert [e.log_name for e in client.list_entries(resource_names=["projects/fed-node-us", FOLDER],
                                                     filter_=wanted)] == [
        f"{FOLDER}/logs/cloudaudit.googleapis.com%2Factivity"]
    assert not list(client.list_entries(resource_names=["projects/fed-node-us"], filter_=wanted))
    with pytest.raises(exceptions.Forbidden):
        list(client.list_entries(resource_names=["folders/123456789"], filter_=wanted))
