"""Every scenario loads on every node, names real controls, and changes what it says it changes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from google.api_core import exceptions
from sim_clients import logging, session

from sovaudit.audit.registry import all_controls
from sovaudit.simulator.commands import sim as sim_cli
from sovaudit.simulator.node import list_scenarios, scenario_names
from sovaudit.simulator.server import SimServer, build_router, load_seeded_state
from sovaudit.simulator.state import SimState

REQUIRED = {"org-policy-relaxed", "vm-not-confidential", "vm-public-ip", "egress-foreign-bucket",
            "data-access-logs-off", "dataset-no-cmek", "bucket-multi-region", "perimeter-dry-run",
            "default-service-account", "vpcsc-violation", "api-unavailable", "task-rows-missing"}


def _job_vms(state: SimState) -> list[dict]:
    uid = state.extras["seed"].job_uid
    return sorted((vm for vm in state.instances.values() if vm["labels"]["batch-job-uid"] == uid),
                  key=lambda vm: int(vm["name"].split("-group0-")[1].split("-")[0]))


def _insert_requests(state: SimState) -> list[dict]:
    uid = state.extras["seed"].job_uid
    return [e["protoPayload"]["request"] for e in state.log_entries
            if e.get("operation", {}).get("first") and e["protoPayload"]["request"].get("labels", {})
            .get("batch-job-uid") == uid]


def test_the_scenarios_later_issues_rely_on_exist() -> None:
    assert REQUIRED <= set(scenario_names())


def test_every_scenario_names_only_registered_controls() -> None:
    known = {c.meta.id for c in all_controls()}
    for scenario in list_scenarios():
        assert set(scenario.fails) | set(scenario.errors) <= known, scenario.name
        assert scenario.fails or scenario.errors or scenario.name in {"api-slow", "batch-fails-on-policy"}


@pytest.mark.parametrize("node", ["us", "eu"])
@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_loads_on_every_node(node: str, name: str) -> None:
    state = load_seeded_state(node, [name], job_tasks=5)
    assert state.scenarios == [name]
    assert len(_job_vms(state)) == 5


def check_vm_not_confidential(state: SimState) -> None:
    vms = _job_vms(state)
    assert [i for i, vm in enumerate(vms) if "confidentialInstanceConfig" not in vm] == [3]
    assert sum("confidentialInstanceConfig" not in r for r in _insert_requests(state)) == 1


def check_vm_public_ip(state: SimState) -> None:
    vms = _job_vms(state)
    assert [i for i, vm in enumerate(vms) if vm["networkInterfaces"][0].get("accessConfigs")] == [2]
    assert vms[2]["networkInterfaces"][0]["accessConfigs"][0]["type"] == "ONE_TO_ONE_NAT"


def check_default_service_account(state: SimState) -> None:
    default = "314159265358-compute@developer.gserviceaccount.com"
    job = next(iter(state.jobs.values()))
    assert job["allocationPolicy"]["serviceAccount"]["email"] == default
    assert {vm["serviceAccounts"][0]["email"] for vm in _job_vms(state)} == {default}


def check_dataset_no_cmek(state: SimState) -> None:
    assert "defaultEncryptionConfiguration" not in state.datasets["hospital_data"]


def check_bucket_multi_region(state: SimState) -> None:
    raw = state.buckets["fed-node-us-raw-vcfs"]
    assert (raw["location"], raw["locationType"]) == ("US", "multi-region")
    assert state.buckets["fed-node-us-processed"]["location"] == "US-CENTRAL1"


def check_task_rows_missing(state: SimState) -> None:
    seed = state.extras["seed"]
    short = [t for t in seed.tasks if t.rows_loaded != t.records_normalized]
    assert [(t.index, t.records_normalized - t.rows_loaded) for t in short] == [(2, 7)]
    load = state.bq_jobs[short[0].load_job_id]
    assert int(load["statistics"]["load"]["outputRows"]) == short[0].rows_loaded
    manifest = json.loads(state.objects[("fed-node-us-processed", "manifests/preprocess-genomes-001/2.json")].data)
    assert manifest["records_normalized"] - manifest["rows_loaded"] == 7


def check_egress_foreign_bucket(state: SimState) -> None:
    buckets = {e["resource"]["labels"].get("bucket_name") for e in state.log_entries
               if e.get("protoPayload", {}).get("methodName") == "storage.objects.create"}
    assert "fed-node-us-processed-export" in buckets


def check_batch_fails_on_policy(state: SimState) -> None:
    assert state.options["batch_refusal"] == "fail"


def check_api_unavailable(state: SimState) -> None:
    assert state.options["faults"] == [{"api": "compute", "status": 503}]


STATE_CHECKS: dict[str, Callable[[SimState], None]] = {
    "vm-not-confidential": check_vm_not_confidential,
    "vm-public-ip": check_vm_public_ip,
    "default-service-account": check_default_service_account,
    "dataset-no-cmek": check_dataset_no_cmek,
    "bucket-multi-region": check_bucket_multi_region,
    "task-rows-missing": check_task_rows_missing,
    "egress-foreign-bucket": check_egress_foreign_bucket,
    "batch-fails-on-policy": check_batch_fails_on_policy,
    "api-unavailable": check_api_unavailable,
}


@pytest.mark.parametrize("name", sorted(STATE_CHECKS))
def test_scenario_changes_what_it_says(name: str) -> None:
    clean = load_seeded_state("us", [])
    with pytest.raises(AssertionError):
        STATE_CHECKS[name](clean)   # the clean node does not already look like the scenario
    STATE_CHECKS[name](load_seeded_state("us", [name]))


def test_injected_fault_answers_in_each_api_error_shape() -> None:
    state = load_seeded_state("us", ["api-unavailable"])
    router = build_router()
    router.add("GET", "/compute/v1/_probe", lambda req: {"ok": True}, api="compute")
    with SimServer(state, router=router) as server:
        response = session().get(f"{server.url}/compute/v1/_probe")
        assert isinstance(exceptions.from_http_response(response), exceptions.ServiceUnavailable)
        assert response.json()["error"]["errors"][0]["reason"] == "backendError"
        state.options["faults"].append({"api": "logging", "status": 503})
        with pytest.raises(exceptions.ServiceUnavailable):
            list(logging(server.url).list_entries(resource_names=["projects/fed-node-us"], filter_="timestamp>\"2026\""))
        assert session().get(f"{server.url}/v3/projects/fed-node-us").status_code == 200


def test_slow_scenario_delays_calls_and_shrinks_pages(sim_factory) -> None:
    sim = sim_factory(scenarios=["api-slow"])
    began = time.monotonic()
    page = session().post(f"{sim.url}/v2/entries:list",
                          json={"resourceNames": ["projects/fed-node-us"], "pageSize": 100}).json()
    assert time.monotonic() - began >= 0.3
    assert len(page["entries"]) == 5 and page["nextPageToken"]


def test_scenarios_json_lists_names_and_controls() -> None:
    result = CliRunner().invoke(sim_cli, ["scenarios", "--json"])
    assert result.exit_code == 0, result.output
    listed = {s["name"]: s for s in json.loads(result.output)}
    assert REQUIRED <= set(listed)
    assert listed["org-policy-relaxed"]["fails"] == ["SOV-01", "SOV-02", "SOV-03"]
    assert listed["data-access-logs-off"] == {
        "name": "data-access-logs-off", "fails": ["SEC-05"], "errors": ["SEC-04"],
        "description": listed["data-access-logs-off"]["description"]}


def test_scenarios_table_names_each_scenario() -> None:
    result = CliRunner().invoke(sim_cli, ["scenarios"])
    assert result.exit_code == 0
    assert all(name in result.output for name in REQUIRED)


def test_scenarios_combine_in_order() -> None:
    state = load_seeded_state("us", ["vm-public-ip", "vm-not-confidential", "bucket-multi-region"])
    check_vm_public_ip(state)
    check_vm_not_confidential(state)
    check_bucket_multi_region(state)
    assert state.scenarios == ["vm-public-ip", "vm-not-confidential", "bucket-multi-region"]
