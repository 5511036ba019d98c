"""Every scenario loads on every node, names real controls, and changes what it says it changes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from google.api_core import exceptions
from sim_clients import logging, session

from sovaudit.audit.registry import all_controls
from sovaudit.simulator.commands import sim as sim_cli
from sovaudit.simulator.node import list_scenarios, load_scenario, scenario_names
from sovaudit.simulator.server import SimServer, build_router, load_seeded_state
from sovaudit.simulator.state import SimState

REQUIRED = {"org-policy-relaxed", "vm-not-confidential", "vm-public-ip", "egress-foreign-bucket",
            "data-access-logs-off", "dataset-no-cmek", "bucket-multi-region", "perimeter-dry-run",
            "default-service-account", "vpcsc-violation", "api-unavailable", "task-rows-missing"}


def _job_vms(state: SimState) -> list[dict]:
    uid = state.extras["seed"].job_uid
    return sorted((vm for vm in state.instances.values() if vm.get("labels", {}).get("batch-job-uid") == uid),
                  key=lambda vm: int(vm["name"].split("-group0-")[1].split("-")[0]))


def _insert_requests(state: SimState) -> list[dict]:
    uid = state.extras["seed"].job_uid
    return [e["protoPayload"]["request"] for e in state.log_entries
            if e.get("operation", {}).get("first") and e["protoPayload"]["request"].get("labels", {})
            .get("batch-job-uid") == uid]


def test_the_scenarios_later_issues_rely_on_exist() -> None:
    assert REQUIRED <= set(scenario_names())


# Scenarios whose point is that verify still passes (a fault survived, a real-cloud behaviour handled).
PASSING = {"api-slow", "batch-fails-on-policy", "vms-deleted-after-job",
           # SOV-09: a named, clean workload (and a violation resolved hours before the run) passes
           "aw-clean-workload-named", "aw-workload-folder-governs",
           # network look-alikes that are not a way out (SEC-09 must not cry wolf)
           "net-private-nat-noise", "net-firewall-not-required",
           # scope and sweep twins: two clean jobs both judged, the verifier's own probe leftover swept
           "scope-two-jobs-clean", "probe-leftover-swept",
           # CC-05 turned on in the pack: every task's token is genuine and bound to it
           "attestation-clean",
           # Google's own access that is allowed: listed, and not a finding (SOV-07, SOV-08)
           "staff-access-allowed-support", "kms-use-allowed-justification"}


def test_every_scenario_names_only_registered_controls() -> None:
    known = {c.meta.id for c in all_controls()}
    for scenario in list_scenarios():
        assert set(scenario.fails) | set(scenario.errors) | set(scenario.waived) <= known, scenario.name
        assert (scenario.fails or scenario.errors or scenario.waived or scenario.name in PASSING
                or scenario.name.startswith("fault-")), scenario.name


def _moved_by_actions(name: str) -> set[int]:
    """Task indexes (of 5) of the run VMs a scenario's actions delete (as Batch does) or relabel with setLabels
    (every such scenario takes the VM out of the job's label scope)."""
    moved = set()
    for action in load_scenario(name).seed.get("actions") or ():
        call = str(action["call"])
        match = re.search(r"/instances/\$\{vm:(\d+)\}(/setLabels)?$", call)
        if match and (call.startswith("DELETE ") or match.group(2)):
            moved.add(int(match.group(1)) % 5)
    return moved


@pytest.mark.parametrize("node", ["us", "eu"])
@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_loads_on_every_node(node: str, name: str) -> None:
    state = load_seeded_state(node, [name], job_tasks=5)
    assert state.scenarios == [name]
    deleted = load_scenario(name).seed.get("delete_vms") or []
    assert len(_job_vms(state)) == (0 if deleted is True else 5 - len({i % 5 for i in deleted} | _moved_by_actions(name)))
    assert len(_insert_requests(state)) == 5 - len(load_scenario(name).seed.get("missing_insert_logs", []))


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
    # The egress rule let the write out; Google logs it in the bucket's project, not the node's.
    assert ("fed-node-us-processed-export", "exports/preprocess-genomes-001/sample-0001.parquet") in state.objects
    writes = {(e["logName"], e["resource"]["labels"].get("bucket_name")) for e in state.log_entries
              if e.get("protoPayload", {}).get("methodName") == "storage.objects.create"}
    assert ("projects/partner-analytics-us/logs/cloudaudit.googleapis.com%2Fdata_access",
            "fed-node-us-processed-export") in writes
    assert not [w for w in writes if w[0].startswith("projects/fed-node-us/") and w[1] == "fed-node-us-processed-export"]


def check_batch_fails_on_policy(state: SimState) -> None:
    assert state.options["batch_refusal"] == "fail"


def check_api_unavailable(state: SimState) -> None:
    assert state.options["faults"] == [{"api": "compute", "status": 503}]


def _vm(state: SimState, index: int) -> dict:
    return next(vm for vm in _job_vms(state) if f"-group0-{index}-" in vm["name"])


def _insert(state: SimState, index: int) -> dict:
    return next(r for r in _insert_requests(state) if f"-group0-{index}-" in r["name"])


def check_vm_outside_region(state: SimState) -> None:
    moved = _vm(state, 8)
    assert moved["zone"].endswith("/zones/us-east1-b") and "/zones/us-east1-b/" in moved["machineType"]
    assert "/regions/us-east1/" in moved["networkInterfaces"][0]["subnetwork"]
    assert ("us-east1-b", moved["name"]) in state.instances
    assert {vm["zone"].rsplit("/", 1)[1] for vm in _job_vms(state) if vm is not moved} <= set(state.zones)


def check_insert_log_missing(state: SimState) -> None:
    assert len(_job_vms(state)) == 10
    assert sorted(int(r["name"].split("-group0-")[1].split("-")[0]) for r in _insert_requests(state)) == \
        [0, 1, 2, 3, 4, 5, 6, 7, 8]


def check_vms_deleted_after_job(state: SimState) -> None:
    assert _job_vms(state) == [] and len(_insert_requests(state)) == 10
    uid = state.extras["seed"].job_uid
    deletes = [e for e in state.log_entries
               if e.get("protoPayload", {}).get("methodName") == "v1.compute.instances.delete"
               and uid in e["protoPayload"]["resourceName"]]
    assert len(deletes) == 10 and all(e["timestamp"] > state.extras["seed"].window_end for e in deletes)


def check_vm_ipv6_external(state: SimState) -> None:
    nic = _vm(state, 5)["networkInterfaces"][0]
    ipv6 = nic.get("ipv6AccessConfigs") or [{}]
    assert ipv6[0].get("type") == "DIRECT_IPV6" and not nic.get("accessConfigs")
    assert _insert(state, 5)["networkInterfaces"][0].get("ipv6AccessConfigs") == ipv6


def check_vm_tdx(state: SimState) -> None:
    vm = _vm(state, 6)
    assert vm["confidentialInstanceConfig"].get("confidentialInstanceType") == "TDX"
    assert vm["machineType"] == f"{vm['zone']}/machineTypes/c3-standard-4"
    assert _insert(state, 6)["confidentialInstanceConfig"].get("confidentialInstanceType") == "TDX"


def check_template_not_confidential(state: SimState) -> None:
    assert "confidentialInstanceConfig" not in state.instance_templates["sev-n2d-batch"]["properties"]
    assert not any("confidentialInstanceConfig" in vm for vm in _job_vms(state))


def check_egress_lookalike_dataset(state: SimState) -> None:
    tables = {e["protoPayload"]["resourceName"] for e in state.log_entries
              if e.get("protoPayload", {}).get("metadata", {}).get("tableDataChange")}
    assert "projects/fed-node-us/datasets/hospital_data_copy/tables/variants" in tables
    assert any(j["configuration"]["load"]["destinationTable"]["datasetId"] == "hospital_data_copy"
               for j in state.bq_jobs.values())


def check_cmek_key_elsewhere(state: SimState) -> None:
    key = state.buckets["fed-node-us-processed"]["encryption"]["defaultKmsKeyName"]
    assert "/locations/us-east1/" in key and key in state.crypto_keys


def check_probe_same_country(state: SimState) -> None:
    rules = state.org_policies["gcp.resourceLocations"]["spec"]["rules"]
    assert rules == [{"values": {"allowedValues": ["in:us-locations"]}}]


def check_perimeter_missing_service(state: SimState) -> None:
    restricted = next(iter(state.perimeters.values()))["status"]["restrictedServices"]
    assert "bigquery.googleapis.com" not in restricted and "storage.googleapis.com" in restricted


def check_vm_replaced_public_ip(state: SimState) -> None:
    assert len(_job_vms(state)) == 9 and not any("-group0-4-" in vm["name"] for vm in _job_vms(state))
    assert _insert(state, 4)["networkInterfaces"][0].get("accessConfigs")


STATE_CHECKS: dict[str, Callable[[SimState], None]] = {
    "vm-replaced-public-ip": check_vm_replaced_public_ip,
    "vm-outside-region": check_vm_outside_region,
    "insert-log-missing": check_insert_log_missing,
    "vms-deleted-after-job": check_vms_deleted_after_job,
    "vm-ipv6-external": check_vm_ipv6_external,
    "vm-tdx": check_vm_tdx,
    "template-not-confidential": check_template_not_confidential,
    "egress-lookalike-dataset": check_egress_lookalike_dataset,
    "cmek-key-elsewhere": check_cmek_key_elsewhere,
    "probe-same-country": check_probe_same_country,
    "perimeter-missing-service": check_perimeter_missing_service,
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
        "name": "data-access-logs-off", "fails": ["SEC-05"], "errors": ["SEC-04", "SEC-07"],
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


@pytest.mark.parametrize("node", ["us", "eu"])
def test_every_policy_overlay_makes_a_valid_pack_on_every_node(node: str, tmp_path) -> None:
    from sovaudit.policies.pack import load_policy
    from sovaudit.simulator.matrix import scenario_policy_file

    overlaid = [s for s in list_scenarios() if s.policy_patch]
    assert {"waiver-expired", "waiver-valid", "policy-requires-sev-snp"} <= {s.name for s in overlaid}
    for scenario in overlaid:
        pack = load_policy(scenario_policy_file(scenario, node, tmp_path))
        assert pack.project == f"fed-node-{node}", scenario.name
    waived = load_policy(scenario_policy_file(load_scenario("waiver-valid"), node, tmp_path)).waivers
    assert [w.resource for w in waived] == [f"projects/_/buckets/fed-node-{node}-raw-vcfs"]


def test_a_scenario_without_a_policy_block_runs_against_the_shipped_pack(tmp_path) -> None:
    from sovaudit.simulator.matrix import scenario_policy_file

    assert scenario_policy_file(load_scenario("vm-public-ip"), "us", tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_policy_overlay_the_pack_schema_refuses_names_the_scenario_file(tmp_path) -> None:
    from sovaudit.simulator.matrix import scenario_policy_file

    bad = tmp_path / "bad-waiver.yaml"
    bad.write_text("name: bad-waiver\ndescription: x\nfails: []\npolicy:\n  waivers:\n"
                   "    - {control: SEC-99, resource: '*', owner: a, justification: b, expires: 2027-01-01}\n")
    with pytest.raises(ValueError) as caught:
        scenario_policy_file(load_scenario(bad), "us", tmp_path)
    assert str(bad) in str(caught.value) and "SEC-99" in str(caught.value)
