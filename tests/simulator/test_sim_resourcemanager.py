"""Resource Manager v3 through the official client: the project (id ↔ number) and its audit configs."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.iam.v1 import policy_pb2
from sim_clients import projects, session


def test_project_is_found_by_id_and_by_number(sim_shared) -> None:
    client = projects(sim_shared.url)
    by_id = client.get_project(name="projects/fed-node-us")
    by_number = client.get_project(name="projects/314159265358")
    assert by_id == by_number
    assert by_id.name == "projects/314159265358"
    assert by_id.project_id == "fed-node-us"
    assert by_id.parent == "organizations/161803398874"


def test_unknown_project_is_permission_denied(sim_shared) -> None:
    with pytest.raises(exceptions.Forbidden):
        projects(sim_shared.url).get_project(name="projects/not-ours")


def test_iam_policy_enables_data_access_logs_for_storage_and_bigquery(sim_shared) -> None:
    policy = projects(sim_shared.url).get_iam_policy(request={"resource": "projects/fed-node-us"})
    configs = {c.service: {lc.log_type for lc in c.audit_log_configs} for c in policy.audit_configs}
    data_write, data_read = policy_pb2.AuditLogConfig.DATA_WRITE, policy_pb2.AuditLogConfig.DATA_READ
    assert configs == {"storage.googleapis.com": {data_write, data_read},
                       "bigquery.googleapis.com": {data_write, data_read},
                       # SOV-08: the justifications of the CMEK keys' uses
                       "cloudkms.googleapis.com": {data_write, data_read}}


def test_data_access_logs_off_scenario_drops_the_storage_audit_config(sim_factory) -> None:
    sim = sim_factory(scenarios=["data-access-logs-off"])
    policy = projects(sim.url).get_iam_policy(request={"resource": "projects/fed-node-us"})
    assert [c.service for c in policy.audit_configs] == ["bigquery.googleapis.com", "cloudkms.googleapis.com"]


def test_set_iam_policy_replaces_audit_configs_and_is_audit_logged(sim) -> None:
    client = projects(sim.url)
    policy = client.get_iam_policy(request={"resource": "projects/fed-node-us"})
    del policy.audit_configs[:]
    updated = client.set_iam_policy(request={"resource": "projects/fed-node-us", "policy": policy,
                                             "update_mask": {"paths": ["bindings", "etag", "audit_configs"]}})
    assert not updated.audit_configs
    assert updated.etag != policy.etag
    assert sim.state.log_entries[-1]["protoPayload"]["methodName"] == "SetIamPolicy"


def test_set_iam_policy_with_a_stale_etag_conflicts(sim) -> None:
    client = projects(sim.url)
    policy = client.get_iam_policy(request={"resource": "projects/fed-node-us"})
    policy.etag = b"stale"
    with pytest.raises(exceptions.Conflict):
        client.set_iam_policy(request={"resource": "projects/fed-node-us", "policy": policy})


def test_numeric_enums_when_the_generated_client_asks_for_them(sim_shared) -> None:
    """GAPIC REST clients send `$alt=json;enum-encoding=int`; Google then answers enums as numbers,
    and that raw JSON is what evidence records. Without the parameter, names."""
    http = session()
    url = f"{sim_shared.url}/v3/projects/fed-node-us:getIamPolicy"
    numeric = http.post(url, params={"$alt": "json;enum-encoding=int"}).json()
    named = http.post(url).json()
    assert [c["logType"] for c in numeric["auditConfigs"][0]["auditLogConfigs"]] == [2, 3]
    assert [c["logType"] for c in named["auditConfigs"][0]["auditLogConfigs"]] == ["DATA_WRITE", "DATA_READ"]
    project = http.get(f"{sim_shared.url}/v3/projects/fed-node-us", params={"$alt": "json;enum-encoding=int"}).json()
    assert project["state"] == 1


def test_bigquery_data_access_is_logged_even_without_its_audit_config(sim) -> None:
    """Google: Data Access audit logs are off by default except BigQuery's; storage follows the config."""
    from sovaudit.simulator.audit_log import data_access_enabled

    client = projects(sim.url)
    policy = client.get_iam_policy(request={"resource": "projects/fed-node-us"})
    del policy.audit_configs[:]
    client.set_iam_policy(request={"resource": "projects/fed-node-us", "policy": policy,
                                   "update_mask": {"paths": ["audit_configs"]}})
    assert data_access_enabled(sim.state, "bigquery.googleapis.com", "DATA_WRITE")
    assert not data_access_enabled(sim.state, "storage.googleapis.com", "DATA_WRITE")
